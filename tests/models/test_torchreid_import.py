"""torchreid's weights come in exactly: every supported architecture is built with torchreid's own model code
(PyPI `torchreid` 0.2.5, the `[interop]` extra), given random weights and random BN statistics, saved the
ways torchreid users have them (bare, `module.`-prefixed, `torchreid.utils.save_checkpoint`), imported,
exported to ONNX, and compared with torchreid's own eval forward on synthetic crops."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from reid_export.artefacts.onnx_metadata import IMPORT_KEY, read_onnx_info
from reid_export.checkpoint import init_model, load_model
from reid_export.contract import Preprocess
from reid_export.errors import CheckpointError
from reid_export.export.settings import ExportOptions
from reid_export.models import ModelConfig
from reid_export.models.foreign import ImportDefaultWarning
from reid_export.models.torchreid import TORCHREID_ARCHS
from reid_export.runtimes.onnxruntime import OnnxRuntime
from reid_export.verified.run import export_model

torchreid = pytest.importorskip("torchreid", reason="torchreid is not installed: pip install -e '.[interop]'")

SLOW = pytest.mark.slow
# (torchreid model name, how the file is saved); the x0.25 row is the quick one, the rest are slow
CASES = [
    ("osnet_x0_25", "checkpoint"),
    pytest.param("osnet_x0_5", "module", marks=SLOW),
    pytest.param("osnet_x0_75", "bare", marks=SLOW),
    pytest.param("osnet_x1_0", "checkpoint", marks=SLOW),
    pytest.param("osnet_ibn_x1_0", "module", marks=SLOW),
    pytest.param("resnet18", "module", marks=SLOW),
    pytest.param("resnet50", "bare", marks=SLOW),
    pytest.param("resnet50_fc512", "checkpoint", marks=SLOW),
]


@pytest.mark.parametrize("name, saved", CASES)
def test_a_torchreid_model_exports_as_torchreid_computes_it(name, saved, tiny_market, tmp_path):
    foreign = _torchreid_model(name)
    path = _save(foreign, saved, tmp_path)
    lines = []
    with pytest.warns(ImportDefaultWarning) as caught:
        result = export_model(path, tmp_path / "m.onnx", ExportOptions(exporter="torchscript"), data=tiny_market,
                              log=lines.append)
    told = [str(w.message) for w in caught]
    assert any("input size 256x128" in m and m.endswith("--height/--width") for m in told), told
    assert any("mean/std" in m and m.endswith("--mean/--std") for m in told), told
    assert result.parity.passed
    crops = _crops(tiny_market, 6)
    with OnnxRuntime(result.path) as rt:
        exported = rt.infer(crops)["embedding"]
    with torch.no_grad():
        expected = foreign(torch.from_numpy(crops)).numpy()  # torchreid's own eval forward
    cosine = (_unit(exported) * _unit(expected)).sum(axis=1)
    assert cosine.min() >= 0.99999, cosine
    imported = read_onnx_info(result.path).imported
    assert (imported["source"], imported["arch"]) == ("torchreid", name)
    assert imported["origin"]["input"] == "default" and (imported["height"], imported["width"]) == (256, 128)
    assert [line for line in lines if line.startswith("imported ")] == [
        line for line in lines if line.startswith(f"imported torchreid {name} [tensors]: input 256x128 [default]")]
    assert len([line for line in lines if line.startswith("imported ")]) == 1


def test_the_last_stride_is_torchreids_for_each_resnet(tmp_path):
    """resnet50 has last stride 2 and the pooled 2048-D feature, resnet50_fc512 last stride 1 and its fc's 512-D
    output: the tensors cannot tell the strides apart, torchreid's model zoo fixes them."""
    for name, stride, dim in (("resnet50", 2, 2048), ("resnet50_fc512", 1, 512)):
        foreign = _torchreid_model(name)
        path = _save(foreign, "bare", tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportDefaultWarning)
            model = load_model(path, log=None)
        assert (model.config.last_stride, model.config.embedding_dim) == (stride, dim)
        assert model.import_summary["last_stride"] == stride and model.import_summary["origin"]["last_stride"] == "arch"
        x = torch.randn(2, 3, 256, 128)
        with torch.no_grad():
            torch.testing.assert_close(model.embed(x), foreign(x), rtol=1e-4, atol=1e-5)


def test_flags_set_the_contract_and_silence_the_default_warning(tmp_path):
    path = _save(_torchreid_model("osnet_x0_25"), "bare", tmp_path)
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImportDefaultWarning)
        model = load_model(path, input_size=(384, 192), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), log=lines.append)
    contract = model.config.preprocess
    assert (contract.height, contract.width, contract.mean, contract.std) == (384, 192, (0.5,) * 3, (0.25,) * 3)
    assert model.import_summary["origin"]["input"] == model.import_summary["origin"]["mean_std"] == "flag"
    assert lines == [lines[0]] and "input 384x192 [flag]" in lines[0] and "[0.25, 0.25, 0.25] [flag]" in lines[0]


def test_the_cli_prints_one_summary_line_and_warns_naming_the_flags(tmp_path):
    path = _save(_torchreid_model("osnet_x0_25"), "module", tmp_path)
    out = tmp_path / "cli.onnx"
    done = subprocess.run([sys.executable, "-m", "reid_export.cli", "onnx", str(path), "-o", str(out), "--exporter",
                           "torchscript", "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("imported torchreid osnet_x0_25") == 1
    assert "--height/--width" in done.stderr and "--mean/--std" in done.stderr
    assert IMPORT_KEY in read_onnx_info(out).metadata
    flagged = subprocess.run([sys.executable, "-m", "reid_export.cli", "onnx", str(path), "-o", str(tmp_path / "f.onnx"),
                              "--exporter", "torchscript", "-q", "--height", "256", "--width", "128",
                              "--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375"],
                             capture_output=True, text=True, timeout=300)
    assert flagged.returncode == 0, flagged.stderr
    assert "ImportDefaultWarning" not in flagged.stderr and "[flag]" in flagged.stdout
    assert read_onnx_info(tmp_path / "f.onnx").contract.mean == pytest.approx((0.485, 0.456, 0.406))


def test_osnet_ain_is_refused_by_name_with_the_supported_list(tmp_path):
    path = _save(_torchreid_model("osnet_ain_x1_0"), "bare", tmp_path)
    with pytest.raises(CheckpointError, match=r"OSNet-AIN .* Supported torchreid architectures: ") as refused:
        load_model(path, log=None)
    assert all(name in str(refused.value) for name in TORCHREID_ARCHS)


def test_train_init_starts_from_the_converted_weights_with_a_new_classifier(tiny_market, tmp_path):
    path = _save(_torchreid_model("osnet_x0_25"), "checkpoint", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportDefaultWarning)
        converted = load_model(path, log=None)
        start = init_model(ModelConfig(arch="osnet_x0_25", num_classes=8, neck="bnneck"), str(path), log=None)
    for key, value in converted.backbone.state_dict().items():
        assert torch.equal(start.backbone.state_dict()[key], value), key
    assert start.classifier.weight.shape == (8, 512) and start.import_summary["arch"] == "osnet_x0_25"
    with pytest.raises(CheckpointError, match="holds a torchreid osnet_x0_25 .* pass --arch osnet_x0_25"):
        init_model(ModelConfig(arch="resnet18", num_classes=8), str(path), log=None)

    out = tmp_path / "tuned.pt"
    done = subprocess.run([sys.executable, "-m", "reid_export.cli", "train", "--data", str(tiny_market), "-o", str(out),
                           "--init", str(path), "--arch", "osnet_x0_25", "--epochs", "1", "--batch-size", "8",
                           "--set", "height=128", "--set", "width=64", "--set", "num_workers=0",
                           "--set", "final_eval=false", "--set", "embedding=neck", "-q"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "imported torchreid osnet_x0_25" in done.stdout
    tuned = load_model(out)
    assert tuned.config.arch == "osnet_x0_25" and tuned.classifier.weight.shape[1] == 512
    moved = [k for k, v in tuned.backbone.state_dict().items() if not torch.equal(v, converted.backbone.state_dict()[k])]
    assert moved  # one epoch of training changed the converted weights


# -- helpers --------------------------------------------------------------------------------------------------


def _torchreid_model(name: str) -> nn.Module:
    """torchreid's model with random weights and random BN statistics (so no BN is an identity), in eval mode."""
    torch.manual_seed(0)
    model = torchreid.models.build_model(name, num_classes=5, pretrained=False)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def _save(model: nn.Module, how: str, folder: Path) -> Path:
    """The file a torchreid user has: a bare state dict, a DataParallel one, or torchreid's checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if how == "checkpoint":
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
        torchreid.utils.save_checkpoint({"state_dict": state, "epoch": 3, "rank1": 0.5,
                                         "optimizer": optimizer.state_dict()}, str(folder))
        return folder / "model.pth.tar-3"
    path = folder / f"{how}.pth"
    torch.save({f"module.{k}": v for k, v in state.items()} if how == "module" else state, path)
    return path


def _crops(market, count: int) -> np.ndarray:
    """`count` gallery crops of the synthetic set at torchreid's 256x128 with ImageNet normalisation."""
    contract = Preprocess(height=256, width=128)
    files = sorted((market / "bounding_box_test").glob("*.jpg"))[:count]
    return np.stack([contract.image_to_array(Image.open(f)) for f in files]).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)
