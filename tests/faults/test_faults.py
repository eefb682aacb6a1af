"""The fault sweep (tests/faults/sweep.py) as tests: one per case, all run once, in parallel, with two live
servers shared by the serve cases."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import sweep  # noqa: E402

_NAMES = [c.name for c in sweep.cases(sweep.placeholder_fixtures())]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return {o.case.name: o for o in sweep.run_sweep(tmp_path_factory.mktemp("faults"))}


def test_the_sweep_covers_at_least_150_faults_in_every_category():
    cases = sweep.cases(sweep.placeholder_fixtures())
    assert len(_NAMES) >= 150 and len(set(_NAMES)) == len(_NAMES)
    categories = {c.category for c in cases}
    assert {"security", "data-loss", "input", "honest", "image", "serve"} <= categories, categories
    assert sum(c.http is not None for c in cases) >= 40, "the serve cases shrank"


@pytest.mark.parametrize("name", _NAMES)
def test_fault_gives_a_clear_message_and_exit_code(outcomes, name):
    outcome = outcomes[name]
    assert not outcome.problems, f"{name}: {'; '.join(outcome.problems)}\n--- output ---\n{outcome.output[-3000:]}"


def test_sweep_counts_are_all_zero(outcomes):
    counts = sweep.summary(list(outcomes.values()))
    print(counts)
    assert {k: v for k, v in counts.items() if k not in ("cases", "passed")} == {
        "server_errors_5xx": 0, "tracebacks": 0, "data_loss": 0, "unclear_messages": 0, "wrong_exit_codes": 0,
        "servers_down": 0}, counts
