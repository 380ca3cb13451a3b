#!/usr/bin/env bash
# Benchmarks (x86_64): compile time and run time of wanco vs wasmtime (and
# native clang -O2 where a C source exists). Best of N wall-clock runs.
# Writes bench/results.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_RUNS:-3}
WANCO=target/debug/wanco
WASMTIME=$(bash tools/find-wasmtime.sh)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

now() { date +%s%N; }
# best_of CMD...: minimum wall time in ms over N runs (output discarded)
best_of() {
  local best=""
  for _ in $(seq "$N"); do
    local t0 t1; t0=$(now); "$@" >/dev/null 2>&1 || true; t1=$(now)
    local ms=$(( (t1 - t0) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  echo "$best"
}

PROGS=(bench/programs/compute.wasm)
for p in recursion int_arith float_arith heap memgrow rust_collections rust_math; do
  PROGS+=("tests/programs/wasm/$p.wasm")
done

{
echo "# wanco benchmarks"
echo
echo "x86_64, $(nproc) cores, $(date -u +%Y-%m-%d). Best of $N runs, wall clock, ms."
echo "wanco: \`wanco compile -O2\` (LLVM 19); wasmtime $("$WASMTIME" --version | awk '{print $2}'): \`wasmtime compile\` + \`run --allow-precompiled\`."
echo
echo "| program | wasm KiB | wanco compile | wasmtime compile | wanco run | wasmtime run | native clang -O2 run | wanco / wasmtime run |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
} > "$OUT/results.md"

for wasm in "${PROGS[@]}"; do
  name=$(basename "$wasm" .wasm)
  kib=$(( $(stat -c %s "$wasm") / 1024 ))
  wc=$(best_of "$WANCO" compile "$wasm" -o "$OUT/$name")
  tc=$(best_of "$WASMTIME" compile "$wasm" -o "$OUT/$name.cwasm")
  mkdir -p "$OUT/data"
  wr=$(best_of "$OUT/$name" --dir "$OUT/data::/data")
  tr=$(best_of "$WASMTIME" run --allow-precompiled --dir "$OUT/data::/data" "$OUT/$name.cwasm")
  nat="-"
  src="${wasm%.wasm}.c"
  [ -f "$src" ] || src="tests/programs/c/$name.c"
  if [ -f "$src" ] && command -v clang-14 >/dev/null; then
    if clang-14 -O2 "$src" -o "$OUT/$name.native" -lm 2>/dev/null; then
      nat=$(best_of "$OUT/$name.native")
    fi
  fi
  ratio=$(awk -v a="$wr" -v b="$tr" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  echo "| $name | $kib | $wc | $tc | $wr | $tr | $nat | $ratio |" >> "$OUT/results.md"
done
mkdir -p bench
cp "$OUT/results.md" bench/results.md
cat bench/results.md
