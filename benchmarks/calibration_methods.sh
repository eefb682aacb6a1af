#!/usr/bin/env bash
# INT8 calibration methods compared on one checkpoint, each with and without accuracy control:
# minmax / entropy / percentile, plain (every layer INT8) and with --max-map-drop (layers kept in FP32
# until the mAP on held-out training ids is within the bound), then one bench of all of them on the
# test split next to torch FP32 and ONNX Runtime FP32.
#
#   benchmarks/calibration_methods.sh CKPT DATA [OUT]    # e.g. runs/demo-x/model.pt runs/demo-x/data
#
# Environment (defaults in brackets):
#   MAX_MAP_DROP [0.5]   the accuracy-control bound, mAP points against the FP32 graph
#   CALIB_IMAGES [300]   training images to calibrate on
#   BATCH_SIZES [1,8,32] throughput batch sizes of the bench
#   REID_EXPORT [.venv/bin/reid-export if present, else reid-export]
#
# Per method it prints the search's steps (FP32 layers, validation mAP, drop) and img/s; OUT/<method>.log
# keeps them, OUT/report/report.md has the test-split table. The parity gate is off (--min-cosine 0)
# so that a method's loss shows in the table instead of deleting its file. An unmet bound is reported
# (exit 1 of that export) and the sweep goes on. About 1-3 minutes per method on two CPU cores.
set -uo pipefail

CKPT=${1:?usage: calibration_methods.sh CKPT DATA [OUT]}
DATA=${2:?usage: calibration_methods.sh CKPT DATA [OUT]}
OUT=${3:-runs/calibration-methods}
MAX_MAP_DROP=${MAX_MAP_DROP:-0.5}
CALIB_IMAGES=${CALIB_IMAGES:-300}
BATCH_SIZES=${BATCH_SIZES:-1,8,32}
if [[ -z "${REID_EXPORT:-}" ]]; then
    if [[ -x .venv/bin/reid-export ]]; then REID_EXPORT=.venv/bin/reid-export; else REID_EXPORT=reid-export; fi
fi
mkdir -p "$OUT"

models=(--model "torch=$CKPT")
"$REID_EXPORT" onnx "$CKPT" -o "$OUT/fp32.onnx" --data "$DATA" --overwrite -q || exit 1
models+=(--model "$OUT/fp32.onnx")
for method in minmax entropy percentile; do
    "$REID_EXPORT" onnx "$CKPT" -o "$OUT/$method.int8.onnx" --precision int8 --calib-data "$DATA" \
        --calib-method "$method" --calib-images "$CALIB_IMAGES" --data "$DATA" --min-cosine 0 --overwrite -q \
        2>&1 | tee "$OUT/$method.log"
    "$REID_EXPORT" onnx "$CKPT" -o "$OUT/$method.controlled.int8.onnx" --precision int8 --calib-data "$DATA" \
        --calib-method "$method" --calib-images "$CALIB_IMAGES" --max-map-drop "$MAX_MAP_DROP" --data "$DATA" \
        --min-cosine 0 --overwrite -q 2>&1 | tee -a "$OUT/$method.log"
    for f in "$OUT/$method.int8.onnx" "$OUT/$method.controlled.int8.onnx"; do
        [[ -f "$f" ]] && models+=(--model "$f")
    done
done
"$REID_EXPORT" bench --data "$DATA" "${models[@]}" --batch-sizes "$BATCH_SIZES" --no-stages --out "$OUT/report" \
    --overwrite -q
echo "bench rows, in this order: ${models[*]//--model /}"
