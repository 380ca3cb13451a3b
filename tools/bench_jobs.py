#!/usr/bin/env python3
"""Compiling in parts (`wanco compile -j N`): compile time and run time, -j1 against -jN.

Usage: bench_jobs.py WANCO OUT.md

For each Sightglass program (suite: $WANCO_SIGHTGLASS, default ../shared/bench/sightglass next
to the repository; programs: $BENCH_JOBS_ONLY, comma-separated, default a few large ones):

* compile time of `wanco compile -j1` and `-jN` (N: $BENCH_JOBS_N, default 2), C/R, and of
  `--no-cr -j1`: wall time and whole-process CPU time (rusage), $BENCH_JOBS_COMPILES rounds
  (default 2) interleaved (j1, jN, j1, jN, ...), the minimum kept;
* run time of the four builds C/R -j1, C/R -jN, --no-cr -j1, --no-cr -jN: whole-process CPU
  time, $BENCH_JOBS_RUNS rounds (default 3) interleaved, the minimum kept; each first run's
  stdout compared with the folder's expected.stdout.

The machine may be shared: the ratios (measured side by side, interleaved) are what counts.
A benchmark: nothing is asserted about a time.
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sightglass import run, run_capture, normalize, geomean  # noqa: E402

DEFAULT = ["sqlite3", "shootout-ed25519", "bz2", "spidermonkey", "blind-sig", "gcc-loops", "shootout-seqhash", "richards"]


def critical_path(stderr: bytes, process_cpu: float):
    """The wall time a -jN compile would take on idle cores, from its `WANCO_PARTS_TIMING` lines
    (each part's thread CPU for its IR, generated one part after the other, and for its
    optimisation + code generation, side by side) and its whole CPU time (the rest is serial)."""
    parts = []
    for m in re.finditer(rb"part (\d+): .*IR ([0-9.]+), optimisation \+ code generation ([0-9.]+)", stderr):
        parts.append((int(m.group(1)), float(m.group(2)), float(m.group(3))))
    if not parts:
        return None
    parts.sort()
    serial = process_cpu - sum(ir + opt for _, ir, opt in parts)
    cum, path = 0.0, 0.0
    for _, ir, opt in parts:
        cum += ir
        path = max(path, cum + opt)
    return max(serial, 0.0) + path


def main():
    wanco, out_md = os.path.abspath(sys.argv[1]), sys.argv[2]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    suite = os.environ.get("WANCO_SIGHTGLASS", os.path.join(os.path.dirname(repo), "shared", "bench", "sightglass"))
    n = int(os.environ.get("BENCH_JOBS_N", "2"))
    compiles = int(os.environ.get("BENCH_JOBS_COMPILES", "2"))
    runs = int(os.environ.get("BENCH_JOBS_RUNS", "3"))
    names = os.environ.get("BENCH_JOBS_ONLY", ",".join(DEFAULT)).split(",")
    names = [x for x in names if os.path.isfile(os.path.join(suite, x, "prog.wasm"))]
    work = tempfile.mkdtemp(prefix="wanco-jobs-")
    rows = []
    for name in names:
        src = os.path.join(suite, name)
        wasm = os.path.join(src, "prog.wasm")
        builds = {"cr1": ["-j1"], f"cr{n}": [f"-j{n}"], "nocr1": ["-j1", "--no-cr"], f"nocr{n}": [f"-j{n}", "--no-cr"]}
        ct = {k: (None, None) for k in builds}
        crit = [None]
        failed = None
        for rnd in range(compiles):  # noqa: C901
            for k, args in builds.items():
                # --no-cr -jN is built once (for the run times), not timed.
                if rnd > 0 and k == f"nocr{n}":
                    continue
                exe = os.path.join(work, f"{name}.{k}")
                env = dict(os.environ, WANCO_PARTS_TIMING="1")
                rc, cpu, wall, _, err = run_capture([wanco, "compile", wasm, *args, "-o", exe], env=env, timeout=1800)
                if k == f"cr{n}" and rc == 0:
                    est = critical_path(err, cpu)
                    if est is not None:
                        crit[0] = est if crit[0] is None else min(crit[0], est)
                if rc != 0:
                    failed = f"compile {k}: exit {rc}"
                    break
                w0, c0 = ct[k]
                ct[k] = (wall if w0 is None else min(w0, wall), cpu if c0 is None else min(c0, cpu))
                print(f"bench-jobs: {name} compile {k}: {wall:.1f} s wall, {cpu:.1f} s cpu", file=sys.stderr)
            if failed:
                break
        if failed:
            rows.append((name, failed))
            write(out_md, rows, n, compiles, runs)
            continue
        expected = open(os.path.join(src, "expected.stdout"), "rb").read()
        rt = {k: None for k in builds}
        bad = []
        for rnd in range(runs):
            for k in builds:
                d = os.path.join(work, f"{name}.{k}.dir")
                if not os.path.isdir(d):
                    os.system(f"cp -r '{src}' '{d}'")
                rc, cpu, _, out, _ = run_capture([os.path.join(work, f"{name}.{k}"), "--dir", "."], cwd=d, timeout=300)
                if rnd == 0 and (rc != 0 or normalize(name, out) != normalize(name, expected)):
                    bad.append(k)
                rt[k] = cpu if rt[k] is None else min(rt[k], cpu)
        rows.append((name, ct, rt, bad, crit[0]))
        print(f"bench-jobs: {name}: run {rt}", file=sys.stderr)
        write(out_md, rows, n, compiles, runs)
    write(out_md, rows, n, compiles, runs)
    print(f"bench-jobs: results in {out_md}", file=sys.stderr)


def write(out_md, rows, n, compiles, runs):
    """The results file for the programs done so far."""
    with open(out_md, "w") as f:
        f.write(f"# Compiling in parts: -j1 against -j{n}\n\n")
        f.write(f"Sightglass programs; compile: minimum of {compiles} interleaved rounds (wall and CPU seconds); "
                f"run: whole-process CPU time, minimum of {runs} interleaved rounds (ms). "
                f"Critical path: the wall time -j{n} would take on idle cores, from its parts' own thread CPU "
                f"(`WANCO_PARTS_TIMING`: IR one part after the other, optimisation + code generation side by side) "
                f"plus the rest of its CPU time as serial; -j1 CPU ÷ that is the speed-up to expect on an idle machine. "
                f"Machine cores: {os.cpu_count()} (possibly shared: compare the ratios).\n\n")
        f.write(f"| program | compile -j1 wall | compile -j{n} wall | -j{n} ÷ -j1 wall | -j{n} ÷ -j1 CPU | -j1 CPU ÷ -j{n} critical path | C/R ÷ --no-cr compile (-j1) | "
                f"run C/R -j1 | run C/R -j{n} | -j{n} ÷ -j1 run (C/R) | -j{n} ÷ -j1 run (--no-cr) | C/R ÷ --no-cr run (-j1) | C/R ÷ --no-cr run (-j{n}) | output |\n")
        f.write("|" + "---|" * 14 + "\n")
        cw, cc, rr, rn, o1, on, sp = [], [], [], [], [], [], []
        for row in rows:
            if len(row) == 2:
                f.write(f"| {row[0]} | {row[1]} |" + " |" * 12 + "\n")
                continue
            name, ct, rt, bad, est = row
            (w1, c1), (wn, cn), (wb, _) = ct["cr1"], ct[f"cr{n}"], ct["nocr1"]
            r = lambda a, b: a / b if a and b else None  # noqa: E731
            vals = [r(wn, w1), r(cn, c1), r(rt[f"cr{n}"], rt["cr1"]), r(rt[f"nocr{n}"], rt["nocr1"]), r(rt["cr1"], rt["nocr1"]), r(rt[f"cr{n}"], rt[f"nocr{n}"]), r(c1, est)]
            for lst, v in zip([cw, cc, rr, rn, o1, on, sp], vals):
                lst.append(v)
            fx = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            f.write(f"| {name} | {w1:.1f} | {wn:.1f} | {fx(vals[0])} | {fx(vals[1])} | {fx(vals[6])} | {fx(r(w1, wb))} | {rt['cr1']*1000:.0f} | {rt[f'cr{n}']*1000:.0f} | "
                    f"{fx(vals[2])} | {fx(vals[3])} | {fx(vals[4])} | {fx(vals[5])} | {'ok' if not bad else 'WRONG: ' + ','.join(bad)} |\n")
        g = lambda xs: "-" if geomean(xs) is None else f"{geomean(xs):.2f}"  # noqa: E731
        f.write(f"| **geomean** | | | {g(cw)} | {g(cc)} | {g(sp)} | | | | {g(rr)} | {g(rn)} | {g(o1)} | {g(on)} | |\n")


if __name__ == "__main__":
    main()
