"""The import dispatcher (`models.foreign`, used by `checkpoint.load_model`): wrappers unwrapped, layouts
recognised by their tensors and never by the file name, and a file of no supported layout refused with the
nearest layouts and the keys it lacks. The foreign weights come from torchreid's own model code."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision

from reid_export.checkpoint import load_model
from reid_export.errors import CheckpointError
from reid_export.models.foreign import ImportDefaultWarning, unwrap_state_dict

torchreid = pytest.importorskip("torchreid", reason="torchreid is not installed: pip install -e '.[interop]'")


@pytest.fixture(scope="module")
def osnet_state() -> dict:
    torch.manual_seed(0)
    return torchreid.models.build_model("osnet_x0_25", num_classes=4, pretrained=False).state_dict()


def test_bare_prefixed_and_wrapped_files_give_the_same_model(osnet_state, tmp_path):
    files = {"bare.pth": osnet_state, "module.pth": {f"module.{k}": v for k, v in osnet_state.items()},
             "model.pth.tar-5": {"state_dict": osnet_state, "epoch": 5, "rank1": 0.3}}
    models = []
    for name, obj in files.items():
        torch.save(obj, tmp_path / name)
        models.append(_quiet_load(tmp_path / name).state_dict())
    assert all(models[0].keys() == m.keys() and all(torch.equal(models[0][k], m[k]) for k in m) for m in models[1:])
    assert unwrap_state_dict({"model": {"module.a": torch.zeros(1)}, "iteration": 9}).keys() == {"a"}


def test_layouts_are_recognised_by_their_tensors_not_the_file_name(osnet_state, tmp_path):
    torch.save(osnet_state, tmp_path / "resnet50-19c8e357.pth")
    assert _quiet_load(tmp_path / "resnet50-19c8e357.pth").import_summary["arch"] == "osnet_x0_25"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "osnet_x0_25_msmt17.pt")
    plain = load_model(tmp_path / "osnet_x0_25_msmt17.pt")  # torchvision's: the seed contract, no import
    assert plain.config.arch == "resnet18" and plain.import_summary is None


def test_a_file_of_no_supported_layout_names_the_nearest_and_the_keys_it_lacks(osnet_state, tmp_path):
    torch.save({k: v for k, v in osnet_state.items() if ".conv2a." not in k}, tmp_path / "edited.pth")
    with pytest.raises(CheckpointError, match=r"edited\.pth: matches no supported layout\. Nearest: torchreid OSNet "
                                              r"\(7/8 of its keys, lacks \['conv2\.0\.conv2a\.conv1\.weight'\]\)"):
        load_model(tmp_path / "edited.pth", log=None)
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match=r"empty\.pth: holds no tensors \(a dict with keys \['epoch', 'note'\]\)"):
        load_model(tmp_path / "empty.pth", log=None)


def _quiet_load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportDefaultWarning)
        return load_model(path, log=None)
