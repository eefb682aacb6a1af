"""ONNX export: a ReidNet -> `input` (N, 3, H, W) float32 -> `embedding` (N, D) float32
[+ `attributes` (N, 30) float32 probabilities with `with_attributes`].

The batch axis is dynamic. The preprocessing contract, the model description and the precision are
written into the ONNX metadata (`metadata_props`), and `read_metadata` / `read_contract` are how every
runtime gets them back.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..contract import METADATA_KEY, Preprocess
from ..errors import ExportError
from ..model import ReidNet

__all__ = ["DEFAULT_OPSET", "INPUT_NAME", "EMBEDDING_NAME", "ATTRIBUTES_NAME", "export_onnx", "read_metadata",
           "read_contract", "contract_from_metadata", "check_parity"]

DEFAULT_OPSET = 18
INPUT_NAME = "input"
EMBEDDING_NAME = "embedding"
ATTRIBUTES_NAME = "attributes"
MODEL_KEY = "reid_export.model"
PRECISION_KEY = "reid_export.precision"
VERSION_KEY = "reid_export.version"


class EmbeddingModel(nn.Module):
    """What gets exported: image batch -> embedding (L2-normalised when the contract says so),
    and with `with_attributes` also the attribute probabilities (softmax age, sigmoid elsewhere)."""

    def __init__(self, model: ReidNet, l2_normalize: bool, with_attributes: bool = False):
        super().__init__()
        self.model = model
        self.l2_normalize = l2_normalize
        self.with_attributes = with_attributes

    def forward(self, x: torch.Tensor):
        from ..model import attribute_probabilities

        emb = self.model.embed(x)
        out = nn.functional.normalize(emb, dim=1) if self.l2_normalize else emb
        if self.with_attributes:
            return out, attribute_probabilities(self.model.attribute_head(emb))
        return out


def export_onnx(model: ReidNet, out: str | Path, *, opset: int = DEFAULT_OPSET, l2_normalize: bool = True,
                with_attributes: bool = False, overwrite: bool = False, exporter: str = "dynamo") -> Path:
    """Export `model` to `out` with a dynamic batch axis and the contract in its metadata.

    `exporter`: "dynamo" (torch.export based, the default) or "torchscript" (the legacy tracer, kept as a
    fallback for models the dynamo exporter cannot handle). The file is written next to `out` first and
    renamed at the end; an existing `out` is refused unless `overwrite`."""
    import onnx

    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"{out}: the output file must end in .onnx")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite to replace it, or choose another -o path")
    if opset < 17:
        raise ExportError(f"opset {opset} is too old; reid-export exports opset 17 or newer")
    if exporter not in ("dynamo", "torchscript"):
        raise ExportError(f"unknown exporter {exporter!r}; choose 'dynamo' or 'torchscript'")
    if with_attributes and model.attribute_head is None:
        raise ExportError("--with-attributes: this model has no attribute heads; train with attributes "
                          "(a recipe with `attributes = true` and a market_attribute.mat) or export without it")
    out.parent.mkdir(parents=True, exist_ok=True)

    contract = _contract_with(model.config.preprocess, l2_normalize)
    wrapper = EmbeddingModel(model, l2_normalize, with_attributes).eval().cpu()
    outputs = [EMBEDDING_NAME, ATTRIBUTES_NAME] if with_attributes else [EMBEDDING_NAME]
    example = torch.zeros(2, *contract.input_shape)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        _torch_export(wrapper, example, tmp, opset, exporter, outputs)
        proto = onnx.load(str(tmp))
        meta = {
            METADATA_KEY: contract.to_json(),
            MODEL_KEY: json.dumps({k: v for k, v in model.config.to_dict().items() if k != "preprocess"}
                                  | {"embedding_dim": model.config.embedding_dim}, sort_keys=True),
            PRECISION_KEY: "fp32",
            VERSION_KEY: __version__,
        }
        set_metadata(proto, meta)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def set_metadata(proto, meta: dict[str, str]) -> None:
    """Set (replace) string entries in an ONNX ModelProto's metadata_props."""
    keep = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an ONNX file as a dict, without loading the weights."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file; export one with `reid-export onnx CKPT -o {path}`")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ExportError(f"{path}: not a readable ONNX file ({e}); re-export it with `reid-export onnx`") from e
    return {p.key: p.value for p in proto.metadata_props}


def read_contract(path: str | Path) -> Preprocess:
    """The preprocessing contract stored in an ONNX file by `export_onnx`."""
    return contract_from_metadata(read_metadata(path), source=str(path))


def contract_from_metadata(meta: dict[str, str], *, source: str) -> Preprocess:
    """The contract in metadata already read with `read_metadata` (so the file is parsed once)."""
    path = source
    if METADATA_KEY not in meta:
        raise ExportError(
            f"{path}: has no '{METADATA_KEY}' metadata, so its input size and normalisation are unknown; "
            "export it with `reid-export onnx` (which records them)"
        )
    return Preprocess.from_json(meta[METADATA_KEY], source=source)


def _contract_with(contract: Preprocess, l2_normalize: bool) -> Preprocess:
    from dataclasses import replace

    return replace(contract, l2_normalized=l2_normalize)


def _torch_export(wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int, exporter: str,
                  outputs: list[str]) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(wrapper, (example,), str(path), input_names=[INPUT_NAME], output_names=outputs,
                              opset_version=opset, dynamo=True, external_data=False,
                              dynamic_shapes={"x": {0: batch}}, verbose=False)
        else:
            torch.onnx.export(wrapper, (example,), str(path), input_names=[INPUT_NAME], output_names=outputs,
                              opset_version=opset, dynamo=False,
                              dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *outputs]})


def check_parity(model: ReidNet, onnx_path: str | Path, batch) -> dict[str, float]:
    """Run the same float32 batch through PyTorch and ONNX Runtime (CPU); returns `embedding_agreement`."""
    from ..compare import embedding_agreement
    from ..runtimes import make_runtime

    with make_runtime("torch", model) as ref, make_runtime("onnxruntime", onnx_path) as ort:
        if ort.contract.l2_normalized != ref.contract.l2_normalized:
            ref.contract = ort.contract  # compare like with like: the export chose the normalisation
        expected, got = ref.infer(batch), ort.infer(batch)
    result = embedding_agreement(expected["embedding"], got["embedding"])
    if ATTRIBUTES_NAME in got:
        result["attributes_max_abs_diff"] = float(abs(expected[ATTRIBUTES_NAME] - got[ATTRIBUTES_NAME]).max())
    return result
