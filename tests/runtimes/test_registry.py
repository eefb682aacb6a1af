"""The registry declares what each runtime can do, and nothing else in the package decides it from a name."""

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

import reid_export
from reid_export.cli import app
from reid_export.errors import ReidExportError
from reid_export.runtimes import RUNTIMES, Runtime, capabilities, default_runtime_for, runtime_names
from reid_export.serve.service import lane_plan

PACKAGE = Path(reid_export.__file__).parent
# deploy/triton.py compares Triton *backend* names ("openvino", "tensorrt") of config.pbtxt, not our runtimes
_NOT_RUNTIME_NAMES = {PACKAGE / "runtimes" / "registry.py", PACKAGE / "deploy" / "triton.py"}


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_every_runtime_declares_capabilities_its_class_accepts(name):
    spec = capabilities(name)
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    assert issubclass(cls, Runtime)
    accepted = set(inspect.signature(cls.__init__).parameters)
    assert set(spec.defaults) | set(spec.options) <= accepted, f"{name}: options its constructor does not take"
    assert spec.device in ("cpu", "cuda", "server")
    assert spec.precisions and set(spec.precisions) <= {"fp32", "fp16", "bf16", "int8"}
    assert all(s.startswith(".") and s == s.lower() for s in spec.suffixes)
    assert spec.needs_server == (not spec.suffixes)  # a server address, or files


def test_each_file_type_runs_by_default_on_its_first_runtime():
    expected = {"m.pt": "torch", "m.pth": "torch", "m.onnx": "onnxruntime", "m.xml": "openvino", "m.engine": "tensorrt",
                "m.pte": "executorch", "m.tflite": "litert"}
    assert {path: default_runtime_for(path) for path in expected} == expected
    for suffix in {s for spec in RUNTIMES.values() for s in spec.suffixes}:  # .pt2 too, once a runtime takes it
        assert suffix in capabilities(default_runtime_for(f"m{suffix}")).suffixes
    with pytest.raises(ReidExportError, match=r"'\.mnn' file.*NAME=PATH"):  # a format no runtime takes
        default_runtime_for("m.mnn")


def test_unknown_runtime_capabilities_name_the_known_runtimes():
    with pytest.raises(ReidExportError, match="unknown runtime 'tflite'; choose one of torch, .*triton"):
        capabilities("tflite")


def test_lanes_follow_the_declared_capability():
    # ONNX Runtime and OpenVINO on the CPU: one-thread sessions (compiled models) that share the cores
    assert runtime_names(lanes=True) == ["onnxruntime", "openvino", "openvino-bf16"]
    for name in runtime_names(lanes=False):
        assert lane_plan(name, 0) == (0, 0)
        with pytest.raises(ReidExportError, match=rf"CPU runtimes onnxruntime, openvino, openvino-bf16; {name} runs "
                                                  "one instance"):
            lane_plan(name, 2)


def test_cli_help_lists_every_registered_runtime():
    for command in ("bench", "visualize", "serve"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.replace("│", " ").split())
        missing = [name for name in RUNTIMES if name not in text]
        assert not missing, f"`reid-export {command} --help` does not list {missing}"


def test_no_runtime_name_is_compared_as_a_string_outside_the_registry():
    """`name == "onnxruntime"`, `name.startswith("torch")`, `name in ("openvino", "openvino-bf16")`: each is a
    capability the registry declares (`capabilities(name)`), so a new runtime never needs a hunt for them."""
    names = set(RUNTIMES) | {name.split("-")[0] for name in RUNTIMES}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in _NOT_RUNTIME_NAMES:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if _compares_a_runtime_name(node, names):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)[:100]}")
    assert not found, "runtime names compared as strings (ask runtimes.capabilities instead):\n" + "\n".join(found)


def _compares_a_runtime_name(node, names: set[str]) -> bool:
    def is_name(value) -> bool:
        return isinstance(value, ast.Constant) and value.value in names

    if isinstance(node, ast.Compare):
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.Eq, ast.NotEq)) and (is_name(right) or is_name(node.left)):
                return True
            if isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.Tuple, ast.List, ast.Set)) \
                    and right.elts and all(is_name(e) for e in right.elts):  # a tuple of runtime names
                return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith":
        return any(is_name(arg) for arg in node.args)
    return False
