from reid_export.bench.stages import STAGES, staged_timing
from reid_export.runtimes import make_runtime


def test_every_stage_is_timed_and_the_bound_is_the_slowest(tiny_market, tiny_onnx):
    paths = sorted((tiny_market / "bounding_box_test").glob("*.jpg"))
    with make_runtime("onnxruntime", tiny_onnx) as rt:
        result = staged_timing(rt, paths, batch_size=8, batches=3, threads=2)
    ms = result["stages_ms"]
    assert set(ms) == {f"{s}_ms" for s in STAGES}
    assert all(v >= 0 for v in ms.values()) and ms["decode_ms"] > 0 and ms["inference_ms"] > 0
    assert ms["h2d_ms"] == 0 and ms["d2h_ms"] == 0  # CPU runtime: no copies
    assert result["bound_by"] == max(STAGES, key=lambda s: ms[f"{s}_ms"])
    rates = result["images_per_sec"]
    assert set(rates) == {"serial", "threaded_decode_2", "uint8_cache"} and all(v > 0 for v in rates.values())


def test_torch_runtime_reports_its_copies_and_compute_separately(tiny_checkpoint):
    import numpy as np

    with make_runtime("torch", tiny_checkpoint) as rt:
        out, ms = rt.infer_staged(np.zeros((2, 3, 64, 32), dtype=np.float32))
    assert out["embedding"].shape == (2, 512)
    assert set(ms) == {"h2d", "inference", "d2h"} and ms["inference"] > 0
