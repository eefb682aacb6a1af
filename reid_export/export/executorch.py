"""ExecuTorch export: a ReidNet -> `torch.export` with a dynamic batch axis -> `to_edge_transform_and_lower` with
the XNNPACK partitioner -> one `.pte` program, FP32 or static INT8 (the XNNPACK quantiser, PT2E, calibrated on
training images only).

    write_executorch_program(model, "engines/model.pte")                               # FP32
    write_executorch_program(model, "engines/model.int8.pte", calibration=paths)       # INT8

The program's input and outputs stay float32 (INT8 quantises inside the graph). The contract, the model, the
precision, the output names and the calibration travel in the program's constant method `reid_export_metadata`
(`artefacts.executorch_program`). `verified.edge.export_executorch` adds the parity check on the `executorch`
runtime.

XNNPACK's lowering bounds the batch axis: the program's memory plan holds batches of up to 15 (a shape guard
of the lowering splits the axis at 16), which the `executorch` runtime reads and splits larger batches into.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..artefacts.edge_metadata import metadata_json
from ..artefacts.executorch_program import METADATA_METHOD, write_pte
from ..models import ReidNet
from .pt2e import edge_graph, graph_metadata, quantize_pt2e

__all__ = ["MAX_BATCH", "write_executorch_program"]

MAX_BATCH = 4096  # the batch axis as exported; the XNNPACK lowering plans memory for fewer (see the docstring)


def write_executorch_program(model: ReidNet, out: str | Path, *, calibration: list[Path] | None = None,
                             l2_normalize: bool = True, with_attributes: bool = False,
                             progress: bool = True) -> Path:
    """Export `model` to the program `out` (atomically), INT8 when `calibration` (training images) is given."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
        XnnpackPartitioner,  # lazy: edge extra
    )
    from executorch.exir import to_edge_transform_and_lower

    graph = edge_graph(model, l2_normalize=l2_normalize, with_attributes=with_attributes)
    module = graph.module
    if calibration:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (  # lazy: edge extra
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        module = quantize_pt2e(graph, quantizer, calibration, progress=progress)
    meta = graph_metadata(graph, precision="int8" if calibration else "fp32", calibration=calibration)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(module, graph.example(), dynamic_shapes={"x": {0: batch}})
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                              constant_methods={METADATA_METHOD: metadata_json(meta)})
        buffer = lowered.to_executorch().buffer
    return write_pte(buffer, out)
