# md4-rs recipes. `just --list` shows them; every recipe sets up libtorch first if needed.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := `bash scripts/venv-path.sh`
export LIBTORCH := `bash scripts/libtorch-path.sh`
export LD_LIBRARY_PATH := LIBTORCH / "lib"

# list the recipes
default:
    @just --list

# install libtorch 2.11.0 from the torch wheel into a cached virtual environment (no-op when present)
setup:
    @bash scripts/setup.sh

# build every crate and binary
build: setup
    cargo build --workspace --all-targets

# formatting, clippy with warnings as errors, and every test
test: setup
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace

# print the environment that cargo and the binaries need (eval "$(just env)")
env: setup
    @echo "export LIBTORCH={{LIBTORCH}}"
    @echo "export LD_LIBRARY_PATH={{LD_LIBRARY_PATH}}"

# run an artifact (table2, fig1, …; `all` for every one) at a scale: smoke, small (default) or paper
reproduce artifact scale="small": setup
    bash scripts/reproduce.sh {{artifact}} {{scale}}

# fetch and prepare a data set once (`just data --list` lists them)
data *args: setup
    cargo run -q -p md4-cli -- data {{args}}

# the md4 command line (`just md4 --help`)
md4 *args: setup
    cargo run -q -p md4-cli -- {{args}}
