#!/usr/bin/env bash
# Live-migration benchmark (`just migrate-bench`): tests/programs/migrate/migrate_heap.wat with
# heaps of 16 MiB, 256 MiB and 1 GiB rewriting a 1 MiB working set every 20 ms, and a 256 MiB
# heap rewriting 64 MiB, each moved x86_64 -> x86_64 on this machine (wanco agent on
# tcp://127.0.0.1 with --insecure: no link limit, the CPU is the bottleneck) once per mode.
# Writes bench/results-migrate.md and prints the table.
#
# Downtime is what `wanco migrate` measures: from its `stop` request on the source's control
# channel to the destination's `Running` (the gate opened), so it includes the wait for the
# source's next migration point and one round trip; it is an upper bound of "source stopped ->
# destination's first Wasm instruction". The runtimes' clocks give that one itself
# (`downtime_runtime_ms`): the source runtime's CLOCK_REALTIME when it stopped at the migration
# point to the destination runtime's just before its restored code resumed (same machine: the
# same clock).
set -euo pipefail
cd "$(dirname "$0")/.."
export LLVM_SYS_191_PREFIX=${LLVM_SYS_191_PREFIX:-/usr/lib/llvm-19}
# The runtime linked into the programs is the release build; `wanco` itself (migrate, agent)
# is the debug build `just build` makes.
cargo build --quiet -p wanco-cli
bash tools/build-runtime.sh
WANCO=$PWD/target/debug/wanco
work=$(mktemp -d /tmp/wanco-migrate-bench.XXXXXX)
trap 'kill $agent_pid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/agent"
"$WANCO" agent --listen "127.0.0.1:$port" --insecure --work-dir "$work/agent" >"$work/agent.log" 2>&1 &
agent_pid=$!
sleep 0.5
# MIGRATE_BENCH_MODES="postcopy" (say) runs only those modes, into
# bench/results-migrate-postcopy.md instead.
modes=${MIGRATE_BENCH_MODES:-stop-and-copy precopy postcopy}
if [ -n "${MIGRATE_BENCH_MODES:-}" ]; then
  out=bench/results-migrate-${modes// /-}.md
else
  out=bench/results-migrate.md
fi
{
  echo "# Live migration benchmark"
  echo
  echo "\`just migrate-bench\` ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start): x86_64 -> x86_64 on one machine over"
  echo "tcp://127.0.0.1 (no link limit). Heap: pseudo-random bytes (incompressible); the working set is"
  echo "rewritten every 20 ms. Downtime: \`stop\` request -> destination \`Running\` (an upper bound, see"
  echo "tools/migrate-bench.sh). Stop -> first instruction: the source runtime's CLOCK_REALTIME when it"
  echo "stopped at the migration point to the destination runtime's just before its restored code resumed."
  echo "Memory: image-mapped = the pre-copy rounds' memory image mapped copy-on-write (no heap-sized work"
  echo "after the stop); postcopy-lazy = the pages put in by the destination's userfaultfd pager as they came"
  echo "after the resume. Bytes: everything \`wanco migrate\` sent. Rounds: pre-copy rounds"
  echo "(pages per round); post-copy: the pages sent after the resume, asked for or pushed, and when the last was in."
  echo
  echo "| heap | working set | mode | downtime ms | stop -> first instruction ms (runtime clocks) | memory at the destination | total ms | bytes sent | final snapshot bytes | rounds (pages) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$out.tmp"
run() { # pages ws_bytes ticks label_heap label_ws
  local pages=$1 ws=$2 ticks=$3 lh=$4 lw=$5
  local wat="$work/heap-$pages-$ws.wat" bin="$work/heap-$pages-$ws"
  sed -e "s/(memory (export \"memory\") [0-9]*)/(memory (export \"memory\") $pages)/" \
      -e "s/(global \$ws i32 (i32.const [0-9]*))/(global \$ws i32 (i32.const $ws))/" \
      -e "s/(global \$ticks i32 (i32.const [0-9]*))/(global \$ticks i32 (i32.const $ticks))/" \
      tests/programs/migrate/migrate_heap.wat >"$wat"
  [ -x "$bin" ] || "$WANCO" compile "$wat" -o "$bin" >/dev/null
  for mode in $modes; do
    local sock="$work/ctl.sock"
    rm -f "$sock"
    # Each move starts without the dirty page cache of the one before (a stop-and-copy of 1 GiB
    # leaves ~2 GB of snapshot files being written back; the kernel throttles every writer
    # meanwhile, the final snapshot's writers too).
    sync
    "$bin" --control="$sock" >"$work/src.out" 2>"$work/src.err" &
    local pid=$!
    until grep -q "^tick 3 " "$work/src.out" 2>/dev/null; do sleep 0.05; done
    local m
    m=$("$WANCO" migrate "$pid" --to "tcp://127.0.0.1:$port" --insecure --control "$sock" --"$mode" --json --detach 2>&1 >/dev/null || true)
    wait "$pid" || true
    local j
    j=$(echo "$m" | sed -n 's/^wanco migrate: {/{/p' | head -1)
    if [ -z "$j" ]; then
      echo "| $lh | $lw | $mode | failed: $(echo "$m" | tail -1) | | | | | | |" >>"$out.tmp"
      continue
    fi
    python3 - "$lh" "$lw" "$mode" "$j" >>"$out.tmp" <<'PY'
import json, sys
lh, lw, mode, j = sys.argv[1:5]
v = json.loads(j)
rounds = f"{v['rounds']} ({', '.join(map(str, v['round_pages']))})" if v['rounds'] else "-"
if mode == "postcopy":
    rounds = f"post-copy: {v['pages']} pages after the resume ({v['pages_on_demand']} on demand, {v['pages_pushed']} pushed), all in {v['postcopy_ms']:.1f} ms"
rt = v.get('downtime_runtime_ms')
rt = f"{rt:.2f}" if rt is not None else "-"
print(f"| {lh} | {lw} | {mode} | {v['downtime_ms']:.1f} | {rt} | {v.get('memory', '-')} | {v['total_ms']:.1f} | {v['bytes_sent']} | {v['snapshot_bytes']} | {rounds} |")
PY
  done
}
run 256 1048576 200 "16 MiB" "1 MiB"
run 4096 1048576 800 "256 MiB" "1 MiB"
run 16384 1048576 2500 "1 GiB" "1 MiB"
run 4096 67108864 1000 "256 MiB" "64 MiB"
mv "$out.tmp" "$out"
cat "$out"
