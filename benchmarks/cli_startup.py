"""How long `reid-export --help` takes next to the floor every typer CLI pays: `python -c "import typer, rich"`.

    python benchmarks/cli_startup.py                    # 5 interleaved rounds, this checkout
    python benchmarks/cli_startup.py --rounds 9 --pythonpath /tmp/before   # another copy of the package

Each round runs both commands once, in fresh processes, alternating which goes first; the table has the
median and the spread of each and the ratio of the medians. On a shared machine the absolute times move with
the load, the ratio much less: compare ratios. `--pythonpath` puts another copy of `reid_export` (e.g. a
`git archive` of an earlier commit) ahead of the installed one, for a before/after on the same machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HELP = [sys.executable, "-P", "-c", "import sys; from reid_export.cli import main; sys.argv[0] = 'reid-export'; main()", "--help"]
FLOOR = [sys.executable, "-P", "-c", "import typer, rich"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs of each command")
    parser.add_argument("--pythonpath", default=None, help="folder holding the reid_export package to time")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.pythonpath, env.get("PYTHONPATH")]))
    times: dict[str, list[float]] = {"reid-export --help": [], 'python -c "import typer, rich"': []}
    for i in range(args.rounds):
        pairs = list(zip(times, (HELP, FLOOR)))
        for name, command in pairs if i % 2 == 0 else pairs[::-1]:
            times[name].append(_wall_seconds(command, env))
    help_s, floor_s = (statistics.median(v) for v in times.values())
    print(f"| command | median s | min s | max s | runs |\n|---|---|---|---|---|")
    for name, values in times.items():
        print(f"| `{name}` | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} | {len(values)} |")
    print(f"\nratio of medians: {help_s / floor_s:.2f}x (load average now: {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs)")


def _wall_seconds(command: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
