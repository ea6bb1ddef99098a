#!/usr/bin/env bash
# Print the location of the torch virtual environment (see scripts/setup.sh).
echo "${MD4_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/md4-rs/venv-torch-2.11.0}"
