#!/usr/bin/env python3
"""`just gateway-bench`: what `wanco gateway` costs and how long a move pauses its clients.

The C key-value server of the socket tests (tests/programs/sock/wasm/sock_kv.wasm), compiled
for x86_64, on this host over loopback:
  * latency: one client, sequential ECHO requests, direct (--tcplisten 127.0.0.1:P) and
    through the gateway (--tcplisten tls://127.0.0.1:L/kv): median and 99th percentile;
  * throughput: 16 clients, each with 32 requests in flight, for a few seconds, both ways;
  * pause: 16 clients sending requests one after the other while the server is checkpointed
    (SIGUSR1) and restored (x86_64 -> x86_64, and x86_64 -> aarch64 under qemu): the longest
    wait for an answer; every answer is checked (sequence number and content).
Writes bench/results-gateway.md (or the path given).
"""
import os, signal, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WANCO = os.environ.get("WANCO", os.path.join(ROOT, "target/release/wanco"))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bench/results-gateway.md")
KV = os.path.join(ROOT, "tests/programs/sock/wasm/sock_kv.wasm")
QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
tmp = tempfile.mkdtemp(prefix="wanco-gw-bench-")


def sh(*a, **kw):
    subprocess.run(a, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def certs():
    j = lambda f: os.path.join(tmp, f)
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", j("ca.key"), "-out", j("ca.pem"), "-days", "2", "-subj", "/CN=bench CA")
    for name, san, eku in [("gw", "IP:127.0.0.1", "serverAuth"), ("kv", "DNS:kv", "clientAuth")]:
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", j(name + ".key"), "-out", j(name + ".csr"), "-subj", "/CN=" + name)
        with open(j(name + ".ext"), "w") as f:
            f.write(f"subjectAltName={san}\nextendedKeyUsage={eku}\n")
        sh("openssl", "x509", "-req", "-in", j(name + ".csr"), "-CA", j("ca.pem"), "-CAkey", j("ca.key"),
           "-CAcreateserial", "-out", j(name + ".pem"), "-days", "2", "-extfile", j(name + ".ext"))


def port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def env():
    e = dict(os.environ)
    e.update(WANCO_GATEWAY_CERT=os.path.join(tmp, "kv.pem"), WANCO_GATEWAY_KEY=os.path.join(tmp, "kv.key"),
             WANCO_GATEWAY_CA=os.path.join(tmp, "ca.pem"))
    return e


def start_server(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "server.log"), "a"), env=env())
    return p


def wait_ready(p):
    line = p.stdout.readline()
    assert line == b"ready\n", line


def connect(addr):
    for _ in range(500):
        try:
            s = socket.create_connection(addr)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(120)
            return s
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"cannot connect to {addr}")


def latency(addr, n=2000):
    s = connect(addr)
    f = s.makefile("rb")
    lat = []
    for i in range(1, n + 1):
        t = time.perf_counter()
        s.sendall(b"%d ECHO ping\n" % i)
        assert f.readline() == b"%d ping\n" % i
        lat.append(time.perf_counter() - t)
    s.sendall(b"%d QUIT\n" % (n + 1))
    f.readline()
    s.close()
    lat.sort()
    return statistics.median(lat) * 1e6, lat[int(len(lat) * 0.99)] * 1e6


def throughput(addr, clients=16, depth=32, secs=3.0):
    done = [0] * clients
    stop = time.time() + secs

    def run(k):
        s = connect(addr)
        f = s.makefile("rb")
        seq = 0
        while time.time() < stop:
            batch = b"".join(b"%d ECHO %d-%d\n" % (seq + i, k, seq + i) for i in range(1, depth + 1))
            s.sendall(batch)
            for i in range(1, depth + 1):
                assert f.readline() == b"%d %d-%d\n" % (seq + i, k, seq + i)
            seq += depth
        done[k] = seq
        s.sendall(b"%d QUIT\n" % (seq + 1))
        f.readline()
        s.close()

    ts = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    t0 = time.time()
    [t.start() for t in ts]
    [t.join() for t in ts]
    return sum(done) / (time.time() - t0)


def pause(gw_client, link, kv_bin, to_cmd, clients=16):
    """Clients keep asking while the server moves; returns the longest wait and the answers."""
    snap = os.path.join(tmp, "kv.wsnap")
    p = start_server([kv_bin, "--tcplisten", f"tls://127.0.0.1:{link}/kv", "--checkpoint-file", snap, "--"])
    wait_ready(p)
    stop = threading.Event()
    worst = [0.0] * clients
    answers = [0] * clients
    errors = []

    def run(k):
        try:
            s = connect(gw_client)
            f = s.makefile("rb")
            seq = 0
            while not stop.is_set():
                seq += 1
                t = time.perf_counter()
                s.sendall(b"%d SET k%d v%d\n" % (seq, k, seq))
                assert f.readline() == b"%d OK\n" % seq
                seq += 1
                s.sendall(b"%d GET k%d\n" % (seq, k))
                assert f.readline() == b"%d VALUE v%d\n" % (seq, seq - 1)
                worst[k] = max(worst[k], time.perf_counter() - t)
                answers[k] += 2
            s.sendall(b"%d QUIT\n" % (seq + 1))
            assert f.readline() == b"%d BYE\n" % (seq + 1)
            s.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {k}: {e!r}")

    ts = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    [t.start() for t in ts]
    time.sleep(1.5)
    t0 = time.perf_counter()
    p.send_signal(signal.SIGUSR1)
    p.wait(timeout=60)
    t1 = time.perf_counter()
    q = start_server(to_cmd + ["--restore", snap])
    time.sleep(3.0)
    stop.set()
    [t.join() for t in ts]
    q.send_signal(signal.SIGTERM)
    q.wait(timeout=30)
    assert not errors, errors
    return max(worst) * 1e3, statistics.median(worst) * 1e3, (t1 - t0) * 1e3, sum(answers)


def main():
    certs()
    kv64 = os.path.join(tmp, "kv.x86_64")
    kva64 = os.path.join(tmp, "kv.aarch64")
    sh(WANCO, "compile", KV, "--target", "x86_64", "-o", kv64)
    sh(WANCO, "compile", KV, "--target", "aarch64", "-o", kva64)
    link, client = port(), port()
    gw = subprocess.Popen([WANCO, "gateway", "--link", f"127.0.0.1:{link}", "--program", f"kv=127.0.0.1:{client}",
                           "--cert", os.path.join(tmp, "gw.pem"), "--key", os.path.join(tmp, "gw.key"),
                           "--ca", os.path.join(tmp, "ca.pem"), "--timeout", "120"],
                          stderr=open(os.path.join(tmp, "gateway.log"), "w"))
    time.sleep(0.5)
    rows = []
    try:
        direct = port()
        p = start_server([kv64, "--tcplisten", f"127.0.0.1:{direct}", "--"])
        wait_ready(p)
        d_lat = latency(("127.0.0.1", direct))
        d_tp = throughput(("127.0.0.1", direct))
        d_tp1 = throughput(("127.0.0.1", direct), depth=1)
        p.terminate()
        p.wait()
        p = start_server([kv64, "--tcplisten", f"tls://127.0.0.1:{link}/kv", "--"])
        wait_ready(p)
        g_lat = latency(("127.0.0.1", client))
        g_tp = throughput(("127.0.0.1", client))
        g_tp1 = throughput(("127.0.0.1", client), depth=1)
        p.terminate()
        p.wait()
        time.sleep(0.5)
        moves = [("x86_64 -> x86_64", [kv64]), ("x86_64 -> aarch64 (qemu)", QEMU + [kva64])]
        for name, cmd in moves:
            rows.append((name,) + pause(("127.0.0.1", client), link, kv64, cmd))
            time.sleep(0.5)
    finally:
        gw.terminate()
        gw.wait()
    with open(OUT, "w") as f:
        f.write("# `wanco gateway` (just gateway-bench)\n\n")
        f.write(f"`tools/gateway_bench.py`, {time.strftime('%Y-%m-%d')}, this host over loopback; the C kv server "
                "(`sock_kv`) compiled for x86_64; `wanco` = `%s`.\n\n" % os.path.relpath(WANCO, ROOT))
        f.write("| path | latency median (µs) | latency p99 (µs) | requests/s, 16 clients x 1 in flight | requests/s, 16 clients x 32 in flight |\n|---|---|---|---|---|\n")
        f.write(f"| direct (`--tcplisten 127.0.0.1:P`) | {d_lat[0]:.0f} | {d_lat[1]:.0f} | {d_tp1:.0f} | {d_tp:.0f} |\n")
        f.write(f"| through the gateway (mutual TLS link) | {g_lat[0]:.0f} | {g_lat[1]:.0f} | {g_tp1:.0f} | {g_tp:.0f} |\n")
        f.write(f"\nAdded latency per request: {g_lat[0] - d_lat[0]:.0f} µs (median); throughput "
                f"{100 * g_tp1 / d_tp1:.0f}% of direct with one request in flight per client, "
                f"{100 * g_tp / d_tp:.0f}% with 32. With 32 in flight a direct connection is held back by "
                "Nagle's algorithm (the guest cannot set TCP_NODELAY in WASI preview1; the server answers each "
                "request with its own send, and the client's delayed ACKs stall them); behind the gateway the "
                "guest writes into a local socket pair and the gateway's sockets have TCP_NODELAY.\n\n")
        f.write("Moves with 16 clients asking without pause (checkpoint by SIGUSR1, restore from the snapshot "
                "file, every answer checked):\n\n| move | longest wait for an answer (ms) | median of the clients' "
                "longest (ms) | checkpoint until exit (ms) | answers |\n|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r[0]} | {r[1]:.0f} | {r[2]:.0f} | {r[3]:.0f} | {r[4]} |\n")
    print(open(OUT).read())


if __name__ == "__main__":
    main()
