"""Shared by the TensorRT tests: why TensorRT tests cannot run here, and a marker that skips with it."""

import sys

import pytest


def _tensorrt_missing() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except Exception as e:  # not installed, or its libraries cannot load
        return f"TensorRT is not installed ({type(e).__name__}); these tests need `pip install tensorrt` and a GPU"
    import torch

    return None if torch.cuda.is_available() else "no CUDA device; TensorRT engines are built and run on a GPU"


MISSING = _tensorrt_missing()


def needs_tensorrt(test):
    """Mark a test `tensorrt` and `cuda`, skipped with the reason where either is missing."""
    for mark in (pytest.mark.tensorrt, pytest.mark.cuda, pytest.mark.skipif(MISSING is not None, reason=str(MISSING))):
        test = mark(test)
    return test


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make `import tensorrt` fail, as on a machine without it (here it is missing anyway)."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
