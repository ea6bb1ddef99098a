#!/usr/bin/env bash
# Print the libtorch directory: $MD4_LIBTORCH when set (an existing torch 2.11.0 install's
# site-packages/torch), else the one inside the torch virtual environment (see scripts/setup.sh),
# whether or not it is installed yet.
if [ -n "${MD4_LIBTORCH:-}" ]; then echo "$MD4_LIBTORCH"; exit 0; fi
venv="$(bash "$(dirname "$0")/venv-path.sh")"
for d in "$venv"/lib/python3.*/site-packages/torch; do
  [ -d "$d" ] && { echo "$d"; exit 0; }
done
py="${PYTHON:-python3}"
echo "$venv/lib/python$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')/site-packages/torch"
