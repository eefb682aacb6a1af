"""`--model-factory package.module:function`: a user's own nn.Module goes through the same export, parity,
precision and bench path as the project's checkpoints. The module lives in a package written to tmp_path
and put on sys.path (PYTHONPATH for the CLI), as a user's code would be."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from reid_export.artefacts.onnx_metadata import read_onnx_info
from reid_export.artefacts.tracker_sidecar import read_tracker_sidecar
from reid_export.errors import ReidExportError
from reid_export.export.factory import ModelFactory
from reid_export.export.settings import ExportOptions, Int8Settings
from reid_export.runtimes import make_runtime
from reid_export.verified.factory import export_factory

H, W = 64, 32
CONTRACT_FLAGS = ["--height", str(H), "--width", str(W), "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
                  "--color", "bgr"]

USER_PACKAGE = '''
import torch
from torch import nn


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(16, 24)

    def forward(self, x):
        return self.fc(self.body(x))


def build_plain():
    return UserNet()


def build_with_contract():
    net = UserNet()
    net.preprocess = {"height": 64, "width": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                      "color": "rgb"}
    return net


def build_tuple():
    class Pair(UserNet):
        def forward(self, x):
            return super().forward(x), x.mean()
    return Pair()
'''


@pytest.fixture(scope="module")
def user_package(tmp_path_factory):
    """tmp/userpkg/nets.py on sys.path, and seeded weights for UserNet saved as a state dict."""
    root = tmp_path_factory.mktemp("user")
    (root / "userpkg").mkdir()
    (root / "userpkg" / "__init__.py").write_text("")
    (root / "userpkg" / "nets.py").write_text(textwrap.dedent(USER_PACKAGE))
    sys.path.insert(0, str(root))
    from userpkg.nets import UserNet

    torch.manual_seed(1)
    net = UserNet()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), root / "weights.pth")
    yield root
    sys.path.remove(str(root))


@pytest.mark.slow
def test_a_factory_module_exports_with_parity_and_the_contract_from_the_flags(user_package, tiny_market, tmp_path):
    out = tmp_path / "user.onnx"
    result = _cli(user_package, "onnx", "--model-factory", "userpkg.nets:build_plain", "--weights",
                  str(user_package / "weights.pth"), *CONTRACT_FLAGS, "--data", str(tiny_market), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out} (fp32" in result.stdout and "min cosine" in result.stdout
    info = read_onnx_info(out)
    c = info.contract
    assert (c.height, c.width, c.color, c.mean, c.std, c.scale) == (H, W, "BGR", (0.5,) * 3, (0.25,) * 3, 1 / 255)
    assert info.model["arch"] == "factory:userpkg.nets:build_plain" and info.model["embedding_dim"] == 24
    assert info.model["weights"]["file"] == "weights.pth" and info.model["contract_sources"]["mean"] == "--mean flag"
    assert read_tracker_sidecar(out)["reid_export"]["embedding_dim"] == 24
    from userpkg.nets import UserNet  # the user's own forward, outside the project's code

    net = UserNet()
    net.load_state_dict(torch.load(user_package / "weights.pth", weights_only=True))
    x = np.random.default_rng(0).standard_normal((6, 3, H, W), dtype=np.float32)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(net.eval()(torch.from_numpy(x)), dim=1).numpy()
    with make_runtime("onnxruntime", out) as ort:
        got = ort.infer(x)["embedding"]
    assert float((expected * got).sum(axis=1).min()) > 0.99999


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_a_factory_module_exports_at_lower_precision_through_the_same_parity_check(user_package, tiny_market,
                                                                                    precision, tmp_path):
    factory = ModelFactory.parse("userpkg.nets:build_with_contract", weights=user_package / "weights.pth")
    result = export_factory(factory, tmp_path / f"user.{precision}.onnx",
                            ExportOptions(precision=precision, int8=Int8Settings(num_images=16, batch_size=8)),
                            calib_data=tiny_market, data=tiny_market, progress=False)
    assert result.parity.passed and result.info.precision == precision
    assert result.info.model["contract_sources"]["height"] == "userpkg.nets:build_with_contract's `preprocess` attribute"


@pytest.mark.slow
def test_a_factory_module_is_a_bench_row_and_its_export_is_compared_with_it(user_package, tiny_market, tmp_path):
    onnx_path = export_factory(ModelFactory.parse("userpkg.nets:build_with_contract@" + str(user_package / "weights.pth")),
                               tmp_path / "user.onnx", progress=False).path
    result = _cli(user_package, "bench", "--data", str(tiny_market), "--model",
                  f"factory=userpkg.nets:build_with_contract@{user_package / 'weights.pth'}", "--model", str(onnx_path),
                  "--batch-sizes", "1,4", "--no-stages", "-o", str(tmp_path / "bench"), "-q")
    assert result.returncode == 0, result.stderr
    torch_row, onnx_row = json.loads((tmp_path / "bench" / "report.json").read_text())["rows"]
    assert torch_row["status"] == onnx_row["status"] == "ok" and torch_row["runtime"] == "torch"
    assert torch_row["arch"] == onnx_row["arch"] == "factory:userpkg.nets:build_with_contract"
    assert torch_row["is_reference"] and onnx_row["reference"].startswith("torch:") and onnx_row["cosine_min"] > 0.9999


def test_a_contract_without_evidence_is_refused_naming_the_flags(user_package):
    with pytest.raises(ReidExportError, match="the module has no `preprocess` attribute that says its contract: give "
                                              "--mean, --std, --color"):
        ModelFactory.parse("userpkg.nets:build_plain", height=H, width=W).load()  # the size alone is not enough


def test_weights_are_read_without_unpickling_code(user_package, tmp_path):
    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": {}, "extra": ModelFactory("x:y")}, pickled)  # an object weights_only refuses
    with pytest.raises(ReidExportError, match="not readable as tensors with weights_only=True"):
        ModelFactory.parse("userpkg.nets:build_with_contract", weights=pickled).load()


def test_weights_of_another_architecture_are_refused_naming_the_keys(user_package, tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ReidExportError, match=r"does not fit the module: 10 missing \['body.0.weight'.* 1 unexpected \['conv.weight'\]"):
        ModelFactory.parse("userpkg.nets:build_with_contract", weights=other).load()


def test_a_module_returning_more_than_the_embedding_is_refused(user_package):
    with pytest.raises(ReidExportError, match="returned tuple .* it must return the embeddings alone, a tensor"):
        ModelFactory.parse("userpkg.nets:build_tuple", **dict(zip(("height", "width"), (H, W))), mean="0.5,0.5,0.5",
                           std="0.5,0.5,0.5", color="rgb").load()


def test_an_unknown_module_or_function_is_refused_with_the_fix(user_package):
    with pytest.raises(ReidExportError, match="cannot import 'nopkg.nets'.*PYTHONPATH"):
        ModelFactory.parse("nopkg.nets:build").load()
    with pytest.raises(ReidExportError, match="has no function 'build'; its callables: UserNet, build_plain"):
        ModelFactory.parse("userpkg.nets:build").load()
    with pytest.raises(ReidExportError, match="expected package.module:function"):
        ModelFactory.parse("userpkg.nets.build")


def _cli(user_package, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_package), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "reid_export.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)
