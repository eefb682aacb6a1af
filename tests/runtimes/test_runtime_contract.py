"""The runtime contract, over every registered runtime (a runtime added to the registry is tested here the day it
is added): activate on a tiny artefact of a file type it takes, infer a batch, get the same keys, shapes and dtype
as every other runtime, and a filled `info`. Runtimes that cannot run here (CUDA, TensorRT, bf16 on a CPU
without it, a Triton server) are skipped with the runtime's own RuntimeUnavailable message."""

import importlib
import json

import numpy as np
import pytest
from tiny_models import make_tiny_model

from reid_export.artefacts.info import KINDS, ArtefactInfo
from reid_export.errors import RuntimeUnavailable
from reid_export.runtimes import RUNTIMES, capabilities, make_runtime
from reid_export.runtimes.base import RuntimeInfo
from reid_export.runtimes.triton import TritonAddress

BATCH = np.random.default_rng(0).standard_normal((3, 3, 64, 32), dtype=np.float32)
_INSPECTED = tuple(s for suffixes in KINDS.values() for s in suffixes)  # file types artefacts.inspect reads
# runtimes whose activation compiles the model with inductor: minutes on 2 cores
_COMPILING = {"torch-compile": "compiles with torch inductor on activate()", "torch-aot": "compiles a .pt2 package",
              "executorch": "converts a .pte program (tens of seconds)", "litert": "converts a .tflite model"}


def _runtime_params():
    return [pytest.param(name, marks=[pytest.mark.slow] if name in _COMPILING else [], id=name) for name in RUNTIMES]


@pytest.mark.parametrize("name", _runtime_params())
def test_every_registered_runtime_keeps_the_runtime_contract(name, request, tmp_path):
    spec = capabilities(name)
    artefact = _artefact_for(spec, request, tmp_path)
    runtime = make_runtime(name, artefact)
    assert runtime.info is None  # nothing is known before activate()
    try:
        runtime.activate()
    except RuntimeUnavailable as e:
        pytest.skip(f"{name} cannot run here: {e}")
    with runtime:
        out = runtime.infer(BATCH)
        info = runtime.info
    assert set(out) == {"embedding"}  # the tiny model has no attribute heads
    assert out["embedding"].shape == (3, 512) and out["embedding"].dtype == np.float32
    assert np.isfinite(out["embedding"]).all()

    assert isinstance(info, RuntimeInfo) and info.runtime == name
    assert info.provider and info.provider != "?"
    assert info.precision.split("+")[0] in spec.precisions  # "int8+fp16-flag": a TensorRT engine's build flag
    assert info.device.startswith(spec.device)  # cpu, cuda(:N), server
    assert info.arch == "resnet18" and runtime.arch == "resnet18"
    assert info.instances >= 1 and (info.max_batch is None or info.max_batch >= len(BATCH))
    if spec.needs_server or str(artefact).lower().endswith(_INSPECTED):
        assert isinstance(info.artefact, ArtefactInfo)
        assert info.artefact.contract == runtime.contract
        assert info.artefact.embedding_dim == 512
    json.dumps(info.to_dict())  # what /v1/info and the bench report can carry


# -- an artefact of the kind each runtime takes ------------------------------------------------------------------
def _artefact_for(spec, request, tmp_path):
    if spec.needs_server:  # a port no server listens on: the runtime must say it is unavailable, not crash
        return TritonAddress.parse(f"http://127.0.0.1:{_free_port()}/tiny")
    suffix = spec.suffixes[0]
    checkpoint = lambda: request.getfixturevalue("tiny_checkpoint")  # noqa: E731
    makers = {".pt": checkpoint, ".pth": checkpoint, ".onnx": lambda: request.getfixturevalue("tiny_onnx"),
              ".xml": lambda: _openvino_ir(request, tmp_path), ".engine": lambda: _engine_builder(request, tmp_path),
              ".pt2": lambda: _aot_package(tmp_path), ".pte": lambda: _edge_artefact("executorch", tmp_path),
              ".tflite": lambda: _edge_artefact("litert", tmp_path)}
    assert suffix in makers, f"a runtime takes {suffix} files: add a tiny {suffix} artefact to this test's makers"
    return makers[suffix]()


def _openvino_ir(request, tmp_path):
    from reid_export.verified.openvino import export_openvino

    try:
        return export_openvino(request.getfixturevalue("tiny_onnx"), tmp_path / "tiny.xml", progress=False).path
    except RuntimeUnavailable as e:  # openvino not installed
        pytest.skip(str(e))


def _engine_builder(request, tmp_path):
    """A builder, as `TensorRTRuntime` takes one: the engine is built inside activate(), where a machine without
    TensorRT or a GPU makes it RuntimeUnavailable."""
    onnx = request.getfixturevalue("tiny_onnx")

    def build():
        from reid_export.export.settings import BuildSettings
        from reid_export.export.tensorrt import build_engine

        return build_engine(onnx, tmp_path / "tiny.engine", BuildSettings(max_batch=8, opt_batch=4)).engine

    return build


def _aot_package(tmp_path):
    from reid_export.export.aot import write_aot_package
    from reid_export.models.inductor import inductor_compiler

    try:
        inductor_compiler()
    except RuntimeUnavailable as e:  # no C++ compiler: no package can be compiled here
        pytest.skip(str(e))
    return write_aot_package(make_tiny_model(), tmp_path / "tiny.pt2")


def _edge_artefact(fmt: str, tmp_path):
    """An ExecuTorch program or LiteRT model of the tiny model (the `edge` extra; skipped without it)."""
    writer = {"executorch": ("executorch", "reid_export.export.executorch", "write_executorch_program", ".pte"),
              "litert": ("litert_torch", "reid_export.export.litert", "write_litert_model", ".tflite")}[fmt]
    pytest.importorskip(writer[0], reason=f"the edge extra ({writer[0]}) is not installed")
    write = getattr(importlib.import_module(writer[1]), writer[2])
    return write(make_tiny_model(), tmp_path / f"tiny{writer[3]}", progress=False)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
