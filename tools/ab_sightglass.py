#!/usr/bin/env python3
"""A/B of two `wanco compile` variants on Sightglass programs, side by side.

    python3 tools/ab_sightglass.py [--only a,b] [--runs N] [--flags "..."] A B [OUT.md]

A and B are each a `wanco` binary followed by environment settings for its
compiles, in shell syntax, e.g.

    "target/release/wanco WANCO_FAST_LOOPS=0"  "target/release/wanco"
    "target/release/wanco"  'target/release/wanco WANCO_LLVM_ARGS="-align-all-functions=6"'

(copy a binary under another name to compare two builds). Each program is
compiled once per variant (C/R, or what `--flags` adds, e.g. `--no-cr`),
then the two binaries run interleaved `--runs` times; the output of the
first run of each is checked against `expected.stdout`. Printed, and written
to OUT.md as a table: whole-process CPU time (user + system of the child,
from `wait4`), the minimum of the runs, and B ÷ A for the run and for the
compile, with their geometric means. On this project's VMs timings drift
by 10-20 % over minutes: only the ratios of one interleaved run mean
anything. A benchmark, not a test: nothing is asserted.

$WANCO_SIGHTGLASS: the suite (default ../shared/bench/sightglass).
"""
import argparse
import math
import os
import shlex
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_sightglass as bs  # noqa: E402


def variant(spec):
    """(label, binary, environment) of a variant given as `BINARY [VAR=VALUE ...]`."""
    words = shlex.split(spec)
    if not words:
        sys.exit("ab_sightglass: an empty variant")
    env = dict(os.environ)
    for w in words[1:]:
        k, eq, v = w.partition("=")
        if not eq:
            sys.exit(f"ab_sightglass: `{w}` in variant `{spec}` is not VAR=VALUE")
        env[k] = v
    binary = os.path.abspath(words[0])
    if not os.access(binary, os.X_OK):
        sys.exit(f"ab_sightglass: {words[0]} is not an executable")
    return spec, binary, env


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--only", help="programs, comma-separated (default: all that have prog.wasm)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--flags", default="", help="extra `wanco compile` options for both")
    args = ap.parse_args()
    suite = os.environ.get("WANCO_SIGHTGLASS", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench", "sightglass"))
    if not os.path.isdir(suite):
        sys.exit(f"ab_sightglass: no Sightglass suite at {suite} (set WANCO_SIGHTGLASS)")
    va, vb = variant(args.a), variant(args.b)
    names = args.only.split(",") if args.only else sorted(n for n in os.listdir(suite) if os.path.isfile(os.path.join(suite, n, "prog.wasm")))
    work = tempfile.mkdtemp(prefix="wanco-ab-")
    rows, run_ratios, compile_ratios = [], [], []
    try:
        for name in names:
            src = os.path.join(suite, name)
            if not os.path.isfile(os.path.join(src, "prog.wasm")):
                print(f"{name}: no prog.wasm in {src}", flush=True)
                continue
            d = os.path.join(work, name)
            shutil.copytree(src, d)
            exp = os.path.join(d, "expected.stdout")
            exp = bs.normalize(name, open(exp, "rb").read()) if os.path.isfile(exp) else None
            bins, comp, note = {}, {}, ""
            for i, (label, binary, env) in enumerate((va, vb)):
                out = os.path.join(work, f"{name}.{i}")
                cmd = [binary, "compile"] + shlex.split(args.flags) + [os.path.join(d, "prog.wasm"), "-o", out]
                rc, cpu, _, _, err = bs.run_capture(cmd, env=env, timeout=1800)
                if rc != 0:
                    note = f"{'AB'[i]} does not compile: {bs.first_error(err)}"
                    break
                bins[i], comp[i] = out, cpu
            if len(bins) < 2:
                print(f"{name}: {note}", flush=True)
                rows.append((name, None, None, None, None, note))
                continue
            best = {}
            for r in range(args.runs):
                for i, p in bins.items():
                    if r == 0:
                        rc, cpu, _, out, _ = bs.run_capture([p, "--dir", "."], cwd=d, timeout=600)
                        if rc != 0 or (exp is not None and bs.normalize(name, out) != exp):
                            note += f"{'AB'[i]}: wrong output (exit {rc}) "
                    else:
                        rc, cpu, _ = bs.run([p, "--dir", "."], cwd=d, timeout=600)
                    best[i] = min(best.get(i, float("inf")), cpu)
            rr, cr = best[1] / best[0], comp[1] / comp[0]
            run_ratios.append(rr)
            compile_ratios.append(cr)
            rows.append((name, best[0], best[1], comp[0], comp[1], note.strip() or "ok"))
            print(f"{name}: run {best[0] * 1000:.1f} / {best[1] * 1000:.1f} ms = {rr:.3f}; compile {comp[0]:.2f} / {comp[1]:.2f} s = {cr:.3f} {note}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not run_ratios:
        sys.exit("ab_sightglass: nothing compiled with both variants")
    g_run, g_comp = bs.geomean(run_ratios), bs.geomean(compile_ratios)
    print(f"geomean B / A: run {g_run:.3f}, compile {g_comp:.3f} ({len(run_ratios)} programs)")
    if args.out:
        with open(args.out, "w") as f:
            f.write("# A/B of two compiler variants on Sightglass\n\n")
            f.write(f"* A: `{va[0]}`\n* B: `{vb[0]}`\n* compile flags for both: `{args.flags or '(none)'}`\n")
            f.write(f"* whole-process CPU, minimum of {args.runs} interleaved runs; one compile each (CPU seconds)\n\n")
            f.write("| program | run A ms | run B ms | B ÷ A run | compile A s | compile B s | B ÷ A compile | output |\n")
            f.write("|---|---:|---:|---:|---:|---:|---:|---|\n")
            for name, ra, rb, ca, cb, note in rows:
                if ra is None:
                    f.write(f"| {name} | | | | | | | {note} |\n")
                else:
                    f.write(f"| {name} | {ra * 1000:.1f} | {rb * 1000:.1f} | {rb / ra:.3f} | {ca:.2f} | {cb:.2f} | {cb / ca:.3f} | {note} |\n")
            f.write(f"\nGeometric means of B ÷ A over {len(run_ratios)} programs: run **{g_run:.3f}**, compile **{g_comp:.3f}**.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
