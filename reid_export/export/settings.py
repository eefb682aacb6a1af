"""Export settings and their defaults, in one light module (no torch, no onnx) so that the CLI can show
the same defaults the library uses without importing the heavy parts."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ExportError

__all__ = ["PRECISIONS", "CALIBRATION_METHODS", "DEFAULT_OPSET", "MIN_OPSET", "Int8Settings", "ExportOptions"]

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_OPSET = 18
MIN_OPSET = 17  # LayerNormalization and the dynamo exporter's ops need 17


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
class ExportOptions:
    precision: str = "fp32"  # fp32 | fp16 | int8
    opset: int = DEFAULT_OPSET  # ONNX opset of the exported graph
    l2_normalize: bool = True  # L2-normalise the embedding inside the graph
    with_attributes: bool = False  # also output the attribute probabilities (N x 30)
    exporter: str = "dynamo"  # dynamo | torchscript
    int8: Int8Settings = field(default_factory=Int8Settings)  # calibration, for precision int8
    overwrite: bool = False  # replace an existing output file
    min_cosine: float | None = None  # parity threshold; None: verify.DEFAULT_MIN_COSINE[precision]
    keep_failed: bool = False  # keep a failed export as NAME.failed.onnx instead of deleting it
