#!/usr/bin/env bash
# One bench report for three architectures: ResNet-18, ResNet-50 and OSNet x0.25, trained the same way
# (the quick recipe, 128x64 input, random init, the same epochs) on the demo's synthetic Market-1501
# set, each next to torch FP32 and at FP32 / FP16 / INT8 on ONNX Runtime (CPU).
#
#   benchmarks/arch_matrix.sh [OUT]            # default OUT: runs/arch-matrix
#
# Environment (defaults in brackets):
#   EPOCHS [8]        epochs for every architecture: on two quiet CPU cores the three trainings take
#                     about 15 minutes together (ResNet-50 half of it; each time is printed)
#   ARCHS ["resnet18 resnet50 osnet_x0_25"]
#   TRAIN_IDS [150] TEST_IDS [100]   the demo's synthetic set (`reid-export synth` defaults, seed 0)
#   BATCH_SIZES [1,8,32]             throughput batch sizes of the bench
#   REID_EXPORT [.venv/bin/reid-export if present, else reid-export]
# Smoke test (a few minutes): EPOCHS=1 TRAIN_IDS=40 TEST_IDS=10 BATCH_SIZES=1,8 benchmarks/arch_matrix.sh /tmp/am
#
# The report (OUT/report/report.md) leads with the architecture x runtime x precision matrix: img/s,
# Rank-1, mAP, attribute mA, and the deltas of each row against its own architecture's torch FP32 row.
# INT8 is plain static Q/DQ quantisation of every layer (calibrated on training images only), with the
# export's parity gate off (--min-cosine 0): the bench row shows what INT8 costs; a gate would drop it.
set -euo pipefail

OUT=${1:-runs/arch-matrix}
EPOCHS=${EPOCHS:-8}
ARCHS=${ARCHS:-"resnet18 resnet50 osnet_x0_25"}
TRAIN_IDS=${TRAIN_IDS:-150}
TEST_IDS=${TEST_IDS:-100}
BATCH_SIZES=${BATCH_SIZES:-1,8,32}
if [[ -z "${REID_EXPORT:-}" ]]; then
    if [[ -x .venv/bin/reid-export ]]; then REID_EXPORT=.venv/bin/reid-export; else REID_EXPORT=reid-export; fi
fi
DATA="$OUT/data"
mkdir -p "$OUT"

if [[ ! -d "$DATA/bounding_box_train" ]]; then
    "$REID_EXPORT" synth "$DATA" --train-ids "$TRAIN_IDS" --test-ids "$TEST_IDS" --seed 0 --quiet
fi

models=()
for arch in $ARCHS; do
    ckpt="$OUT/$arch.pt"
    if [[ ! -f "$ckpt" ]]; then
        start=$SECONDS
        "$REID_EXPORT" train --data "$DATA" --out "$ckpt" --recipe quick --arch "$arch" --epochs "$EPOCHS" --quiet
        echo "[arch-matrix] trained $arch in $((SECONDS - start)) s"
    fi
    "$REID_EXPORT" onnx "$ckpt" -o "$OUT/$arch.onnx" --data "$DATA" --overwrite --quiet
    "$REID_EXPORT" onnx "$ckpt" -o "$OUT/$arch.fp16.onnx" --precision fp16 --data "$DATA" --overwrite --quiet
    "$REID_EXPORT" onnx "$ckpt" -o "$OUT/$arch.int8.onnx" --precision int8 --calib-data "$DATA" --data "$DATA" \
        --min-cosine 0 --overwrite --quiet
    models+=(--model "torch=$ckpt" --model "onnxruntime=$OUT/$arch.onnx"
             --model "onnxruntime=$OUT/$arch.fp16.onnx" --model "onnxruntime=$OUT/$arch.int8.onnx")
done

"$REID_EXPORT" bench --data "$DATA" "${models[@]}" --batch-sizes "$BATCH_SIZES" -o "$OUT/report" --overwrite --quiet
echo "[arch-matrix] report: $OUT/report/report.md"
