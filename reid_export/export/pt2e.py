"""What the edge exporters (`executorch`, `litert`, `coreml`) share: the graph they convert, the metadata it
carries, and static INT8 with a PT2E quantiser calibrated on training images only.

    graph = edge_graph(model, l2_normalize=True, with_attributes=False)    # module, example, contract, outputs
    quantized = quantize_pt2e(graph, quantizer, calibration_images(data, 300))

The graph is the ONNX export's (`onnx.EmbeddingModel`). Calibration images are refused when they come from
query or gallery folders (`precision.refuse_evaluation_images`); the artefact records how many and which
(`precision.calibration_record`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..artefacts.edge_metadata import edge_metadata
from ..artefacts.onnx_metadata import ATTRIBUTES_NAME, EMBEDDING_NAME
from ..contract import Preprocess
from ..errors import ExportError
from ..models import ReidNet
from ..progress import progress_bar
from .onnx import EmbeddingModel, model_description
from .precision import calibration_record, refuse_evaluation_images

__all__ = ["CALIBRATION_BATCH", "EdgeGraph", "edge_graph", "graph_metadata", "quantize_pt2e"]

CALIBRATION_BATCH = 16  # images per calibration forward pass


@dataclass(frozen=True)
class EdgeGraph:
    module: torch.nn.Module  # image batch -> embedding [, attribute probabilities]
    contract: Preprocess  # the model's contract, with the normalisation the graph applies
    outputs: tuple[str, ...]  # ("embedding",) or ("embedding", "attributes")
    model_info: dict  # `onnx.model_description`

    def example(self, batch: int = 2) -> tuple[torch.Tensor]:
        return (torch.zeros(batch, *self.contract.input_shape),)


def edge_graph(model: ReidNet, *, l2_normalize: bool = True, with_attributes: bool = False) -> EdgeGraph:
    """The graph every edge format converts; attributes only from a model with heads."""
    if with_attributes and model.attribute_head is None:
        raise ExportError("--with-attributes: this model has no attribute heads; train with attributes "
                          "(a recipe with `attributes = true` and a market_attribute.mat) or export without it")
    module = EmbeddingModel(model, l2_normalize, with_attributes).eval().cpu()
    outputs = (EMBEDDING_NAME, ATTRIBUTES_NAME) if with_attributes else (EMBEDDING_NAME,)
    return EdgeGraph(module=module, contract=replace(model.config.preprocess, l2_normalized=l2_normalize),
                     outputs=outputs, model_info=model_description(model))


def graph_metadata(graph: EdgeGraph, *, precision: str, calibration: list[Path] | None = None) -> dict[str, str]:
    """The metadata an edge artefact of `graph` carries (`artefacts.edge_metadata`)."""
    record = calibration_record(calibration) | {"method": "minmax", "quantizer": "pt2e"} if calibration else None
    return edge_metadata(graph.contract, precision=precision, model_info=graph.model_info, outputs=list(graph.outputs),
                         calibration=record)


def quantize_pt2e(graph: EdgeGraph, quantizer, calibration: list[Path], *, fold_quantize: bool = True,
                  progress: bool = True):
    """`graph.module` exported with a dynamic batch, observed by `quantizer` (PT2E) on the calibration images
    (training images only) and converted: a GraphModule with quantise/dequantise nodes, for the converter.
    `fold_quantize=False` keeps the weights' quantise nodes in the graph (what litert-torch lowers)."""
    from torchao.quantization.pt2e import (
        move_exported_model_to_eval,  # lazy: torchao comes with the edge extra
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    refuse_evaluation_images(calibration)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        exported = torch.export.export(graph.module, graph.example(), dynamic_shapes={"x": {0: batch}}).module()
        prepared = prepare_pt2e(exported, quantizer)
        with progress_bar("calibrating INT8", len(calibration), enabled=progress) as advance:
            for start in range(0, len(calibration), CALIBRATION_BATCH):
                chunk = calibration[start:start + CALIBRATION_BATCH]
                prepared(torch.from_numpy(graph.contract.load_batch(chunk)))
                advance(len(chunk))
        converted = convert_pt2e(prepared, fold_quantize=fold_quantize)
    return move_exported_model_to_eval(converted)
