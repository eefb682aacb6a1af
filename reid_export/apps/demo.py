"""The demo: synthetic Market-1501 -> training -> ONNX export -> bench (torch vs ONNX Runtime).

The demo recipe (train/demo.toml: the quick recipe on a ResNet-18 half as wide, 10 epochs) trains the attribute heads (the synthetic set has labels) and picks the exported
embedding, BNNeck output or pooled feature, on training ids it held out; the demo says which and why.
The ONNX files carry the attribute outputs, so the table has attribute accuracy per runtime, and an
INT8 row (calibrated on the training images) shows what INT8 costs in Rank-1, mAP and attributes.

Every stage is one library call; the demo only times them and puts their outputs in one folder.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..bench.report import write_report
from ..bench.run import BenchSettings, ModelSpec, run_bench
from ..checkpoint import load_checkpoint, load_model
from ..data.synthetic import generate_market1501
from ..errors import ExportError, ReidExportError
from ..export.onnx import export_onnx
from ..export.precision import export_at_precision
from ..files import check_free_space, check_writable_dir
from ..training import load_recipe, train
from ..verified.parity import verify_export
from .visualize import visualize_rankings

__all__ = ["run_demo"]


def run_demo(out_dir: str | Path, *, train_ids: int = 150, test_ids: int = 100, seed: int = 0,
             overrides: dict | None = None, batch_sizes: tuple[int, ...] = (1, 32), progress: bool = True,
             log=print) -> dict:
    """Run the whole path in `out_dir` (must not exist yet, or be empty); returns the bench report
    with `stages_seconds` and `embedding` added. The bench measures throughput at batch 1 and 32, the two
    columns of the demo's table (each more batch size costs every runtime a few seconds). Files: data/, model.pt, model.onnx, model.int8.onnx, report.json, report.md, the two
    plots, and rankings/ (ranked-list pictures of a few queries)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReidExportError(f"--out {out} is a file; the demo writes a folder: pass a new folder path")
    if out.exists() and any(out.iterdir()):
        raise ReidExportError(f"{out} is not empty; the demo writes a fresh folder: pass another --out or delete it")
    check_writable_dir(out, what="demo folder")  # checked now, not after training
    check_free_space(out, 300_000_000, what="the demo (data, checkpoint, ONNX, report)")
    data, ckpt, onnx_path = out / "data", out / "model.pt", out / "model.onnx"
    stages: dict[str, float] = {}

    def stage(name: str):
        log(f"[demo] {name} ...")
        stages[name] = time.perf_counter()

    def done(name: str) -> None:
        stages[name] = round(time.perf_counter() - stages[name], 1)
        log(f"[demo] {name} done in {stages[name]:.1f} s")

    stage("synth")
    generate_market1501(data, train_ids=train_ids, test_ids=test_ids, seed=seed, progress=progress)
    done("synth")

    stage("train")
    # the bench below evaluates query/gallery with every runtime, torch first: training's own final
    # evaluation of the same images would only repeat the torch row (about 20 s on 2 cores)
    config = load_recipe("demo", {"data": str(data), "out": str(ckpt), "seed": seed, "final_eval": False,
                                   **(overrides or {})})
    train(config, quiet=not progress)
    done("train")

    stage("export")
    model = load_model(ckpt)
    with_attributes = model.attribute_head is not None
    choice = load_checkpoint(ckpt).embedding_choice
    embedding = {"exported": model.config.embedding,
                 "reason": choice["reason"] if choice else "set by the recipe (embedding is not \"auto\")"}
    log(f"[demo] exported embedding: {embedding['reason']}")
    export_onnx(model, onnx_path, with_attributes=with_attributes)
    parity = verify_export(model, onnx_path, precision="fp32", data=data, seed=seed, keep_failed=True)
    log(f"[demo] ONNX {parity.summary()}")
    if not parity.passed:
        raise ExportError(f"demo stopped: {parity.failure()}")
    int8_path = out / "model.int8.onnx"
    export_at_precision(model, int8_path, precision="int8", calib_data=data, progress=progress,
                        with_attributes=with_attributes)
    int8_parity = verify_export(model, int8_path, precision="int8", data=data, seed=seed, keep_failed=True)
    log(f"[demo] INT8 {int8_parity.summary()}")
    done("export")

    stage("bench")
    specs = [ModelSpec("torch", ckpt), ModelSpec("onnxruntime", onnx_path)]
    if int8_parity.passed:  # a failed INT8 export is kept as *.failed.onnx and left out of the table
        specs.append(ModelSpec("onnxruntime", int8_path))
    report = run_bench(data, specs, BenchSettings(batch_sizes=batch_sizes, progress=progress), log=log)
    done("bench")

    stage("visualize")
    pictures = visualize_rankings(data, f"onnxruntime={onnx_path}", out / "rankings", num_queries=4, top_k=10,
                                  seed=seed, progress=progress)
    done("visualize")

    report["stages_seconds"] = stages
    report["embedding"] = embedding | ({"validation": {k: choice[k] for k in ("neck", "pooled")}} if choice else {})
    report["parity"] = {"cosine_min": parity.cosine_min, "cosine_mean": parity.cosine_mean,
                        "max_abs_diff": parity.max_abs_diff, "threshold": parity.threshold}
    report["pictures"] = [str(p) for p in pictures]
    write_report(report, out)
    return report
