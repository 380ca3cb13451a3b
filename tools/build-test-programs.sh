#!/usr/bin/env bash
# Build the end-to-end test programs into tests/programs/wasm/:
#   tests/programs/c/NAME.c           -> NAME.wasm   (clang-14 --target=wasm32-wasi -O2;
#                                                     simd*.c also with -msimd128)
#   tests/programs/rust/src/bin/NAME.rs -> NAME.wasm (cargo, wasm32-wasip1, --release)
#   tests/programs/sock/c/NAME.c, tests/programs/sock/rust/src/bin/NAME.rs
#                                     -> tests/programs/sock/wasm/NAME.wasm (socket servers)
# The .wasm files are committed, so the tests need neither toolchain. Rebuilding with the same
# toolchains gives the same bytes (no timestamps or absolute paths end up in the modules).
# Usage: tools/build-test-programs.sh [--check]   (--check: rebuild into a temp dir and
#        fail if anything differs from the committed modules)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROGS="$ROOT/tests/programs"
OUT="$PROGS/wasm"
CHECK=0
if [[ "${1:-}" == "--check" ]]; then CHECK=1; OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT; fi
mkdir -p "$OUT"

CC=${CC_WASM:-clang-14}
command -v "$CC" >/dev/null || { echo "error: $CC not found (apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32)" >&2; exit 1; }

# A 1 MiB shadow stack (wasm-ld's default is 64 KiB) so recursion tests do not overrun it.
# -ffile-prefix-map keeps the build directory out of the module (assert() strings, debug names).
CFLAGS=(--target=wasm32-wasi -O2 -Wall -Wextra -Wno-unused-parameter
        "-ffile-prefix-map=$PROGS/c/=" -Wl,-z,stack-size=1048576)

for src in "$PROGS"/c/*.c; do
    name=$(basename "$src" .c)
    # build into a temp name and move, so an interrupted build never leaves a broken module
    extra=()
    [[ $name == simd* ]] && extra=(-msimd128)
    "$CC" "${CFLAGS[@]}" "${extra[@]}" "$src" -o "$OUT/$name.wasm.tmp" -lm
    mv "$OUT/$name.wasm.tmp" "$OUT/$name.wasm"
    echo "built $name.wasm (C)"
done

# Socket servers (tests/tests/sockets.rs): not run case by case like the programs above (they
# need a listening socket and clients), so they live apart, in tests/programs/sock/.
SOCK_OUT="$PROGS/sock/wasm"
if [[ $CHECK == 1 ]]; then SOCK_OUT="$OUT/sock"; fi
mkdir -p "$SOCK_OUT"
for src in "$PROGS"/sock/c/*.c; do
    name=$(basename "$src" .c)
    "$CC" "${CFLAGS[@]/#-ffile-prefix-map=*/-ffile-prefix-map=$PROGS/sock/c/=}" "$src" -o "$SOCK_OUT/$name.wasm.tmp" -lm
    mv "$SOCK_OUT/$name.wasm.tmp" "$SOCK_OUT/$name.wasm"
    echo "built sock/$name.wasm (C)"
done

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    echo "error: rust target wasm32-wasip1 missing (rustup target add wasm32-wasip1)" >&2; exit 1
fi
RUST_TARGET_DIR=${RUST_TEST_PROGRAMS_TARGET_DIR:-$PROGS/rust/target}
# --remap-path-prefix keeps the checkout path out of panic messages and the name section.
RUSTFLAGS="--remap-path-prefix=$PROGS/rust=. --remap-path-prefix=$HOME=~" \
    cargo build --quiet --locked --release --target wasm32-wasip1 \
    --manifest-path "$PROGS/rust/Cargo.toml" --target-dir "$RUST_TARGET_DIR"
for src in "$PROGS"/rust/src/bin/*.rs; do
    name=$(basename "$src" .rs)
    cp "$RUST_TARGET_DIR/wasm32-wasip1/release/$name.wasm" "$OUT/$name.wasm.tmp"
    mv "$OUT/$name.wasm.tmp" "$OUT/$name.wasm"
    echo "built $name.wasm (Rust)"
done

# Rust socket servers (tests/programs/sock/rust, its own small project).
SOCK_RUST_TARGET_DIR=${RUST_SOCK_PROGRAMS_TARGET_DIR:-$PROGS/sock/rust/target}
RUSTFLAGS="--remap-path-prefix=$PROGS/sock/rust=. --remap-path-prefix=$HOME=~" \
    cargo build --quiet --locked --release --target wasm32-wasip1 \
    --manifest-path "$PROGS/sock/rust/Cargo.toml" --target-dir "$SOCK_RUST_TARGET_DIR"
for src in "$PROGS"/sock/rust/src/bin/*.rs; do
    name=$(basename "$src" .rs)
    cp "$SOCK_RUST_TARGET_DIR/wasm32-wasip1/release/$name.wasm" "$SOCK_OUT/$name.wasm.tmp"
    mv "$SOCK_OUT/$name.wasm.tmp" "$SOCK_OUT/$name.wasm"
    echo "built sock/$name.wasm (Rust)"
done

if [[ $CHECK == 1 ]]; then
    status=0
    for f in "$OUT"/*.wasm; do
        n=$(basename "$f")
        if ! cmp -s "$f" "$PROGS/wasm/$n"; then echo "differs from the committed module: $n" >&2; status=1; fi
    done
    for f in "$PROGS"/wasm/*.wasm; do
        [[ -e "$OUT/$(basename "$f")" ]] || { echo "committed module has no source: $(basename "$f")" >&2; status=1; }
    done
    for f in "$OUT"/sock/*.wasm; do
        n=$(basename "$f")
        if ! cmp -s "$f" "$PROGS/sock/wasm/$n"; then echo "differs from the committed module: sock/$n" >&2; status=1; fi
    done
    [[ $status == 0 ]] && echo "all modules up to date"
    exit $status
fi
