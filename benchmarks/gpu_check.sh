#!/usr/bin/env bash
# GPU readiness in a few minutes on one GPU; prints the figures and writes them to OUT.
#
#   benchmarks/gpu_check.sh [OUT]         one CUDA GPU (default OUT: runs/gpu_check)
#   benchmarks/gpu_check.sh --cpu [OUT]   dry mode: the same steps on the CPU with tiny
#                                         settings (1-2 min on 2 cores); checks the script,
#                                         its figures mean nothing
#
# 1. training and inference clips/s of ResNeXt-101 (16 x 112², bf16 autocast), with
#    channels_last_3d (what `flowless train` uses on CUDA) and without it;
# 2. the loader ratio (benchmarks/loader.py: training step time on the DataLoader / on
#    batches in memory; goal <= 1.15);
# 3. a torchrun smoke run of `flowless train` on the GPU (one process: one GPU cannot hold
#    two NCCL ranks), and a two-process torchrun on the CPU (gloo) for the DDP code path.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

MODE=gpu
if [ "${1:-}" = "--cpu" ]; then MODE=cpu; shift; fi
OUT=${1:-runs/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"
say() { echo "$@" | tee -a "$LOG"; }
run() { "$@" 2>&1 | tee -a "$LOG"; }

if [ "$MODE" = gpu ]; then
  DEV=cuda
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else \
'no CUDA device (torch ' + torch.__version__ + '); use --cpu for the dry mode')"
  MODELS=(--archs resnext101 --batch 32 --frames 16 --size 112 --iters 10 --warmup 3)
  LOADER=()
  TINY=(--set model.arch=resnet18 --set model.width=0.5 --set data.clip_len=16
        --set data.size=112 --set batch_size=8)
else
  DEV=cpu
  MODELS=(--archs resnet10:0.25 --batch 2 --frames 8 --size 32 --iters 1 --warmup 1)
  LOADER=(--quick --cases demo,r18 --repeats 1)
  TINY=(--set model.arch=resnet10 --set model.width=0.125 --set data.clip_len=8
        --set data.size=32 --set batch_size=4)
fi

say "# flowless gpu_check ($MODE), $(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname)"
run "$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.version.cuda, \
'|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU', \
'| cores', __import__('os').cpu_count())"

say ""
say "## 1. ResNeXt-101 training and inference clips/s, bf16 autocast"
say "### channels_last_3d"
run "$PY" benchmarks/models.py --device "$DEV" --amp --channels-last "${MODELS[@]}" \
  --json "$OUT/models_channels_last.json"
say "### contiguous"
run "$PY" benchmarks/models.py --device "$DEV" --amp "${MODELS[@]}" \
  --json "$OUT/models_contiguous.json"

say ""
say "## 2. loader ratio"
run "$PY" benchmarks/loader.py --device "$DEV" "${LOADER[@]}" --work "$OUT/loader_data" \
  --json "$OUT/loader.json"

say ""
say "## 3. torchrun smoke runs of flowless train"
rm -rf "$OUT/synth" "$OUT/ddp_$DEV" "$OUT/ddp_cpu2"
"$PY" -m flowless --quiet synth "$OUT/synth" --motions 2 --categories 1 \
  --videos-per-class 12 --frames 17 --size 64 --quiet
COMMON=(--dataset "$OUT/synth" --set epochs=2 --set data.flip=false --set optim.name=adamw
        --set optim.lr=0.002 --set optim.schedule=none)
export FLOWLESS_QUIET=1
say "### one process on $DEV"
run "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m flowless train \
  --out "$OUT/ddp_$DEV" --device "$DEV" "${COMMON[@]}" "${TINY[@]}"
say "### two processes on the CPU (gloo): DistributedDataParallel"
OMP_NUM_THREADS=1 run "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 \
  -m flowless train --out "$OUT/ddp_cpu2" --device cpu "${COMMON[@]}" \
  --set model.arch=resnet10 --set model.width=0.125 --set data.clip_len=8 \
  --set data.size=32 --set batch_size=4

say ""
say "## summary"
run "$PY" - "$OUT" "$DEV" <<'EOF'
import json, sys
from pathlib import Path

from flowless.engine import read_metrics

out, dev = Path(sys.argv[1]), sys.argv[2]
for name in ("channels_last", "contiguous"):
    for r in json.loads((out / f"models_{name}.json").read_text()):
        print(f"{r['arch']} {name}: training {r['train_clips_s']:.1f} clips/s, "
              f"inference {r['forward_clips_s']:.1f} clips/s (batch {r['batch']}, {dev}, bf16)")
for r in json.loads((out / "loader.json").read_text()):
    print(f"loader {r['case']}: ratio {r['ratio']:.2f} (goal <= 1.15), data wait "
          f"{100 * r['wait']:.1f}%, {r['workers']} workers, cache {'on' if r['cache'] else 'off'}")
for run in (f"ddp_{dev}", "ddp_cpu2"):
    info = json.loads((out / run / "run.json").read_text())
    last = read_metrics(out / run)[-1]
    print(f"torchrun {run}: world size {info['world_size']} on {info['device']}, "
          f"epoch {last['epoch']}: {last['train_clips_per_s']:.1f} clips/s, data wait "
          f"{100 * last['train_data_wait']:.1f}%, val acc {last.get('val_acc')}")
EOF
say "log: $LOG"
