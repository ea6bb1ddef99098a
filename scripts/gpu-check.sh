#!/usr/bin/env bash
# The prepared GPU check (issue 13): run on a machine with an NVIDIA GPU and torch 2.11.0 but
# no Rust, from a copy of the working tree that holds gpu-pack/ (`just gpu-pack` here). Within
# about 5 minutes it
#   1. runs the device-marked tests (MD4_TEST_DEVICE): train/stop/resume bit-exact with
#      --deterministic, f32 evaluation on the GPU equal to the CPU's, bf16 within 2 %, sampling;
#      and the CUDA error test (an index beyond the GPUs);
#   2. times the MD4-S (165.9M) bf16 training step at 1,024 tokens for growing batches until
#      one does not fit, with MFU against the measured bf16 matmul peak and the datasheet peak;
#   3. times evaluation and sampling of MD4-S in bf16;
#   4. trains and evaluates through `md4 launch --nproc 1` on NCCL (world size 1: NCCL cannot
#      put two ranks on one GPU);
# and writes everything under $OUT (default gpu-check-out/): summary.txt, *.json, logs.
#   MD4_CHECK_DEVICE=cpu bash scripts/gpu-check.sh   rehearses the script on a CPU (small model)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
device="${MD4_CHECK_DEVICE:-cuda:0}"
pack="${MD4_GPU_PACK:-gpu-pack}"
summary="$out/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
start=$(date +%s)

[ -f "$pack/md4.xz" ] || { say "error: $pack/md4.xz missing: run \`just gpu-pack\` where Rust is, then copy the tree"; exit 2; }
bin=$(mktemp -d)
for f in md4 bench cli-tests; do xz -dc "$pack/$f.xz" > "$bin/$f" && chmod +x "$bin/$f"; done
cp "$pack/manifest.txt" "$out/"

py="${PYTHON:-python3}"
torch_dir="${MD4_LIBTORCH:-$("$py" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)}"
[ -n "$torch_dir" ] && [ -f "$torch_dir/lib/libtorch_cpu.so" ] || {
  say "error: no torch install found ($py cannot import torch): set PYTHON or MD4_LIBTORCH=/path/to/site-packages/torch"; exit 2; }
version=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || sed -n "s/^__version__ = '\(.*\)'/\1/p" "$torch_dir/version.py")
say "torch $version at $torch_dir"
case "$version" in 2.11.0*) ;; *) say "warning: md4-rs is built for torch 2.11.0";; esac
export LD_LIBRARY_PATH="$torch_dir/lib:${LD_LIBRARY_PATH:-}" MD4_LIBTORCH="$torch_dir"
if [[ "$device" == cuda* ]]; then
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || { say "error: nvidia-smi failed: no NVIDIA GPU here"; exit 2; }
  gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader -i "${device#cuda:}")
  say "gpu: $gpu"
  preset=md4-s-owt seq=1024 batches="8 16 32 64 128 256"
else
  say "rehearsal on the CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  preset=small-text8 seq=256 batches="4 8"
fi
say "md4 binaries: $(head -1 "$pack/manifest.txt")"

say "== 1. device tests ($device)"
MD4_TEST_DEVICE="$device" MD4_BIN="$bin/md4" MD4_REPO="$PWD" MD4_DATA_DIR="$out/data" \
  timeout 180 "$bin/cli-tests" --include-ignored --test-threads 1 cuda_where device_train > "$out/tests.txt" 2>&1
status=$?
say "$(grep -E '^test |test result' "$out/tests.txt")"
[ $status = 0 ] || say "device tests FAILED (exit $status): see tests.txt"

say "== 2. $preset bf16 training step, $seq tokens per sequence"
fits=0
for b in $batches; do
  if timeout 90 "$bin/bench" train-step --device "$device" --preset "$preset" --seq-len "$seq" --batch "$b" \
      --precisions bf16 --rounds 1 --steps 5 --warmup 2 --out "$out/train-step-b$b.json" > "$out/train-step-b$b.txt" 2>&1; then
    fits=$b
    say "batch $b: $(grep -E '^\| bf16 \| (md4-rs|matmul)' "$out/train-step-b$b.txt" | tr -s ' ' | paste -sd' ')"
  else
    say "batch $b: does not run (out of memory or time; see train-step-b$b.txt)"
    break
  fi
done
say "largest batch that ran: $fits × $seq tokens"
if [ "$fits" -gt 0 ]; then
  say "$("$py" - "$out/train-step-b$fits.json" "${gpu:-cpu}" "$preset" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
rows = rows if isinstance(rows, list) else rows.get("measurements", rows)
get = lambda impl: next(r for r in rows if r.get("impl") == impl and r.get("dtype") == "bf16")
step, peak = get("md4-rs"), get("matmul-peak")
# Dense bf16 datasheet peaks (GFLOP/s, no sparsity) of common training GPUs.
sheet = {"H200": 989.4e3, "H100": 989.4e3, "A100": 312e3, "L40S": 362.05e3, "B200": 2250e3}
name = sys.argv[2]
spec = next((v for k, v in sheet.items() if k in name), None)
g = step["gflop_per_s"]
line = f"{sys.argv[3]} step {step['step_ms']:.1f} ms, {step['tokens_per_s']:.0f} tokens/s, {g / 1e3:.2f} TFLOP/s: MFU {100 * g / peak['gflop_per_s']:.1f} % of the measured bf16 matmul peak ({peak['gflop_per_s'] / 1e3:.2f} TFLOP/s)"
if spec:
    line += f", {100 * g / spec:.1f} % of the datasheet's dense bf16 peak ({spec / 1e3:.0f} TFLOP/s)"
print(line)
PY
)"
fi

say "== 3. evaluation and sampling ($preset, bf16)"
b=$([ "$fits" -gt 0 ] && echo "$fits" || echo 8)
timeout 60 "$bin/bench" eval --device "$device" --preset "$preset" --seq-len "$seq" --batch "$b" --precisions bf16 \
  --rounds 1 --steps 5 --out "$out/eval.json" > "$out/eval.txt" 2>&1 && say "eval: $(grep -E '^\| bf16 \| md4-rs' "$out/eval.txt" | tr -s ' ')"
timeout 90 "$bin/bench" sample --device "$device" --preset "$preset" --seq-len "$seq" --batch 16 --precisions bf16 \
  --rounds 1 --steps 5 --sample-steps 32 --out "$out/sample.json" > "$out/sample.txt" 2>&1 && say "sample: $(grep -E '^\| bf16 \| md4-rs|calls/s' "$out/sample.txt" | tr -s ' ' | paste -sd' ')"
say "== 4. data-parallel smoke: md4 launch --nproc 1 (world size 1, $( [[ "$device" == cuda* ]] && echo NCCL || echo Gloo ))"
backend=$([[ "$device" == cuda* ]] && echo nccl || echo gloo)
dev=$([[ "$device" == cuda* ]] && echo cuda || echo cpu)
"$py" -c 'import random; random.seed(3); w = "the cat sat on a mat and dog ran home".split(); print(" ".join(random.choice(w) for _ in range(3000)))' > "$out/ddp-corpus.txt"
( cd "$out" && MD4_DATA_DIR="$PWD/data" timeout 120 "$bin/md4" launch --nproc 1 -- train --device "$dev" --dist-backend "$backend" \
    --config "$OLDPWD/configs/text8-tiny.yaml" --data text:ddp-corpus.txt --run-dir ddp-run --quiet \
    --set train.steps=4 --set train.batch=8 --set train.seq_len=64 --set train.eval_every=2 --set train.eval_batches=1 \
  && MD4_DATA_DIR="$PWD/data" timeout 60 "$bin/md4" launch --nproc 1 -- eval --device "$dev" --dist-backend "$backend" \
    --run-dir ddp-run --json ) > "$out/ddp.txt" 2>&1
ddp=$?
[ $ddp = 0 ] && say "ddp: trained 4 updates and evaluated through $backend: $(grep -o '"bits_per_token": [0-9.]*' "$out/ddp.txt")" \
  || say "ddp smoke FAILED (exit $ddp): see ddp.txt"
[ $ddp = 0 ] || status=1
say "done in $(( $(date +%s) - start )) s; files in $out"
rm -rf "$bin"
[ $status = 0 ]
