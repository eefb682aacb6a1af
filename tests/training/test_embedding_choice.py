"""The exported embedding (BNNeck output or pooled feature) is chosen on held-out training ids, never on the test set."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tiny_models import make_tiny_model

from reid_export.artefacts.onnx_metadata import read_onnx_info
from reid_export.checkpoint import load_checkpoint, load_model, save_checkpoint
from reid_export.data.market1501 import Sample
from reid_export.errors import DataError, ReidExportError
from reid_export.evaluation.split import Split
from reid_export.export.onnx import export_onnx
from reid_export.models import with_embedding
from reid_export.runtimes import make_runtime
from reid_export.training import TrainConfig, load_recipe, train
from reid_export.training.dataset import ReidDataset
from reid_export.training.evaluation import choose_embedding
from reid_export.training.layouts import load_training_data, market_validation_split
from reid_export.training.transforms import eval_transform


def _config(data: Path, out: Path) -> TrainConfig:
    return TrainConfig(recipe="test", data=str(data), out=str(out), arch="resnet18", height=64, width=32,
                       neck="bnneck", epochs=1, batch_size=4, p=2, k=2, lr=1e-3, triplet_weight=1.0,
                       embedding="auto", val_ids=2, num_workers=0, num_threads=1, device="cpu", seed=1)


def _noise_copy(src: Path, dst: Path) -> Path:
    """The same data set with every query and gallery image replaced by random pixels (same names)."""
    shutil.copytree(src, dst)
    rng = np.random.default_rng(7)
    for folder in ("query", "bounding_box_test"):
        for path in sorted((dst / folder).glob("*.jpg")):
            Image.fromarray(rng.integers(0, 256, size=(128, 64, 3), dtype=np.uint8)).save(path)
    return dst


@pytest.mark.slow
def test_the_choice_never_sees_query_or_gallery(synth_market, tmp_path):
    clean = train(_config(synth_market, tmp_path / "clean.pt"), quiet=True)
    noisy = train(_config(_noise_copy(synth_market, tmp_path / "noisy"), tmp_path / "noisy.pt"), quiet=True)
    a, b = load_checkpoint(clean.checkpoint), load_checkpoint(noisy.checkpoint)
    assert a.embedding_choice == b.embedding_choice  # same embedding, same validation scores
    assert a.config["embedding"] == b.config["embedding"] == a.metrics["embedding"]
    assert a.metrics["mAP"] != b.metrics["mAP"]  # while the test-set evaluation did see the noise
    held = a.validation_ids
    assert held == sorted(load_training_data(synth_market).train_pids)[-2:]  # the last 2 training ids
    test_pids = {s.pid for s in load_training_data(synth_market).query}
    assert not set(held) & test_pids
    for name in ("neck", "pooled"):
        assert a.metrics[f"val_{name}_mAP"] == a.embedding_choice[name]["mAP"]


def test_held_out_ids_are_not_trained_on(synth_market, tmp_path):
    result = train(_config(synth_market, tmp_path / "m.pt"), quiet=True)
    ckpt = load_checkpoint(result.checkpoint)
    all_ids = load_training_data(synth_market).num_train_ids
    assert ckpt.model["classifier.weight"].shape[0] == all_ids - 2  # the ID head has no class for them


def test_a_fixed_embedding_holds_nothing_out(synth_market, tmp_path):
    result = train(replace(_config(synth_market, tmp_path / "m.pt"), embedding="pooled"), quiet=True)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.config["embedding"] == "pooled" and ckpt.validation is None
    assert ckpt.model["classifier.weight"].shape[0] == load_training_data(synth_market).num_train_ids


def test_validation_split_is_the_last_ids_with_one_query_per_camera():
    samples = [Sample(Path(f"{pid}_{cam}_{i}.jpg"), pid, cam) for pid in (3, 5, 8, 9) for cam in (1, 2)
               for i in range(2)]
    train_samples, split = market_validation_split(samples, 2)
    assert split.pids == [8, 9] and {s.pid for s in train_samples} == {3, 5}
    assert sorted((s.pid, s.camid) for s in split.query) == [(8, 1), (8, 2), (9, 1), (9, 2)]
    assert len(split.gallery) == 4 and not set(map(id, split.query)) & set(map(id, split.gallery))
    with pytest.raises(DataError, match="val_ids = 3.*at least 5 ids, found 4.*Fix"):
        market_validation_split(samples, 3)


def _split_and_loader(samples_q, samples_g):
    transform = eval_transform(make_tiny_model().config.preprocess)
    samples = [*samples_q, *samples_g]
    loader = DataLoader(ReidDataset(samples, [x.pid for x in samples], transform), batch_size=16)
    return Split.from_samples(samples_q, samples_g), loader


def test_the_better_validation_map_wins_and_a_tie_keeps_the_neck(synth_market):
    data = load_training_data(synth_market)
    _, split = market_validation_split(data.train, 3)
    ranked = _split_and_loader(split.query, split.gallery)
    model = make_tiny_model()
    with torch.no_grad():  # a neck that shifts every image by the same large vector drowns what tells them apart
        model.neck.running_mean.fill_(1e3)
    collapsed = choose_embedding(model, *ranked, "cpu")
    assert collapsed["embedding"] == "pooled" and collapsed["pooled"]["mAP"] > collapsed["neck"]["mAP"]
    assert collapsed["reason"].startswith("pooled: validation mAP") and "3 held-out training ids" in collapsed["reason"]
    identity = make_tiny_model()
    with torch.no_grad():  # an identity neck: the two features are the same, a tie
        identity.neck.running_mean.zero_()
        identity.neck.running_var.fill_(1 - identity.neck.eps)
        identity.neck.weight.fill_(1.0)
        identity.neck.bias.zero_()
    tie = choose_embedding(identity, *ranked, "cpu")
    assert tie["embedding"] == "neck" and tie["neck"]["mAP"] == pytest.approx(tie["pooled"]["mAP"])


def test_checkpoint_export_and_torch_runtime_honour_the_choice(tmp_path):
    model = make_tiny_model()
    ckpt = save_checkpoint(tmp_path / "pooled.pt", with_embedding(model, "pooled"), epoch=1)
    loaded = load_model(ckpt)
    x = torch.randn(3, 3, 64, 32)
    assert loaded.config.embedding == "pooled"
    assert torch.allclose(loaded.embed(x), loaded.forward_features(x))
    onnx_path = export_onnx(loaded, tmp_path / "pooled.onnx")
    assert read_onnx_info(onnx_path).model["embedding"] == "pooled"
    batch = x.numpy()
    with make_runtime("onnxruntime", onnx_path) as ort, make_runtime("torch", ckpt) as pt, \
            make_runtime("torch", ckpt, embedding="neck") as neck:
        got, expected, other = ort.infer(batch)["embedding"], pt.infer(batch)["embedding"], neck.infer(batch)["embedding"]
    pooled = torch.nn.functional.normalize(model.forward_features(x), dim=1).detach().numpy()
    assert np.allclose(got, pooled, atol=1e-4) and np.allclose(expected, pooled, atol=1e-5)
    assert not np.allclose(other, pooled, atol=1e-3)  # the override ranks with the neck output


def test_recipes_choose_the_embedding_and_train_attribute_heads_by_default():
    for name in ("quick", "seed", "bot"):
        config = load_recipe(name)
        assert config.embedding == "auto" and config.attributes == "auto"
    assert load_recipe("quick").chooses_embedding and not load_recipe("seed").chooses_embedding  # seed: no neck
    with pytest.raises(ReidExportError, match="unknown embedding 'bn'; choose one of auto, neck, pooled"):
        load_recipe("quick", {"embedding": "bn"})


def test_bench_puts_both_embeddings_of_one_checkpoint_side_by_side(tiny_market, tmp_path):
    from reid_export.bench.run import BenchSettings, ModelSpec, run_bench, with_embeddings

    ckpt = save_checkpoint(tmp_path / "m.pt", make_tiny_model(), epoch=1)
    onnx_path = export_onnx(load_model(ckpt), tmp_path / "m.onnx")
    specs = with_embeddings([ModelSpec("torch", ckpt), ModelSpec("onnxruntime", onnx_path)], "both")
    assert [dict(s.options).get("embedding") for s in specs] == ["neck", "pooled", None]
    settings = BenchSettings(batch_sizes=(2,), warmup_batches=1, min_batches=1, min_seconds=0.0, stages=False,
                             progress=False)
    rows = run_bench(tiny_market, specs, settings, log=lambda _: None)["rows"]
    assert [r["runtime"] for r in rows] == ["torch (neck)", "torch (pooled)", "onnxruntime"]
    assert rows[0]["is_reference"] and rows[2]["cosine_min"] > 0.9999  # the ONNX file is the neck, as exported
    assert rows[1]["cosine_min"] < 0.999  # the pooled row ranks with another feature
    with pytest.raises(ReidExportError, match="choose neck, pooled, both or auto"):
        with_embeddings(specs, "bn")


def test_export_keeps_the_attribute_output_of_a_model_with_heads_unless_told(tmp_path):
    from reid_export.verified.run import export_model
    from reid_export.export.settings import ExportOptions

    ckpt = save_checkpoint(tmp_path / "a.pt", make_tiny_model(attributes=True), epoch=1)
    default = export_model(ckpt, tmp_path / "a.onnx")
    assert default.with_attributes and "attributes" in {o.name for o in onnx.load(str(default.path)).graph.output}
    pooled = export_model(ckpt, tmp_path / "p.onnx", ExportOptions(with_attributes=False, embedding="pooled"))
    assert not pooled.with_attributes and pooled.embedding == "pooled" and pooled.info.model["embedding"] == "pooled"
