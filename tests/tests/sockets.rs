//! WASI preview1 sockets end to end: servers built by clang (wasi-libc `accept4`/`recv`/`send`/
//! `shutdown`/`poll`, `tests/programs/sock/c/`) and by rustc (std's `TcpListener::from_raw_fd`,
//! `tests/programs/sock/rust/`) run with a pre-opened listener on 127.0.0.1 under
//! wasmtime 36.0.9 (`-S preview2=n -S tcplisten=...`, the reference: later wasmtime versions give
//! preview1 modules no sockets; `tools/find-wasmtime36.sh`), compiled for x86_64, compiled for
//! aarch64 under qemu, and in `wanco interp`. The same client code drives every engine and what
//! the clients and the server see must equal wasmtime's. A server checkpointed by SIGUSR1 while
//! idle is restored (on another engine) with its listener and goes on serving new clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wanco_tests::engine::{Engine, Tools};

mod common;

use common::workspace;

fn module(name: &str) -> PathBuf {
    workspace().join("tests/programs/sock/wasm").join(format!("{name}.wasm"))
}

fn work(name: &str) -> PathBuf {
    common::fresh_dir("wanco-sockets", name)
}

fn tools() -> &'static Tools {
    static T: OnceLock<Tools> = OnceLock::new();
    T.get_or_init(|| {
        Tools::locate(&workspace(), &[Engine::AotX86_64, Engine::AotAarch64, Engine::Interp]).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// wasmtime 36.0.9 (installed on demand by `tools/find-wasmtime36.sh`).
fn wasmtime36() -> &'static Path {
    static W: OnceLock<PathBuf> = OnceLock::new();
    W.get_or_init(|| {
        let out = Command::new("bash")
            .arg(workspace().join("tools/find-wasmtime36.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tools/find-wasmtime36.sh");
        assert!(out.status.success(), "wasmtime 36.0.9 (the reference for sockets) is not available: see tools/find-wasmtime36.sh");
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
    })
}

/// `NAME.wasm` compiled by `wanco compile` for `isa`.
fn compiled(name: &str, isa: &str) -> PathBuf {
    common::sock::compiled(&workspace(), &tools().wanco, name, isa)
}

/// A free port on 127.0.0.1 (bound and released: every engine binds it itself).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The command that runs `name` with a listener on `addr` on `engine` (`extra`: runtime options
/// of wanco's engines, e.g. the checkpoint file).
fn server_command(engine: Engine, name: &str, addr: &str, args: &[&str], extra: &[&str]) -> Command {
    let t = tools();
    let mut c = match engine {
        Engine::Wasmtime => {
            let mut c = Command::new(wasmtime36());
            c.args(["run", "-S", "preview2=n", "-S", &format!("tcplisten={addr}")]).arg(module(name));
            c
        }
        Engine::Interp => {
            let mut c = Command::new(&t.wanco);
            c.args(["interp", "--tcplisten", addr]).args(extra).arg(module(name));
            if !args.is_empty() {
                c.arg("--");
            }
            c
        }
        Engine::AotX86_64 => {
            let mut c = Command::new(compiled(name, "x86_64"));
            c.args(["--tcplisten", addr]).args(extra).arg("--");
            c
        }
        Engine::AotAarch64 => {
            let mut c = Command::new(&t.qemu);
            c.arg("-L").arg(&t.aarch64_sysroot).arg(compiled(name, "aarch64"));
            c.args(["--tcplisten", addr]).args(extra).arg("--");
            c
        }
    };
    c.args(args);
    c
}

/// A running server whose stdout is read line by line.
struct Server {
    child: Child,
    out: BufReader<ChildStdout>,
    what: String,
}

impl Server {
    fn start(mut c: Command, what: &str) -> Server {
        c.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("{what}: cannot start {c:?}: {e}"));
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Server { child, out, what: what.to_string() }
    }

    /// The next stdout line (`None` at the end).
    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.out.read_line(&mut l) {
            Ok(0) => None,
            Ok(_) => Some(l),
            Err(e) => panic!("{}: reading stdout: {e}", self.what),
        }
    }

    fn expect_line(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got.as_deref(), Some(want), "{}: stdout", self.what);
    }

    /// Waits (at most `limit`) for the end; returns (exit code, rest of stdout, stderr).
    fn finish(mut self, limit: Duration) -> (Option<i32>, String, String) {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                let mut rest = String::new();
                self.out.read_to_string(&mut rest).expect("read stdout");
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    e.read_to_string(&mut err).expect("read stderr");
                }
                return (st.code(), rest, err);
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                panic!("{}: still running after {limit:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn slowdown(e: Engine) -> u32 {
    if e == Engine::Wasmtime { 1 } else { e.slowdown() }
}

fn connect(addr: &str, e: Engine) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|err| panic!("{e}: connect {addr}: {err}"));
    s.set_read_timeout(Some(Duration::from_secs(30) * slowdown(e))).unwrap();
    s
}

// ---------------------------------------------------------------- the probe

/// `sock_probe` under `engine`: its stdout, and what the client received.
fn run_probe(engine: Engine) -> (String, Vec<u8>) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut s = Server::start(server_command(engine, "sock_probe", &addr, &[], &[]), &format!("sock_probe on {engine}"));
    let mut out = String::new();
    let mut client: Option<TcpStream> = None;
    let mut reader = None;
    while let Some(l) = s.line() {
        out.push_str(&l);
        match l.as_str() {
            "waiting\n" => client = Some(connect(&addr, engine)),
            "accepted\n" => {
                let mut c = client.take().expect("connected before `accepted`");
                c.write_all(b"ping\n").unwrap();
                // Read to the end (the probe shuts down its side), then close.
                reader = Some(std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let _ = c.read_to_end(&mut got);
                    got
                }));
            }
            _ => {}
        }
    }
    let (code, _, err) = s.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "sock_probe on {engine}: exit status; stderr: {err}");
    let got = reader.map(|r| r.join().expect("client thread")).unwrap_or_default();
    (out, got)
}

/// Every errno, fdstat, filestat and poll event the probe prints equals wasmtime 36's.
#[test]
fn probe_answers_like_wasmtime36() {
    let (want, want_client) = run_probe(Engine::Wasmtime);
    assert!(want.ends_with("done\n"), "wasmtime run of the probe:\n{want}");
    assert_eq!(want_client, b"pong\n!\n");
    let engines = [Engine::Interp, Engine::AotX86_64, Engine::AotAarch64];
    let runs: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = engines.iter().map(|&e| sc.spawn(move || run_probe(e))).collect();
        hs.into_iter().map(|h| h.join().expect("probe thread")).collect()
    });
    for (e, (out, client)) in engines.iter().zip(runs) {
        if out != want {
            let first = want.lines().zip(out.lines()).position(|(a, b)| a != b).unwrap_or(0);
            panic!(
                "{e}: the probe's output differs from wasmtime 36's at line {}:\n  wasmtime: {:?}\n  {e}: {:?}\nwhole output:\n{out}",
                first + 1,
                want.lines().nth(first),
                out.lines().nth(first)
            );
        }
        assert_eq!(client, want_client, "{e}: what the client received");
    }
}

// ---------------------------------------------------------------- the key-value server

const CLIENTS: usize = 8;
const ROUNDS: usize = 6;

/// One client's conversation: every request with its response, then what came after `QUIT`.
type Transcript = Vec<(String, String)>;

/// Client `id`: pipelined rounds (three requests in one write), single requests, a key of the
/// shared store, then QUIT. Checks every answer as it comes (sequence number and content).
fn kv_client(addr: &str, id: usize, e: Engine) -> Result<Transcript, String> {
    let mut s = connect(addr, e);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut seq = 0u32;
    let mut t = Transcript::new();
    let mut exchange = |s: &mut TcpStream, reqs: &[(String, String)]| -> Result<(), String> {
        let mut batch = String::new();
        for (q, _) in reqs {
            batch.push_str(q);
            batch.push('\n');
        }
        s.write_all(batch.as_bytes()).map_err(|err| format!("client {id}: send: {err}"))?;
        for (q, want) in reqs {
            let mut l = String::new();
            r.read_line(&mut l).map_err(|err| format!("client {id}: after `{q}`: {err}"))?;
            let got = l.trim_end_matches('\n').to_string();
            if &got != want {
                return Err(format!("client {id}: `{q}` answered `{got}`, expected `{want}`"));
            }
            t.push((q.clone(), got));
        }
        Ok(())
    };
    let mut next = |q: String, a: &str| {
        seq += 1;
        (format!("{seq} {q}"), format!("{seq} {a}"))
    };
    for k in 0..ROUNDS {
        let key = format!("c{id}k{k}");
        let v = format!("v{id}-{k}-{}", "x".repeat(k * 37));
        let reqs = [
            next(format!("SET {key} {v}"), "OK"),
            next(format!("GET {key}"), &format!("VALUE {v}")),
            next(format!("ECHO hello from {id} round {k}"), &format!("hello from {id} round {k}")),
        ];
        exchange(&mut s, &reqs)?;
    }
    for k in 0..ROUNDS {
        let req = next(format!("GET c{id}k{k}"), &format!("VALUE v{id}-{k}-{}", "x".repeat(k * 37)));
        exchange(&mut s, &[req])?;
    }
    let req = next(format!("GET nobody{id}"), "NONE");
    exchange(&mut s, &[req])?;
    let req = next("QUIT".into(), "BYE");
    exchange(&mut s, &[req])?;
    // The server shuts down its side after BYE: the stream ends.
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).map_err(|err| format!("client {id}: after BYE: {err}"))?;
    if !rest.is_empty() {
        return Err(format!("client {id}: bytes after BYE: {:?}", String::from_utf8_lossy(&rest)));
    }
    s.shutdown(Shutdown::Both).ok();
    Ok(t)
}

/// `sock_kv CLIENTS` under `engine` with CLIENTS concurrent clients: every transcript, then the
/// server's stdout and exit status.
fn run_kv(engine: Engine) -> (Vec<Transcript>, String, Option<i32>) {
    let addr = format!("127.0.0.1:{}", free_port());
    let n = CLIENTS.to_string();
    let mut s = Server::start(server_command(engine, "sock_kv", &addr, &[&n], &[]), &format!("sock_kv on {engine}"));
    s.expect_line("ready\n");
    let results: Vec<Result<Transcript, String>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..CLIENTS).map(|id| sc.spawn({
            let addr = addr.clone();
            move || kv_client(&addr, id, engine)
        })).collect();
        hs.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let (code, out, err) = s.finish(Duration::from_secs(60) * slowdown(engine));
    let transcripts = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|m| panic!("sock_kv on {engine}: {m}; server stderr: {err}")))
        .collect();
    (transcripts, out, code)
}

/// Eight concurrent clients get the same answers, in order, from every engine as from wasmtime
/// 36, and the server ends the same way.
#[test]
fn kv_server_serves_concurrent_clients_like_wasmtime36() {
    let (want, want_out, want_code) = run_kv(Engine::Wasmtime);
    assert_eq!(want_code, Some(0));
    let requests = CLIENTS * (3 * ROUNDS + ROUNDS + 2);
    assert_eq!(want_out, format!("served {CLIENTS} connections, {requests} requests, {} keys\n", CLIENTS * ROUNDS));
    for e in [Engine::AotX86_64, Engine::AotAarch64, Engine::Interp] {
        let (got, out, code) = run_kv(e);
        assert_eq!((code, out.as_str()), (want_code, want_out.as_str()), "{e}: exit status and stdout");
        assert_eq!(got, want, "{e}: transcripts differ from wasmtime 36's");
    }
}

// ---------------------------------------------------------------- the Rust echo server

/// `sock_rust_echo 4` (Rust std: `TcpListener::from_raw_fd(3)`, made blocking, connections one
/// after the other) with 4 concurrent clients: (transcripts, stdout, exit status).
fn run_rust_echo(engine: Engine) -> (Vec<Vec<String>>, String, Option<i32>) {
    const N: usize = 4;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut s = Server::start(server_command(engine, "sock_rust_echo", &addr, &["4"], &[]), &format!("sock_rust_echo on {engine}"));
    s.expect_line("ready\n");
    let transcripts: Vec<Vec<String>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..N)
            .map(|id| {
                let addr = addr.clone();
                sc.spawn(move || {
                    let mut c = connect(&addr, engine);
                    let mut r = BufReader::new(c.try_clone().unwrap());
                    let mut t = Vec::new();
                    for k in 0..5 {
                        c.write_all(format!("hello {id}/{k}\n").as_bytes()).unwrap();
                        let mut l = String::new();
                        r.read_line(&mut l).unwrap_or_else(|e| panic!("{engine}: client {id}: {e}"));
                        assert_eq!(l, format!("{} HELLO {id}/{k}\n", k + 1), "{engine}: client {id}");
                        t.push(l);
                    }
                    c.write_all(b"QUIT\n").unwrap();
                    let mut rest = String::new();
                    r.read_to_string(&mut rest).unwrap();
                    t.push(rest);
                    t
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let (code, out, _) = s.finish(Duration::from_secs(60) * slowdown(engine));
    (transcripts, out, code)
}

#[test]
fn rust_echo_server_matches_wasmtime36() {
    let want = run_rust_echo(Engine::Wasmtime);
    assert_eq!((want.1.as_str(), want.2), ("served 4 connections, 24 lines\n", Some(0)));
    assert!(want.0.iter().all(|t| t.last().map(String::as_str) == Some("BYE\n")));
    for e in [Engine::AotX86_64, Engine::AotAarch64, Engine::Interp] {
        assert_eq!(run_rust_echo(e), want, "{e}: transcripts, stdout and exit status differ from wasmtime 36's");
    }
}

// ---------------------------------------------------------------- checkpoint / restore

/// Runs `wanco-snap dump` on a snapshot.
fn dump(snap: &Path) -> String {
    let bin = tools().wanco.with_file_name("wanco-snap");
    let out = Command::new(&bin).arg("dump").arg(snap).output().unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(out.status.success(), "wanco-snap dump failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 dump")
}

/// A server is checkpointed by SIGUSR1 while idle, with its listener and one idle client
/// connection; the snapshot lists both. Restored on `to`, it listens on the same address again,
/// learns at once that the old connection is gone (it counts it as ended), keeps the data the
/// old client stored, and serves new clients to the end.
fn checkpoint_idle_server(from: Engine, to: Engine) {
    let name = format!("{}-to-{}", from.name(), to.name());
    let dir = work(&name);
    let snap = dir.join("server.wsnap");
    let snap_s = snap.to_str().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let what = format!("sock_kv checkpointed on {from}");
    let mut s = Server::start(server_command(from, "sock_kv", &addr, &["3"], &["--checkpoint-file", snap_s]), &what);
    s.expect_line("ready\n");
    // A client stores a value and stays connected, idle.
    let mut old = connect(&addr, from);
    old.write_all(b"1 SET shared kept-across\n").unwrap();
    let mut r = BufReader::new(old.try_clone().unwrap());
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    assert_eq!(l, "1 OK\n");
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(s.child.id() as i32, libc::SIGUSR1) };
    assert_eq!(rc, 0);
    let (code, _, err) = s.finish(Duration::from_secs(30) * slowdown(from));
    assert_eq!(code, Some(0), "{what}: exit status after SIGUSR1; stderr: {err}");
    assert!(err.contains("checkpoint written"), "{what}: stderr: {err}");
    // The old client is not left hanging: its connection ended with the process.
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty());

    let d = dump(&snap);
    assert!(d.contains("wasi sockets (2)"), "dump:\n{d}");
    let listener = d.lines().find(|l| l.contains("tcp listener") && l.contains(&addr) && l.contains("1 accepted"));
    assert!(listener.is_some(), "the listener row names its address and count:\n{d}");
    let conn = d
        .lines()
        .find(|l| l.contains("tcp connection") && l.contains(&format!("#1 of {addr}")))
        .unwrap_or_else(|| panic!("no connection row:\n{d}"));
    let cols: Vec<&str> = conn.split('|').map(str::trim).collect();
    assert!(cols.contains(&"25") && cols.contains(&"5") && cols.contains(&"open"), "bytes in 25, out 5, open: {conn}\n{d}");

    // Restore: no `ready` again; the listener takes new clients on the same address.
    let what = format!("sock_kv restored on {to}");
    let mut c = match to {
        Engine::Interp => {
            let mut c = Command::new(&tools().wanco);
            c.args(["interp", "--restore", snap_s]).arg(module("sock_kv"));
            c
        }
        Engine::AotX86_64 => {
            let mut c = Command::new(compiled("sock_kv", "x86_64"));
            c.args(["--restore", snap_s]);
            c
        }
        _ => {
            let t = tools();
            let mut c = Command::new(&t.qemu);
            c.arg("-L").arg(&t.aarch64_sysroot).arg(compiled("sock_kv", "aarch64")).args(["--restore", snap_s]);
            c
        }
    };
    c.current_dir(&dir);
    let s = Server::start(c, &what);
    let deadline = Instant::now() + Duration::from_secs(30) * slowdown(to);
    let mut new = loop {
        match TcpStream::connect(&addr) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{what}: nobody listens on {addr} again: {e}"),
        }
    };
    new.set_read_timeout(Some(Duration::from_secs(30) * slowdown(to))).unwrap();
    new.write_all(b"1 GET shared\n2 QUIT\n").unwrap();
    let mut got = String::new();
    new.read_to_string(&mut got).unwrap();
    assert_eq!(got, "1 VALUE kept-across\n2 BYE\n", "{what}");
    drop(new);
    let mut third = connect(&addr, to);
    third.write_all(b"7 ECHO third\n8 QUIT\n").unwrap();
    let mut got = String::new();
    third.read_to_string(&mut got).unwrap();
    assert_eq!(got, "7 third\n8 BYE\n", "{what}");
    drop(third);
    // Three connections ended: the reset one and the two new ones.
    let (code, out, err) = s.finish(Duration::from_secs(30) * slowdown(to));
    assert_eq!(code, Some(0), "{what}: stderr: {err}");
    // The guest read CONNRESET on the connection restored as reset.
    assert_eq!(out, "connections reset by their client: 1\nserved 3 connections, 5 requests, 1 keys\n", "{what}: stdout; stderr: {err}");
}

#[test]
fn idle_server_checkpointed_on_x86_64_serves_again_in_the_interpreter() {
    checkpoint_idle_server(Engine::AotX86_64, Engine::Interp);
}

#[test]
fn idle_server_checkpointed_in_the_interpreter_serves_again_on_aarch64() {
    checkpoint_idle_server(Engine::Interp, Engine::AotAarch64);
}

/// Sources and committed modules agree.
#[test]
fn socket_programs_are_built() {
    let root = workspace().join("tests/programs/sock");
    let stems = |d: &Path, ext: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .filter_map(|e| {
                let p = e.ok()?.path();
                (p.extension()? == ext).then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
            })
            .collect();
        v.sort();
        v
    };
    let mut sources = stems(&root.join("c"), "c");
    sources.extend(stems(&root.join("rust/src/bin"), "rs"));
    sources.sort();
    assert_eq!(sources, stems(&root.join("wasm"), "wasm"), "run tools/build-test-programs.sh");
}
