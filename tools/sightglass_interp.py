#!/usr/bin/env python3
"""Sightglass (wasmtime's benchmark suite) under the reference interpreter.

Usage: sightglass_interp.py WANCO OUT.md

Runs every program `<suite>/<name>/prog.wasm` (suite: $WANCO_SIGHTGLASS,
default ../shared/bench/sightglass next to the repository) under
`wanco interp --dir . prog.wasm`, one at a time, in a copy of its folder
(preopened as `.`), at low priority (`nice`, $SG_INTERP_NICE, default 15),
with a CPU-time limit (RLIMIT_CPU, $SG_INTERP_CPU seconds, default 60;
a wall-clock limit of 20 times that as a safety net), and compares stdout
and stderr with the folder's `expected.stdout` / `expected.stderr`
(`hashset`'s "That took N seconds." line and a final newline aside:
upstream's libsodium files lack the newline the programs print).

Result per program: `pass` (exit 0, both outputs as expected), `timeout`
(the CPU limit was reached), or `fail` with the reason (exit status,
which output differs, the first line of the difference). The table is
rewritten after every program, so a partial run leaves a partial table.
$SG_ONLY=a,b,c picks programs. A benchmark run, not a test: nothing is
asserted, but every `fail` is a bug to investigate.
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def normalize(name, out: bytes) -> bytes:
    if name == "hashset":
        out = re.sub(rb"That took [0-9.]+ seconds\.", b"That took N seconds.", out)
    # Upstream's expected files (the libsodium ones, shootout-switch) lack
    # the final newline that the programs print (under wasmtime too).
    return out.rstrip(b"\n")


def first_diff(got: bytes, want: bytes) -> str:
    g, w = got.decode(errors="replace").splitlines(), want.decode(errors="replace").splitlines()
    for i in range(max(len(g), len(w))):
        a = g[i] if i < len(g) else "<end>"
        b = w[i] if i < len(w) else "<end>"
        if a != b:
            return f"line {i + 1}: got `{a[:60]}`, expected `{b[:60]}`".replace("|", "\\|")
    return "differs"


def run_one(wanco, name, src, work, cpu_limit, nice):
    d = os.path.join(work, name)
    shutil.copytree(src, d)

    def limits():
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 5))
        os.nice(nice)

    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        t0 = time.monotonic()
        p = subprocess.Popen([wanco, "interp", "--dir", ".", "prog.wasm"], cwd=d, stdin=subprocess.DEVNULL,
                             stdout=o, stderr=e, preexec_fn=limits, start_new_session=True)
        wall_limit = cpu_limit * 20
        killed = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > wall_limit and not killed:
                os.killpg(p.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.1)
        cpu = ru.ru_utime + ru.ru_stime
        wall = time.monotonic() - t0
        o.seek(0)
        e.seek(0)
        out, err = o.read(), e.read()
    shutil.rmtree(d, ignore_errors=True)
    # SIGXCPU comes only from the CPU limit (the kernel's accounting of it
    # can be a little ahead of rusage's); SIGKILL from the hard limit or us.
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if killed:
        return "timeout", f"over {wall_limit} s wall", cpu, wall
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_limit):
        return "timeout", f"over {cpu_limit} s CPU", cpu, wall
    rc = os.waitstatus_to_exitcode(status)
    why = []
    if rc != 0:
        last = [l for l in err.decode(errors="replace").splitlines() if l.strip()]
        why.append(f"exit {rc}" + (f": {last[-1][:100]}".replace("|", "\\|") if last else ""))
    for stream, got in (("stdout", out), ("stderr", err)):
        path = os.path.join(src, "expected." + stream)
        want = open(path, "rb").read() if os.path.isfile(path) else b""
        if normalize(name, got) != normalize(name, want):
            why.append(f"{stream} differs ({first_diff(normalize(name, got), normalize(name, want))})")
    return ("pass" if not why else "fail"), "; ".join(why), cpu, wall


def write_md(out_md, suite, rows, total, cpu_limit, nice):
    n = {k: sum(1 for r in rows if r[1] == k) for k in ("pass", "fail", "timeout")}
    L = ["# Sightglass under the reference interpreter (`wanco interp`)\n",
         f"x86_64, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d', time.gmtime())}; suite: `{suite}`; "
         f"regenerate with `just sightglass-interp` (tools/sightglass_interp.py).",
         f"Each program runs alone under `wanco interp --dir . prog.wasm` (release build) at `nice -n {nice}` "
         f"with a limit of {cpu_limit} s CPU time; \"pass\" = exit 0 and stdout and stderr equal "
         f"`expected.stdout` / `expected.stderr` (`hashset`'s timing line and a final newline aside), \"timeout\" = the CPU "
         f"limit was reached (not an error: the interpreter is slow), \"fail\" = anything else (a bug). "
         f"Seconds: CPU time (user + system) and wall time of that run.\n",
         f"Programs run: {len(rows)} of {total}: **{n['pass']} pass, {n['fail']} fail, {n['timeout']} timeout**.\n",
         "| program | result | CPU s | wall s | detail |",
         "|---|---|---:|---:|---|"]
    for name, res, why, cpu, wall in rows:
        L.append(f"| {name} | {res} | {cpu:.1f} | {wall:.1f} | {why} |")
    with open(out_md + ".tmp", "w") as f:
        f.write("\n".join(L) + "\n")
    os.replace(out_md + ".tmp", out_md)


def suite_programs(tool):
    """The suite's folder ($WANCO_SIGHTGLASS, default ../shared/bench/sightglass
    next to the repository) and its program names ($SG_ONLY=a,b picks)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    suite = os.environ.get("WANCO_SIGHTGLASS", os.path.join(os.path.dirname(repo), "shared", "bench", "sightglass"))
    if not os.path.isdir(suite):
        sys.exit(f"{tool}: suite not found at {suite} (set WANCO_SIGHTGLASS to its folder)")
    names = sorted(d for d in os.listdir(suite) if os.path.isfile(os.path.join(suite, d, "prog.wasm")))
    only = os.environ.get("SG_ONLY")
    if only:
        names = [n for n in only.split(",") if n in names]
    return suite, names


def main():
    wanco, out_md = os.path.abspath(sys.argv[1]), sys.argv[2]
    suite, names = suite_programs("sightglass-interp")
    cpu_limit = int(os.environ.get("SG_INTERP_CPU", "60"))
    nice = int(os.environ.get("SG_INTERP_NICE", "15"))
    work = tempfile.mkdtemp(prefix="wanco-sg-interp-")
    rows = []
    try:
        for name in names:
            res, why, cpu, wall = run_one(wanco, name, os.path.join(suite, name), work, cpu_limit, nice)
            rows.append((name, res, why, cpu, wall))
            print(f"sightglass-interp: {name}: {res} {cpu:.1f} s CPU {wall:.1f} s wall {why}", file=sys.stderr, flush=True)
            write_md(out_md, suite, rows, len(names), cpu_limit, nice)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
