"""Runtimes, one backend per module behind `Runtime`; chosen by name, imported only when used.

    from reid_export.runtimes import make_runtime
    with make_runtime("onnxruntime", "engines/model.onnx") as rt:
        out = rt.infer(rt.contract.load_batch(paths))

`registry` maps names to backends and declares what each can do (`capabilities(name)`);
`batches.infer_images` runs many images through one runtime.
"""

from .base import Runtime, RuntimeInfo
from .batches import infer_images
from .registry import (RUNTIMES, RuntimeSpec, capabilities, default_runtime_for, make_runtime, parse_model_spec,
                       runtime_names)

__all__ = ["RUNTIMES", "Runtime", "RuntimeInfo", "RuntimeSpec", "capabilities", "runtime_names", "make_runtime",
           "parse_model_spec", "default_runtime_for", "infer_images"]
