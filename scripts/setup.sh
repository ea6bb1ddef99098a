#!/usr/bin/env bash
# Install libtorch 2.11.0 (from the PyPI torch wheel) into a virtual environment kept in a
# per-user cache directory, so that fresh clones (CI) reuse it. A second run is a no-op.
#   --gpu      also install the CUDA 13 libraries that libtorch_cuda.so needs (the versions that
#              torch 2.11.0's wheel pins, ≈ 2.7 GB); automatic when `nvidia-smi -L` lists a GPU
#   --no-gpu   never install them (also MD4_GPU=0)
#   --full     also install torch's Python dependencies (needed only for `import torch`,
#              i.e. the PyTorch-eager benchmark)
#   MD4_VENV       overrides the location (default: $XDG_CACHE_HOME/md4-rs/venv-torch-2.11.0)
#   MD4_LIBTORCH   use an existing torch 2.11.0 install instead (its site-packages/torch folder,
#                  with the CUDA libraries installed beside it); nothing is installed
set -euo pipefail
here="$(dirname "$0")"
full=0 gpu=auto
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    --gpu) gpu=1 ;;
    --no-gpu) gpu=0 ;;
    *) echo "setup: unknown option '$arg' (expected --gpu, --no-gpu or --full)" >&2; exit 2 ;;
  esac
done
[ "${MD4_GPU:-}" = 0 ] && gpu=0
if [ "$gpu" = auto ]; then
  gpu=0
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    gpu=1
    echo "setup: nvidia-smi lists a GPU; installing the CUDA libraries too (MD4_GPU=0 or --no-gpu to skip)"
  fi
fi

if [ -n "${MD4_LIBTORCH:-}" ]; then
  version=$(sed -n "s/^__version__ = ['\"]\([^'\"]*\)['\"].*/\1/p" "$MD4_LIBTORCH/version.py" 2>/dev/null || true)
  if [ ! -f "$MD4_LIBTORCH/lib/libtorch_cpu.so" ]; then
    echo "error: MD4_LIBTORCH=$MD4_LIBTORCH has no lib/libtorch_cpu.so (expected .../site-packages/torch)" >&2
    exit 1
  fi
  case "$version" in
    2.11.0|2.11.0+*) ;;
    *) echo "error: MD4_LIBTORCH=$MD4_LIBTORCH is torch '${version:-unknown}', but md4-rs (tch 0.24) needs torch 2.11.0" >&2; exit 1 ;;
  esac
  if [ "$gpu" = 1 ] && [ ! -f "$MD4_LIBTORCH/lib/libtorch_cuda.so" ]; then
    echo "error: MD4_LIBTORCH=$MD4_LIBTORCH is a CPU-only build (no lib/libtorch_cuda.so)" >&2
    exit 1
  fi
  exit 0
fi

venv="$(bash "$here/venv-path.sh")"
stamp="$venv/.md4-lean-ok"
fullstamp="$venv/.md4-full-ok"
gpustamp="$venv/.md4-gpu-ok"
if [ -f "$stamp" ] && { [ $full = 0 ] || [ -f "$fullstamp" ]; } && { [ $gpu = 0 ] || [ -f "$gpustamp" ]; }; then
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
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
if [ ! -f "$stamp" ]; then
  echo "setup: installing torch==2.11.0 (lean: libtorch for Rust) into $venv"
  "${pip[@]}" --no-deps torch==2.11.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  touch "$stamp"
fi
if [ $gpu = 1 ] && [ ! -f "$gpustamp" ]; then
  # torch 2.11.0's wheel metadata pins exactly these (libtorch_cuda.so finds them through its
  # RPATH, $ORIGIN/../../nvidia/*/lib).
  echo "setup: installing the CUDA 13 libraries of torch 2.11.0 into $venv"
  "${pip[@]}" \
    "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.2" \
    nvidia-cudnn-cu13==9.19.0.56 nvidia-cusparselt-cu13==0.8.0 nvidia-nccl-cu13==2.28.9 \
    nvidia-nvshmem-cu13==3.4.5
  touch "$gpustamp"
  site="$(dirname "$(bash "$here/libtorch-path.sh")")"
  echo "setup: CUDA libraries: $(du -sch "$site"/nvidia 2>/dev/null | tail -1 | cut -f1) in $site/nvidia"
fi
if [ $full = 1 ] && [ ! -f "$fullstamp" ]; then
  echo "setup: installing torch==2.11.0 with its Python dependencies (for the PyTorch benchmark)"
  "${pip[@]}" torch==2.11.0 safetensors numpy
  touch "$fullstamp"
fi
echo "setup: done in $(( $(date +%s) - start )) s; $(du -sh "$venv" | cut -f1) in $venv"
