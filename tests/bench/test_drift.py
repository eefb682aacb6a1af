"""`bench --preprocess-as`: query/gallery re-decoded as each deployment target resizes, per runtime."""

import pytest

from reid_export.bench import BenchSettings, ModelSpec, run_bench
from reid_export.bench.drift import (
    PREPROCESS_AS,
    drift_table_lines,
    parse_preprocess_as,
)
from reid_export.errors import ReidExportError

pytest.importorskip("cv2", reason="opencv-python-headless is not installed (cv2-* resizes)")

FAST = BenchSettings(batch_sizes=(4,), warmup_batches=1, min_batches=2, min_seconds=0.0, stages=False,
                     progress=False, preprocess_as=("pil", "cv2-linear", "keep-aspect"))


@pytest.fixture(scope="module")
def report(tiny_market, tiny_checkpoint, tiny_onnx):
    specs = [ModelSpec("torch", tiny_checkpoint), ModelSpec("onnxruntime", tiny_onnx),
             ModelSpec("torch-cuda", tiny_checkpoint)]
    return run_bench(tiny_market, specs, FAST, log=lambda *_: None)


def _pick(report, runtime, source, name):
    (row,) = [r for r in report["drift"] if r["runtime"] == runtime and r["source"] == source
              and r["preprocess_as"] == name]
    return row


def test_every_ok_runtime_gets_each_target_on_both_sources(report):
    ran = {r["runtime"] for r in report["rows"] if r["status"] == "ok"}
    assert ran == {"torch", "onnxruntime"}
    assert len(report["drift"]) == len(ran) * 2 * 4  # (contract + 3 targets) x (stored, upscaled)
    assert {r["source"] for r in report["drift"]} == {"stored", "upscaled-2.7x"}
    assert not any(r["runtime"] == "torch-cuda" for r in report["drift"])  # a skipped row gets no drift rows


def test_the_contracts_own_decode_reproduces_the_main_row(report):
    for main in (r for r in report["rows"] if r["status"] == "ok"):
        own = _pick(report, main["runtime"], "stored", "contract")
        assert (own["rank1"], own["mAP"]) == (main["rank1"], main["mAP"])
        assert own["cosine_min"] == pytest.approx(1.0, abs=1e-6) and own["delta_mAP"] == 0
        pil = _pick(report, main["runtime"], "stored", "pil")  # the tiny contract is Pillow bilinear already
        assert pil["cosine_min"] == pytest.approx(1.0, abs=1e-6) and pil["resize_method"] == "pil-bilinear-antialias"


def test_cv2_linear_drifts_and_drifts_more_from_upscaled_crops(report):
    for runtime in ("torch", "onnxruntime"):
        stored = _pick(report, runtime, "stored", "cv2-linear")
        upscaled = _pick(report, runtime, "upscaled-2.7x", "cv2-linear")
        assert stored["resize_method"] == "cv2-linear" and stored["aspect"] == "stretch"
        assert stored["cosine_mean"] < 0.9999
        assert upscaled["cosine_mean"] < stored["cosine_mean"]  # aliasing grows with the shrink factor
        assert {"rank1", "mAP", "mINP", "delta_rank1", "delta_mAP", "cosine_min"} <= set(upscaled)


def test_keep_aspect_pads_only_where_the_aspect_differs(report):
    row = _pick(report, "torch", "stored", "keep-aspect")
    assert row["aspect"] == "keep-and-pad"
    assert row["cosine_min"] > 0.999  # Market crops already have the input's 2:1 aspect: (almost) no padding


def test_runtimes_agree_on_the_drift(report):
    for source in ("stored", "upscaled-2.7x"):
        torch_row, ort_row = _pick(report, "torch", source, "cv2-linear"), _pick(report, "onnxruntime", source, "cv2-linear")
        assert torch_row["cosine_mean"] == pytest.approx(ort_row["cosine_mean"], abs=1e-4)


def test_table_lines_and_name_parsing(report):
    lines = drift_table_lines(report["drift"])
    assert len(lines) == 1 + len(report["drift"]) and "cv2-linear/stretch" in "\n".join(lines)
    assert parse_preprocess_as("pil, cv2-linear,keep-aspect") == ("pil", "cv2-linear", "keep-aspect")
    with pytest.raises(ReidExportError, match="cv2-area"):  # the error lists the choices
        parse_preprocess_as("pil,bogus")
    assert set(PREPROCESS_AS) >= {"pil", "cv2-linear", "cv2-area", "keep-aspect"}


def test_no_drift_rows_unless_asked(tiny_market, tiny_onnx):
    settings = BenchSettings(batch_sizes=(2,), warmup_batches=0, min_batches=1, min_seconds=0.0, stages=False,
                             progress=False)
    assert "drift" not in run_bench(tiny_market, [ModelSpec("onnxruntime", tiny_onnx)], settings, log=lambda *_: None)
