"""The demo's recipe (train/demo.toml): a ResNet-18 half as wide, trained, exported and run by ONNX Runtime
like any other model."""

from __future__ import annotations

from reid_export.checkpoint import load_model
from reid_export.export.onnx import export_onnx
from reid_export.training import load_recipe, train
from reid_export.verified.parity import verify_export


def test_the_demo_recipe_trains_a_half_width_model_that_exports_with_parity(synth_market, tmp_path):
    config = load_recipe("demo", {"data": str(synth_market), "out": str(tmp_path / "model.pt"), "epochs": 1,
                                  "val_ids": 2, "batch_size": 8, "p": 2, "num_threads": 1, "final_eval": False})
    train(config, quiet=True)
    model = load_model(tmp_path / "model.pt")
    assert model.config.base_channels == 32 and model.config.embedding_dim == 256
    assert model.backbone[0].out_channels == 32 and model.attribute_head is not None
    onnx_path = tmp_path / "model.onnx"
    export_onnx(model, onnx_path, with_attributes=True)
    parity = verify_export(model, onnx_path, precision="fp32", data=synth_market, seed=0)
    assert parity.passed and parity.cosine_min > 0.9999, parity.summary()
