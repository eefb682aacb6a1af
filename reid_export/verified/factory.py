"""`--model-factory package.module:function` through the export pipeline and the bench: the module is built by
`export.factory.ModelFactory`, exported and parity-checked by `run.export_loaded_model`, and a bench spec
`factory=package.module:function[@weights]` becomes a torch row whose model is built on activate.

    result = export_factory(ModelFactory.parse("mypkg.nets:build_net", height=256, width=128, ...),
                            "engines/net.onnx", ExportOptions(precision="fp16"))
    name, artefact = parse_model_or_factory("factory=mypkg.nets:build_net@net.pth")   # ("torch", ModelFactory)
"""

from __future__ import annotations

from pathlib import Path

from ..export.factory import FACTORY_PREFIX, ModelFactory
from ..export.onnx import refuse_onnx_output
from ..export.settings import ExportOptions
from ..files import ENGINES_DIR
from ..runtimes import parse_model_spec
from .run import ExportResult, export_loaded_model

__all__ = ["export_factory", "parse_model_or_factory"]


def export_factory(factory: ModelFactory, out: str | Path | None = None, options: ExportOptions = ExportOptions(), *,
                   calib_data: str | Path | None = None, data: str | Path | None = None, progress: bool = True,
                   log=print) -> ExportResult:
    """`reid-export onnx --model-factory`: build the module, export it at `options.precision`, check parity."""
    suffix = "" if options.precision == "fp32" else f".{options.precision}"
    out = Path(out) if out is not None else ENGINES_DIR / f"{factory.target.rpartition(':')[2]}{suffix}.onnx"
    refuse_onnx_output(out, overwrite=options.overwrite,
                       inputs=(factory.weights,) if factory.weights else ())  # before any work
    return export_loaded_model(factory.load(), out, options, calib_data=calib_data, data=data, progress=progress,
                               log=log)


def parse_model_or_factory(spec: str):
    """A bench model spec: `factory=package.module:function[@weights]` -> ("torch", ModelFactory); anything else
    as `runtimes.parse_model_spec` reads it."""
    if spec.startswith(FACTORY_PREFIX):
        return "torch", ModelFactory.parse(spec[len(FACTORY_PREFIX):])
    return parse_model_spec(spec)
