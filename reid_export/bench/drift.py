"""Accuracy under each target's preprocessing: the `--preprocess-as` rows of `reid-export bench`.

A model is trained and exported with one resize (its contract's), but each place it ships to resizes
crops its own way: boxmot and ultralytics with OpenCV's INTER_LINEAR, DeepStream keeping the aspect
ratio and padding. These rows re-decode query and gallery as each target does and run every runtime on
them again, reporting Rank-1/mAP/mINP and the cosine against the contract's own preprocessing.

Each variant is measured on two sources:

* `stored`: the crops as the data set stores them (Market-1501's are already 128x64);
* `upscaled-2.7x`: each crop first upscaled 2.7x (bicubic), as a detector box from a higher-resolution
  frame is: the harder and fairer case, since resizes differ most when they shrink.

The baseline of each source is the contract's own resize on that source (for `stored` that is the
runtime's main bench row), so a row's deltas and cosine are the cost of the target's resize alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..contract import Preprocess
from ..decode import open_rgb
from ..errors import ReidExportError
from ..evaluation.agreement import embedding_agreement
from ..evaluation.split import Evaluation, Split, evaluate
from ..progress import progress_bar
from ..runtimes import infer_images, make_runtime
from .rows import BenchRow, DriftRow
from .settings import UPSCALE

__all__ = ["PREPROCESS_AS", "UPSCALE", "drift_table_lines", "parse_preprocess_as", "preprocess_drift"]

# name -> what a target changes in the contract (the rest: size, mean/std, colour stay the contract's)
PREPROCESS_AS = {
    "pil": {"resize_method": "pil-bilinear-antialias", "aspect": "stretch"},  # torchreid, this project's training
    "pil-bicubic": {"resize_method": "pil-bicubic-antialias", "aspect": "stretch"},
    "cv2-linear": {"resize_method": "cv2-linear", "aspect": "stretch"},  # boxmot, ultralytics
    "cv2-area": {"resize_method": "cv2-area", "aspect": "stretch"},
    "cv2-nearest": {"resize_method": "cv2-nearest", "aspect": "stretch"},
    "keep-aspect": {"aspect": "keep-and-pad"},  # DeepStream's keep-aspect scaling, with the contract's resize
}
_THREADS = 4


def parse_preprocess_as(text: str) -> tuple[str, ...]:
    """`pil,cv2-linear,keep-aspect` -> names, each checked against PREPROCESS_AS."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PREPROCESS_AS]
    if unknown or not names:
        raise ReidExportError(f"--preprocess-as takes comma-separated names from {', '.join(PREPROCESS_AS)}; "
                              f"got {text!r}")
    return names


def preprocess_drift(specs, rows: list[BenchRow], embeddings: list, split: Split, names, *,
                     upscale: float = UPSCALE, batch_size: int = 64, progress: bool = True,
                     log=print) -> list[DriftRow]:
    """One row per (runtime, source, target preprocessing) for every runtime whose main row is ok.
    `embeddings[i]` are row i's own embeddings of `split` (its `stored` baseline)."""
    ok = [i for i, e in enumerate(embeddings) if e is not None]
    out: list[DriftRow] = []
    with contextlib.ExitStack() as stack:
        runtimes = {}
        for i in ok:
            try:
                spec = specs[i]
                runtimes[i] = stack.enter_context(make_runtime(spec.runtime, spec.path, **dict(spec.options)))
            except Exception as e:  # it ran in the main pass; if it no longer starts, say so in a row
                out.append(DriftRow(runtime=rows[i].runtime, model=rows[i].model).failed(str(e)))
        for source, factor in (("stored", 1.0), (f"upscaled-{upscale:g}x", upscale)):
            baselines = {i: embeddings[i] for i in ok} if factor == 1.0 else {}
            base_metrics: dict[int, Evaluation] = {}
            variants = [("contract", {})] + [(n, PREPROCESS_AS[n]) for n in names]
            for name, overrides in variants:
                log(f"[bench] preprocess as {name}, {source} crops")
                decoded: dict[Preprocess, np.ndarray] = {}  # one decode per contract, shared by the runtimes
                for i, rt in runtimes.items():
                    target = _as_target(rt.contract, overrides)
                    if name != "contract" and target == rt.contract and i in baselines:
                        emb = baselines[i]  # the target resizes exactly as the contract does
                    else:
                        if target not in decoded:
                            decoded[target] = _decode_as(split.paths, target, factor, progress)
                        emb = infer_images(rt, decoded[target], batch_size=batch_size, progress=progress,
                                           description=f"{name} {source}")["embedding"]
                    metrics = evaluate(emb, split)
                    if name == "contract":
                        baselines[i], base_metrics[i] = emb, metrics
                    out.append(_row(rows[i], name, source, target, metrics, base_metrics[i],
                                    embedding_agreement(baselines[i], emb)))
    return out


def drift_table_lines(drift: list[dict]) -> list[str]:
    """The drift rows of a report (dicts) as aligned text lines: what ran, the source and target preprocessing,
    Rank-1/mAP, their change (points) and the cosine against the contract's own preprocessing of the same source."""
    if not drift:
        return []
    header = ("runtime", "model", "precision", "source", "preprocess as", "resize", "Rank-1", "mAP", "dRank-1", "dmAP",
              "cos mean", "cos min")
    lines = [(r.runtime, Path(r.model).name, r.precision, r.source, r.preprocess_as, f"{r.resize_method}/{r.aspect}",
              f"{r.rank1:.2f}", f"{r.mAP:.2f}", f"{r.delta_rank1:+.2f}", f"{r.delta_mAP:+.2f}",
              f"{r.cosine_mean:.5f}", f"{r.cosine_min:.5f}") for r in map(DriftRow.from_dict, drift) if r.ok]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    return ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in (header, *lines)]


def _as_target(contract: Preprocess, overrides: dict) -> Preprocess:
    # interpolation follows from the resize method; clearing it lets a cv2-area target replace a bilinear contract
    return dataclasses.replace(contract, **overrides, interpolation="") if overrides else contract


def _decode_as(paths, contract: Preprocess, factor: float, progress: bool) -> np.ndarray:
    """Decode every file, upscale it `factor` times (bicubic) unless 1, resize as `contract` says: uint8 NHWC."""
    def one(path) -> np.ndarray:
        image = open_rgb(path)
        if factor != 1.0:
            from PIL import Image

            size = (round(image.width * factor), round(image.height * factor))
            image = image.resize(size, Image.Resampling.BICUBIC)
        return np.asarray(contract.resize(image), dtype=np.uint8)

    paths = list(paths)
    out = np.empty((len(paths), contract.height, contract.width, 3), dtype=np.uint8)
    with progress_bar(f"decoding {len(paths)} images ({contract.resize_method}, {contract.aspect}, x{factor:g})",
                      len(paths), enabled=progress) as advance, ThreadPoolExecutor(max_workers=_THREADS) as pool:
        for i, pixels in enumerate(pool.map(one, paths, chunksize=32)):
            out[i] = pixels
            advance()
    return out


def _row(main: BenchRow, name: str, source: str, target: Preprocess, metrics: Evaluation, base: Evaluation,
         agreement: dict) -> DriftRow:
    row = DriftRow(runtime=main.runtime, model=main.model, precision=main.precision, preprocess_as=name,
                   source=source, resize_method=target.resize_method, aspect=target.aspect,
                   cosine_mean=round(float(agreement["cosine_mean"]), 6),
                   cosine_min=round(float(agreement["cosine_min"]), 6))
    for key in ("rank1", "mAP", "mINP"):
        setattr(row, key, round(getattr(metrics, key), 3))
        setattr(row, f"delta_{key}", round(getattr(metrics, key) - getattr(base, key), 3))
    return row
