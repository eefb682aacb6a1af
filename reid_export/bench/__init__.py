"""The benchmark: every runtime on the same pixels, speed next to accuracy (`run`), the whole-path stage
timing (`stages`), the report's typed rows and its JSON Schema (`rows`), reports and plots (`report`, `plots`),
and top-k at gallery scale (`scaling`)."""

from importlib import import_module

__all__ = ["BenchSettings", "ModelSpec", "run_bench", "check_gates", "BenchRow", "Status"]

# name -> the module that holds it, imported on first use: `bench.settings` (the CLI's --help defaults) must not
# pull the harness (numpy, data readers, runtimes) in through this package's __init__
_HOMES = {"BenchSettings": ".settings", "ModelSpec": ".run", "run_bench": ".run", "check_gates": ".run",
          "BenchRow": ".rows", "Status": ".rows"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
