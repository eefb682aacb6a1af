"""The benchmark: every runtime on the same pixels, speed next to accuracy (`run`), the whole-path stage
timing (`stages`), reports and plots (`report`, `plots`), and top-k at gallery scale (`scaling`)."""

from .run import BenchSettings, ModelSpec, check_gates, run_bench

__all__ = ["BenchSettings", "ModelSpec", "run_bench", "check_gates"]
