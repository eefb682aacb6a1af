#!/usr/bin/env bash
# A non-editable wheel install can train and synthesise: the recipes ship inside the package.
# Reuses the dependencies already in .venv (torch alone is several GB) through a .pth line, so only
# reid-export itself is installed from the wheel; runs outside the source tree so nothing is found there.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/pip wheel --no-deps --no-build-isolation -q -w "$work/dist" .
python3 -m venv "$work/venv"
deps=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$deps" > "$site/reid_export_ci_deps.pth"
"$work/venv/bin/pip" install -q --no-deps "$work"/dist/reid_export-*.whl
cd "$work"
"$work/venv/bin/python" -c 'import reid_export, sys; assert "site-packages" in reid_export.__file__ and not reid_export.__file__.startswith(sys.argv[1]), reid_export.__file__' "$repo"
"$work/venv/bin/reid-export" synth data --train-ids 30 --test-ids 8 -q  # the demo recipe holds 15 ids out, samples 8 per batch
"$work/venv/bin/reid-export" train --recipe demo --epochs 1 --data data --out model.pt -q  # the demo's recipe ships too
test -s model.pt
"$work/venv/bin/reid-export" demo --help > /dev/null
"$work/venv/bin/python" -c 'from importlib.resources import files; assert files("reid_export.serve").joinpath("static/index.html").is_file(), "the serve page is missing from the wheel"'
"$work/venv/bin/python" -c 'from importlib.resources import files; assert files("reid_export.bench").joinpath("report.schema.json").is_file(), "the report schema is missing from the wheel"'
"$work/venv/bin/reid-export" inspect model.pt > /dev/null
echo "wheel check: a non-editable install synthesised, trained 1 epoch with --recipe demo, ran demo --help and inspect, and has the serve page and the report schema"
