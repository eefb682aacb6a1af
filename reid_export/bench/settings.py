"""The bench's settings and their defaults, in a light module (no numpy, no runtimes) so that the CLI can show
the same defaults the harness uses without importing it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BenchSettings", "UPSCALE"]

UPSCALE = 2.7  # detector crops are ~2-3x the model input; the measured case


@dataclass
class BenchSettings:
    batch_sizes: tuple[int, ...] = (1, 8, 32, 128)  # model-only throughput is measured at each
    warmup_batches: int = 3  # untimed calls before measuring each batch size
    min_batches: int = 5  # measured calls per batch size, at least ...
    min_seconds: float = 2.0  # ... and for at least this long
    max_batches: int = 200  # but never more than this many
    eval_batch_size: int = 64  # batch size when extracting query/gallery embeddings
    stages: bool = True  # also time the whole path (read, decode, resize, normalise, copies, inference)
    stage_batch_size: int = 32  # batch size of the staged end-to-end timing
    progress: bool = True  # show progress bars
    extra: dict = field(default_factory=dict)  # free-form notes copied into the report
    preprocess_as: tuple[str, ...] = ()  # extra rows: query/gallery re-decoded as each target does (bench/drift.py)
    preprocess_upscale: float = UPSCALE  # ... also from crops upscaled this many times, as detector boxes are
