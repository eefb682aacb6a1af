"""Accuracy-controlled INT8: measured on held-out training ids, layers kept in FP32 worst SQNR first, steps recorded."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest
from tiny_models import make_tiny_model

from reid_export.artefacts.onnx_metadata import CALIBRATION_KEY, read_onnx_info
from reid_export.checkpoint import save_checkpoint
from reid_export.data.market1501 import load_market1501
from reid_export.errors import ExportError
from reid_export.export.onnx import export_onnx
from reid_export.export.precision import calibration_images, prepare_int8, quantize_int8
from reid_export.export.settings import ExportOptions, Int8Search, Int8Settings
from reid_export.verified.int8_search import SEARCH_KEY, SENSITIVE_OPS, fallback_search, int8_with_accuracy_control, \
    layer_sensitivity
from reid_export.verified.run import export_model

FAST = Int8Settings(num_images=24, batch_size=8)


@pytest.fixture(scope="module")
def train_only(tiny_market, tmp_path_factory):
    """tiny_market without query/ and bounding_box_test/: the search must not need them."""
    root = tmp_path_factory.mktemp("train-only") / "market"
    shutil.copytree(tiny_market / "bounding_box_train", root / "bounding_box_train")
    return root


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return export_onnx(make_tiny_model(), tmp_path_factory.mktemp("fp32") / "fp32.onnx")


def test_a_met_bound_keeps_every_layer_int8_and_the_file_records_the_search(fp32, train_only, tmp_path):
    result = int8_with_accuracy_control(fp32, tmp_path / "int8.onnx", calib_data=train_only, settings=FAST,
                                        search=Int8Search(max_map_drop=100.0, val_ids=3), progress=False,
                                        log=lambda _: None)
    assert result.met and result.fp32_nodes == [] and len(result.steps) == 1
    info = read_onnx_info(result.path)
    record = json.loads(info.metadata[SEARCH_KEY])
    assert info.precision == "int8" and record["met"] is True and record["steps"] == result.steps
    last_ids = load_market1501(train_only, splits=("train",), progress=False).train_pids[-3:]
    assert record["validation"]["ids"] == last_ids and record["validation"]["source"] == "the last 3 training ids"
    assert set(record["images_per_sec"]) == {"fp32", "int8_all", "int8_result"}
    assert record["fp32"]["mAP"] - record["steps"][0]["mAP"] == pytest.approx(record["steps"][0]["map_drop"], abs=1e-2)


def test_layers_are_ranked_worst_sqnr_first_by_their_names_in_the_prepared_graph(fp32, tiny_market, tmp_path):
    prepared = prepare_int8(fp32, tmp_path / "prepared.onnx")
    calib = calibration_images(tiny_market, 16)
    qdq = quantize_int8(fp32, tmp_path / "int8.onnx", calib, FAST, progress=False)
    batch = read_onnx_info(fp32).contract.load_batch(calib[:8])
    ranked = layer_sensitivity(prepared, qdq, batch)
    names = {n.name for n in onnx.load(str(prepared)).graph.node}
    assert len(ranked) > 10 and all(r["node"] in names and r["op"] in SENSITIVE_OPS for r in ranked)
    assert [r["sqnr_db"] for r in ranked] == sorted(r["sqnr_db"] for r in ranked)
    assert {r["op"] for r in ranked} >= {"Conv", "Add"}


def test_excluded_layers_stay_float_and_the_calibration_record_names_them(fp32, tiny_market, tmp_path):
    prepared = onnx.load(str(prepare_int8(fp32, tmp_path / "prepared.onnx")))
    convs = [n.name for n in prepared.graph.node if n.op_type == "Conv"]
    kept = convs[3]
    qdq = quantize_int8(fp32, tmp_path / "int8.onnx", calibration_images(tiny_market, 16), FAST, progress=False,
                        nodes_to_exclude=[kept])
    graph = onnx.load(str(qdq)).graph
    producers = {out: n.op_type for n in graph.node for out in n.output}
    by_name = {n.name: n for n in graph.node}
    assert by_name[kept].input[1] not in producers  # its weight is the float initializer, no DequantizeLinear
    assert producers[by_name[convs[4]].input[1]] == "DequantizeLinear"  # its neighbour's weight is INT8
    assert json.loads(read_onnx_info(qdq).metadata[CALIBRATION_KEY])["fp32_nodes"] == [kept]


def _layers(n):
    return lambda: [{"node": f"layer{i}"} for i in range(n)]


def test_the_search_keeps_more_layers_fp32_until_the_drop_is_within_bound():
    seen = []

    def step(nodes):  # each layer back in FP32 restores one point of mAP, as a sensitive layer would
        seen.append(list(nodes))
        return {"rank1": 0.0, "mAP": 46.0 + len(nodes)}

    steps, met, reason = fallback_search(step, _layers(10), fp32_map=50.0, max_map_drop=0.5, max_steps=5,
                                         layers_per_step=2)
    assert met and seen == [[], ["layer0", "layer1"], ["layer0", "layer1", "layer2", "layer3"]]
    assert [s["map_drop"] for s in steps] == [4.0, 2.0, 0.0] and "4 layer(s) in FP32" in reason


def test_the_search_says_plainly_when_the_step_limit_or_the_layers_run_out():
    flat = lambda nodes: {"rank1": 0.0, "mAP": 48.0 - 0.1 * len(nodes)}  # noqa: E731 (falls back, never recovers)
    steps, met, reason = fallback_search(flat, _layers(10), fp32_map=50.0, max_map_drop=0.5, max_steps=2,
                                         layers_per_step=1)
    assert not met and len(steps) == 3 and "step limit (2 fallback steps, 2 layers in FP32)" in reason
    steps, met, reason = fallback_search(flat, _layers(3), fp32_map=50.0, max_map_drop=0.5, max_steps=9,
                                         layers_per_step=2)
    assert not met and [len(s["fp32_nodes"]) for s in steps] == [0, 2, 3]
    assert reason.startswith("every one of the 3 ranked layers is in FP32")


def test_a_met_bound_at_step_zero_never_ranks_layers():
    def ranked():
        raise AssertionError("ranking is only needed when step 0 misses the bound")

    steps, met, _ = fallback_search(lambda nodes: {"rank1": 1.0, "mAP": 49.8}, ranked, fp32_map=50.0,
                                    max_map_drop=0.5, max_steps=3, layers_per_step=1)
    assert met and len(steps) == 1


def test_export_model_measures_on_the_ids_the_checkpoint_held_out(train_only, tmp_path):
    pids = load_market1501(train_only, splits=("train",), progress=False).train_pids
    held = pids[:2]  # not the last ones: the record, not the default, decides
    ckpt = save_checkpoint(tmp_path / "m.pt", make_tiny_model(), epoch=1,
                           validation={"ids": held, "source": "market training ids held out"})
    options = ExportOptions(precision="int8", int8=FAST, int8_search=Int8Search(max_map_drop=100.0))
    result = export_model(ckpt, tmp_path / "m.int8.onnx", options, calib_data=train_only, progress=False,
                          log=lambda _: None)
    assert result.parity.passed and result.int8_search.met
    record = json.loads(result.info.metadata[SEARCH_KEY])
    assert record["validation"]["ids"] == held and "checkpoint held out" in record["validation"]["source"]


def test_max_map_drop_needs_int8_and_calibration_data(tmp_path):
    with pytest.raises(ExportError, match="needs --precision int8"):
        ExportOptions(precision="fp16", int8_search=Int8Search())
    with pytest.raises(ExportError, match="0 or more points"):
        Int8Search(max_map_drop=-1)
    ckpt = save_checkpoint(tmp_path / "m.pt", make_tiny_model(), epoch=1)
    with pytest.raises(ExportError, match="--max-map-drop needs --calib-data"):
        export_model(ckpt, tmp_path / "x.onnx", ExportOptions(precision="int8", int8_search=Int8Search()))
