#!/usr/bin/env bash
# Train one run in chunks until its validation loss passes a target or a wall-time budget ends
# (issue 17: "how far to gzip"). Every chunk is `md4 train --stop-at`, which checkpoints and
# exits; the next chunk resumes bit-exactly. Writes RUN_DIR/race.jsonl: one line per chunk with
# the step, the validation bits per token and the cumulative wall time (restarts included).
#   bash scripts/race.sh CONFIG RUN_DIR TARGET_BITS MAX_SECONDS [CHUNK_UPDATES]
set -euo pipefail
config="${1:?usage: race.sh CONFIG RUN_DIR TARGET_BITS MAX_SECONDS [CHUNK]}"
run_dir="${2:?run directory}"
target="${3:?target bits per token}"
max_s="${4:?wall-time budget in seconds}"
chunk="${5:-500}"
md4="${MD4_BIN:-cargo run -q -p md4-cli --}"
mkdir -p "$run_dir"
log="$run_dir/race.jsonl"
start=$(date +%s.%N)
prev=0
[ -f "$log" ] && prev=$(tail -1 "$log" | jq -r .wall_s)
last_val() { grep '"kind":"validation"' "$run_dir/metrics.jsonl" | tail -1; }
step=0
[ -f "$run_dir/metrics.jsonl" ] && step=$(last_val | jq -r '.step // 0')
steps=$(grep -E '^  steps:' "$config" | awk '{print $2}')
while :; do
  next=$((step + chunk))
  [ "$next" -gt "$steps" ] && next=$steps
  if [ -f "$run_dir/config.yaml" ]; then
    $md4 train --run-dir "$run_dir" --stop-at "$next" --quiet
  else
    $md4 train --config "$config" --run-dir "$run_dir" --stop-at "$next" --quiet
  fi
  now=$(date +%s.%N)
  wall=$(echo "$prev + $now - $start" | bc -l)
  v=$(last_val)
  new_step=$(echo "$v" | jq -r .step)
  if [ "$new_step" -le "$step" ]; then echo "race: no new validation result after step $step (is $chunk a multiple of train.eval_every?)" >&2; exit 1; fi
  step=$new_step
  bits=$(echo "$v" | jq -r .val_bits)
  se=$(echo "$v" | jq -r .val_se_bits)
  printf '{"step":%s,"val_bits":%s,"val_se_bits":%s,"wall_s":%.1f,"target":%s}\n' \
    "$step" "$bits" "$se" "$wall" "$target" | tee -a "$log"
  if (( $(echo "$bits < $target" | bc -l) )); then echo "race: passed $target at step $step after ${wall%.*} s"; break; fi
  if (( $(echo "$wall >= $max_s" | bc -l) )); then echo "race: budget of $max_s s spent at step $step ($bits bits)"; break; fi
  if [ "$step" -ge "$steps" ]; then echo "race: all $steps updates done ($bits bits)"; break; fi
done
