"""The torch runtime reads a weights file once per activate(): the model and `info.artefact` (the checkpoint's
description, with its epoch and metrics or the foreign source it was recognised as) come from that one read,
not from a second `torch.load` (and a second foreign conversion) by `artefacts.inspect`."""

import numpy as np
import pytest
import torch
from tiny_models import make_tiny_model

from reid_export.artefacts import inspect
from reid_export.errors import RuntimeUnavailable
from reid_export.runtimes import make_runtime

BATCH = np.zeros((2, 3, 64, 32), dtype=np.float32)


@pytest.fixture
def torch_loads(monkeypatch):
    """The files `torch.load` reads, in order: the real function, wrapped (not replaced) to count its calls."""
    loaded = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        loaded.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    return loaded


@pytest.mark.parametrize("name", ["torch", "torch-bf16"])
def test_a_checkpoint_is_loaded_once_per_activate_and_described_from_that_load(name, tiny_checkpoint, torch_loads):
    runtime = make_runtime(name, tiny_checkpoint)
    try:
        runtime.activate()
    except RuntimeUnavailable as e:  # torch-bf16 on a CPU without AVX-512 BF16 or AMX
        pytest.skip(str(e))
    with runtime:
        assert torch_loads == [str(tiny_checkpoint)]
        described = runtime.info.artefact
        assert runtime.infer(BATCH)["embedding"].shape == (2, 512)
    assert described.provenance == {"epoch": 1, "metrics": {"rank1": 0.0}}  # the checkpoint's own records
    assert described == inspect(tiny_checkpoint)  # the same description the file gives on its own


def test_each_activate_reads_the_file_once_again(tiny_checkpoint, torch_loads):
    runtime = make_runtime("torch", tiny_checkpoint)
    for _ in range(2):
        with runtime:
            pass
    assert torch_loads == [str(tiny_checkpoint)] * 2


def test_weights_trained_elsewhere_are_converted_once_and_keep_what_they_were_recognised_as(tmp_path, torch_loads):
    path = tmp_path / "backbone.pth"
    torch.save(make_tiny_model().backbone.state_dict(), path)  # a bare backbone, as the seed notebook saved it
    with make_runtime("torch", path) as runtime:
        assert torch_loads == [str(path)]
        described = runtime.info.artefact
    assert (described.kind, described.arch, described.embedding_dim) == ("checkpoint", "resnet18", 512)
    assert described.provenance == {"recognised_as": "a resnet18 backbone"}
    assert any("the contract shown is the one the loader assumes" in note for note in described.notes)


def test_a_model_in_memory_has_no_artefact_file_to_describe(torch_loads):
    with make_runtime("torch", make_tiny_model()) as runtime:
        assert runtime.info.artefact is None and runtime.info.arch == "resnet18"
    assert torch_loads == []
