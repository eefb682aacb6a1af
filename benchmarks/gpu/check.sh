#!/usr/bin/env bash
# Every GPU path on the demo's artefacts, one report, in under 8 minutes.
#
#   benchmarks/gpu/check.sh [DEMO_DIR] [OUT_DIR]
#
# DEMO_DIR: a `reid-export demo` folder (data/, model.pt, model.onnx). Default: the newest runs/demo-*/, or,
# when there is none, a small one made here (synthetic set, 2 epochs of the quick recipe on the GPU).
# OUT_DIR: default runs/gpu-check-<time>/. It gets report.md (GPU, driver, versions, every step's status and
# time, then the bench table) and the bench's report.json / plots under bench/.
#
# Paths run: torch CUDA FP32, torch CUDA FP16 (channels_last), ONNX Runtime CUDA (FP32 and FP16 graphs),
# ONNX Runtime TensorRT EP, and, where `import tensorrt` works, a TensorRT engine built here. OpenVINO GPU is
# out of scope. Exit 0 only if every one of those rows is ok; a GPU path that is skipped or failed on a GPU
# machine is exit 1. No NVIDIA GPU (or no CUDA torch): exit 3 at once, saying so.
# Env: PY (default .venv/bin/python), BUDGET_S (default 470: the whole run stops there).
set -uo pipefail

cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
BUDGET_S=${BUDGET_S:-470}
START=$(date +%s)
DEMO=${1:-$(ls -d runs/demo-*/ 2>/dev/null | sort | tail -n 1)}
DEMO=${DEMO%/}
OUT=${2:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}
CLI=("$PY" -m reid_export.cli)

die() { echo "gpu check: $1" >&2; exit "${2:-1}"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# -- 1. a GPU, or stop now -------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 || die "no NVIDIA GPU here: nvidia-smi is not on PATH. Run this on a machine with an NVIDIA GPU and driver." 3
nvidia-smi -L 2>/dev/null | grep -q "^GPU " || die "no NVIDIA GPU here: nvidia-smi lists no GPU ($(nvidia-smi -L 2>&1 | head -n 1))." 3
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
  || die "torch sees no CUDA device ($("$PY" -c 'import torch; print("torch", torch.__version__, "built for CUDA", torch.version.cuda)' 2>&1 | tail -n 1)); check the driver and CUDA_VISIBLE_DEVICES, or install a CUDA build of torch." 3

[ -e "$OUT" ] && die "$OUT already exists; give another OUT_DIR" 2
mkdir -p "$OUT" || die "cannot create $OUT" 2
REPORT="$OUT/report.md"
STEPS="$OUT/steps.tsv"
: > "$STEPS"

step() {  # step NAME CMD...: run with what is left of the budget, log its status and seconds
  local name=$1; shift
  local budget; budget=$(left)
  [ "$budget" -gt 5 ] || { printf '%s\tskipped: out of time\t0\n' "$name" >> "$STEPS"; return 1; }
  local t0 rc; t0=$(date +%s)
  timeout "$budget" "$@" > "$OUT/$name.log" 2>&1; rc=$?
  local status="ok"; [ $rc -eq 124 ] && status="timed out"; [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="exit $rc"
  printf '%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - t0 ))" >> "$STEPS"
  echo "[gpu check] $name: $status ($(( $(date +%s) - t0 )) s)"
  return $rc
}

# -- 2. artefacts ----------------------------------------------------------------------
if [ -n "$DEMO" ] && [ -f "$DEMO/model.pt" ] && [ -f "$DEMO/model.onnx" ] && [ -d "$DEMO/data" ]; then
  ART="$DEMO"
  echo "[gpu check] artefacts from $ART"
else
  ART="$OUT/artefacts"
  echo "[gpu check] no demo folder; making small artefacts in $ART"
  step synth "${CLI[@]}" synth "$ART/data" --train-ids 40 --test-ids 30 -q || die "synth failed: see $OUT/synth.log"
  step train "${CLI[@]}" train --data "$ART/data" -o "$ART/model.pt" --recipe quick --epochs 2 --device cuda -q \
    || die "training on the GPU failed: see $OUT/train.log"
  step onnx "${CLI[@]}" onnx "$ART/model.pt" -o "$ART/model.onnx" --data "$ART/data" || die "ONNX export failed: see $OUT/onnx.log"
fi
FP16="$OUT/model.fp16.onnx"
step onnx-fp16 "${CLI[@]}" onnx "$ART/model.pt" -o "$FP16" --precision fp16 --data "$ART/data" \
  || die "FP16 export failed: see $OUT/onnx-fp16.log"

MODELS=(--model "torch-cuda=$ART/model.pt" --model "torch-cuda-fp16=$ART/model.pt"
        --model "onnxruntime-cuda=$ART/model.onnx" --model "onnxruntime-cuda=$FP16"
        --model "onnxruntime-trt=$ART/model.onnx")
if "$PY" -c "import tensorrt" 2>/dev/null; then
  if step trt "${CLI[@]}" trt "$ART/model.onnx" -o "$OUT/model.engine" --min-batch 1 --opt-batch 32 --max-batch 128; then
    MODELS+=(--model "tensorrt=$OUT/model.engine")
  fi
else
  printf 'trt\tnot run: tensorrt is not importable\t0\n' >> "$STEPS"
fi

# -- 3. one bench, every GPU row (torch CPU FP32 is the reference row) ---------------------
step bench "${CLI[@]}" bench --data "$ART/data" --model "torch=$ART/model.pt" "${MODELS[@]}" \
  --batch-sizes 1,32,128 --out "$OUT/bench" -q
BENCH_RC=$?

# -- 4. the report -----------------------------------------------------------------------
"$PY" - "$OUT" "$BENCH_RC" <<'PY' > "$REPORT"
import json, platform, subprocess, sys
from pathlib import Path

out, bench_rc = Path(sys.argv[1]), int(sys.argv[2])

def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # a missing tool is a line in the report, not a crash
        return f"({e})"

print("# GPU check\n")
print("```\n" + run("nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv") + "\n```\n")
versions = run(sys.executable, "-c", "import torch, onnxruntime as o; print('torch', torch.__version__, 'cuda', "
               "torch.version.cuda); print('onnxruntime', o.__version__, o.get_available_providers())")
trt = run(sys.executable, "-c", "import tensorrt; print('tensorrt', tensorrt.__version__)") or "tensorrt: not importable"
print(f"python {platform.python_version()}\n\n```\n{versions}\n{trt}\n```\n")
print("| step | status | seconds |\n|---|---|---|")
for line in (out / "steps.tsv").read_text().splitlines():
    name, status, secs = line.split("\t")
    print(f"| {name} | {status} | {secs} |")
report = out / "bench" / "report.json"
bad = []
if report.is_file():
    rows = json.loads(report.read_text())["rows"]
    bad = [f"{r['runtime']} ({Path(r['model']).name}): {r['status']}" for r in rows if r["status"] != "ok"]
    print("\n## Bench\n")
    print((out / "bench" / "report.md").read_text())
else:
    bad = [f"no bench report (bench exit {bench_rc}; see {out}/bench.log)"]
print("\n## Verdict\n")
print("every GPU path ran: ok" if not bad else "GPU paths that did not run:\n" + "\n".join(f"- {b}" for b in bad))
(out / "verdict").write_text("ok\n" if not bad else "\n".join(bad) + "\n")
PY

echo "[gpu check] report: $REPORT ($(( $(date +%s) - START )) s)"
if [ "$(cat "$OUT/verdict")" != "ok" ]; then
  echo "gpu check: some GPU paths did not run:" >&2
  cat "$OUT/verdict" >&2
  exit 1
fi
