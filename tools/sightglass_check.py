#!/usr/bin/env python3
"""Sightglass (wasmtime's benchmark suite) compiled for both ISAs, and
snapshots moved between them at points nobody chose.

Usage: sightglass_check.py WANCO WANCO_SNAP OUT.md

For every program `<suite>/<name>/prog.wasm` (suite: $WANCO_SIGHTGLASS,
default ../shared/bench/sightglass next to the repository), in a copy of
its folder (preopened as `.`):

1. `wanco compile` for x86_64 and for aarch64 (checkpoint/restore on, the
   defaults otherwise); the compile's CPU time (children's rusage).
2. The x86_64 binary run natively, the aarch64 one under `qemu-aarch64`;
   stdout and stderr compared with `expected.stdout` / `expected.stderr`
   (`hashset`'s timing line and a final newline aside, as in
   tools/sightglass_interp.py).
3. Cross-ISA checkpoint/restore: the x86_64 run counts its migration
   points (`--count-points`); a point is drawn at random (seeded by the
   program's name and $SG_CHECK_SEED), the x86_64 binary checkpoints
   there, `wanco-snap translate --to aarch64` lays the snapshot out for
   the aarch64 binary, which restores it under qemu; then the other way
   (a second point: checkpoint under qemu, translate, restore natively).
   The outputs before and after together must equal the expected ones.

Each run has a CPU-time limit ($SG_CHECK_CPU seconds, default 300; a
compile $SG_CHECK_COMPILE_CPU, default 1200). $SG_ONLY=a,b picks
programs. The table is rewritten after every program, so a partial run
leaves a partial table. Not a test (nothing is asserted), but every `fail`
is a bug.
"""
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sightglass_interp import first_diff, normalize, suite_programs  # noqa: E402

QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]


def run(cmd, cwd, cpu_limit, stdin=None):
    """Run `cmd`; returns (status text or None when it exited 0, exit code, stdout, stderr, CPU s)."""
    def limits():
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 5))
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=o, stderr=e, preexec_fn=limits,
                             start_new_session=True)
        killed = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > cpu_limit * 10 and not killed:
                os.killpg(p.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        o.seek(0)
        e.seek(0)
        out, err = o.read(), e.read()
    cpu = ru.ru_utime + ru.ru_stime
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if killed or sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_limit):
        return "timeout", None, out, err, cpu
    rc = os.waitstatus_to_exitcode(status)
    return None, rc, out, err, cpu


def last_line(b: bytes) -> str:
    lines = [l for l in b.decode(errors="replace").splitlines() if l.strip()]
    return lines[-1][:120].replace("|", "\\|") if lines else ""


def compare(name, src, out, err):
    why = []
    for stream, got in (("stdout", out), ("stderr", err)):
        path = os.path.join(src, "expected." + stream)
        want = open(path, "rb").read() if os.path.isfile(path) else b""
        if normalize(name, got) != normalize(name, want):
            why.append(f"{stream} differs ({first_diff(normalize(name, got), normalize(name, want))})")
    return why


def check_run(name, src, res):
    status, rc, out, err, cpu = res
    if status:
        return status, f"over the CPU limit ({cpu:.0f} s)"
    why = [] if rc == 0 else [f"exit {rc}: {last_line(err)}"]
    why += compare(name, src, out, err)
    return ("ok" if not why else "fail"), "; ".join(why)


def cross(name, src, d, snap_tool, from_cmd, to_cmd, to_binary, to_isa, point, cpu):
    """Checkpoint with `from_cmd` at `point`, translate for `to_binary`, restore with `to_cmd`."""
    snap, moved = os.path.join(d, "cr.wsnap"), os.path.join(d, "cr-moved.wsnap")
    for f in (snap, moved):
        if os.path.exists(f):
            os.remove(f)
    s1, rc1, out1, err1, _ = run(from_cmd + ["--dir", ".", "--checkpoint-after-points", str(point),
                                             "--checkpoint-file", snap], d, cpu)
    if s1 or rc1 != 0:
        return "fail", f"checkpoint run: {s1 or f'exit {rc1}'}: {last_line(err1)}"
    if not os.path.exists(snap):
        # The program ended before that point. Its count is the same in every
        # run unless its work depends on `random_get` (some libsodium programs
        # draw message lengths): then the whole run must still be right.
        err1 = re.sub(rb"(?m)^note: the program ended after \d+ migration points, before .*\n", b"", err1)
        why = compare(name, src, out1, err1)
        if why:
            return "fail", f"no snapshot written at point {point}, and the run is wrong: {'; '.join(why)}"
        return "ended", f"the run ended before point {point} (its point count varies between runs: random input); its output is right"
    s2, rc2, _, err2, _ = run([snap_tool, "translate", snap, "--to", to_isa, "--binary", to_binary, "-o", moved], d, cpu)
    if s2 or rc2 != 0:
        return "fail", f"translate: {s2 or f'exit {rc2}'}: {last_line(err2)}"
    s3, rc3, out2, err2, _ = run(to_cmd + ["--restore", moved], d, cpu)
    if s3:
        return s3, "restored run over the CPU limit"
    why = [] if rc3 == 0 else [f"restored run exit {rc3}: {last_line(err2)}"]
    # The runtime's own line about the snapshot is not the program's output.
    err1 = re.sub(rb"(?m)^checkpoint written to .*\n", b"", err1)
    why += compare(name, src, out1 + out2, err1 + err2)
    return ("ok" if not why else "fail"), "; ".join(why)


def check_one(wanco, snap_tool, name, src, work, cpu, ccpu, seed):
    d = os.path.join(work, name)
    shutil.copytree(src, d)
    r = {"name": name, "kib": os.path.getsize(os.path.join(src, "prog.wasm")) // 1024, "detail": []}
    x86, a64 = os.path.join(d, "prog.x86_64"), os.path.join(d, "prog.aarch64")
    try:
        for isa, out in (("x86_64", x86), ("aarch64", a64)):
            s, rc, _, err, t = run([wanco, "compile", "prog.wasm", "--target", isa, "-o", out], d, ccpu)
            r[f"compile_{isa}"] = t
            if s or rc != 0:
                r[isa] = "compile fails"
                r["detail"].append(f"compile {isa}: {s or f'exit {rc}'}: {last_line(err)}")
        if r.get("x86_64") or r.get("aarch64"):
            return r
        r["x86_64"], why = check_run(name, src, run([x86, "--dir", "."], d, cpu))
        if why:
            r["detail"].append(f"x86_64: {why}")
        r["aarch64"], why = check_run(name, src, run(QEMU + [a64, "--dir", "."], d, cpu))
        if why:
            r["detail"].append(f"aarch64: {why}")
        s, rc, _, err, _ = run([x86, "--dir", ".", "--count-points"], d, cpu)
        m = re.search(rb"migration points: (\d+)", err)
        if s or not m:
            r["detail"].append(f"count points: {s or f'exit {rc}'}")
            return r
        points = int(m.group(1))
        r["points"] = points
        if points < 2:
            r["detail"].append("fewer than 2 migration points")
            return r
        rng = random.Random(f"{seed}:{name}")
        p1, p2 = rng.randint(1, points - 1), rng.randint(1, points - 1)
        r["p_x2a"], r["p_a2x"] = p1, p2
        r["x2a"], why = cross(name, src, d, snap_tool, [x86], QEMU + [a64], a64, "aarch64", p1, cpu)
        if why:
            r["detail"].append(f"x86_64 -> aarch64 at {p1}: {why}")
        r["a2x"], why = cross(name, src, d, snap_tool, QEMU + [a64], [x86], x86, "x86_64", p2, cpu)
        if why:
            r["detail"].append(f"aarch64 -> x86_64 at {p2}: {why}")
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def write_md(out_md, suite, rows, total, cpu, seed):
    def count(key, v):
        return sum(1 for r in rows if r.get(key) == v)
    L = ["# Sightglass compiled for x86_64 and aarch64, snapshots moved between them\n",
         f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores; suite: `{suite}`; regenerate with "
         f"`just sightglass-check` (tools/sightglass_check.py; seed {seed}). Each program compiled with C/R for both "
         f"ISAs (compile CPU seconds, one compile each, parts on all cores), run natively (x86_64) and under "
         f"qemu-aarch64 (aarch64), outputs compared with `expected.stdout` / `expected.stderr`. Then a checkpoint at a "
         f"random migration point of the x86_64 run, translated (`wanco-snap translate`) and restored on aarch64 under "
         f"qemu, and one at another random point of the aarch64 run restored on x86_64: the outputs before and after "
         f"together must equal the expected ones. Limit {cpu} s CPU per run.\n",
         f"Programs checked: {len(rows)} of {total}. x86_64: **{count('x86_64', 'ok')} ok**, aarch64: "
         f"**{count('aarch64', 'ok')} ok**, x86_64 -> aarch64 C/R: **{count('x2a', 'ok')} ok**, aarch64 -> x86_64 "
         f"C/R: **{count('a2x', 'ok')} ok**; 'ended' = the run ended before the drawn point (a program whose point count varies from run to run); anything else is in the detail column.\n",
         "| program | KiB | compile x86_64 s | compile aarch64 s | x86_64 | aarch64 (qemu) | points | x86_64 -> aarch64 (point) | aarch64 -> x86_64 (point) | detail |",
         "|---|---:|---:|---:|---|---|---:|---|---|---|"]
    for r in rows:
        def cr(k, p):
            return f"{r[k]} ({r[p]})" if k in r else "-"
        L.append(f"| {r['name']} | {r['kib']} | {r.get('compile_x86_64', 0):.1f} | {r.get('compile_aarch64', 0):.1f} | "
                 f"{r.get('x86_64', '-')} | {r.get('aarch64', '-')} | {r.get('points', '-')} | {cr('x2a', 'p_x2a')} | "
                 f"{cr('a2x', 'p_a2x')} | {'; '.join(r['detail'])} |")
    with open(out_md + ".tmp", "w") as f:
        f.write("\n".join(L) + "\n")
    os.replace(out_md + ".tmp", out_md)


def main():
    wanco, snap_tool, out_md = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    suite, names = suite_programs("sightglass-check")
    cpu = int(os.environ.get("SG_CHECK_CPU", "300"))
    ccpu = int(os.environ.get("SG_CHECK_COMPILE_CPU", "1200"))
    seed = os.environ.get("SG_CHECK_SEED", "0")
    work = tempfile.mkdtemp(prefix="wanco-sg-check-")
    rows = []
    try:
        for name in names:
            r = check_one(wanco, snap_tool, name, os.path.join(suite, name), work, cpu, ccpu, seed)
            rows.append(r)
            print(f"sightglass-check: {name}: x86_64 {r.get('x86_64', '-')}, aarch64 {r.get('aarch64', '-')}, "
                  f"x86_64->aarch64 {r.get('x2a', '-')}, aarch64->x86_64 {r.get('a2x', '-')} {'; '.join(r['detail'])}",
                  file=sys.stderr, flush=True)
            write_md(out_md, suite, rows, len(names), cpu, seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
