"""Edge exports need the `edge` extra (executorch, litert-torch, coremltools); without it these tests skip."""

from __future__ import annotations

import pytest
from tiny_models import make_tiny_model


@pytest.fixture(scope="session")
def attributes_checkpoint(tmp_path_factory):
    """A tiny checkpoint with attribute heads: two outputs, as the demo model has."""
    from reid_export.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt-attr") / "tiny_attr.pt"
    save_checkpoint(path, make_tiny_model(attributes=True), epoch=1, metrics={"rank1": 0.0})
    return path


@pytest.fixture(scope="session")
def torch_outputs():
    """`torch_outputs(checkpoint, batch)`: the eager model's outputs, the reference every edge artefact matches."""
    from reid_export.checkpoint import load_model
    from reid_export.runtimes import make_runtime

    def run(checkpoint, batch):
        with make_runtime("torch", load_model(checkpoint, log=None)) as reference:
            return reference.infer(batch)

    return run
