"""pytest-benchmark suites: run with `pytest --benchmark-only`.

A plain `pytest` run collects them but skips them, so the test suite spends no time on timing.
"""

import pytest


def pytest_collection_modifyitems(config, items):
    if config.getoption("benchmark_only", default=False):
        return
    skip = pytest.mark.skip(reason="benchmark: run with `pytest --benchmark-only`")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)
