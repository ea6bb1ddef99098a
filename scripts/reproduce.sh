#!/usr/bin/env bash
# Run one artifact's binary (experiments/src/bin/<artifact>.rs) at a scale, or every artifact
# at small scale with `all`. Training runs that already finished are reused by the binaries.
set -euo pipefail
artifact="${1:?usage: reproduce.sh ARTIFACT [SCALE]}"
scale="${2:-small}"
cd "$(dirname "$0")/.."
# The order matters for `all`: later artifacts reuse the training runs of earlier ones.
all=(fig1 fig2 table2 table7-text8 fig-genmd4-w table5 table1 table7 fig4 fig8 infill table3 image-samples)
pending() {
  case "$1" in
    table3|image-samples|table6) echo "the image artifacts (issue: bits per dimension, image samples)" ;;
    *) echo "this artifact" ;;
  esac
}
run_one() {
  local a="$1" s="$2" bin="${1//-/_}"
  if [ -f "experiments/src/bin/$bin.rs" ]; then
    echo "== reproduce $a ($s)"
    cargo run -q -p experiments --bin "$bin" -- --scale "$s"
  else
    echo "== $a: not built yet — $(pending "$a") is still open; no numbers are produced for it" >&2
    return 3
  fi
}
if [ "$artifact" = all ]; then
  missing=0
  for a in "${all[@]}"; do run_one "$a" "$scale" || missing=$((missing + 1)); done
  [ "$missing" = 0 ] || echo "reproduce all: $missing artifact(s) not built yet (see above)" >&2
else
  run_one "$artifact" "$scale"
fi
