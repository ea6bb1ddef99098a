#!/usr/bin/env bash
# Build what scripts/gpu-check.sh runs and pack it for a machine that has an NVIDIA GPU and
# torch 2.11.0 but no Rust: the `md4` binary, the `bench` example and the `md4` command-line
# test binary, stripped and xz-compressed into gpu-pack/ (git-ignored, ≈ 45 MB), with a
# manifest (commit, sha256 of each binary). Copy the working tree with gpu-pack/ to the GPU
# machine and run `bash scripts/gpu-check.sh` there. Run through `just gpu-pack` (sets LIBTORCH).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p md4-cli --bin md4
cargo build -q -p md4-train --example bench
tests=$(cargo test -q -p md4-cli --test cli --no-run --message-format=json 2>/dev/null \
  | jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .target.name == "cli") | .executable' | tail -1)
[ -x "$tests" ] || { echo "gpu-pack: could not find the cli test binary" >&2; exit 1; }
mkdir -p gpu-pack
{
  echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!gpu-pack' || echo ' (dirty)')"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) with $(rustc --version)"
} > gpu-pack/manifest.txt
for pair in "md4:$target/debug/md4" "bench:$target/debug/examples/bench" "cli-tests:$tests"; do
  name="${pair%%:*}" path="${pair#*:}"
  strip -o "gpu-pack/$name" "$path"
  echo "sha256 $(sha256sum "gpu-pack/$name" | cut -d' ' -f1) $name" >> gpu-pack/manifest.txt
  xz -T0 -6 -f "gpu-pack/$name"
done
echo "gpu-pack: $(du -sh gpu-pack | cut -f1) in gpu-pack/ ($(tr '\n' ';' < gpu-pack/manifest.txt))"
