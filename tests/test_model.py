import pytest
import torch
import torchvision
from torch import nn

from reid_export.checkpoint import load_model
from reid_export.errors import CheckpointError
from reid_export.models import ModelConfig, ReidNet, build_model


def _seed_backbone(arch="resnet50"):
    resnet = getattr(torchvision.models, arch)(weights=None)
    return resnet, nn.Sequential(*list(resnet.children())[:-1])


@pytest.mark.parametrize("arch,dim", [("resnet18", 512), ("resnet50", 2048)])
def test_embedding_has_the_arch_dimension(arch, dim):
    model = ReidNet(ModelConfig(arch=arch, num_classes=7, neck="bnneck")).eval()
    out = model(torch.randn(2, 3, 64, 32))
    assert out["embedding"].shape == (2, dim) and out["logits"].shape == (2, 7)


def test_last_stride_one_doubles_the_final_feature_map():
    x = torch.randn(1, 3, 128, 64)
    two = ReidNet(ModelConfig(arch="resnet18", last_stride=2)).backbone(x)
    one = ReidNet(ModelConfig(arch="resnet18", last_stride=1)).backbone(x)
    assert one.shape[-2:] == (two.shape[-2] * 2, two.shape[-1] * 2)


def test_seed_notebook_backbone_loads_and_reproduces_its_features(tmp_path):
    resnet, seed = _seed_backbone("resnet50")
    for m in seed.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
    path = tmp_path / "resnet50_market1501_backbone.pth"
    torch.save(seed.state_dict(), path)
    assert "0.weight" in seed.state_dict() and "4.0.conv1.weight" in seed.state_dict()
    model = load_model(path)
    assert model.config.arch == "resnet50" and (model.config.preprocess.height, model.config.preprocess.width) == (128, 64)
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        expected = seed.eval()(x).flatten(1)
        torch.testing.assert_close(model.forward_features(x), expected)


def test_torchvision_state_dict_with_dataparallel_prefix_loads(tmp_path):
    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "tv.pth"
    torch.save({f"module.{k}": v for k, v in resnet.state_dict().items()}, path)
    model = build_model(ModelConfig(arch="resnet18"), init=str(path))
    torch.testing.assert_close(model.backbone[0].weight, resnet.conv1.weight)


def test_backbone_of_another_arch_is_refused_naming_both(tmp_path):
    _, seed = _seed_backbone("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(seed.state_dict(), path)
    with pytest.raises(CheckpointError, match="resnet18.*resnet50|resnet50.*resnet18"):
        load_model(path, arch="resnet50")
    with pytest.raises(CheckpointError, match="--arch resnet18"):
        build_model(ModelConfig(arch="resnet50"), init=str(path))


def test_truncated_or_foreign_files_give_a_clear_error(tmp_path):
    _, seed = _seed_backbone("resnet18")
    good = tmp_path / "good.pth"
    torch.save(seed.state_dict(), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pth.*cannot be read"):
        load_model(cut)
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="other.pth: matches no supported layout. Nearest: "):
        load_model(other)
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "missing.pth")


def test_shape_mismatch_names_the_tensor(tmp_path):
    _, seed = _seed_backbone("resnet18")
    state = seed.state_dict()
    state["0.weight"] = torch.zeros(64, 3, 5, 5)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"0\.weight"):
        load_model(path)


def test_imagenet_init_without_network_says_what_to_do(monkeypatch):
    import reid_export.models.net as model_module

    def offline(arch):
        raise CheckpointError(f"could not download ImageNet weights for {arch} (offline); pass --init PATH")

    monkeypatch.setattr(model_module, "_imagenet_state_dict", offline)
    with pytest.raises(CheckpointError, match="--init PATH"):
        build_model(ModelConfig(arch="resnet18"), init="imagenet")
    with pytest.raises(CheckpointError, match="neither 'random', 'imagenet' nor an existing file"):
        build_model(ModelConfig(arch="resnet18"), init="/no/such/weights.pth")


@pytest.mark.parametrize("arch,dim", [("resnet18", 256), ("resnet50", 1024)])
def test_a_half_width_resnet_keeps_torchvision_names_with_half_the_channels(arch, dim):
    standard = ReidNet(ModelConfig(arch=arch)).backbone.state_dict()
    narrow = ReidNet(ModelConfig(arch=arch, base_channels=32, num_classes=5, neck="bnneck")).eval()
    state = narrow.backbone.state_dict()
    assert list(state) == list(standard)  # same keys, same order: torchvision's layout
    conv_keys = [k for k, v in standard.items() if v.ndim == 4]
    assert all(state[k].shape[0] * 2 == standard[k].shape[0] for k in conv_keys)
    assert narrow.config.embedding_dim == dim and narrow(torch.randn(2, 3, 64, 32))["logits"].shape == (2, 5)
    # torchvision's initialisation: Kaiming-normal (fan out) convolutions, unit BN weights
    stem = state["0.weight"]
    assert abs(float(stem.std()) - (2 / (stem.shape[0] * 49)) ** 0.5) < 0.02 and bool((state["1.weight"] == 1).all())


def test_zero_init_residual_zeroes_the_last_norm_of_every_narrow_block():
    model = ReidNet(ModelConfig(arch="resnet18", base_channels=32, zero_init_residual=True))
    blocks = [b for stage in model.backbone[4:8] for b in stage]
    assert len(blocks) == 8 and all(not b.bn2.weight.detach().any() for b in blocks)


@pytest.mark.parametrize("width", [0, 12, 100])
def test_a_width_that_is_not_a_multiple_of_8_is_refused(width):
    with pytest.raises(CheckpointError, match="base_channels must be a multiple of 8"):
        ModelConfig(arch="resnet18", base_channels=width)


def test_width_is_a_resnet_option():
    with pytest.raises(CheckpointError, match="base_channels=32"):
        ModelConfig(arch="osnet_x0_25", base_channels=32)


def test_standard_weights_into_a_narrow_model_say_which_width_to_set(tmp_path):
    _, seed = _seed_backbone("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(seed.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"64 stem channels.*set base_channels = 64"):
        build_model(ModelConfig(arch="resnet18", base_channels=32), init=str(path))
