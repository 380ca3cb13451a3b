# wanco task runner. `just --list` shows every recipe.

export LLVM_SYS_191_PREFIX := "/usr/lib/llvm-19"

# Build the workspace and the runtime for both ISAs.
build:
    cargo build
    bash tools/build-runtime.sh

# Install system packages, targets and tools, then build.
setup:
    bash tools/setup.sh

# Install wanco, wanco-snap, runtime libraries, docs, completions under PREFIX (docs/installing.md).
install prefix="/usr/local":
    bash tools/install.sh {{prefix}}

# Build the Debian package target/debian/wanco_VERSION_ARCH.deb (docs/installing.md).
deb:
    bash tools/build-deb.sh

# Run README's "Using it" commands with the wanco on PATH, in a scratch directory.
smoke-installed:
    bash tools/smoke-installed.sh

# The main demo: one program compiled for x86_64 and aarch64, run on both.
demo: build
    bash tools/demo.sh

# The default test run (what CI runs): unit tests, test programs on both ISAs vs wasmtime, lean spec subset.
test: build
    cargo test --workspace

# Checkpoint/restore matrix with many checkpoints per program (x86_64, aarch64, interp; `test` uses 2).
cr-sweep points="25": build
    WANCO_CR_POINTS={{points}} cargo test -p wanco-tests --test cr_matrix -- --nocapture

# Sightglass programs (not ours) moved while they run, at random moments (SG_MIGRATE_SEED), in
# each mode, to x86_64 and to aarch64 (qemu): joined output = the uninterrupted run's
# (bench/results-migrate-sightglass.md; SG_ONLY=a,b).
migrate-sightglass: build
    python3 tools/migrate_sightglass.py target/debug/wanco bench/results-migrate-sightglass.md

# Live migration (needs root): the lean tests plus moves at many moments over ssh and TLS,
# x86_64 -> x86_64 and x86_64 -> aarch64 (tests/tests/migrate.rs).
migrate-test: build
    cargo test -p wanco-tests --test migrate -- --include-ignored
    cargo test -p wanco-tests --test gateway_migrate -- --include-ignored

# The full official spec suite (wasm-v1, wasm-v2 and simd = proposals/simd) on every engine.
spec: build
    cargo build -p wanco-spec
    for e in interp aot-x86_64 aot-aarch64 aot-x86_64-checked aot-aarch64-checked; do ./target/debug/wanco-spec --engine $e || exit 1; done

# Rebuild the test programs' .wasm from their C and Rust sources.
programs:
    bash tools/build-test-programs.sh

# Benchmarks: the project's programs (bench/results.md) and wasmtime's Sightglass suite
# (bench/results-sightglass.md; $WANCO_SIGHTGLASS, default ../shared/bench/sightglass).
bench: build
    bash tools/bench.sh

# Quick benchmark pass for iterating: one run each, a Sightglass subset (bench/results*-quick.md).
# wanco gateway: added latency and throughput vs a direct connection, the clients' longest
# pause during a move (bench/results-gateway.md).
gateway-bench: build
    cargo build --release -p wanco-cli
    python3 tools/gateway_bench.py

bench-quick: build
    BENCH_QUICK=1 bash tools/bench.sh

# Only the Sightglass suite (BENCH_SG_ONLY=a,b to pick programs; BENCH_SG_RUNS, BENCH_COMPILE_TIMEOUT).
bench-sightglass: build
    BENCH_SIGHTGLASS_ONLY=1 bash tools/bench.sh

# Two compiler variants side by side on Sightglass: run and compile CPU, B ÷ A (bench/results-ab.md).
# A variant is a wanco binary and environment settings; programs comma-separated (default: all), e.g.
# just bench-ab "target/release/wanco WANCO_FAST_LOOPS=0" target/release/wanco shootout-sieve,gcc-loops
bench-ab a b only="" runs="5":
    cargo build --release -p wanco-cli
    python3 tools/ab_sightglass.py {{ if only == "" { "" } else { "--only " + only } }} --runs {{runs}} {{quote(a)}} {{quote(b)}} bench/results-ab.md

# Sightglass under `wanco interp`, nice 15, 60 s CPU each (SG_INTERP_CPU, SG_ONLY=a,b) -> bench/results-sightglass-interp.md.
sightglass-interp:
    cargo build --release -p wanco-cli
    python3 tools/sightglass_interp.py target/release/wanco bench/results-sightglass-interp.md

# Sightglass compiled for x86_64 and aarch64 (qemu), outputs checked, and a checkpoint at a random
# point moved each way between the ISAs (bench/results-sightglass-check.md; SG_ONLY=a,b, SG_CHECK_SEED).
sightglass-check:
    cargo build --release -p wanco-cli
    python3 tools/sightglass_check.py target/release/wanco target/release/wanco-snap bench/results-sightglass-check.md

# Differential fuzzing: 20,000 wasm-smith modules on wanco-interp vs wasmi (release build).
fuzz count="20000" seed="0":
    cargo run --release -p wanco-fuzz -- --count {{count}} --seed {{seed}}

# Differential fuzzing of compiled code (x86_64 and aarch64, guard pages and
# explicit bounds checks) against the interpreter.
fuzz-aot count="1000" seed="0": build
    for e in aot-x86_64 aot-aarch64 aot-x86_64-checked aot-aarch64-checked; do cargo run --release -p wanco-fuzz -- --aot $e --count {{count}} --seed {{seed}} || exit 1; done

# Snapshot tool tests; `just snap-bless` regenerates the golden dump under snapshots/.
snap-test:
    cargo test -p wanco-cli --test snap

snap-bless:
    BLESS=1 cargo test -p wanco-cli --test snap golden_dump

# Compiling in parts: compile and run time of -j1 against -j2 on a few Sightglass programs
# (bench/results-jobs.md; BENCH_JOBS_ONLY=a,b, BENCH_JOBS_N, BENCH_JOBS_COMPILES, BENCH_JOBS_RUNS).
bench-jobs:
    cargo build --quiet --release -p wanco-cli
    python3 tools/bench_jobs.py target/release/wanco bench/results-jobs.md

# Live-migration benchmark: heaps of 16 MiB, 256 MiB, 1 GiB (1 MiB working set) and a 64 MiB
# working set, stop-and-copy vs pre-copy (bench/results-migrate.md); then the socket gateway's
# figures: clients' longest pause during a move, added latency, throughput (bench/results-gateway.md).
migrate-bench:
    bash tools/migrate-bench.sh
    just gateway-bench
