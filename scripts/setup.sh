#!/usr/bin/env bash
# Install libtorch 2.11.0 (from the PyPI torch wheel) into a virtual environment kept in a
# per-user cache directory, so that fresh clones (CI) reuse it. A second run is a no-op.
#   MD4_VENV   overrides the location (default: $XDG_CACHE_HOME/md4-rs/venv-torch-2.11.0)
#   --full     also installs torch's Python dependencies (needed only for `import torch`,
#              i.e. the PyTorch-eager benchmark)
set -euo pipefail
venv="$(bash "$(dirname "$0")/venv-path.sh")"
full=0
[ "${1:-}" = "--full" ] && full=1
stamp="$venv/.md4-lean-ok"
fullstamp="$venv/.md4-full-ok"
if [ -f "$stamp" ] && { [ $full = 0 ] || [ -f "$fullstamp" ]; }; then
  exit 0
fi
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "error: python >= 3.10 is required (found $("$py" --version 2>&1)); set PYTHON=/path/to/python3" >&2
  exit 1
fi
start=$(date +%s)
mkdir -p "$(dirname "$venv")"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
if [ ! -f "$stamp" ]; then
  echo "setup: installing torch==2.11.0 (lean: libtorch for Rust) into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
    torch==2.11.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  touch "$stamp"
fi
if [ $full = 1 ] && [ ! -f "$fullstamp" ]; then
  echo "setup: installing torch==2.11.0 with its Python dependencies (for the PyTorch benchmark)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check torch==2.11.0 safetensors numpy
  touch "$fullstamp"
fi
echo "setup: done in $(( $(date +%s) - start )) s; $(du -sh "$venv" | cut -f1) in $venv"
