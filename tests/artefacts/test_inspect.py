"""`artefacts.inspect` and `reid-export inspect`: every kind the project writes says what it is, read from the
artefact itself (real ONNX, a real IR from `reid-export openvino`, a sidecar as `reid-export trt` writes it, a
real AOTInductor package, a real checkpoint); anything else is refused naming the file."""

import hashlib
import importlib.util
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from tiny_models import TINY, make_tiny_model

from reid_export.artefacts import ArtefactInfo, inspect
from reid_export.artefacts.info import Tensor
from reid_export.artefacts.tensorrt_sidecar import new_sidecar, write_sidecar
from reid_export.checkpoint import SEED_PREPROCESS
from reid_export.data.attributes import HEAD_OUTPUTS
from reid_export.errors import ReidExportError, RuntimeUnavailable
from reid_export.export.precision import calibration_images, convert_fp16, quantize_int8
from reid_export.export.tensorrt import layer_precision_summary
from reid_export.runtimes import make_runtime

EMBEDDING = Tensor("embedding", (-1, 512))


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "reid_export.cli", "inspect", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def onnx_files(tiny_onnx, tiny_market, tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect")
    return {"fp32": tiny_onnx, "fp16": convert_fp16(tiny_onnx, folder / "tiny.fp16.onnx"),
            "int8": quantize_int8(tiny_onnx, folder / "tiny.int8.onnx", calibration_images(tiny_market, 16),
                                  progress=False)}


def _assert_tiny(info: ArtefactInfo, kind: str, precision: str, path) -> None:
    assert (info.kind, info.precision, info.arch, info.embedding_dim) == (kind, precision, "resnet18", 512)
    assert info.contract == TINY
    assert info.sha256 == _sha256(path) and info.size_bytes == path.stat().st_size
    assert json.loads(json.dumps(info.to_dict()))["contract"] == TINY.to_dict()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_an_onnx_export_of_every_precision_says_what_it_is(onnx_files, precision):
    path = onnx_files[precision]
    info = inspect(path)
    _assert_tiny(info, "onnx", precision, path)
    assert info.inputs == (Tensor("input", (-1, 3, 64, 32)),) and info.outputs == (EMBEDDING,)
    assert info.extras["opset"] >= 17 and info.extras["tracker_sidecar"] == f"{path.name}.metadata.json"
    assert info.provenance["reid_export_version"]
    if precision == "int8":  # the calibration record travels with the file
        assert info.provenance["calibration"]["num_images"] == 16
    else:
        assert "calibration" not in info.provenance


def test_an_onnx_without_its_tracker_sidecar_says_so(onnx_files, tmp_path):
    copy = tmp_path / "copied.onnx"
    copy.write_bytes(onnx_files["fp32"].read_bytes())
    info = inspect(copy)
    assert info.extras["tracker_sidecar"] is None
    assert any("copied.onnx.metadata.json" in note for note in info.notes)


@pytest.fixture(scope="module")
def ir(tiny_onnx, tmp_path_factory):
    if importlib.util.find_spec("openvino") is None:
        pytest.skip('OpenVINO is not installed (pip install "reid-export[openvino]"): no IR to inspect')
    from reid_export.verified.openvino import export_openvino

    return export_openvino(tiny_onnx, tmp_path_factory.mktemp("ir") / "tiny.xml", progress=False).path


def test_an_openvino_ir_says_what_it_is(ir):
    info = inspect(ir)
    _assert_tiny(info, "openvino-ir", "fp32", ir)
    assert info.inputs == (Tensor("input", (-1, 3, 64, 32)),) and info.outputs == (EMBEDDING,)
    assert info.extras["weights"]["sha256"] == _sha256(ir.with_suffix(".bin"))
    assert info.extras["rt_info"]["model"]["arch"] == "resnet18"


def test_an_openvino_ir_is_read_without_openvino(ir):
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from reid_export.artefacts import inspect\n"
            f"info = inspect({str(ir)!r})\n"
            "assert (info.kind, info.arch, info.embedding_dim) == ('openvino-ir', 'resnet18', 512), info\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.fixture
def engine(onnx_files, tmp_path):
    """A sidecar as `reid-export trt` writes it, next to a stand-in engine (arbitrary bytes: inspect reads the
    sidecar only, so neither TensorRT nor a GPU is needed), built from the FP16 ONNX beside it."""
    source = tmp_path / "tiny.fp16.onnx"
    source.write_bytes(onnx_files["fp16"].read_bytes())
    path = tmp_path / "tiny.fp16.engine"
    path.write_bytes(b"stand-in for a TensorRT plan")
    write_sidecar(path, new_sidecar(
        engine_bytes=path.read_bytes(), engine_name=path.name, onnx_path=source, contract=TINY.to_dict(),
        precision="fp16", tensorrt_version="10.9.0.34", gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
        profile={"input": "input", "min": [1, 3, 64, 32], "opt": [8, 3, 64, 32], "max": [16, 3, 64, 32]},
        inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 3, 64, 32]}],
        outputs=[{"name": "embedding", "dtype": "float32", "shape": [-1, 512]}],
        layers=layer_precision_summary({"Layers": []}), build_seconds=1.0))
    return path


def test_a_tensorrt_engine_is_described_from_its_sidecar_alone(engine, onnx_files):
    info = inspect(engine)
    _assert_tiny(info, "tensorrt-engine", "fp16", engine)
    assert "tensorrt" not in sys.modules
    assert info.extras["max_batch"] == 16 and info.extras["profile"]["opt"] == [8, 3, 64, 32]
    assert info.extras["tensorrt_version"] == "10.9.0.34" and info.outputs == (EMBEDDING,)
    assert info.provenance["source_onnx"]["sha256"] == _sha256(onnx_files["fp16"]) and info.notes == ()
    assert info.provenance["reid_export_version"] and info.extras["model"]["neck"] == "bnneck"


def test_an_engine_replaced_without_its_sidecar_is_described_with_a_note(engine):
    engine.write_bytes(b"another plan")
    info = inspect(engine)
    assert info.sha256 == _sha256(engine)
    assert any("does not match its sidecar" in note for note in info.notes)


@pytest.fixture(scope="module")
def aot_package(tmp_path_factory):
    """A real AOTInductor package of the tiny model with attribute heads, as `reid-export aot` compiles it (no
    parity step: only the file matters here). Compiling takes a minute or more on 2 cores."""
    from reid_export.export.aot import write_aot_package
    from reid_export.models.inductor import inductor_compiler

    try:
        inductor_compiler()
    except RuntimeUnavailable as e:
        pytest.skip(f"no .pt2 can be compiled here: {e}")
    path = tmp_path_factory.mktemp("aot") / "tiny.pt2"
    return write_aot_package(make_tiny_model(attributes=True), path, with_attributes=True)


@pytest.mark.slow
def test_an_aot_package_says_what_it_is_from_its_metadata(aot_package):
    info = inspect(aot_package)
    _assert_tiny(info, "torch-package", "fp32", aot_package)
    assert info.inputs == (Tensor("input", (-1, 3, 64, 32)),)
    assert info.outputs == (EMBEDDING, Tensor("attributes", (-1, HEAD_OUTPUTS)))
    assert info.extras["model"]["attributes"] and info.extras["device"] == "cpu" and info.extras["cpu_isa"]
    assert info.provenance["reid_export_version"] and "outputs" not in info.provenance  # outputs are described
    code = ("import sys; sys.modules['torch'] = None\n"
            "from reid_export.artefacts import inspect\n"
            f"info = inspect({str(aot_package)!r})\n"
            "assert (info.kind, info.arch, info.embedding_dim) == ('torch-package', 'resnet18', 512), info\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)  # read without torch


@pytest.mark.slow
def test_the_cli_inspects_an_aot_package_and_the_runtime_reports_the_same(aot_package):
    table = _run_cli(aot_package)
    assert table.returncode == 0, table.stderr
    assert any(line.split() == ["kind", "torch-package"] for line in table.stdout.splitlines())
    as_json = _run_cli(aot_package, "--json")
    assert as_json.returncode == 0, as_json.stderr
    described = json.loads(as_json.stdout)
    assert described == inspect(aot_package).to_dict() and described["sha256"] == _sha256(aot_package)
    assert [o["name"] for o in described["outputs"]] == ["embedding", "attributes"]
    with make_runtime("torch-aot", aot_package) as rt:  # what ran is what the file says
        out = rt.infer(np.zeros((2, 3, 64, 32), dtype=np.float32))
        assert rt.info.artefact == inspect(aot_package) and rt.info.arch == "resnet18"
    assert out["attributes"].shape == (2, HEAD_OUTPUTS) and out["embedding"].shape == (2, 512)


def test_a_checkpoint_says_what_it_is_from_its_config(tiny_checkpoint):
    info = inspect(tiny_checkpoint)
    _assert_tiny(info, "checkpoint", "fp32", tiny_checkpoint)
    assert info.provenance == {"epoch": 1, "metrics": {"rank1": 0.0}}
    assert info.extras["format"] == "reid-export/1" and info.extras["model"]["neck"] == "bnneck"


def test_a_bare_backbone_says_what_the_loader_recognises_and_assumes(tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save(make_tiny_model().backbone.state_dict(), path)
    info = inspect(path)
    assert (info.kind, info.arch, info.embedding_dim) == ("checkpoint", "resnet18", 512)
    assert info.provenance["recognised_as"] == "a resnet18 backbone" and info.contract == SEED_PREPROCESS
    assert any("the contract shown is the one the loader assumes" in note for note in info.notes)


def test_the_cli_prints_a_table_and_its_json_parses(onnx_files):
    path = onnx_files["int8"]
    table = _run_cli(path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == str(path) and max(map(len, lines)) <= 120
    assert any(line.split() == ["precision", "int8"] for line in lines)
    assert any(line.split()[:3] == ["model", "resnet18,", "512-D"] for line in lines)
    as_json = _run_cli(path, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == inspect(path).to_dict()


def test_inspect_help_and_the_reader_import_no_runtime():
    code = ("import sys\n"
            "import reid_export.artefacts.info\n"
            "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'openvino', 'tensorrt') if m in sys.modules]\n"
            "assert not heavy, f'artefacts.info imports {heavy}'\n"
            "from reid_export.cli import main\n"
            "sys.argv = ['reid-export', 'inspect', '--help']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = [m for m in ('onnxruntime', 'openvino', 'tensorrt') if m in sys.modules]\n"
            "assert not heavy, f'inspect --help imports {heavy}'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "--json" in result.stdout


def _foreign_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph), str(path))


def _zip_without_a_model(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/a.txt", "hi")


@pytest.mark.parametrize("name,write,message", [
    ("notes.txt", lambda p: p.write_text("hello"), "not an artefact reid-export reads"),
    ("elsewhere.onnx", _foreign_onnx, "reid-export adopt"),
    ("bare.xml", lambda p: p.write_text('<?xml version="1.0"?>\n<net name="m" version="11"><layers/></net>\n'),
     "reid_export.preprocess"),
    ("page.xml", lambda p: p.write_text("<html><body/></html>"), "not an OpenVINO IR"),
    ("random.engine", lambda p: p.write_bytes(b"plan"), "no sidecar random.engine.json"),
    ("strange.pt", lambda p: torch.save({"w": torch.zeros(3)}, p), "matches no supported layout"),
    ("notes.pt2", lambda p: p.write_text("hello"), "not an AOTInductor package"),
    ("archive.pt2", _zip_without_a_model, "without an AOTInductor model"),
])
def test_a_foreign_file_is_refused_naming_it(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(ReidExportError, match=message) as caught:
        inspect(path)
    assert str(path) in str(caught.value)


def test_the_cli_refuses_a_foreign_file_with_exit_code_2(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = _run_cli(path)
    assert result.returncode == 2 and str(path) in result.stderr and "Traceback" not in result.stderr
