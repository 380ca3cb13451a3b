#!/usr/bin/env bash
# The main demo: a bundled C program compiled for x86_64 and aarch64, run
# natively and under qemu-aarch64, checked against the wasmtime CLI; then
# checkpointed halfway on x86_64, translated to the aarch64 binary's frame
# layout, restored under qemu on aarch64, and the snapshot dumped.
set -euo pipefail
cd "$(dirname "$0")/.."
WANCO=target/debug/wanco
PROG=tests/programs/wasm/recursion.wasm
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "==> wanco compile $PROG (x86_64 and aarch64)"
$WANCO compile "$PROG" --target x86_64 -o "$OUT/app.x86_64"
$WANCO compile "$PROG" --target aarch64 -o "$OUT/app.aarch64"
file "$OUT/app.x86_64" "$OUT/app.aarch64" | sed 's/, BuildID.*//'

echo "==> run on x86_64"
"$OUT/app.x86_64" | tee "$OUT/x86_64.out"
echo "==> run on aarch64 (qemu-aarch64)"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$OUT/app.aarch64" > "$OUT/aarch64.out"
echo "==> run under wasmtime (reference)"
"$(bash tools/find-wasmtime.sh)" run "$PROG" > "$OUT/wasmtime.out"
if cmp -s "$OUT/x86_64.out" "$OUT/wasmtime.out" && cmp -s "$OUT/aarch64.out" "$OUT/wasmtime.out"; then
  echo "==> x86_64, aarch64 and wasmtime outputs are identical"
else
  echo "==> outputs differ:" >&2
  diff "$OUT/wasmtime.out" "$OUT/x86_64.out" >&2 || true
  diff "$OUT/wasmtime.out" "$OUT/aarch64.out" >&2 || true
  exit 1
fi

points=$("$OUT/app.x86_64" --count-points 2>&1 >/dev/null | sed -n 's/^migration points: //p')
half=$(( points / 2 ))
echo "==> checkpoint on x86_64 after $half of $points migration points"
"$OUT/app.x86_64" --checkpoint-after-points "$half" --checkpoint-file "$OUT/app.wsnap" > "$OUT/part1.out"
echo "==> wanco-snap translate: x86_64 native frames -> neutral -> aarch64 native frames"
target/debug/wanco-snap translate "$OUT/app.wsnap" --to aarch64 --binary "$OUT/app.aarch64" -o "$OUT/app-aarch64.wsnap"
echo "==> restore on aarch64 (qemu-aarch64)"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$OUT/app.aarch64" --restore "$OUT/app-aarch64.wsnap" > "$OUT/part2.out"
if cat "$OUT/part1.out" "$OUT/part2.out" | cmp -s - "$OUT/wasmtime.out"; then
  echo "==> output before the checkpoint (x86_64) + after the restore (aarch64) = the uninterrupted run"
else
  echo "==> the restored run differs:" >&2
  cat "$OUT/part1.out" "$OUT/part2.out" | diff "$OUT/wasmtime.out" - >&2 || true
  exit 1
fi
echo "==> wanco-snap dump (the translated snapshot: Wasm frames, memory, WASI, and the aarch64 machine frames)"
target/debug/wanco-snap dump --module "$PROG" --binary "$OUT/app.aarch64" "$OUT/app-aarch64.wsnap" \
  | awk '/^frames/{p=1} /^globals/{p=0} /^native frames/{p=1} p' | head -60
