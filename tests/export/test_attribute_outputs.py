"""Attribute heads travel through export and every runtime as an `attributes` output."""

import numpy as np
import onnx
import pytest
from tiny_models import make_tiny_model

from reid_export.bench import BenchSettings, ModelSpec, run_bench
from reid_export.checkpoint import save_checkpoint
from reid_export.errors import ExportError
from reid_export.export.onnx import export_onnx
from reid_export.export.precision import convert_fp16
from reid_export.runtimes import make_runtime
from reid_export.verified.parity import check_parity

X = np.random.default_rng(0).standard_normal((4, 3, 64, 32), dtype=np.float32)


@pytest.fixture(scope="module")
def attribute_artefacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attrs")
    model = make_tiny_model(attributes=True)
    return model, save_checkpoint(folder / "a.pt", model, epoch=1), export_onnx(model, folder / "a.onnx", with_attributes=True)


def test_onnx_has_an_attributes_output_that_matches_pytorch(attribute_artefacts):
    model, _, path = attribute_artefacts
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["embedding", "attributes"]
    parity = check_parity(model, path, X)
    assert parity["cosine_min"] > 0.99999 and parity["attributes_max_abs_diff"] < 1e-4


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_runtimes_return_attribute_probabilities(attribute_artefacts, runtime):
    _, ckpt, path = attribute_artefacts
    with make_runtime(runtime, ckpt if runtime == "torch" else path) as rt:
        probs = rt.infer(X)["attributes"]
    assert probs.shape == (4, 30) and ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(probs[:, :4].sum(1), 1.0, rtol=1e-5)  # age is one softmax


def test_fp16_keeps_both_outputs_float32(attribute_artefacts, tmp_path):
    half = convert_fp16(attribute_artefacts[2], tmp_path / "half.onnx")
    outputs = onnx.load(str(half)).graph.output
    assert [o.type.tensor_type.elem_type for o in outputs] == [onnx.TensorProto.FLOAT] * 2


def test_with_attributes_needs_attribute_heads(tmp_path):
    with pytest.raises(ExportError, match="no attribute heads"):
        export_onnx(make_tiny_model(), tmp_path / "x.onnx", with_attributes=True)


def test_bench_reports_attribute_accuracy_per_runtime(attribute_artefacts, tiny_market):
    _, ckpt, path = attribute_artefacts
    settings = BenchSettings(batch_sizes=(2,), warmup_batches=0, min_batches=1, min_seconds=0, progress=False)
    report = run_bench(tiny_market, [ModelSpec("torch", ckpt), ModelSpec("onnxruntime", path)], settings,
                       log=lambda *_: None)
    torch_row, ort_row = report["rows"]
    for row in (torch_row, ort_row):
        assert 0 <= row["attr_mean_accuracy"] <= 100 and 0 <= row["attr_mA"] <= 100 and row["attr_images"] > 0
    assert abs(torch_row["attr_mA"] - ort_row["attr_mA"]) < 0.5


def test_parity_refuses_an_attributes_output_that_does_not_cover_the_batch(attribute_artefacts, tmp_path):
    """An export whose attribute head answers for the first image only must fail parity, not broadcast and pass."""
    model, _, path = attribute_artefacts
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    out = next(o for o in graph.output if o.name == "attributes")
    for node in graph.node:  # the head now writes `attributes_full`; a Slice keeps row 0 as `attributes`
        node.output[:] = ["attributes_full" if name == "attributes" else name for name in node.output]
    graph.initializer.extend([onnx.numpy_helper.from_array(np.array([v], np.int64), n)
                              for n, v in (("s0", 0), ("s1", 1), ("ax", 0))])
    graph.node.append(onnx.helper.make_node("Slice", ["attributes_full", "s0", "s1", "ax"], ["attributes"]))
    out.type.tensor_type.shape.dim[0].dim_param = "one"
    broken = tmp_path / "first-row-only.onnx"
    onnx.save(graph_model, str(broken))
    with pytest.raises(ExportError, match="attributes.*shape"):
        check_parity(model, broken, X)
