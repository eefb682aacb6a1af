"""ONNX export: a ReidNet -> `input` (N, 3, H, W) float32 -> `embedding` (N, D) float32
[+ `attributes` (N, 30) float32 probabilities with `with_attributes`].

The batch axis is dynamic. The preprocessing contract, the model description and the precision are
written into the ONNX metadata (`metadata_props`, format in `artefacts.onnx_metadata`, which is how
every runtime reads them back).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from ..artefacts.onnx_metadata import ATTRIBUTES_NAME, EMBEDDING_NAME, IMPORT_KEY, INPUT_NAME
from ..artefacts.onnx_writer import write_onnx_artefact
from ..contract import Preprocess
from ..errors import ExportError
from ..files import check_writable_dir, refuse_existing
from ..models import ReidNet, attribute_probabilities
from .settings import DEFAULT_OPSET, MIN_OPSET

__all__ = ["DEFAULT_OPSET", "EmbeddingModel", "export_onnx", "model_description", "supported_opsets",
           "refuse_onnx_output", "is_onnx_file"]


class EmbeddingModel(nn.Module):
    """What gets exported: image batch -> embedding (L2-normalised when the contract says so),
    and with `with_attributes` also the attribute probabilities (softmax age, sigmoid elsewhere)."""

    def __init__(self, model: ReidNet, l2_normalize: bool, with_attributes: bool = False):
        super().__init__()
        self.model = model
        self.l2_normalize = l2_normalize
        self.with_attributes = with_attributes

    def forward(self, x: torch.Tensor):
        emb, attributes = self.model.embed_with_attributes(x)  # the embedding chosen by model.config.embedding
        out = nn.functional.normalize(emb, dim=1) if self.l2_normalize else emb
        if self.with_attributes:
            return out, attribute_probabilities(attributes)
        return out


def export_onnx(model: ReidNet, out: str | Path, *, opset: int = DEFAULT_OPSET, l2_normalize: bool = True,
                with_attributes: bool = False, overwrite: bool = False, exporter: str = "dynamo") -> Path:
    """Export `model` to `out` with a dynamic batch axis and the contract in its metadata.

    `exporter`: "dynamo" (torch.export based, the default) or "torchscript" (the legacy tracer, kept as a
    fallback for models the dynamo exporter cannot handle). The file is written next to `out` first and
    renamed at the end (`artefacts.onnx_writer`, with its tracker sidecar); an existing `out` is refused unless
    `overwrite`."""
    import onnx

    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"{out}: the output file must end in .onnx")
    refuse_onnx_output(out, overwrite=overwrite)
    check_writable_dir(out.parent, what=f"-o {out}: its folder")  # before the export, not at the rename
    if exporter not in ("dynamo", "torchscript"):
        raise ExportError(f"unknown exporter {exporter!r}; choose 'dynamo' or 'torchscript'")
    supported = supported_opsets(exporter)
    if opset not in supported:
        raise ExportError(f"--opset {opset} is not supported: the {exporter} exporter of torch {torch.__version__} "
                          f"with onnx {onnx.__version__} writes opsets {supported.start} to {supported.stop - 1}; "
                          f"choose one in that range (default {DEFAULT_OPSET})")
    if with_attributes and model.attribute_head is None:
        raise ExportError("--with-attributes: this model has no attribute heads; train with attributes "
                          "(a recipe with `attributes = true` and a market_attribute.mat) or export without it")
    contract = _contract_with(model.config.preprocess, l2_normalize)
    wrapper = EmbeddingModel(model, l2_normalize, with_attributes).eval().cpu()
    outputs = [EMBEDDING_NAME, ATTRIBUTES_NAME] if with_attributes else [EMBEDDING_NAME]
    example = torch.zeros(2, *contract.input_shape)
    with tempfile.TemporaryDirectory(prefix="reid-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        _torch_export(wrapper, example, raw, opset, exporter, outputs)
        proto = onnx.load(str(raw))
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:  # the exporter fell back silently: say so rather than report the wrong opset
        raise ExportError(f"asked for opset {opset} but the {exporter} exporter wrote opset {written}; "
                          f"choose --opset {written}, or another exporter")
    onnx.checker.check_model(proto, full_check=True)
    model_info = model_description(model)
    # the ONNX and its tracker sidecar (out.onnx.metadata.json, what boxmot reads), written together
    imported = getattr(model, "import_summary", None)  # weights trained elsewhere: what the importer found
    return write_onnx_artefact(proto, out, contract=contract, precision="fp32", model_info=model_info, check=False,
                               extra={IMPORT_KEY: imported} if imported else None)


def model_description(model: ReidNet) -> dict:
    """What an artefact records about its model (the metadata's `reid_export.model`): the config without the
    contract, which is stored on its own, and the embedding size."""
    return ({k: v for k, v in model.config.to_dict().items() if k != "preprocess"}
            | {"embedding_dim": model.config.embedding_dim})


def refuse_onnx_output(out: str | Path, *, overwrite: bool, inputs=()) -> None:
    """-o of an ONNX export: a free path, or with `overwrite` an ONNX file (never a checkpoint or anything
    else the user keeps there), and never one of the command's `inputs`."""
    refuse_existing(out, overwrite=overwrite, error=ExportError, inputs=inputs, own=is_onnx_file,
                    kind="an ONNX file")


def is_onnx_file(path: str | Path) -> bool:
    """Whether `path` parses as an ONNX model with a graph (the weights are not read)."""
    import onnx  # as export_onnx: only commands that write ONNX need it

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - whatever the parser says, it is not an ONNX file
        return False
    return proto.ir_version > 0 and len(proto.graph.node) > 0


def supported_opsets(exporter: str = "dynamo") -> range:
    """The opsets `export_onnx` can write here: from MIN_OPSET (18 for dynamo, whose graphs start at 18 and
    down-convert badly) to the newest that both this torch exporter and the installed onnx know."""
    import onnx
    from torch.onnx import _constants  # torch's own table of exporter limits (no public API holds it)

    newest = getattr(_constants, "ONNX_MAX_OPSET" if exporter == "dynamo" else "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET",
                     DEFAULT_OPSET)
    oldest = max(MIN_OPSET, 18) if exporter == "dynamo" else MIN_OPSET
    return range(oldest, min(int(newest), onnx.defs.onnx_opset_version()) + 1)


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
