"""`reid-export --help` (and every subcommand's) imports no heavy library: the help is instant, and what a command
needs is imported when it runs. The commands are read from the typer app, so a new one is covered the day it is
added."""

from __future__ import annotations

import json
import subprocess
import sys

# what the help must not import: seconds each (torch alone took 18.7 s of a 22.6 s --help on a loaded machine)
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "openvino", "scipy", "matplotlib", "cv2")

# In one fresh interpreter: every command path of the typer app (the top level, `bench`, `index build`, ...),
# each run as `reid-export PATH --help` through the real entry point, in turn; printed as JSON: per command,
# whether its help printed and the heavy packages its help loaded (those an earlier help loaded are blamed on
# that one). SystemExit is typer's normal end after printing the help.
_PROBE = """
import contextlib, io, json, sys
import typer.main
from reid_export.cli import app, main

heavy = set(json.loads(sys.argv[1]))

def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))

report, before = [], set()
for path in walk(typer.main.get_command(app), ()):
    sys.argv = ["reid-export", *path, "--help"]
    out, code = io.StringIO(), None
    with contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as e:
            code = e.code
    loaded = {m.split(".")[0] for m in sys.modules} & heavy
    report.append({"command": " ".join(path), "exit": code, "usage": "Usage:" in out.getvalue(),
                   "loaded": sorted(loaded - before)})
    before |= loaded
print(json.dumps(report))
"""


def test_no_help_imports_a_heavy_library():
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(HEAVY)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    commands = {r["command"] for r in report}
    assert {"", "bench", "aot", "index build", "serve"} <= commands  # read from the app, sub-apps included
    assert all(r["exit"] in (0, None) and r["usage"] for r in report), [r for r in report if not r["usage"]]
    offenders = [f"`reid-export {r['command']} --help`: {', '.join(r['loaded'])}" for r in report if r["loaded"]]
    assert not offenders, ("--help imported heavy libraries; import them inside the function that needs them, with "
                           "`# lazy: <why>` beside the import:\n" + "\n".join(offenders))
