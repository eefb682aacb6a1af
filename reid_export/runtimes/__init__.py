"""Runtimes, one backend per module behind `Runtime`; chosen by name, imported only when used.

    from reid_export.runtimes import make_runtime
    with make_runtime("onnxruntime", "engines/model.onnx") as rt:
        out = rt.infer(rt.contract.load_batch(paths))

`registry` maps names to backends; `batches.infer_images` runs many images through one runtime.
"""

from .base import Runtime
from .batches import infer_images
from .registry import RUNTIMES, default_runtime_for, make_runtime, parse_model_spec

__all__ = ["RUNTIMES", "Runtime", "make_runtime", "parse_model_spec", "default_runtime_for", "infer_images"]
