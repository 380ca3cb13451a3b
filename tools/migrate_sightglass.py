#!/usr/bin/env python3
"""`just migrate-sightglass`: programs we did not write, moved while they run.

Each Sightglass program of the list (the ones that run long enough to be caught mid-run) is
compiled for x86_64 and aarch64, started in a copy of its folder (`./prog --dir . --control=S`)
and, after a random moment (seeded: SG_MIGRATE_SEED), moved with `wanco migrate` to a local
`wanco agent` in each mode, to x86_64 and to aarch64 (an agent running the program under
qemu-aarch64). `wanco migrate` stays attached and relays the program's output: the source's
output before the move joined with the relayed output must equal the uninterrupted run's
output, and the exit code 0. A program that ended before the move began is reported
as such (not a failure, not a move).

usage: migrate_sightglass.py WANCO OUT.md   (SG_ONLY=a,b to choose programs)
"""
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

PROGRAMS = ["shootout-fib2", "shootout-heapsort", "shootout-seqhash", "shootout-ed25519", "shootout-minicsv", "libsodium-sign"]
MODES = ["precopy", "postcopy", "stop-and-copy"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(wanco, work, isa, runner):
    port = free_port()
    os.makedirs(work, exist_ok=True)
    cmd = [wanco, "agent", "--listen", f"127.0.0.1:{port}", "--insecure", "--work-dir", work, "--isa", isa]
    if runner:
        cmd += ["--runner", runner]
    log = open(os.path.join(work, "agent.log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    for _ in range(100):
        if "listening" in open(os.path.join(work, "agent.log")).read():
            return p, f"tcp://127.0.0.1:{port}"
        time.sleep(0.05)
    raise SystemExit(f"the {isa} agent did not start: {open(os.path.join(work, 'agent.log')).read()}")


def main():
    wanco, out_md = sys.argv[1], sys.argv[2]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    suite = os.environ.get("WANCO_SIGHTGLASS", os.path.join(os.path.dirname(repo), "shared", "bench", "sightglass"))
    if not os.path.isdir(suite):
        print(f"migrate-sightglass: no Sightglass suite at {suite} (set WANCO_SIGHTGLASS): skipped")
        return 0
    seed = int(os.environ.get("SG_MIGRATE_SEED", "1"))
    rng = random.Random(seed)
    only = [p for p in os.environ.get("SG_ONLY", "").split(",") if p]
    programs = only or PROGRAMS
    runner = os.environ.get("WANCO_QEMU_RUNNER", "qemu-aarch64 -L /usr/aarch64-linux-gnu")
    work = tempfile.mkdtemp(prefix="wanco-migrate-sg.")
    agents = []
    rows = []
    failed = 0
    try:
        ax, dest_x = start_agent(wanco, os.path.join(work, "agent-x86_64"), "x86_64", None)
        agents.append(ax)
        aa, dest_a = start_agent(wanco, os.path.join(work, "agent-aarch64"), "aarch64", runner)
        agents.append(aa)
        for name in programs:
            src_dir = os.path.join(suite, name)
            wasm = os.path.join(src_dir, "prog.wasm")
            bins = {}
            for isa in ["x86_64", "aarch64"]:
                b = os.path.join(work, f"{name}.{isa}")
                r = subprocess.run([wanco, "compile", wasm, "--target", isa, "-o", b], capture_output=True)
                if r.returncode != 0:
                    raise SystemExit(f"{name}: compile for {isa} failed: {r.stderr.decode()[-2000:]}")
                bins[isa] = b
            # How long it runs here (the moment of the move is a fraction of it).
            d = os.path.join(work, f"{name}-timing")
            shutil.copytree(src_dir, d)
            t = time.monotonic()
            r = subprocess.run([bins["x86_64"], "--dir", "."], cwd=d, capture_output=True)
            run_s = time.monotonic() - t
            if r.returncode != 0:
                raise SystemExit(f"{name}: the uninterrupted run exits {r.returncode}: {r.stderr.decode()[-2000:]}")
            # The uninterrupted run's output (some expected.stdout files are not what the program prints).
            want = r.stdout
            for dest_isa, dest in [("x86_64", dest_x), ("aarch64", dest_a)]:
                for mode in MODES:
                    at = rng.uniform(0.1, 0.6) * run_s
                    d = os.path.join(work, f"{name}-{dest_isa}-{mode}")
                    shutil.copytree(src_dir, d)
                    ctl = os.path.join(d, "ctl.sock")
                    so = open(os.path.join(d, "src.out"), "wb")
                    se = open(os.path.join(d, "src.err"), "wb")
                    p = subprocess.Popen([bins["x86_64"], "--dir", ".", f"--control={ctl}"], cwd=d, stdin=subprocess.DEVNULL, stdout=so, stderr=se)
                    time.sleep(at)
                    cmd = [wanco, "migrate", str(p.pid), "--to", dest, "--insecure", "--control", ctl, f"--{mode}", "--dir-map", f".={d}", "--json"]
                    if dest_isa == "aarch64":
                        cmd += ["--dest-binary", bins["aarch64"]]
                    try:
                        m = subprocess.run(cmd, capture_output=True, timeout=600)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
                        rows.append((name, dest_isa, mode, f"{at * 1000:.0f}", "FAIL: wanco migrate hung (600 s)", "", ""))
                        failed += 1
                        continue
                    rc_src = p.wait()
                    so.close()
                    se.close()
                    merr = m.stderr.decode(errors="replace")
                    joined = open(os.path.join(d, "src.out"), "rb").read() + m.stdout
                    summary = [l for l in merr.splitlines() if l.startswith("wanco migrate: {")]
                    down = ""
                    if summary:
                        import json

                        v = json.loads(summary[0][len("wanco migrate: "):])
                        rt = v.get("downtime_runtime_ms")
                        down = f"{rt:.1f}" if rt is not None else f"{v['downtime_ms']:.1f}"
                    if "nothing was moved" in merr and "has ended" in merr and rc_src == 0 and joined == want:
                        outcome = "ended before the move"
                    elif m.returncode == 0 and rc_src == 0 and joined == want:
                        outcome = "ok"
                    else:
                        last = merr.strip().splitlines()[-1:] or [""]
                        outcome = f"FAIL: migrate exit {m.returncode}, source exit {rc_src}, output {'equal' if joined == want else 'differs'}: {last[0][:200]}"
                        failed += 1
                    rows.append((name, dest_isa, mode, f"{at * 1000:.0f}", outcome, down, f"{run_s * 1000:.0f}"))
                    print(f"{name} -> {dest_isa} {mode} at {at * 1000:.0f} ms: {outcome}", flush=True)
    finally:
        for a in agents:
            a.kill()
            a.wait()
    with open(out_md, "w") as f:
        f.write("# Sightglass programs moved while they run\n\n")
        f.write(f"`just migrate-sightglass` ({time.strftime('%Y-%m-%d', time.gmtime())}, seed {seed}): each program started on x86_64 in a copy of its folder, moved by `wanco migrate` at a random moment (10–60 % of its run time here) to a local `wanco agent` (x86_64, or aarch64 under qemu-user), attached: the source's output joined with the relayed output must equal the uninterrupted run's, exit code 0.\n\n")
        f.write("| program | to | mode | moved at ms | outcome | stop -> first instruction ms | run time here ms |\n|---|---|---|---:|---|---:|---:|\n")
        for r in rows:
            f.write("| " + " | ".join(r) + " |\n")
        moved = sum(1 for r in rows if r[4] == "ok")
        f.write(f"\n{moved} moved and finished correctly, {sum(1 for r in rows if r[4] == 'ended before the move')} ended before the move, {failed} failed.\n")
    print(open(out_md).read())
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
