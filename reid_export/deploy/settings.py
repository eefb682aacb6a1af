"""The deployment targets' enumerated values and defaults, in a light module (no torch, no numpy) so that the
CLI can show them in `--help` without importing the writers (`deploy.deepstream`, `deploy.triton`)."""

from __future__ import annotations

__all__ = ["NETWORK_MODES", "REID_TYPES", "DEFAULT_MAX_BATCH"]

NETWORK_MODES = {"fp32": 0, "fp16": 1, "int8": 2}  # DeepStream networkMode: the TensorRT precision it builds at
REID_TYPES = {"deepsort": 1, "reassoc": 2, "both": 3}  # DeepStream tracker reidType (0 is the dummy Re-ID)
DEFAULT_MAX_BATCH = 128  # Triton max_batch_size when the artefact does not fix one (ONNX, OpenVINO IR)
