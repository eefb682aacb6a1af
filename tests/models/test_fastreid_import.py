"""fast-reid checkpoints (BoT / SBS, ResNet50 / ResNet50-IBN-a) imported, exported to ONNX, and compared with the
fast-reid model's own eval forward on synthetic crops.

The fast-reid models come from tests/models/fastreid_baseline.py, a test model WRITTEN FROM fast-reid's published
source with its module tree and state-dict keys, because PyPI `fastreid` 1.4.0 does not install here (it pins
torch==1.13.1 / torchvision==0.14.1). `test_reference_model_is_fastreid_itself` checks that model against
fast-reid's own code wherever that is importable (e.g. `pip install --no-deps fastreid yacs termcolor tabulate`).
Checkpoints are saved as fast-reid's Checkpointer saves them ({'model': state_dict, 'optimizer', 'epoch', ...})
with the config YAML beside them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import yaml
from fastreid_baseline import build_baseline, randomise, save_like_fastreid
from PIL import Image

from reid_export.artefacts.onnx_metadata import read_onnx_info
from reid_export.checkpoint import load_model
from reid_export.errors import CheckpointError
from reid_export.export.onnx import export_onnx
from reid_export.models.fastreid import convert_fastreid, looks_like_fastreid, read_fastreid_config
from reid_export.models.foreign import ImportDefaultWarning
from reid_export.runtimes import make_runtime

MIN_COSINE = 0.99999
BOT = {"MODEL": {"META_ARCHITECTURE": "Baseline",
                 "BACKBONE": {"NAME": "build_resnet_backbone", "DEPTH": "50x", "LAST_STRIDE": 1, "WITH_IBN": False},
                 "HEADS": {"NAME": "EmbeddingHead", "WITH_BNNECK": True, "POOL_LAYER": "GlobalAvgPool",
                           "NECK_FEAT": "before"}},
       "INPUT": {"SIZE_TEST": [256, 128]}}
# Base-SBS's choices (GeM with a learnable p, NECK_FEAT after, 384x128) on ResNet50-IBN-a, without its non-local
# blocks (refused, see below); mean/std in fast-reid's 0-255 units, not ImageNet's, so a unit mix-up shows
SBS_BASE = {"MODEL": {"BACKBONE": {"DEPTH": "50x", "LAST_STRIDE": 1}, "HEADS": {"WITH_BNNECK": True}},
            "INPUT": {"SIZE_TEST": [256, 128]}}
SBS = {"_BASE_": "../Base-SBS.yml",
       "MODEL": {"BACKBONE": {"WITH_IBN": True, "WITH_NL": False},
                 "HEADS": {"POOL_LAYER": "GeneralizedMeanPoolingP", "NECK_FEAT": "after"},
                 "PIXEL_MEAN": [123.0, 117.0, 104.0], "PIXEL_STD": [58.0, 57.0, 57.5]},
       "INPUT": {"SIZE_TEST": [384, 128]}}


def _merged_sbs() -> dict:
    out = yaml.safe_load(yaml.safe_dump(SBS_BASE))
    for section, values in SBS.items():
        if section == "_BASE_":
            continue
        for key, value in values.items():
            if isinstance(value, dict):
                out.setdefault(section, {}).setdefault(key, {}).update(value)
            else:
                out.setdefault(section, {})[key] = value
    return out


@pytest.fixture
def crops(tiny_market):
    return [Image.open(p).convert("RGB") for p in sorted((tiny_market / "bounding_box_test").glob("*.jpg"))[:6]]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["bot-resnet50", "sbs-resnet50-ibn-gem"])
def test_fastreid_checkpoint_exports_equal_to_its_own_forward(tmp_path, crops, recipe):
    if recipe == "bot-resnet50":
        config_path, merged = _write(tmp_path / "bot" / "config.yaml", BOT), BOT
    else:
        _write(tmp_path / "configs" / "Base-SBS.yml", SBS_BASE)
        config_path, merged = _write(tmp_path / "configs" / "sbs" / "config.yaml", SBS), _merged_sbs()
    foreign = randomise(build_baseline(merged), seed=1).eval()
    save_like_fastreid(foreign, tmp_path / "model_final.pth")

    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImportDefaultWarning)  # every value is the config's: nothing defaulted
        model = load_model(tmp_path / "model_final.pth", config=read_fastreid_config(config_path), log=lines.append)
    onnx_path = export_onnx(model, tmp_path / "model.onnx")

    summary = read_onnx_info(onnx_path).imported  # the import summary travels in the artefact
    height, width = merged["INPUT"]["SIZE_TEST"]
    assert summary["source"] == "fast-reid" and (summary["height"], summary["width"]) == (height, width)
    assert summary["last_stride"] == 1 and summary["neck"] == "bnneck" and set(summary["origin"].values()) == {"config"}
    assert summary["arch"] == ("resnet50" if recipe == "bot-resnet50" else "resnet50_ibn_a")
    assert summary["pooling"].startswith("avg" if recipe == "bot-resnet50" else "gem")
    assert lines == [f"imported fast-reid {summary['arch']} [config]: input {height}x{width} [config], " + lines[0].split(", ", 1)[1]]
    ours, theirs = _embeddings(onnx_path, foreign, crops)
    assert _cosines(ours, theirs).min() >= MIN_COSINE


@pytest.mark.slow
@pytest.mark.parametrize("neck_feat", ["before", "after"])
def test_bnneck_is_exported_whatever_neck_feat_says(tmp_path, crops, neck_feat):
    """fast-reid evaluates the BNNeck's output; NECK_FEAT only picks the training losses' feature."""
    config = _small(HEADS={"WITH_BNNECK": True, "NECK_FEAT": neck_feat})
    foreign = randomise(build_baseline(config), seed=2).eval()
    model, summary = convert_fastreid(foreign.state_dict(), source="bnneck.pth", config=config)
    ours, theirs = _embeddings(export_onnx(model, tmp_path / "m.onnx"), foreign, crops)
    assert summary.neck == "bnneck" and summary.embedding == "neck"
    assert _cosines(ours, theirs).min() >= MIN_COSINE
    pooled = _foreign(foreign.pooled, crops, config)  # what an import that dropped the neck would give
    assert _cosines(pooled, theirs).min() < 0.999  # so the check above would catch a dropped BNNeck


@pytest.mark.slow
@pytest.mark.parametrize("stride", [1, 2])
def test_last_stride_is_the_configs_and_a_wrong_one_fails_parity(tmp_path, crops, stride):
    config = _small(BACKBONE={"LAST_STRIDE": stride})
    foreign = randomise(build_baseline(config), seed=3).eval()
    model, summary = convert_fastreid(foreign.state_dict(), source="stride.pth", config=config)
    ours, theirs = _embeddings(export_onnx(model, tmp_path / "right.onnx"), foreign, crops)
    assert summary.last_stride == stride and summary.origin["last_stride"] == "config"
    assert _cosines(ours, theirs).min() >= MIN_COSINE

    wrong = _small(BACKBONE={"LAST_STRIDE": 3 - stride})
    model, _ = convert_fastreid(foreign.state_dict(), source="stride.pth", config=wrong)
    ours, _ = _embeddings(export_onnx(model, tmp_path / "wrong.onnx"), None, crops)
    assert _cosines(ours, theirs).min() < 0.9999


@pytest.mark.parametrize("pool", ["GlobalAvgPool", "FastGlobalAvgPool", "GlobalMaxPool", "AdaptiveAvgMaxPool",
                                  "GeneralizedMeanPooling", "GeneralizedMeanPoolingP"])
def test_every_supported_pool_layer_computes_what_fastreid_does(crops, pool):
    config = _small(HEADS={"POOL_LAYER": pool, "EMBEDDING_DIM": 96})
    foreign = randomise(build_baseline({**config, "MODEL": {**config["MODEL"], "HEADS": {
        **config["MODEL"]["HEADS"], "POOL_LAYER": pool.replace("Fast", "")}}}), seed=8).eval()
    model, summary = convert_fastreid(foreign.state_dict(), source="pool.pth", config=config)
    contract = model.config.preprocess
    batch = contract.normalize_uint8(np.stack([np.asarray(contract.resize(c)) for c in crops]))
    with torch.no_grad():
        ours = model.embed(torch.from_numpy(batch)).numpy()
    assert summary.pooling.endswith(f"({pool})") and summary.embedding_dim == 96
    assert _cosines(ours, _foreign(foreign, crops, config)).min() >= MIN_COSINE


def test_without_config_the_defaults_that_matter_warn_and_name_the_flag(tmp_path):
    config = _small(BACKBONE={"WITH_IBN": True}, HEADS={"WITH_BNNECK": True, "POOL_LAYER": "GeneralizedMeanPoolingP",
                                                       "EMBEDDING_DIM": 64})
    save_like_fastreid(randomise(build_baseline(config), seed=4), tmp_path / "model_final.pth")
    lines = []
    with pytest.warns(ImportDefaultWarning) as caught:
        model = load_model(tmp_path / "model_final.pth", log=lines.append)
    told = " | ".join(str(w.message) for w in caught)
    assert "input size 256x128" in told and "--height/--width" in told
    assert "mean/std" in told and "--mean/--std" in told
    assert "last stride 1" in told and "--config config.yaml (MODEL.BACKBONE.LAST_STRIDE)" in told
    assert "POOL_LAYER" not in told  # GeM was read from its p: no pooling warning
    summary = model.import_summary
    assert (summary["height"], summary["width"]) == (256, 128) and summary["origin"]["input"] == "default"
    assert "input 256x128 [default]" in lines[0] and "last stride 1 [default]" in lines[0]
    # what the tensors do tell, they tell: IBN-a, GeM, the 64-D embedding conv, the BNNeck
    assert summary["arch"] == "resnet18_ibn_a" and summary["pooling"].startswith("gem")
    assert summary["embedding_dim"] == 64 and summary["neck"] == "bnneck"
    assert summary["origin"]["neck"] == summary["origin"]["pooling"] == "tensors"
    assert model.config.ibn and model.config.reduction == 64


def test_without_a_pooling_parameter_the_average_default_names_the_config_key():
    state = randomise(build_baseline(_small()), seed=5).state_dict()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, summary = convert_fastreid(state, source="bare.pth", config=None)
    told = [str(w.message) for w in caught if w.category is ImportDefaultWarning]
    assert any("average pooling" in m and "--config config.yaml (MODEL.HEADS.POOL_LAYER)" in m for m in told)
    assert summary.pooling.startswith("avg") and summary.origin["pooling"] == "default"


def test_height_and_width_flags_replace_the_input_size_warning(tmp_path):
    save_like_fastreid(randomise(build_baseline(_small()), seed=5), tmp_path / "model_final.pth")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(tmp_path / "model_final.pth", input_size=(192, 96), log=None)
    assert (model.config.preprocess.height, model.config.preprocess.width) == (192, 96)
    assert model.import_summary["origin"]["input"] == "flag"
    assert not any("input size" in str(w.message) for w in caught)


@pytest.mark.parametrize("block,key", [("non-local", "backbone.NL_2.0.g.weight"),
                                       ("squeeze-excitation", "backbone.layer1.0.se.fc.0.weight")])
def test_block_reid_export_cannot_compute_is_refused_by_name(block, key):
    state = build_baseline(_small()).state_dict()
    state[key] = torch.zeros(64, 128, 1, 1)
    with pytest.raises(CheckpointError, match=f"{block}.*{key.replace('.', '[.]')}.*Supported: fast-reid Baseline"):
        convert_fastreid(state, source="nl.pth", config=None)


def test_config_with_non_local_is_refused_by_name():
    config = _small(BACKBONE={"WITH_NL": True})
    with pytest.raises(CheckpointError, match="WITH_NL: true, non-local blocks.*Supported"):
        convert_fastreid(build_baseline(_small()).state_dict(), source="sbs.pth", config=config)


def test_config_that_describes_another_model_is_refused():
    state = build_baseline(_small(BACKBONE={"WITH_IBN": True})).state_dict()
    with pytest.raises(CheckpointError, match="WITH_IBN: False.*IBN-a norms.*the config this checkpoint was trained"):
        convert_fastreid(state, source="ibn.pth", config=_small(BACKBONE={"WITH_IBN": False}))


def test_unsupported_pooling_layer_is_refused_with_the_supported_ones():
    with pytest.raises(CheckpointError, match="POOL_LAYER: 'Flatten'.*GlobalAvgPool.*GeneralizedMeanPoolingP"):
        convert_fastreid(build_baseline(_small()).state_dict(), source="f.pth",
                         config=_small(HEADS={"POOL_LAYER": "Flatten"}))


def test_fastreid_layout_is_recognised_by_its_keys():
    assert looks_like_fastreid(build_baseline(_small()).state_dict())
    assert not looks_like_fastreid({"conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1)})


def test_base_configs_are_merged_relative_to_the_file(tmp_path):
    _write(tmp_path / "configs" / "Base-SBS.yml", {"_BASE_": "Base-bagtricks.yml", "MODEL": {"HEADS": {
        "POOL_LAYER": "GeneralizedMeanPoolingP"}}, "INPUT": {"SIZE_TEST": [384, 128]}})
    _write(tmp_path / "configs" / "Base-bagtricks.yml", BOT)
    path = _write(tmp_path / "configs" / "Market1501" / "sbs_R50-ibn.yml",
                  {"_BASE_": "../Base-SBS.yml", "MODEL": {"BACKBONE": {"WITH_IBN": True}}})
    config = read_fastreid_config(path)
    assert config["MODEL"]["BACKBONE"] == {**BOT["MODEL"]["BACKBONE"], "WITH_IBN": True}
    assert config["MODEL"]["HEADS"]["POOL_LAYER"] == "GeneralizedMeanPoolingP"
    assert config["MODEL"]["HEADS"]["WITH_BNNECK"] is True and config["INPUT"]["SIZE_TEST"] == [384, 128]


def test_missing_base_config_names_the_file_that_asks_for_it(tmp_path):
    path = _write(tmp_path / "sbs.yml", {"_BASE_": "../Base-SBS.yml"})
    with pytest.raises(CheckpointError, match=r"Base-SBS\.yml \(the _BASE_ of .*sbs\.yml\): no such file"):
        read_fastreid_config(path)


def test_reference_model_is_fastreid_itself():
    """The test model above has fast-reid's keys and computes what fast-reid's own code computes."""
    fastreid_config = pytest.importorskip("fastreid.config", reason="fast-reid's code is not installed (PyPI fastreid "
                                          "pins torch 1.13); the test model follows its published source")
    from fastreid.modeling import build_model

    config = _small(BACKBONE={"WITH_IBN": True}, HEADS={"WITH_BNNECK": True, "POOL_LAYER": "GeneralizedMeanPoolingP"})
    ours = randomise(build_baseline(config), seed=6).eval()
    cfg = fastreid_config.get_cfg()
    cfg.merge_from_other_cfg(fastreid_config.CfgNode(config))
    cfg.MODEL.DEVICE, cfg.MODEL.BACKBONE.PRETRAIN, cfg.MODEL.BACKBONE.FEAT_DIM = "cpu", False, 512
    cfg.MODEL.HEADS.NUM_CLASSES = 751
    theirs = build_model(cfg).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(2, 3, 128, 64) * 255
    with torch.no_grad():
        assert torch.equal(ours(x.clone()), theirs(x.clone()))


# -- helpers ---------------------------------------------------------------------------------------------------

def _small(**sections) -> dict:
    """A fast ResNet18 fast-reid config at 128x64 with the given MODEL.BACKBONE / MODEL.HEADS values."""
    return {"MODEL": {"BACKBONE": {"DEPTH": "18x", "LAST_STRIDE": 1, **sections.get("BACKBONE", {})},
                      "HEADS": {"WITH_BNNECK": True, **sections.get("HEADS", {})}},
            "INPUT": {"SIZE_TEST": [128, 64]}}


def _write(path, config: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def _embeddings(onnx_path, foreign, crops):
    """(ONNX embeddings through the runtime and the contract in its metadata, the foreign model's own)."""
    with make_runtime("onnxruntime", onnx_path) as runtime:
        contract = runtime.contract
        batch = contract.normalize_uint8(np.stack([np.asarray(contract.resize(c)) for c in crops]))
        ours = runtime.infer(batch)["embedding"]
    if foreign is None:
        return ours, None
    return ours, _foreign(foreign, crops, None, contract)


def _foreign(forward, crops, config, contract=None):
    """The foreign forward on the crops, resized as fast-reid's test transform does (PIL bicubic), in 0-255."""
    if contract is None:
        height, width = config["INPUT"]["SIZE_TEST"]
        size = (width, height)
    else:
        size = (contract.width, contract.height)
    images = np.stack([np.asarray(c.resize(size, Image.BICUBIC), dtype=np.float32) for c in crops])
    with torch.no_grad():
        return forward(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()).numpy()


def _cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.mark.slow
def test_onnx_command_takes_the_config_beside_the_checkpoint(tmp_path, tiny_market):
    import subprocess
    import sys

    config = _small(BACKBONE={"LAST_STRIDE": 2}, HEADS={"POOL_LAYER": "GeneralizedMeanPooling"})
    config["INPUT"]["SIZE_TEST"] = [160, 64]
    save_like_fastreid(randomise(build_baseline(config), seed=7), tmp_path / "model_final.pth")
    _write(tmp_path / "config.yaml", config)
    done = subprocess.run([sys.executable, "-m", "reid_export.cli", "onnx", str(tmp_path / "model_final.pth"),
                           "--config", str(tmp_path / "config.yaml"), "--data", str(tiny_market),
                           "-o", str(tmp_path / "m.onnx"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "imported fast-reid resnet18 [config]: input 160x64 [config]" in done.stdout
    assert "last stride 2 [config]" in done.stdout and "pooling gem (GeneralizedMeanPooling) [config]" in done.stdout
    assert "ImportDefaultWarning" not in done.stderr
    imported = read_onnx_info(tmp_path / "m.onnx").imported
    assert imported["last_stride"] == 2 and imported["origin"]["input"] == "config"


def test_the_config_beside_the_checkpoint_is_read_without_the_flag(tmp_path):
    """bench, serve, index and train --init name only the weights file: fast-reid's `config.yaml` in its folder
    (where fast-reid's training writes it) must still decide the last stride, not the stride-1 default."""
    config = _small(BACKBONE={"LAST_STRIDE": 2})
    save_like_fastreid(randomise(build_baseline(config), seed=11), tmp_path / "model_final.pth")
    _write(tmp_path / "config.yaml", config)
    lines = []
    model = load_model(tmp_path / "model_final.pth", log=lines.append)
    assert model.config.last_stride == 2
    assert model.import_summary["origin"]["last_stride"] == "config"
    assert any("config.yaml" in line and "--config" in line for line in lines)
