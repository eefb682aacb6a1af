"""A running Triton Inference Server as one more runtime: `triton=http://HOST:PORT/NAME[/VERSION]`.

    with make_runtime("triton", "http://localhost:8000/reid") as rt:
        out = rt.infer(rt.contract.load_batch(paths))

The contract and precision come from the model's config on the server (the `reid_export.*` parameters
that `reid-export triton` writes into config.pbtxt), tensor names and max_batch_size too; batches above
max_batch_size are split. Requests go over HTTP with binary tensors (tritonclient). Without tritonclient
the runtime says how to install it; without a reachable server it is `RuntimeUnavailable` ("no Triton
server at ..."), which the bench reports as a skipped row.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artefacts.info import ArtefactInfo, Tensor
from ..artefacts.onnx_metadata import EMBEDDING_NAME, METADATA_KEY, PRECISION_KEY
from ..contract import Preprocess
from ..errors import ReidExportError, RuntimeUnavailable
from ..files import redact_url
from .base import Runtime

__all__ = ["TritonAddress", "TritonRuntime"]

_INSTALL = 'pip install "reid-export[triton]"'
_URL = re.compile(r"^(?P<scheme>https?)://(?P<host>[^/\s]+)/(?P<model>[^/\s]+)(?:/(?P<version>\d+))?/?$")


@dataclass(frozen=True)
class TritonAddress:
    """Where a model is served: `http://HOST:PORT/NAME` (optionally `/VERSION`)."""
    scheme: str
    host: str  # HOST:PORT
    model: str
    version: str = ""  # "" = the server's version policy

    @classmethod
    def parse(cls, text: str) -> TritonAddress:
        m = _URL.match(str(text).strip())
        if not m:
            raise ReidExportError(f"triton model {text!r}: expected http://HOST:PORT/NAME (optionally /VERSION), "
                                  "e.g. triton=http://localhost:8000/reid")
        return cls(m["scheme"], m["host"], m["model"], m["version"] or "")

    @property
    def name(self) -> str:  # what reports show for an artefact
        return self.model

    @property
    def url(self) -> str:  # what messages and reports show: a password in the address becomes ***
        return redact_url(f"{self.scheme}://{self.host}")

    def __str__(self) -> str:
        return f"{self.url}/{self.model}" + (f"/{self.version}" if self.version else "")


class TritonRuntime(Runtime):
    name = "triton"

    def __init__(self, artefact, *, device: str = "server", timeout_s: float = 5.0):
        super().__init__(artefact, device=device)
        self.address = artefact if isinstance(artefact, TritonAddress) else TritonAddress.parse(str(artefact))
        self.timeout_s = timeout_s  # connection and network timeout
        self._client = None

    def _activate_impl(self) -> None:
        try:
            import tritonclient.http as httpclient
        except ImportError as e:
            raise RuntimeUnavailable(f"triton: tritonclient is not installed: {_INSTALL}") from e
        a = self.address
        client = httpclient.InferenceServerClient(url=a.host, ssl=a.scheme == "https",
                                                  connection_timeout=self.timeout_s, network_timeout=self.timeout_s)
        try:
            live = client.is_server_live()
        except Exception as e:  # refused, DNS, timeout: the HTTP client raises its own types
            client.close()
            raise RuntimeUnavailable(f"no Triton server at {a.url} ({type(e).__name__}: {e})") from e
        if not live:
            client.close()
            raise RuntimeUnavailable(f"no Triton server at {a.url} (it answers but is not live)")
        try:
            if not client.is_model_ready(a.model, a.version):
                raise RuntimeUnavailable(f"Triton at {a.url} has no ready model {a.model!r}; write its repository with "
                                         f"`reid-export triton ARTEFACT -o REPO --name {a.model}` and load it")
            config = client.get_model_config(a.model, a.version)
            server = client.get_server_metadata()
        except RuntimeUnavailable:
            client.close()
            raise
        except Exception as e:
            client.close()
            raise RuntimeUnavailable(f"Triton at {a.url}: cannot read model {a.model!r} ({e})") from e
        params = {k: v.get("string_value") for k, v in (config.get("parameters") or {}).items()}
        if METADATA_KEY not in params:
            client.close()
            raise ReidExportError(f"Triton model {a}: its config has no '{METADATA_KEY}' parameter, so the input "
                                  "contract is unknown; write the repository with `reid-export triton`")
        self.contract = Preprocess.from_json(params[METADATA_KEY], source=str(a))
        self.precision = params.get(PRECISION_KEY) or "fp32"
        self.provider = f"Triton {server.get('version', '?')} ({config.get('backend') or config.get('platform')})"
        self._max_batch = int(config.get("max_batch_size") or 0)
        self._input = config["input"][0]["name"]
        self._outputs = [o["name"] for o in config["output"]]
        self._client, self._http = client, httpclient
        self._served = _served_model(a, config, self.contract, self.precision, server)

    def _info_impl(self) -> dict:
        instances = sum(int(group.get("count") or 1) for group in self._served.extras["instance_group"]) or 1
        return {"artefact": self._served, "device": "server", "instances": instances}

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        step = self._max_batch or len(batch)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self._outputs}
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            inp = self._http.InferInput(self._input, list(chunk.shape), "FP32")
            inp.set_data_from_numpy(chunk, binary_data=True)
            wanted = [self._http.InferRequestedOutput(name, binary_data=True) for name in self._outputs]
            result = self._client.infer(self.address.model, [inp], model_version=self.address.version, outputs=wanted)
            for name in self._outputs:
                parts[name].append(result.as_numpy(name).astype(np.float32, copy=False))
        return {name: np.concatenate(arrays) for name, arrays in parts.items()}

    def _deactivate_impl(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _served_model(address: TritonAddress, config: dict, contract: Preprocess, precision: str,
                  server: dict) -> ArtefactInfo:
    """The model as the server reports it. Triton does not hand out its weights, so `sha256` is that of the model
    config it reports (its contract and precision included): it changes when the served model's config does."""
    def tensors(specs) -> tuple[Tensor, ...]:  # Triton's dims leave out the batch axis when max_batch_size > 0
        batch = (-1,) if int(config.get("max_batch_size") or 0) > 0 else ()
        return tuple(Tensor(t["name"], batch + tuple(int(d) if int(d) > 0 else -1 for d in t.get("dims", ())))
                     for t in specs)

    inputs, outputs = tensors(config.get("input", [])), tensors(config.get("output", []))
    embedding = next((t.shape[-1] for t in outputs if t.name == EMBEDDING_NAME and t.shape and t.shape[-1] > 0), None)
    text = json.dumps(config, sort_keys=True)
    return ArtefactInfo(
        kind="triton-model", path=Path(address.model), contract=contract, precision=precision, arch=None,
        embedding_dim=embedding, inputs=inputs, outputs=outputs, sha256=hashlib.sha256(text.encode()).hexdigest(),
        size_bytes=0, provenance={"server": address.url, "server_version": server.get("version"),
                                  "model_version": address.version or "(the server's version policy)"},
        extras={"backend": config.get("backend") or config.get("platform"),
                "max_batch_size": int(config.get("max_batch_size") or 0),
                "instance_group": config.get("instance_group") or []},
        notes=("served by Triton: the sha256 is of the model config the server reports, not of its weights",))
