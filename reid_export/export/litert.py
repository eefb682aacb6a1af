"""LiteRT export with `litert-torch` (the successor of ai-edge-torch; no TensorFlow): a ReidNet -> `.tflite`, FP32
or static INT8 (litert-torch's PT2E quantiser, calibrated on training images only).

    write_litert_model(model, "engines/model.tflite")                                  # FP32
    write_litert_model(model, "engines/model.int8.tflite", calibration=paths)          # INT8

The graph is converted at batch 1 (litert-torch 0.10 cannot lower this graph with a symbolic batch axis); the
`litert` runtime resizes the input to each batch, which LiteRT's interpreter supports. An INT8 model's input is
int8 (the converter folds the first quantise into the input: its scale and zero point are in the tensor's
quantisation parameters, from which the `litert` runtime quantises); its outputs stay float32. The contract
travels in the flatbuffer's own metadata list (`artefacts.litert_model`); `verified.edge.export_litert` adds the
parity check on the `litert` runtime.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from ..artefacts.litert_model import write_tflite
from ..models import ReidNet
from .pt2e import edge_graph, graph_metadata, quantize_pt2e

__all__ = ["write_litert_model"]


def write_litert_model(model: ReidNet, out: str | Path, *, calibration: list[Path] | None = None,
                       l2_normalize: bool = True, with_attributes: bool = False, progress: bool = True) -> Path:
    """Convert `model` to the LiteRT model `out` (atomically), INT8 when `calibration` (training images) is given."""
    import litert_torch  # lazy: the edge extra (pulls JAX and the LiteRT converter)

    graph = edge_graph(model, l2_normalize=l2_normalize, with_attributes=with_attributes)
    module, options = graph.module, {}
    if calibration:
        from litert_torch.quantize import pt2e_quantizer  # lazy: as above
        from litert_torch.quantize.quant_config import QuantConfig

        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        # weights folded to int8 tensors fail litert-torch's lowering ('uniform_dequantize' wants quantized types)
        module = quantize_pt2e(graph, quantizer, calibration, fold_quantize=False, progress=progress)
        options["quant_config"] = QuantConfig(pt2e_quantizer=quantizer)
    # the converter prints a line per stage (and one per Relu partition): quiet means quiet
    with contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO()):
        converted = litert_torch.convert(module, graph.example(1), **options)
    meta = graph_metadata(graph, precision="int8" if calibration else "fp32", calibration=calibration)
    return write_tflite(converted.model_content(), out, meta)
