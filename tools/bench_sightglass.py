#!/usr/bin/env python3
"""Sightglass (wasmtime's benchmark suite) on wanco: compile and run times.

Usage: bench_sightglass.py WANCO WASMTIME OUT.md

For every program folder `<suite>/<name>/prog.wasm` (suite: $WANCO_SIGHTGLASS,
default ../shared/bench/sightglass next to the repository):

* compile time of `wanco compile` (C/R and `--no-cr`) and `wasmtime compile`,
  once each, with the reason when a compile fails;
* run time of the C/R build, the `--no-cr` build and wasmtime (precompiled
  `.cwasm`), `BENCH_SG_RUNS` rounds (default 5) run interleaved
  (C/R, no-cr, wasmtime, C/R, ...), the minimum kept. Every time is the
  whole process's CPU time (user + system) as the OS counts it
  (`wait4`'s rusage, children included), and the wall time of that run;
* the output of each build's first run compared with the folder's
  `expected.stdout`;
* checkpoint at half the program's migration points, restore, and the
  two outputs together compared with `expected.stdout`; checkpoint and
  restore times as the runtime reports them (`WANCO_CR_TIMING=1`), the
  snapshot's size;
* a section on the programs that use 128-bit SIMD (wasmtime refuses them
  with `-W simd=n`): run time of the C/R and `--no-cr` builds against
  wasmtime's, with geometric means.

Each program runs in a copy of its folder (preopened as `.`).
Environment: `BENCH_QUICK=1` (a subset of 8 programs, 1 round),
`BENCH_SG_ONLY=a,b,c` (these programs), `BENCH_SG_RUNS`,
`BENCH_COMPILE_TIMEOUT` (seconds per compile, default 900),
`BENCH_RUN_TIMEOUT` (seconds per run, default 120).
A benchmark: nothing is asserted about a time.
"""
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

QUICK_SET = ["blind-sig", "shootout-sieve", "shootout-seqhash", "shootout-ed25519", "shootout-minicsv", "gcc-loops", "bz2", "shootout-fib2"]


def run(cmd, cwd=None, env=None, timeout=None, out=None, err=None):
    """Run cmd; returns (exit code or 'timeout', cpu seconds, wall seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out or subprocess.DEVNULL, stderr=err or subprocess.DEVNULL, start_new_session=True)
    timed_out = []

    def kill():
        timed_out.append(True)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer:
        timer.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if timer:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    return ("timeout" if timed_out else p.returncode), cpu, wall


def run_capture(cmd, cwd=None, env=None, timeout=None):
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        rc, cpu, wall = run(cmd, cwd, env, timeout, o, e)
        o.seek(0)
        e.seek(0)
        return rc, cpu, wall, o.read(), e.read()


def first_error(stderr: bytes) -> str:
    lines = [l.strip() for l in stderr.decode(errors="replace").splitlines() if l.strip()]
    pick = next((l for l in lines if "error" in l.lower()), lines[-1] if lines else "no message")
    pick = pick.replace("|", "\\|")
    return pick[:140]


def normalize(name, out: bytes) -> bytes:
    if name == "hashset":
        out = re.sub(rb"That took [0-9.]+ seconds\.", b"That took N seconds.", out)
    # Upstream's expected files (the libsodium ones, shootout-switch) lack
    # the final newline that the programs print (under wasmtime too).
    return out.rstrip(b"\n")


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def uses_simd(wasmtime, wasm):
    """Whether the module uses 128-bit SIMD: wasmtime refuses it with SIMD
    disabled (`-W simd=n`), at validation."""
    with tempfile.TemporaryDirectory() as t:
        rc, _, _, _, err = run_capture([wasmtime, "compile", "-W", "simd=n,relaxed-simd=n", wasm, "-o", os.path.join(t, "x.cwasm")], timeout=300)
    return rc != 0 and b"SIMD" in err


def fmt_ms(s):
    return "-" if s is None else f"{s * 1000:.0f}" if s >= 1 else f"{s * 1000:.1f}"


def fmt_s(s):
    return "-" if s is None else f"{s:.2f}"


def ratio(a, b, digits=2):
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.{digits}f}"


def main():
    wanco, wasmtime, out_md = sys.argv[1:4]
    wanco = os.path.abspath(wanco)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    suite = os.environ.get("WANCO_SIGHTGLASS", os.path.join(os.path.dirname(repo), "shared", "bench", "sightglass"))
    if not os.path.isdir(suite):
        msg = f"Sightglass suite not found at {suite} (set WANCO_SIGHTGLASS to its folder): skipped."
        print("bench: " + msg, file=sys.stderr)
        with open(out_md, "w") as f:
            f.write("# Sightglass\n\n" + msg + "\n")
        return
    quick = os.environ.get("BENCH_QUICK") == "1"
    runs = int(os.environ.get("BENCH_SG_RUNS", "1" if quick else "5"))
    ctimeout = float(os.environ.get("BENCH_COMPILE_TIMEOUT", "900"))
    rtimeout = float(os.environ.get("BENCH_RUN_TIMEOUT", "120"))
    names = sorted(d for d in os.listdir(suite) if os.path.isfile(os.path.join(suite, d, "prog.wasm")))
    only = os.environ.get("BENCH_SG_ONLY")
    if only:
        names = [n for n in only.split(",") if n in names]
    elif quick:
        names = [n for n in QUICK_SET if n in names]
    work = tempfile.mkdtemp(prefix="wanco-sg-")
    rows, failed = [], []
    try:
        for name in names:
            rows_or_fail = bench_one(name, os.path.join(suite, name), work, wanco, wasmtime, runs, ctimeout, rtimeout)
            if isinstance(rows_or_fail, str):
                failed.append((name, os.path.getsize(os.path.join(suite, name, "prog.wasm")), rows_or_fail))
                print(f"bench: {name}: {rows_or_fail}", file=sys.stderr)
            else:
                rows.append(rows_or_fail)
                r = rows_or_fail
                print(f"bench: {name}: compile cr {fmt_s(r['c_cr'])} s nocr {fmt_s(r['c_nocr'])} s wasmtime {fmt_s(r['c_wt'])} s; run cr {fmt_ms(r['r_cr'])} nocr {fmt_ms(r['r_nocr'])} wt {fmt_ms(r['r_wt'])} ms", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_md(out_md, suite, rows, failed, runs, quick)


def bench_one(name, src, work, wanco, wasmtime, runs, ctimeout, rtimeout):
    d = os.path.join(work, name)
    shutil.copytree(src, d)
    wasm = os.path.join(d, "prog.wasm")
    expected = None
    exp_path = os.path.join(src, "expected.stdout")
    if os.path.isfile(exp_path):
        expected = normalize(name, open(exp_path, "rb").read())
    r = {"name": name, "kib": os.path.getsize(wasm) // 1024, "simd": uses_simd(wasmtime, wasm)}
    bins = {"cr": os.path.join(work, name + ".cr"), "nocr": os.path.join(work, name + ".nocr"), "wt": os.path.join(work, name + ".cwasm")}
    for key, cmd in (("cr", [wanco, "compile", wasm, "-o", bins["cr"]]), ("nocr", [wanco, "compile", "--no-cr", wasm, "-o", bins["nocr"]]), ("wt", [wasmtime, "compile", wasm, "-o", bins["wt"]])):
        rc, cpu, wall, _, err = run_capture(cmd, timeout=ctimeout)
        if rc != 0:
            what = {"cr": "wanco compile", "nocr": "wanco compile --no-cr", "wt": "wasmtime compile"}[key]
            reason = f"timed out after {ctimeout:.0f} s" if rc == "timeout" else first_error(err)
            # The C/R build failing is what to report; the rest still says
            # whether the program is otherwise in reach.
            return f"{what} failed: {reason}"
        r["c_" + key] = cpu
        r["cw_" + key] = wall
    cmds = {
        "cr": [bins["cr"], "--dir", "."],
        "nocr": [bins["nocr"], "--dir", "."],
        "wt": [wasmtime, "run", "--allow-precompiled", "--dir", ".", bins["wt"]],
    }
    best = {k: None for k in cmds}
    bestw = {k: None for k in cmds}
    r["wrong"] = []
    for i in range(runs):
        for k, cmd in cmds.items():
            if i == 0:
                rc, cpu, wall, out, _ = run_capture(cmd, cwd=d, timeout=rtimeout)
                if rc != 0 or (expected is not None and normalize(name, out) != expected):
                    r["wrong"].append(f"{k}: {'exit ' + str(rc) if rc != 0 else 'output differs'}")
            else:
                rc, cpu, wall = run(cmd, cwd=d, timeout=rtimeout)
            if best[k] is None or cpu < best[k]:
                best[k] = cpu
            if bestw[k] is None or wall < bestw[k]:
                bestw[k] = wall
    for k in cmds:
        r["r_" + k] = best[k]
        r["rw_" + k] = bestw[k]
    cr_point(r, name, d, bins["cr"], expected, rtimeout)
    return r


def cr_point(r, name, d, binary, expected, rtimeout):
    """Checkpoint at half the migration points, restore, compare."""
    r.update(points=None, ck=None, rs=None, snap=None, cr_ok=None)
    rc, _, _, _, err = run_capture([binary, "--dir", ".", "--count-points"], cwd=d, timeout=rtimeout)
    m = re.search(rb"migration points: (\d+)", err)
    if rc != 0 or not m:
        return
    points = int(m.group(1))
    r["points"] = points
    snap = os.path.join(d, "..", name + ".wsnap")
    env = dict(os.environ, WANCO_CR_TIMING="1")
    rc, _, _, out1, err = run_capture([binary, "--dir", ".", "--checkpoint-after-points", str((points + 1) // 2), "--checkpoint-file", snap], cwd=d, env=env, timeout=rtimeout)
    m = re.search(rb"wanco-timing: checkpoint (\d+) us", err)
    if rc != 0 or not os.path.isfile(snap):
        r["cr_ok"] = f"checkpoint exit {rc}"
        return
    r["ck"] = int(m.group(1)) if m else None
    r["snap"] = os.path.getsize(snap)
    rc, _, _, out2, err = run_capture([binary, "--restore", snap], cwd=d, env=env, timeout=rtimeout)
    m = re.search(rb"wanco-timing: restore (\d+) us", err)
    r["rs"] = int(m.group(1)) if m else None
    if rc != 0:
        r["cr_ok"] = f"restore exit {rc}"
    elif expected is not None and normalize(name, out1 + out2) != expected:
        r["cr_ok"] = "output differs"
    else:
        r["cr_ok"] = "ok"
    os.remove(snap)


def write_md(out_md, suite, rows, failed, runs, quick):
    L = []
    L.append("# Sightglass (wasmtime's benchmark suite)\n")
    L.append(f"x86_64, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d', time.gmtime())}; suite: `{suite}`"
             f"{' (quick mode: a subset)' if quick else ''}.")
    L.append(f"Times are whole-process **CPU time** (user + system, from `wait4`'s rusage, children included), "
             f"the **minimum of {runs}** interleaved runs (C/R, `--no-cr`, wasmtime, ...); compile times are one compile "
             f"each, CPU seconds. wasmtime runs the precompiled `.cwasm` (`run --allow-precompiled`). "
             f"\"ok\" = the output equals `expected.stdout`. Checkpoint at half the migration points, then restore: "
             f"times are the runtime's own (`WANCO_CR_TIMING=1`, one run); \"C/R ok\" = the two outputs together equal `expected.stdout`.\n")
    L.append("| program | KiB | compile C/R s | compile --no-cr s | wasmtime compile s | C/R ÷ wasmtime compile | C/R ÷ no-cr compile | run C/R ms | run --no-cr ms | run wasmtime ms | C/R ÷ no-cr | C/R ÷ wasmtime | ok | points | checkpoint us | restore us | snapshot KiB | C/R ok |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        L.append("| " + " | ".join([
            r["name"], str(r["kib"]), fmt_s(r["c_cr"]), fmt_s(r["c_nocr"]), fmt_s(r["c_wt"]),
            ratio(r["c_cr"], r["c_wt"], 1), ratio(r["c_cr"], r["c_nocr"]),
            fmt_ms(r["r_cr"]), fmt_ms(r["r_nocr"]), fmt_ms(r["r_wt"]),
            ratio(r["r_cr"], r["r_nocr"]), ratio(r["r_cr"], r["r_wt"]),
            "ok" if not r["wrong"] else "; ".join(r["wrong"]),
            str(r["points"] or "-"), str(r["ck"] or "-"), str(r["rs"] or "-"),
            "-" if r["snap"] is None else str(r["snap"] // 1024), r["cr_ok"] or "-",
        ]) + " |")
    long = [r for r in rows if r["r_nocr"] and r["r_nocr"] >= 0.020]
    g = lambda xs: "-" if geomean(xs) is None else f"{geomean(xs):.3f}x"
    L.append("")
    L.append(f"Geometric means over the {len(rows)} programs that compile "
             f"(run-time ratios over the {len(long)} whose `--no-cr` run takes ≥ 20 ms CPU):\n")
    L.append(f"* run C/R ÷ `--no-cr`: **{g([r['r_cr'] / r['r_nocr'] for r in long])}** "
             f"(max {max((r['r_cr'] / r['r_nocr'] for r in long), default=0):.2f}x; goal ≤ 1.05x, none above 1.15x)")
    L.append(f"* run C/R ÷ wasmtime: **{g([r['r_cr'] / r['r_wt'] for r in long])}** (goal ≤ 0.75x)")
    L.append(f"* compile C/R ÷ wasmtime compile: **{g([r['c_cr'] / r['c_wt'] for r in rows])}** (goal ≤ 10x)")
    L.append(f"* compile C/R ÷ `--no-cr` compile: **{g([r['c_cr'] / r['c_nocr'] for r in rows])}** "
             f"(max {max((r['c_cr'] / r['c_nocr'] for r in rows), default=0):.2f}x; goal ≤ 1.5x)")
    L.append(f"* slowest C/R compile: {max(((r['c_cr'], r['name']) for r in rows), default=(0, '-'))[1]} "
             f"{max((r['c_cr'] for r in rows), default=0):.1f} s (goal: none above 30 s)")
    simd = [r for r in rows if r.get("simd")]
    if simd:
        L.append(f"\n## SIMD programs ({len(simd)})\n")
        L.append("The programs above that use 128-bit SIMD (wasmtime refuses them with `-W simd=n`): compiled "
                 "SIMD code (x86-64-v2 baseline, SSE4.2/SSSE3/POPCNT) against wasmtime's, run time (CPU, min of the "
                 "interleaved runs above).\n")
        L.append("| program | run C/R ms | run --no-cr ms | run wasmtime ms | C/R ÷ wasmtime | --no-cr ÷ wasmtime | ok | C/R ok |")
        L.append("|---|---:|---:|---:|---:|---:|---|---|")
        for r in simd:
            L.append("| " + " | ".join([
                r["name"], fmt_ms(r["r_cr"]), fmt_ms(r["r_nocr"]), fmt_ms(r["r_wt"]),
                ratio(r["r_cr"], r["r_wt"]), ratio(r["r_nocr"], r["r_wt"]),
                "ok" if not r["wrong"] else "; ".join(r["wrong"]), r["cr_ok"] or "-",
            ]) + " |")
        slong = [r for r in simd if r["r_nocr"] and r["r_nocr"] >= 0.020]
        L.append("")
        L.append(f"Geometric means over the {len(simd)} SIMD programs (and over the {len(slong)} whose `--no-cr` run "
                 f"takes ≥ 20 ms CPU, where start-up does not dominate); goal: no slower than wasmtime (≤ 1.0x):\n")
        L.append(f"* run C/R ÷ wasmtime: **{g([r['r_cr'] / r['r_wt'] for r in simd])}** "
                 f"(≥ 20 ms: {g([r['r_cr'] / r['r_wt'] for r in slong])})")
        L.append(f"* run `--no-cr` ÷ wasmtime: **{g([r['r_nocr'] / r['r_wt'] for r in simd])}** "
                 f"(≥ 20 ms: {g([r['r_nocr'] / r['r_wt'] for r in slong])})")
    if failed:
        L.append(f"\n## Not compiled ({len(failed)})\n")
        L.append("| program | KiB | reason |")
        L.append("|---|---:|---|")
        for name, size, why in failed:
            L.append(f"| {name} | {size // 1024} | {why} |")
    with open(out_md, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
