"""Export settings and their defaults, in one light module (no torch, no onnx) so that the CLI can show
the same defaults the library uses without importing the heavy parts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ExportError

__all__ = ["PRECISIONS", "CALIBRATION_METHODS", "EMBEDDING_CHOICES", "DEFAULT_OPSET", "MIN_OPSET", "DEFAULT_MIN_COSINE",
           "Int8Settings", "Int8Search", "ExportOptions", "BuildSettings", "parse_size"]

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_OPSET = 18
MIN_OPSET = 17  # LayerNormalization and the dynamo exporter's ops need 17
EMBEDDING_CHOICES = ("auto", "neck", "pooled")  # auto: the checkpoint's own choice (made on validation ids)
# parity threshold against PyTorch FP32 that an export must reach, per precision (verified.parity)
DEFAULT_MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98}


@dataclass(frozen=True)
class Int8Settings:
    method: str = "minmax"  # calibration: minmax | entropy | percentile
    num_images: int = 300  # training images fed through the model to collect activation ranges
    activations: str = "uint8"  # uint8: asymmetric, fastest on x86 CPUs (VNNI U8S8); int8: symmetric, for TensorRT
    per_channel: bool = True  # one weight scale per output channel
    percentile: float = 99.999  # for method=percentile
    batch_size: int = 16  # calibration batch size
    seed: int = 0  # which training images are drawn

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ExportError(f"unknown calibration method {self.method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
        if self.activations not in ("uint8", "int8"):
            raise ExportError(f"INT8 activations must be 'uint8' or 'int8', got {self.activations!r}")
        if self.num_images < 1:
            raise ExportError(f"calibration needs at least one image, got num_images={self.num_images}")


@dataclass(frozen=True)
class Int8Search:
    """Accuracy-controlled INT8 (`int8_search`): keep the most sensitive layers in FP32 until the mAP drop
    on validation ids (held out of the training folder) is within `max_map_drop`."""
    max_map_drop: float = 0.5  # allowed mAP loss against the FP32 export, points
    max_steps: int = 6  # fallback steps after the all-INT8 try; each re-quantises and re-measures
    layers_per_step: int = 2  # layers moved back to FP32 per step, most sensitive first (SQNR ranking)
    val_ids: int = 100  # validation ids (the last by pid) when the checkpoint recorded none
    sensitivity_images: int = 16  # calibration images whose activations rank the layers (every tensor is kept: memory)

    def __post_init__(self) -> None:
        if not self.max_map_drop >= 0:
            raise ExportError(f"--max-map-drop must be 0 or more points of mAP, got {self.max_map_drop}")
        for name in ("max_steps", "layers_per_step", "val_ids", "sensitivity_images"):
            if getattr(self, name) < (0 if name == "max_steps" else 1):
                raise ExportError(f"INT8 search: {name} must be at least {0 if name == 'max_steps' else 1}, "
                                  f"got {getattr(self, name)}")


@dataclass(frozen=True)
class ExportOptions:
    precision: str = "fp32"  # fp32 | fp16 | int8
    opset: int = DEFAULT_OPSET  # ONNX opset of the exported graph
    l2_normalize: bool = True  # L2-normalise the embedding inside the graph
    with_attributes: bool | None = None  # also output the attribute probabilities (N x 30); None: if the model has heads
    embedding: str = "auto"  # neck | pooled | auto (the checkpoint's choice, made on validation ids)
    int8_search: Int8Search | None = None  # precision int8: accuracy-controlled fallback to FP32 layers
    exporter: str = "dynamo"  # dynamo | torchscript
    int8: Int8Settings = field(default_factory=Int8Settings)  # calibration, for precision int8
    overwrite: bool = False  # replace an existing output file
    min_cosine: float | None = None  # parity threshold; None: DEFAULT_MIN_COSINE[precision]
    keep_failed: bool = False  # keep a failed export as NAME.failed.onnx instead of deleting it

    def __post_init__(self) -> None:
        if self.embedding not in EMBEDDING_CHOICES:
            raise ExportError(f"unknown embedding {self.embedding!r}; choose one of {', '.join(EMBEDDING_CHOICES)}")
        if self.int8_search is not None and self.precision != "int8":
            raise ExportError(f"--max-map-drop controls INT8 accuracy; it needs --precision int8 (got {self.precision})")


# TensorRT engine builds (export.tensorrt)
_UNITS = {"": 1, "b": 1, "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30,
          "t": 2**40, "tib": 2**40, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


@dataclass(frozen=True)
class BuildSettings:
    min_batch: int = 1  # smallest batch the engine accepts
    opt_batch: int = 32  # batch size TensorRT tunes its kernels for
    max_batch: int = 128  # largest batch the engine accepts
    workspace: int | str = "4GiB"  # builder scratch GPU memory: bytes, or "4GiB" / "512MiB" (stored as bytes)
    timing_cache: str | Path | None = None  # read when the file exists, (re)written after the build
    fp16_flag: bool = False  # TensorRT 10 only: BuilderFlag.FP16 on an FP32 graph (weak typing)
    strongly_typed: bool | None = None  # None: strongly typed unless fp16_flag; TensorRT 11 is always strongly typed

    def __post_init__(self) -> None:
        for name in ("min_batch", "opt_batch", "max_batch"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ExportError(f"--{name.replace('_', '-')} must be a whole number, got {getattr(self, name)!r}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ExportError(
                f"batch profile must satisfy 1 <= min <= opt <= max, got min {self.min_batch}, "
                f"opt {self.opt_batch}, max {self.max_batch}; e.g. --min-batch 1 --opt-batch 32 --max-batch 128"
            )
        object.__setattr__(self, "workspace", parse_size(self.workspace))
        if self.fp16_flag and self.strongly_typed:
            raise ExportError(
                "--fp16-flag needs a weakly typed network but strongly_typed=True was asked for: a strongly typed "
                "network takes its precision from the ONNX graph; export with --precision fp16 instead"
            )

    @property
    def batch_range(self) -> tuple[int, int, int]:
        return (self.min_batch, self.opt_batch, self.max_batch)


def parse_size(value: int | str) -> int:
    """Bytes from 4294967296, "4GiB", "512MiB", "1.5GiB", "2G" (binary) or "500MB" (decimal)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if not match or unit not in _UNITS:
            raise ExportError(f"cannot read the size {value!r}; write a number of bytes or e.g. 4GiB, 512MiB, 1.5GiB "
                              "(binary units B/KiB/MiB/GiB/TiB, K/M/G/T, or decimal KB/MB/GB/TB)")
        size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ExportError(f"size must be positive, got {value!r}")
    return size
