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

import re
from dataclasses import dataclass

import numpy as np

from ..artefacts.onnx_metadata import METADATA_KEY, PRECISION_KEY
from ..contract import Preprocess
from ..errors import ReidExportError, RuntimeUnavailable
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
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

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
