from reid_export.bench import check_gates


def _report(rank1_drop, map_drop):
    ref = {"runtime": "torch", "precision": "fp32", "model": "m.pt", "status": "ok", "is_reference": True,
           "reference": "torch:m.pt", "delta_rank1": 0.0, "delta_mAP": 0.0}
    low = {"runtime": "onnxruntime", "precision": "int8", "model": "m.int8.onnx", "status": "ok",
           "reference": "torch:m.pt", "delta_rank1": -rank1_drop, "delta_mAP": -map_drop}
    skipped = {"runtime": "tensorrt", "model": "m.engine", "status": "skipped: TensorRT not installed"}
    return {"rows": [ref, low, skipped]}


def test_a_row_over_the_allowed_drop_is_named():
    broken = check_gates(_report(0.5, 1.5), max_map_drop=1.0, max_rank1_drop=1.0)
    assert len(broken) == 1 and "int8" in broken[0] and "mAP dropped 1.50" in broken[0]


def test_drops_within_limits_and_no_limits_pass():
    assert check_gates(_report(0.5, 0.9), max_map_drop=1.0, max_rank1_drop=1.0) == []
    assert check_gates(_report(30, 30)) == []


def test_zero_tolerance_catches_any_drop_but_not_gains():
    assert len(check_gates(_report(0.01, 0.01), max_map_drop=0, max_rank1_drop=0)) == 2
    assert check_gates(_report(-2.0, -2.0), max_map_drop=0, max_rank1_drop=0) == []
