"""`--overwrite` replaces only what the command made: an output of another kind, or one that is or holds
an input, is refused naming the path, and the user's files survive."""

from __future__ import annotations

import shutil
import sys

import pytest

from reid_export import cli
from reid_export.bench.run import check_report_dir
from reid_export.deploy.deepstream import write_deepstream
from reid_export.deploy.triton import write_triton_repository
from reid_export.errors import ReidExportError
from reid_export.export.onnx import refuse_onnx_output
from reid_export.export.settings import ExportOptions
from reid_export.export.tensorrt import build_engine
from reid_export.files import refuse_own_input
from reid_export.serve.indexing import build_gallery
from reid_export.verified.run import export_model


def _user_folder(path):
    """A folder of the user's own: what must survive a refused --overwrite."""
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("mine\n")
    (path / "photo.jpg").write_bytes(b"not really a photo")
    return {p.name: p.read_bytes() for p in path.iterdir()}


def _files(path):
    return {p.name: p.read_bytes() for p in path.iterdir()}


def _run_cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["reid-export", *map(str, args)])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    return stop.value.code, capsys.readouterr().err


def test_index_build_overwrite_refuses_a_folder_that_is_not_a_gallery(tmp_path, tiny_market, tiny_onnx, monkeypatch,
                                                                      capsys):
    before = _user_folder(tmp_path / "mine")
    code, err = _run_cli(monkeypatch, capsys, "index", "build", "--data", tiny_market, "--model", tiny_onnx, "-o",
                         tmp_path / "mine", "--overwrite", "-q")
    assert code == 2 and "mine" in err and "not a gallery folder" in err and "Traceback" not in err
    assert _files(tmp_path / "mine") == before


def test_index_build_refuses_an_output_equal_to_its_data(tmp_path, tiny_market, tiny_onnx):
    data = shutil.copytree(tiny_market / "bounding_box_test", tmp_path / "data")
    before = _files(data)
    with pytest.raises(ReidExportError, match=r"-o .*data is the input"):
        build_gallery(data, str(tiny_onnx), data, overwrite=True, progress=False)
    assert _files(data) == before


def test_index_build_refuses_an_output_that_holds_its_data_or_model(tmp_path, tiny_market, tiny_onnx):
    parent = tmp_path / "work"
    data = shutil.copytree(tiny_market / "query", parent / "crops")
    with pytest.raises(ReidExportError, match="contains the input"):
        build_gallery(data, str(tiny_onnx), parent, overwrite=True, progress=False)
    (tmp_path / "models").mkdir()
    model = shutil.copy(tiny_onnx, tmp_path / "models" / "m.onnx")
    with pytest.raises(ReidExportError, match="contains the input"):
        build_gallery(data, f"onnxruntime={model}", tmp_path / "models", overwrite=True, progress=False)
    assert sorted(p.name for p in data.iterdir()) == sorted(p.name for p in (tiny_market / "query").iterdir())
    assert (tmp_path / "models" / "m.onnx").read_bytes() == tiny_onnx.read_bytes()


def test_bench_overwrite_refuses_a_folder_without_a_bench_report(tmp_path, tiny_market, tiny_onnx, monkeypatch,
                                                                 capsys):
    before = _user_folder(tmp_path / "results")
    code, err = _run_cli(monkeypatch, capsys, "bench", "--data", tiny_market, "--model", tiny_onnx, "-o",
                         tmp_path / "results", "--overwrite", "-q")
    assert code == 2 and "results" in err and "no report.json" in err
    assert _files(tmp_path / "results") == before


def test_bench_overwrite_replaces_an_earlier_report_folder(tmp_path):
    earlier = tmp_path / "bench"
    earlier.mkdir()
    (earlier / "report.json").write_text('{"rows": []}')
    (earlier / "report.md").write_text("# reid-export bench\n")
    assert check_report_dir(earlier, overwrite=True) == earlier
    (earlier / "report.json").write_text("my own notes, not JSON")
    with pytest.raises(ReidExportError, match="not a bench report folder"):
        check_report_dir(earlier, overwrite=True)


def test_triton_overwrite_refuses_a_name_folder_without_config(tmp_path, tiny_onnx):
    before = _user_folder(tmp_path / "repo" / "reid")
    with pytest.raises(ReidExportError, match=r"reid exists but is not a Triton model folder .*no config.pbtxt"):
        write_triton_repository(tiny_onnx, tmp_path / "repo", name="reid", overwrite=True)
    assert _files(tmp_path / "repo" / "reid") == before


def test_triton_refuses_a_model_folder_holding_its_artefact(tmp_path, tiny_onnx):
    folder = tmp_path / "repo" / "reid"
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text('name: "reid"\n')
    artefact = shutil.copy(tiny_onnx, folder / "model.onnx")
    with pytest.raises(ReidExportError, match="contains the input"):
        write_triton_repository(artefact, tmp_path / "repo", name="reid", overwrite=True)
    assert (folder / "model.onnx").read_bytes() == tiny_onnx.read_bytes()


def test_triton_overwrite_replaces_its_own_model_folder(tmp_path, tiny_onnx):
    write_triton_repository(tiny_onnx, tmp_path / "repo", name="reid")
    model = write_triton_repository(tiny_onnx, tmp_path / "repo", name="reid", overwrite=True)
    assert model.config.is_file()


def test_deepstream_overwrite_refuses_a_folder_holding_other_files(tmp_path, tiny_checkpoint):
    out = tmp_path / "ds"
    before = _user_folder(out)
    (out / "reid.onnx").write_bytes(b"the user's own file")
    before["reid.onnx"] = b"the user's own file"
    with pytest.raises(ReidExportError, match=r"ds exists but is not a folder written by .*also holds notes.txt"):
        write_deepstream(tiny_checkpoint, out, overwrite=True)
    assert _files(out) == before


def test_onnx_export_refuses_to_write_over_its_own_checkpoint(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    ckpt = shutil.copy(tiny_checkpoint, tmp_path / "ckpt.pt")
    code, err = _run_cli(monkeypatch, capsys, "onnx", ckpt, "-o", ckpt, "--overwrite", "--precision", "fp16", "-q")
    assert code == 2 and "is the input" in err and "ckpt.pt" in err
    assert ckpt.read_bytes() == tiny_checkpoint.read_bytes()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnx_overwrite_refuses_a_file_that_is_not_onnx(tmp_path, tiny_checkpoint, precision):
    notes = tmp_path / "notes.onnx"
    notes.write_text("my notes, not a model\n")
    with pytest.raises(ReidExportError, match="notes.onnx exists but is not an ONNX file"):
        export_model(tiny_checkpoint, notes, ExportOptions(precision=precision, overwrite=True), progress=False)
    assert notes.read_text() == "my notes, not a model\n"


def test_onnx_overwrite_accepts_an_onnx_file(tmp_path, tiny_onnx):
    refuse_onnx_output(shutil.copy(tiny_onnx, tmp_path / "old.onnx"), overwrite=True)  # no error: replaceable


def test_openvino_overwrite_refuses_an_xml_that_is_not_an_ir(tmp_path, tiny_onnx):
    from reid_export.verified.openvino import export_openvino

    xml = tmp_path / "page.xml"
    xml.write_text("<html><body>mine</body></html>\n")
    with pytest.raises(ReidExportError, match="page.xml exists but is not an OpenVINO IR"):
        export_openvino(tiny_onnx, xml, overwrite=True, progress=False)
    assert xml.read_text() == "<html><body>mine</body></html>\n"


def test_trt_overwrite_refuses_an_engine_path_reid_export_did_not_write(tmp_path, tiny_onnx):
    engine = tmp_path / "other.engine"
    engine.write_bytes(b"someone else's plan")
    with pytest.raises(ReidExportError, match=r"other.engine exists but is not a TensorRT engine written by"):
        build_engine(tiny_onnx, engine, overwrite=True)
    assert engine.read_bytes() == b"someone else's plan"


def test_an_output_inside_an_input_is_allowed_but_not_one_holding_it(tmp_path):
    data = tmp_path / "data"
    refuse_own_input(data / "gallery", [data])  # a new folder inside the data: nothing of the data is replaced
    with pytest.raises(ReidExportError, match="contains the input"):
        refuse_own_input(tmp_path, [data])
