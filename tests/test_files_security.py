"""Secrets never reach the disk or a message through a stored command line: the output lock is private
(0600), records the command with its secrets redacted, and a second writer's refusal shows no secret even
for a lock written before redaction. A lock that is not reid-export's says so and how to clear it.
And every path an artefact names (ONNX external data, the ONNX a TensorRT sidecar was built from) is read
only inside the artefact's folder."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest
from lock_holder import holding_lock

from reid_export.artefacts.info import inspect
from reid_export.artefacts.onnx_metadata import read_onnx_info
from reid_export.artefacts.tensorrt_sidecar import new_sidecar, write_sidecar
from reid_export.errors import ExportError, ReidExportError
from reid_export.files import output_lock, redact_command, redact_url
from reid_export.runtimes.registry import make_runtime
from reid_export.runtimes.triton import TritonAddress

SECRET = "hunter2-5f0c7a"

@pytest.fixture
def holder(tmp_path):
    """A real second process holding the lock of tmp_path/out.bin, started as `serve --token SECRET`."""
    out = tmp_path / "out.bin"
    with holding_lock(out, "reid-export", "serve", "--token", SECRET) as proc:
        yield out, proc


@pytest.mark.parametrize("argv, shown", [
    (["serve", "--token", SECRET], "serve --token ***"),
    (["serve", f"--token={SECRET}"], "serve --token=***"),
    (["serve", "--api-key", SECRET, "--port", "8000"], "serve --api-key *** --port 8000"),
    (["x", f"--db-password={SECRET}", f"--client_secret={SECRET}"], "x --db-password=*** --client_secret=***"),
    (["serve", "--token", f"-{SECRET}"], "serve --token ***"),  # a value that starts with a dash
    (["x", "--milvus-uri", f"http://admin:{SECRET}@db:19530"], "x --milvus-uri http://admin:***@db:19530"),
    (["bench", f"triton=https://{SECRET}@host:8000/reid"], "bench triton=https://***@host:8000/reid"),
    (["x", f"REID_EXPORT_TOKEN={SECRET}"], "x REID_EXPORT_TOKEN=***"),
    (f"reid-export serve --token {SECRET} --port 1", "reid-export serve --token *** --port 1"),
])
def test_secret_option_values_and_url_passwords_are_redacted(argv, shown):
    assert redact_command(argv) == shown


def test_what_is_not_secret_is_kept():
    argv = ["reid-export", "serve", "--token-file", "/run/secrets/reid", "--gallery", "runs/g",
            "triton=http://localhost:8000/reid", "--keep-aspect"]
    assert redact_command(argv) == " ".join(argv)
    assert (redact_url(f"http://user:{SECRET}@h:8000/a?b=c, then http://h:9/x")
            == "http://user:***@h:8000/a?b=c, then http://h:9/x")
    assert redact_url(f"http://u:p@ss{SECRET}@host/x") == "http://u:***@host/x"  # an unescaped @ in the password

    address = TritonAddress.parse(f"http://admin:{SECRET}@triton:8000/reid")  # as bench rows and errors show it
    assert str(address) == "http://admin:***@triton:8000/reid" and SECRET in address.host  # the client still has it


def test_lock_file_is_private_and_holds_no_secret(tmp_path):
    with output_lock(tmp_path / "gallery.json", ["reid-export", "serve", "--token", SECRET]) as lock:
        text = lock.read_text()
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert SECRET not in text and json.loads(text)["command"] == "reid-export serve --token ***"
        assert json.loads(text)["pid"] == os.getpid()
    assert not lock.exists() and not list(tmp_path.iterdir())  # no temporary file left either


def test_default_command_is_this_process_argv_redacted(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["reid-export", "serve", f"--token={SECRET}"])
    with output_lock(tmp_path / "model.pt") as lock:
        assert SECRET not in lock.read_text() and "--token=***" in lock.read_text()


def test_second_writer_is_refused_naming_pid_user_and_start_without_the_secret(holder):
    out, proc = holder
    lock = out.with_name(f".{out.name}.lock")
    assert SECRET not in lock.read_text() and stat.S_IMODE(lock.stat().st_mode) == 0o600
    with pytest.raises(ReidExportError, match=rf"being written by pid {proc.pid} of user \S+ "
                                              r"\('reid-export serve --token \*\*\*', since \d{4}-") as refused:
        with output_lock(out, "second"):
            pass
    assert SECRET not in str(refused.value)


def test_a_lock_written_before_redaction_is_shown_redacted(tmp_path, holder):
    out, proc = holder
    lock = out.with_name(f".{out.name}.lock")
    lock.write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname(), "since": "earlier",
                                "command": f"reid-export serve --host 0.0.0.0 --token {SECRET}"}))
    with pytest.raises(ReidExportError, match=r"--token \*\*\*") as refused:
        with output_lock(out):
            pass
    assert SECRET not in str(refused.value)


def test_a_lock_of_another_host_names_the_host(tmp_path):
    out = tmp_path / "model.pt"
    (tmp_path / ".model.pt.lock").write_text(json.dumps({"pid": 4242, "host": "elsewhere", "since": "earlier",
                                                         "command": "reid-export train"}))
    with pytest.raises(ReidExportError, match=r"being written by pid 4242 on host elsewhere"):
        with output_lock(out):
            pass


@pytest.mark.parametrize("content", ["{not json at all", "", '{"pid": "1234"}', "[1, 2]", '{"host": "x"}'],
                         ids=["garbage", "empty", "pid-not-a-number", "not-an-object", "no-pid"])
def test_an_unreadable_lock_says_so_and_how_to_clear_it(tmp_path, content):
    out = tmp_path / "gallery.json"
    lock = tmp_path / ".gallery.json.lock"
    lock.write_text(content)
    with pytest.raises(ReidExportError) as refused:
        with output_lock(out):
            pytest.fail("a writer went on past an unreadable lock")
    assert str(refused.value) == (f"{out}: lock file {lock} is unreadable (not written by reid-export, or truncated); "
                                  f"if no reid-export is writing {out}, delete it: rm {lock}")
    assert lock.read_text() == content  # not taken over: whoever made it may still be writing


def test_a_lock_whose_owner_is_gone_is_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = tmp_path / ".gallery.json.lock"
    lock.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "command": "reid-export index add",
                                "since": "earlier"}))  # as written before the user field
    with output_lock(tmp_path / "gallery.json", "reid-export index remove") as held:
        assert json.loads(held.read_text())["pid"] == os.getpid()
        assert stat.S_IMODE(held.stat().st_mode) == 0o600
    assert not lock.exists()


def _with_external_weights(onnx_path, model_dir, location: str, data_file):
    """A copy of `onnx_path` in `model_dir` whose largest weight lives in `data_file`, named `location`."""
    import onnx  # lazy: as the project does
    from onnx.external_data_helper import set_external_data

    proto = onnx.load(str(onnx_path))
    tensor = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    data_file.write_bytes(tensor.raw_data)
    set_external_data(tensor, location, offset=0, length=len(tensor.raw_data))
    tensor.ClearField("raw_data")
    model_dir.mkdir(exist_ok=True)
    onnx.save(proto, str(model_dir / "model.onnx"))
    return model_dir / "model.onnx", tensor.name


@pytest.mark.parametrize("how", ["dotdot", "absolute", "link"])
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_onnx_external_data_outside_the_model_folder_is_refused_before_a_runtime_reads_it(tiny_onnx, tmp_path, how,
                                                                                         runtime):
    if runtime == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO is not installed")
    outside = tmp_path / "outside.bin"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    if how == "link":
        (model_dir / "weights.bin").symlink_to(outside)
    location = {"dotdot": "../outside.bin", "absolute": str(outside), "link": "weights.bin"}[how]
    path, tensor = _with_external_weights(tiny_onnx, model_dir, location, outside)
    expected = rf"tensor '{tensor}' takes its weights from .*the model's folder .* it was refused"
    with pytest.raises(ExportError, match=expected):
        read_onnx_info(path)
    with pytest.raises(ReidExportError, match=expected):
        with make_runtime(runtime, path):
            pytest.fail("the runtime loaded a model whose weights lie outside its folder")


def test_onnx_external_data_beside_the_model_still_runs(tiny_onnx, tmp_path):
    model_dir = tmp_path / "model"
    path, _ = _with_external_weights(tiny_onnx, model_dir, "weights.bin", model_dir.with_name("w.tmp"))
    shutil.move(model_dir.with_name("w.tmp"), model_dir / "weights.bin")
    with make_runtime("onnxruntime", path) as runtime, make_runtime("onnxruntime", tiny_onnx) as reference:
        batch = np.random.default_rng(0).standard_normal((2, *runtime.contract.input_shape)).astype(np.float32)
        np.testing.assert_allclose(runtime.infer(batch)["embedding"], reference.infer(batch)["embedding"], atol=1e-5)


def test_the_onnx_a_tensorrt_sidecar_names_is_read_only_inside_the_engines_folder(tiny_onnx, tmp_path):
    engines = tmp_path / "engines"
    engines.mkdir()
    engine = engines / "model.engine"
    engine.write_bytes(b"not a real engine: inspect reads the sidecar only")
    info = read_onnx_info(tiny_onnx)
    shape = [1, *info.contract.input_shape]
    write_sidecar(engine, new_sidecar(
        engine_bytes=engine.read_bytes(), engine_name=engine.name, onnx_path=tiny_onnx.resolve(),
        contract=info.contract.to_dict(), precision="fp32", tensorrt_version="10.0", gpu_name=None,
        compute_capability=None, profile={"input": "input", "min": shape, "opt": shape, "max": shape},
        inputs=[{"name": "input", "shape": shape}], outputs=[{"name": "embedding", "shape": [1, 8]}],
        layers={"counts": {}}, build_seconds=0.0))
    outside = inspect(engine)  # the sidecar names the (unchanged) ONNX by its absolute path, outside engines/
    assert outside.arch is None
    assert any("is not in the engine's folder or has changed" in note for note in outside.notes)
    shutil.copy(tiny_onnx, engines / tiny_onnx.name)
    beside = inspect(engine)
    assert beside.arch == info.model["arch"] and not any("engine's folder" in note for note in beside.notes)
