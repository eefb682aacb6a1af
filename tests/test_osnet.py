"""OSNet: the paper's structure, the ReidNet integration (config, checkpoints, bare backbones) and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from reid_export.checkpoint import load_model, save_checkpoint
from reid_export.contract import Preprocess
from reid_export.errors import CheckpointError
from reid_export.export.onnx import export_onnx
from reid_export.export.precision import calibration_images, convert_fp16, quantize_int8
from reid_export.models import ARCHS, ModelConfig, ReidNet, build_model, infer_arch, normalise_backbone_keys
from reid_export.models.osnet import OSNET_ARCHS, AggregationGate, LiteConv3x3, OSBlock, build_osnet
from reid_export.runtimes.onnxruntime import OnnxRuntime
from reid_export.runtimes.torch import TorchRuntime
from reid_export.training.config import load_recipe

SMALL = Preprocess(height=64, width=32)


def _osnet(arch="osnet_x0_25", **kwargs) -> ReidNet:
    torch.manual_seed(0)
    model = ReidNet(ModelConfig(arch=arch, neck="bnneck", preprocess=SMALL, **kwargs)).eval()
    for m in model.modules():  # non-trivial BN statistics, so mismatches would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("arch, params", [("osnet_x1_0", 2.2e6), ("osnet_x0_25", 0.2e6)])
def test_sizes_match_the_paper_and_the_embedding_is_512_d(arch, params):
    model = ReidNet(ModelConfig(arch=arch))
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert abs(backbone - params) / params < 0.05  # Table 1 / Sec. 4: 2.2M at x1.0, 0.2M at x0.25
    assert model.config.embedding_dim == 512 == ARCHS[arch][2]
    with torch.no_grad():
        assert model.eval().embed(torch.randn(2, 3, 128, 64)).shape == (2, 512)


def test_an_osblock_has_four_gated_streams_of_growing_receptive_field():
    block = OSBlock(16, 32).eval()
    assert [len(stream) for stream in block.streams] == [1, 2, 3, 4]
    assert sum(isinstance(m, AggregationGate) for m in block.modules()) == 1  # one gate, shared
    lite = block.streams[0][0]
    assert isinstance(lite, LiteConv3x3) and lite.depthwise.groups == lite.depthwise.in_channels == 8
    assert isinstance(block.shortcut, nn.Sequential) and isinstance(OSBlock(32, 32).shortcut, nn.Identity)
    for depth, stream in enumerate(block.streams, start=1):  # t stacked 3x3 layers see (2t + 1) x (2t + 1)
        x = torch.randn(1, 8, 15, 15, requires_grad=True)
        stream(x)[0, :, 7, 7].sum().backward()
        rows = torch.nonzero(x.grad[0].abs().sum(dim=0).sum(dim=1)).ravel()
        assert rows.max() - rows.min() + 1 == 2 * depth + 1


def test_the_gate_weighs_channels_between_zero_and_one():
    gate = AggregationGate(32)
    x = torch.rand(2, 32, 4, 4) + 0.1
    ratio = gate(x) / x
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio))  # one weight per channel
    assert ((ratio > 0) & (ratio < 1)).all()


def test_zero_init_residual_starts_every_block_as_its_shortcut():
    backbone = build_osnet("osnet_x0_25", zero_init_residual=True).eval()
    block = backbone.conv3[0]
    x = torch.randn(2, 64, 8, 4)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(block.shortcut(x)))


def test_ibn_variant_uses_instance_norm_in_the_stem_and_conv2_only():
    backbone = build_osnet("osnet_ibn_x1_0")  # where the authors' code (torchreid) puts it
    assert isinstance(backbone.conv1.norm, nn.InstanceNorm2d)
    assert all(b.instance_norm is not None for b in backbone.conv2)
    assert all(b.instance_norm is None for b in (*backbone.conv3, *backbone.conv4))


def test_resnet_only_options_are_refused_clearly():
    with pytest.raises(CheckpointError, match="last_stride=1 is a ResNet option.*set last_stride = 2"):
        ModelConfig(arch="osnet_x0_25", last_stride=1)
    with pytest.raises(CheckpointError, match="no ImageNet weights for osnet_x1_0"):
        build_model(ModelConfig(arch="osnet_x1_0"), init="imagenet")


def test_the_quick_recipe_builds_an_osnet():
    config = load_recipe("quick", overrides={"arch": "osnet_x0_25", "attributes": False})
    assert config.model_config(num_classes=4).arch == "osnet_x0_25"


def test_checkpoint_round_trip_keeps_the_embeddings(tmp_path):
    model = _osnet()
    x = torch.randn(3, 3, 64, 32)
    save_checkpoint(tmp_path / "o.pt", model, epoch=1)
    loaded = load_model(tmp_path / "o.pt")
    assert loaded.config.arch == "osnet_x0_25"
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed(x), model.embed(x))


@pytest.mark.parametrize("arch", sorted(OSNET_ARCHS))
def test_a_bare_osnet_backbone_is_recognised_not_taken_for_a_resnet(arch, tmp_path):
    state = {f"module.{k}": v for k, v in build_osnet(arch).state_dict().items()}
    assert infer_arch(normalise_backbone_keys(state, source="t"), source="t") == arch
    torch.save(state, tmp_path / "bare.pth")
    assert load_model(tmp_path / "bare.pth").config.arch == arch
    with pytest.raises(CheckpointError, match="holds a"):
        load_model(tmp_path / "bare.pth", arch="resnet18")


def test_a_backbone_file_initialises_an_osnet(tmp_path):
    source = _osnet()
    torch.save(source.backbone.state_dict(), tmp_path / "b.pth")
    model = build_model(ModelConfig(arch="osnet_x0_25", preprocess=SMALL), init=str(tmp_path / "b.pth"))
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    with pytest.raises(CheckpointError, match="weights are for osnet_x0_25 but the model is osnet_x1_0"):
        build_model(ModelConfig(arch="osnet_x1_0"), init=str(tmp_path / "b.pth"))


@pytest.mark.slow
def test_exports_at_every_precision_and_runs_in_onnxruntime(tiny_market, tmp_path):
    model = _osnet()
    images = np.random.default_rng(0).uniform(-2, 2, (4, 3, 64, 32)).astype(np.float32)
    with TorchRuntime(model) as rt:
        reference = rt.infer(images)["embedding"]
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    fp32 = export_onnx(model, tmp_path / "o.onnx", exporter="torchscript")  # one export (the faster exporter), converted
    paths = {"fp32": fp32, "fp16": convert_fp16(fp32, tmp_path / "o.fp16.onnx"),
             "int8": quantize_int8(fp32, tmp_path / "o.int8.onnx", calibration_images(tiny_market, 16), progress=False)}
    cosines = {}
    for precision, path in paths.items():
        with OnnxRuntime(path) as rt:
            assert rt.precision == precision and rt.info.arch == "osnet_x0_25"
            emb = rt.infer(images)["embedding"]
        assert emb.shape == (4, 512) and np.isfinite(emb).all()
        cosines[precision] = float((emb * reference).sum(axis=1).min())
    assert cosines["fp32"] > 0.9999 and cosines["fp16"] > 0.99 and cosines["int8"] > 0.8, cosines
