#!/usr/bin/env bash
# Run every command of README.md's "Using it" section, as written there, in a
# scratch directory outside the checkout, with the `wanco` and `wanco-snap`
# found on PATH (an installed wanco: `just install`, the Debian package).
#
# The section's `app.wasm` is tools/smoke/app.wasm. Its placeholder line
# `kill -USR1 <pid of ./app>` is played by starting `./app` in the background
# and signalling its pid once it has printed its second round. Each command
# must exit 0; the outputs of the runs cut by a checkpoint must add up to an
# uninterrupted run's.
#
#   bash tools/smoke-installed.sh          # uses PATH
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
for t in wanco wanco-snap qemu-aarch64; do
  command -v "$t" >/dev/null || { echo "smoke: \`$t\` is not on PATH" >&2; exit 1; }
done
echo "smoke: $(command -v wanco): $(wanco --version)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$repo/tools/smoke/app.wasm" app.wasm
mkdir data
echo "some input" > input.txt

# The fenced block after "## Using it", one command a line, comments dropped.
mapfile -t cmds < <(awk '/^## Using it/{s=1; next} s && /^```/{n++; if (n == 2) exit; next} s && n == 1' "$repo/README.md" \
  | sed -E 's/[[:space:]]+#.*$//' | sed -E '/^[[:space:]]*$/d')
[ "${#cmds[@]}" -ge 10 ] || { echo "smoke: found only ${#cmds[@]} commands in README.md's \"Using it\"" >&2; exit 1; }

i=0
for c in "${cmds[@]}"; do
  i=$((i + 1))
  echo "smoke [$i/${#cmds[@]}]: $c"
  case "$c" in
    "kill -USR1 <pid of ./app>")
      rm -f checkpoint.wsnap
      ./app > sig.out 2> sig.err &
      pid=$!
      for _ in $(seq 200); do grep -q '^round 2 ' sig.out && break; sleep 0.05; done
      kill -USR1 "$pid"
      wait "$pid" || { echo "smoke: ./app exited $? after SIGUSR1:" >&2; cat sig.err >&2; exit 1; }
      grep -q '^checkpoint written to checkpoint.wsnap' sig.err || { echo "smoke: no checkpoint after SIGUSR1:" >&2; cat sig.err >&2; exit 1; }
      continue ;;
    "wanco-snap merge base.wsnap r1.wsnap r2.wsnap "*)
      # The chain the line merges: ./app serving its control channel, asked for
      # a full snapshot and two incremental ones while it goes on.
      rm -f ctl.sock base.wsnap r1.wsnap r2.wsnap
      ./app --control=ctl.sock > chain.out 2> chain.err &
      pid=$!
      python3 - <<'PY' || { echo "smoke: the control channel did not answer:" >&2; cat chain.err >&2; exit 1; }
import os, socket, sys, time
for _ in range(200):
    if os.path.exists("ctl.sock"):
        break
    time.sleep(0.01)
for req in ("checkpoint base.wsnap", "checkpoint-incremental r1.wsnap", "checkpoint-incremental r2.wsnap"):
    s = socket.socket(socket.AF_UNIX)
    s.connect("ctl.sock")
    s.sendall((req + "\n").encode())
    reply = s.makefile().readline()
    s.close()
    if not reply.startswith("ok "):
        sys.exit(f"{req}: {reply!r}")
PY
      wait "$pid" || { echo "smoke: ./app --control exited $?" >&2; cat chain.err >&2; exit 1; } ;;
    *"<"*">"*) echo "smoke: a placeholder this script does not know: $c" >&2; exit 1 ;;
  esac
  if ! eval "$c" > "out.$i" 2> "err.$i"; then
    echo "smoke: failed (exit status above):" >&2; cat "out.$i" "err.$i" >&2; exit 1
  fi
  case "$c" in
    "./app --dir "*) cp "out.$i" whole.out ;;
    "./app --help") grep -q '^usage: ' "out.$i" || { echo "smoke: ./app --help printed no usage" >&2; exit 1; } ;;
    "wanco run "*|"wanco interp app.wasm"*|"qemu-aarch64 "*"./app.a64 -- "*)
      cmp -s "out.$i" whole.out || { echo "smoke: \`$c\` printed another output than ./app" >&2; exit 1; } ;;
    "qemu-aarch64 "*"--restore checkpoint.wsnap"*)
      # The aarch64 restore of the x86_64 checkpoint finishes the run.
      cat sig.out "out.$i" | cmp -s - whole.out \
        || { echo "smoke: checkpoint on x86_64 + restore on aarch64 differs from the whole run" >&2; exit 1; } ;;
    "wanco-snap merge "*)
      # The merged snapshot restores: what follows its point ends the run.
      ./app --restore whole.wsnap > merged.out 2> merged.err \
        || { echo "smoke: ./app --restore whole.wsnap failed:" >&2; cat merged.err >&2; exit 1; }
      grep -q "^round" merged.out && [ "$(tail -c "$(wc -c < merged.out)" whole.out | cmp - merged.out && echo same)" = same ] \
        || { echo "smoke: the merged chain's restore is not the end of the whole run" >&2; exit 1; } ;;
    "wanco interp --restore"*)
      cat "out.$((i - 1))" "out.$i" | cmp -s - whole.out \
        || { echo "smoke: interp checkpoint + restore differs from the whole run" >&2; exit 1; } ;;
  esac
done
grep -q "^done" whole.out || { echo "smoke: ./app did not run to its end" >&2; exit 1; }
echo "smoke: all ${#cmds[@]} commands of README's \"Using it\" work from $work"
