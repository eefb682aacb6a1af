"""Parity of an export with PyTorch, and the one pass/fail rule every caller uses (CLI and demo alike).

    result = verify_export(model, "engines/model.onnx", precision="fp32", data="Market-1501")
    result = verify_export(model, "engines/model.pt2", runtime="torch-aot")   # an AOTInductor package
    if not result.passed: ...   # the file was already removed (or kept as *.failed.onnx / *.failed.pt2)

The same float32 batch (real images from a data folder, else random tensors) runs through PyTorch and the
export's runtime (ONNX Runtime on the CPU by default); the export passes when the smallest cosine between
their embeddings reaches the precision's threshold. A failed export is deleted, or renamed to
`NAME.failed.<suffix>` with `keep_failed` (an ONNX file's tracker sidecar with it), so that no later command
mistakes it for a good one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artefacts.onnx_metadata import ATTRIBUTES_NAME
from ..artefacts.tracker_sidecar import follow_onnx
from ..contract import Preprocess
from ..data.market1501 import load_market1501
from ..errors import DataError, ExportError
from ..evaluation.agreement import embedding_agreement
from ..export.settings import DEFAULT_MIN_COSINE
from ..runtimes import make_runtime

__all__ = ["PARITY_IMAGES", "ParityResult", "check_parity", "verify_export", "sample_batch"]

PARITY_IMAGES = 32  # images (or random tensors) in the parity batch


@dataclass(frozen=True)
class ParityResult:
    path: Path  # the export as it now is: the original path, or the *.failed.onnx it was renamed to
    passed: bool
    threshold: float  # min cosine required
    source: str  # where the batch came from, e.g. "32 images from data/"
    cosine_min: float
    cosine_mean: float
    max_abs_diff: float
    removed: bool = False  # a failed export that was deleted

    def summary(self) -> str:
        return (f"parity vs PyTorch on {self.source}: max abs diff {self.max_abs_diff:.3e}, "
                f"min cosine {self.cosine_min:.6f} (threshold {self.threshold})")

    def failure(self) -> str:
        fate = "it was deleted" if self.removed else f"it was kept as {self.path}"
        return (f"parity check failed: min cosine {self.cosine_min:.6f} < {self.threshold}; the export does not "
                f"reproduce PyTorch closely enough and {fate} (--keep-failed keeps it, --min-cosine changes the bar)")


def check_parity(model, path: str | Path, batch, *, runtime: str = "onnxruntime") -> dict[str, float]:
    """Run the same float32 batch through PyTorch and the export on `runtime` (ONNX Runtime on the CPU, or
    `torch-aot` for a .pt2); returns `embedding_agreement`."""
    with make_runtime("torch", model) as ref, make_runtime(runtime, path) as export:
        if export.contract.l2_normalized != ref.contract.l2_normalized:
            ref.contract = export.contract  # compare like with like: the export chose the normalisation
        expected, got = ref.infer(batch), export.infer(batch)
    result = embedding_agreement(expected["embedding"], got["embedding"])
    if ATTRIBUTES_NAME in got:
        want, have = np.shape(expected[ATTRIBUTES_NAME]), np.shape(got[ATTRIBUTES_NAME])
        if want != have:  # compared element-wise, (1, 30) would broadcast against (32, 30) and pass unseen
            raise ExportError(f"{path}: the export's {ATTRIBUTES_NAME!r} output has shape {have} for a batch of "
                              f"{len(batch)}, PyTorch's {want}; the attribute head was not exported for every "
                              "image of the batch: re-export it (a dynamic batch axis on that output too)")
        result["attributes_max_abs_diff"] = float(abs(expected[ATTRIBUTES_NAME] - got[ATTRIBUTES_NAME]).max())
    return result


def verify_export(model, path: str | Path, *, precision: str = "fp32", data: str | Path | None = None,
                  min_cosine: float | None = None, keep_failed: bool = False, seed: int = 0,
                  runtime: str = "onnxruntime") -> ParityResult:
    """Parity of the export `path` (on `runtime`) with `model` and the pass/fail decision; a failed file is
    removed or renamed."""
    path = Path(path)
    threshold = DEFAULT_MIN_COSINE.get(precision, DEFAULT_MIN_COSINE["fp32"]) if min_cosine is None else min_cosine
    batch, source = sample_batch(model.config.preprocess, data, n=PARITY_IMAGES, seed=seed)
    parity = check_parity(model, path, batch, runtime=runtime)
    passed = parity["cosine_min"] >= threshold
    final, removed = path, False
    if not passed:
        if keep_failed:
            final = path.with_name(path.stem + ".failed" + path.suffix)
            os.replace(path, final)
        else:
            path.unlink(missing_ok=True)
            removed = True
        if path.suffix == ".onnx":
            follow_onnx(path, None if removed else final)  # its tracker sidecar goes with it
    return ParityResult(path=final, passed=passed, threshold=threshold, source=source, removed=removed,
                        cosine_min=parity["cosine_min"], cosine_mean=parity["cosine_mean"],
                        max_abs_diff=parity["max_abs_diff"])


def sample_batch(contract: Preprocess, data_dir=None, *, n: int = PARITY_IMAGES, seed: int = 0) -> tuple[np.ndarray, str]:
    """A float32 batch for parity checks: `n` real images from a Market-1501 folder (query and gallery,
    else train) when `data_dir` is given, random normal tensors otherwise. Returns (batch, where from)."""
    if data_dir is None:
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, *contract.input_shape), dtype=np.float32), f"{n} random tensors"
    try:
        data = load_market1501(data_dir, splits=("query", "gallery"), verify_images=False, progress=False)
        paths = [s.path for s in data.query + data.gallery]
    except DataError:  # a training-only folder will do as well
        data = load_market1501(data_dir, splits=("train",), verify_images=False, progress=False)
        paths = [s.path for s in data.train]
    picks = np.random.default_rng(seed).choice(len(paths), size=min(n, len(paths)), replace=False)
    chosen = [paths[i] for i in sorted(picks)]
    return contract.load_batch(chosen), f"{len(chosen)} images from {data.root}"
