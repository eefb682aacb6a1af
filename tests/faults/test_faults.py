"""The fault sweep (tests/faults/sweep.py) as tests: one per case, all run once, in parallel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import sweep  # noqa: E402

_NAMES = [c.name for c in sweep.cases({k: Path("/x") for k in (
    "base", "market", "bad_market", "ckpt", "backbone", "nan", "wrong_arch", "odd_arch", "evil", "garbage_pt", "onnx",
    "garbage_onnx", "lying", "external", "dir_onnx", "file", "xyz", "bad_report", "earlier", "full_folder",
    "existing", "existing_pt", "locked")})]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return {o.case.name: o for o in sweep.run_sweep(tmp_path_factory.mktemp("faults"))}


def test_the_sweep_covers_at_least_60_faults():
    assert len(_NAMES) >= 60 and len(set(_NAMES)) == len(_NAMES)


@pytest.mark.parametrize("name", _NAMES)
def test_fault_gives_a_clear_message_and_exit_code(outcomes, name):
    outcome = outcomes[name]
    assert not outcome.problems, f"{name}: {'; '.join(outcome.problems)}\n--- output ---\n{outcome.output[-3000:]}"


def test_sweep_counts_are_all_zero(outcomes):
    counts = sweep.summary(list(outcomes.values()))
    assert counts["tracebacks"] == 0 and counts["data_loss"] == 0 and counts["unclear_messages"] == 0
