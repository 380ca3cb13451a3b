//! `wanco gateway` end to end: the C key-value server of `sockets.rs` (`sock_kv`) listens behind
//! a gateway (`--tcplisten tls://127.0.0.1:PORT/kv`, mutual TLS with certificates made here by
//! rcgen). Sixteen clients send sequence-numbered requests without pause while the server is
//! checkpointed (SIGUSR1) and restored on another engine and ISA, twice (x86_64 → aarch64 under
//! qemu → the interpreter); a seventeenth client connects while the server is away. Every
//! client must see every answer exactly once, in order and right, and no error; the server's
//! own count of requests must equal the clients'. Failure cases: a runtime with a certificate
//! for another program is refused; a program that never comes back has its clients reset after
//! the gateway's timeout; a restarted gateway resets its clients, and the program (which
//! reattaches) serves new ones.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wanco_tests::engine::{Engine, Tools};

mod common;

use common::workspace;

fn module() -> PathBuf {
    workspace().join("tests/programs/sock/wasm/sock_kv.wasm")
}

fn work(name: &str) -> PathBuf {
    common::fresh_dir("wanco-gateway", name)
}

fn tools() -> &'static Tools {
    static T: OnceLock<Tools> = OnceLock::new();
    T.get_or_init(|| {
        Tools::locate(&workspace(), &[Engine::AotX86_64, Engine::AotAarch64, Engine::Interp]).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// `sock_kv.wasm` compiled by `wanco compile` for `isa`.
fn compiled(isa: &str) -> PathBuf {
    common::sock::compiled(&workspace(), &tools().wanco, "sock_kv", isa)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CA, the gateway's certificate (for 127.0.0.1), the runtime's for program `kv`, and one
/// for program `other`.
struct Pki {
    ca: PathBuf,
    gateway: (PathBuf, PathBuf),
    kv: (PathBuf, PathBuf),
    other: (PathBuf, PathBuf),
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "gateway test CA");
    let ca = p.self_signed(&ca_key).unwrap();
    let write = |file: &str, text: String| {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    let leaf = |san: &str, usage: ExtendedKeyUsagePurpose, file: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![san.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, file);
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        (write(&format!("{file}.pem"), cert.pem()), write(&format!("{file}.key"), key.serialize_pem()))
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        gateway: leaf("127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth, "gateway"),
        kv: leaf("kv", ExtendedKeyUsagePurpose::ClientAuth, "kv"),
        other: leaf("other", ExtendedKeyUsagePurpose::ClientAuth, "other"),
    }
}

/// A child process, killed when dropped; its stderr goes to a file.
struct Proc {
    child: Child,
    what: String,
    log: PathBuf,
}

impl Proc {
    fn start(mut c: Command, what: &str, log: PathBuf) -> Proc {
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap());
        let child = c.spawn().unwrap_or_else(|e| panic!("{what}: cannot start {c:?}: {e}"));
        Proc { child, what: what.to_string(), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most `limit`) for the end: exit code and stdout.
    fn finish(&mut self, limit: Duration) -> (Option<i32>, String) {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                let mut out = String::new();
                if let Some(mut o) = self.child.stdout.take() {
                    o.read_to_string(&mut out).unwrap();
                }
                return (st.code(), out);
            }
            assert!(t.elapsed() < limit, "{}: still running after {limit:?}; stderr: {}", self.what, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway for program `kv`: its link address and the address clients connect to.
struct Gateway {
    proc: Proc,
    link: String,
    client: String,
}

fn start_gateway_at(dir: &Path, p: &Pki, link: &str, client: &str, timeout: &str) -> Gateway {
    start_gateway_with(dir, p, link, client, timeout, &[])
}

fn start_gateway_with(dir: &Path, p: &Pki, link: &str, client: &str, timeout: &str, extra: &[&str]) -> Gateway {
    let mut c = Command::new(&tools().wanco);
    c.args(["gateway", "--link", link, "--program", &format!("kv={client}"), "--timeout", timeout]).args(extra);
    c.arg("--cert").arg(&p.gateway.0).arg("--key").arg(&p.gateway.1).arg("--ca").arg(&p.ca);
    let proc = Proc::start(c, "wanco gateway", dir.join(format!("gateway-{}.log", free_port())));
    // Ready when it says so (a probe connection would be a client, offered to the program).
    let t = Instant::now();
    while !proc.log().contains("clients of `kv` connect to") {
        assert!(t.elapsed() < Duration::from_secs(10), "the gateway does not listen on {client}: {}", proc.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    Gateway { proc, link: link.to_string(), client: client.to_string() }
}

fn start_gateway(dir: &Path, p: &Pki, timeout: &str) -> Gateway {
    start_gateway_at(dir, p, &format!("127.0.0.1:{}", free_port()), &format!("127.0.0.1:{}", free_port()), timeout)
}

fn with_credentials(c: &mut Command, cert: &(PathBuf, PathBuf), ca: &Path) {
    c.env("WANCO_GATEWAY_CERT", &cert.0).env("WANCO_GATEWAY_KEY", &cert.1).env("WANCO_GATEWAY_CA", ca);
}

/// `sock_kv CONNS` on `engine` behind the gateway at `link`, checkpointing to `snap`; or, with
/// `restore`, restored from that snapshot (and checkpointing to `snap` again).
fn server(engine: Engine, link: &str, snap: &Path, restore: Option<&Path>, conns: usize) -> Command {
    let t = tools();
    let listen = format!("tls://{link}/kv");
    let mut rt_args: Vec<String> = vec!["--checkpoint-file".into(), snap.to_str().unwrap().into()];
    let guest: Vec<String> = match restore {
        Some(from) => {
            rt_args.extend(["--restore".into(), from.to_str().unwrap().into()]);
            vec![]
        }
        None => {
            rt_args.extend(["--tcplisten".into(), listen]);
            vec!["--".into(), conns.to_string()]
        }
    };
    match engine {
        Engine::Interp => {
            let mut c = Command::new(&t.wanco);
            c.arg("interp").args(&rt_args).arg(module()).args(&guest);
            c
        }
        Engine::AotX86_64 => {
            let mut c = Command::new(compiled("x86_64"));
            c.args(&rt_args).args(&guest);
            c
        }
        _ => {
            let mut c = Command::new(&t.qemu);
            c.arg("-L").arg(&t.aarch64_sysroot).arg(compiled("aarch64")).args(&rt_args).args(&guest);
            c
        }
    }
}

use common::sock::{client, wait_answers, Stats, StopOnDrop, CLIENTS};

/// Checkpoints `s` by SIGUSR1 and checks it wrote the snapshot and exited 0.
fn checkpoint(mut s: Proc, engine: Engine) {
    s.signal(libc::SIGUSR1);
    let (code, _) = s.finish(Duration::from_secs(60) * engine.slowdown());
    let log = s.log();
    assert_eq!(code, Some(0), "{}: exit status after SIGUSR1; stderr: {log}", s.what);
    assert!(log.contains("checkpoint written"), "{}: stderr: {log}", s.what);
}

#[test]
fn sixteen_clients_keep_their_connections_while_the_server_moves_across_isas() {
    let dir = work("moves");
    let p = pki(&dir);
    let gw = start_gateway(&dir, &p, "120");
    let snaps: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("kv{i}.wsnap"))).collect();
    let engines = [Engine::AotX86_64, Engine::AotAarch64, Engine::Interp];
    // Compile before the clock starts.
    compiled("x86_64");
    compiled("aarch64");
    // Stage i checkpoints to snaps[i]; stage i + 1 is restored from it.
    let start = |i: usize| {
        let e = engines[i];
        let mut c = server(e, &gw.link, &snaps[i], i.checked_sub(1).map(|j| snaps[j].as_path()), CLIENTS + 1);
        with_credentials(&mut c, &p.kv, &p.ca);
        c.current_dir(&dir);
        Proc::start(c, &format!("sock_kv on {e}"), dir.join(format!("server-{}.log", e.name())))
    };
    let stop = AtomicBool::new(false);
    let stats = Stats::default();
    let (addr, stop_r, stats_r) = (gw.client.as_str(), &stop, &stats);
    let (results, mut s) = std::thread::scope(|sc| {
        let _stop = StopOnDrop(stop_r);
        let mut s = start(0);
        let hs: Vec<_> = (0..CLIENTS).map(|id| sc.spawn(move || client(addr, id, stop_r, stats_r))).collect();
        let mut late = None;
        for (i, &e) in engines.iter().enumerate() {
            wait_answers(stats_r, 600, Duration::from_secs(120) * e.slowdown(), &s.what);
            if i + 1 == engines.len() {
                break;
            }
            checkpoint(s, e);
            if late.is_none() {
                // A client that connects while the server is away waits, then is served.
                late = Some(sc.spawn(move || client(addr, CLIENTS, stop_r, stats_r)));
                std::thread::sleep(Duration::from_millis(300));
            }
            s = start(i + 1);
        }
        stop_r.store(true, Ordering::Relaxed);
        let mut r: Vec<_> = hs.into_iter().map(|h| h.join().expect("client thread")).collect();
        r.push(late.expect("the late client").join().expect("client thread"));
        (r, s)
    });
    let (code, out) = s.finish(Duration::from_secs(120));
    let log = s.log();
    let sent: u64 = results.iter().map(|r| *r.as_ref().unwrap_or_else(|e| panic!("{e}\nserver stderr: {log}\ngateway: {}", gw.proc.log()))).sum();
    assert_eq!(code, Some(0), "last server: stderr: {log}");
    // The server counts every request once, across the moves; every client ended cleanly.
    let keys = CLIENTS * 8 + 8;
    let want = format!("served {} connections, {sent} requests, ", CLIENTS + 1);
    assert!(out.starts_with(&want), "server stdout {out:?}, expected {want}… (keys up to {keys})");
    eprintln!(
        "{} answers; longest wait for an answer (a move): {:.0} ms",
        stats.answered.load(Ordering::Relaxed),
        stats.longest_us.load(Ordering::Relaxed) as f64 / 1000.0
    );
}

/// Starts `sock_kv CONNS` in the interpreter behind `gw` with `cert`.
fn interp_server(dir: &Path, gw: &Gateway, cert: &(PathBuf, PathBuf), ca: &Path, conns: usize, what: &str) -> Proc {
    let mut c = server(Engine::Interp, &gw.link, &dir.join(format!("{what}.wsnap")), None, conns);
    with_credentials(&mut c, cert, ca);
    Proc::start(c, what, dir.join(format!("{what}.log")))
}

/// One request on `s`, its answer (an error as text).
fn request(s: &mut TcpStream, line: &str) -> Result<String, std::io::Error> {
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut l = String::new();
    r.read_line(&mut l)?;
    Ok(l)
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

#[test]
fn a_runtime_without_the_programs_certificate_is_refused() {
    let dir = work("refused");
    let p = pki(&dir);
    let gw = start_gateway(&dir, &p, "60");
    // Signed by the right CA, but for program `other`.
    let mut s = interp_server(&dir, &gw, &p.other, &p.ca, 1, "other");
    let (code, _) = s.finish(Duration::from_secs(30));
    let log = s.log();
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}; stderr: {log}");
    assert!(log.contains("not valid for program `kv`"), "stderr: {log}");
    // A certificate for `kv` from another CA: the TLS handshake refuses it.
    let stranger = dir.join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    let q = pki(&stranger);
    let mut s = interp_server(&dir, &gw, &q.kv, &p.ca, 1, "stranger");
    let (code, _) = s.finish(Duration::from_secs(30));
    let log = s.log();
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}; stderr: {log}");
    assert!(log.contains("refused this side's certificate"), "stderr: {log}");
    // Neither attached: a client waits, unserved, and the gateway said why.
    let glog = gw.proc.log();
    assert!(!glog.contains("attached from"), "gateway: {glog}");
    assert!(glog.contains("not valid for program `kv`"), "gateway: {glog}");
}

#[test]
fn clients_of_a_program_that_never_returns_are_reset_after_the_timeout() {
    let dir = work("timeout");
    let p = pki(&dir);
    let gw = start_gateway(&dir, &p, "1.5");
    let s = interp_server(&dir, &gw, &p.kv, &p.ca, 1, "gone");
    let mut c = connect(&gw.client);
    assert_eq!(request(&mut c, "1 SET a b").unwrap(), "1 OK\n");
    checkpoint(s, Engine::Interp);
    // Nobody restores it: the next request waits, then the connection is reset.
    let t = Instant::now();
    let r = request(&mut c, "2 GET a");
    let waited = t.elapsed();
    match r {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(l) => panic!("answered {l:?} with no program"),
    }
    assert!(waited >= Duration::from_millis(1000) && waited < Duration::from_secs(20), "reset after {waited:?}");
    let glog = gw.proc.log();
    assert!(glog.contains("has not attached for") && glog.contains("resetting its 1 client connection(s)"), "gateway: {glog}");
}

#[test]
fn a_restarted_gateway_resets_its_clients_and_the_program_serves_new_ones() {
    let dir = work("restart");
    let p = pki(&dir);
    let link = format!("127.0.0.1:{}", free_port());
    let client_addr = format!("127.0.0.1:{}", free_port());
    let gw = start_gateway_at(&dir, &p, &link, &client_addr, "60");
    let mut s = interp_server(&dir, &gw, &p.kv, &p.ca, 2, "restart");
    let mut a = connect(&client_addr);
    assert_eq!(request(&mut a, "1 SET a b").unwrap(), "1 OK\n");
    gw.proc.signal(libc::SIGKILL);
    drop(gw);
    // The gateway's client sockets close with a reset.
    let mut buf = [0u8; 16];
    match a.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("client of a killed gateway read {n} bytes instead of a reset"),
    }
    // A new gateway on the same addresses: the runtime attaches again; its old connection is
    // unknown there (the guest sees it reset), and a new client is served.
    let gw = start_gateway_at(&dir, &p, &link, &client_addr, "60");
    let mut b = connect(&client_addr);
    assert_eq!(request(&mut b, "1 GET a").unwrap(), "1 VALUE b\n");
    assert_eq!(request(&mut b, "2 QUIT").unwrap(), "2 BYE\n");
    drop(b);
    let (code, out) = s.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "stderr: {}", s.log());
    // The old connection is unknown to the new gateway: the guest sees it reset.
    assert_eq!(out, "ready\nconnections reset by their client: 1\nserved 2 connections, 3 requests, 1 keys\n", "stderr: {}\ngateway: {}", s.log(), gw.proc.log());
}

/// A program that exits (not a checkpoint) with a client still connected: that client reads
/// end of stream at once — as from a server that exits — not a reset after the gateway's
/// timeout (60 s here).
#[test]
fn clients_of_a_program_that_exits_see_the_end_at_once() {
    for engine in [Engine::AotX86_64, Engine::Interp] {
        program_exits_with_a_client_connected(engine);
    }
}

fn program_exits_with_a_client_connected(engine: Engine) {
    let dir = work(&format!("exit-{}", engine.name()));
    let p = pki(&dir);
    let gw = start_gateway(&dir, &p, "60");
    // Exits once one connection has ended.
    let mut c = server(engine, &gw.link, &dir.join("exit.wsnap"), None, 1);
    with_credentials(&mut c, &p.kv, &p.ca);
    let mut s = Proc::start(c, &format!("sock_kv on {engine}"), dir.join("exit.log"));
    let mut b = connect(&gw.client);
    assert_eq!(request(&mut b, "1 SET k v").unwrap(), "1 OK\n");
    let mut a = connect(&gw.client);
    assert_eq!(request(&mut a, "1 GET k").unwrap(), "1 VALUE v\n");
    assert_eq!(request(&mut a, "2 QUIT").unwrap(), "2 BYE\n");
    a.shutdown(Shutdown::Both).unwrap();
    drop(a);
    let t = Instant::now();
    let mut buf = [0u8; 16];
    match b.read(&mut buf) {
        Ok(0) => {}
        other => panic!("the remaining client read {other:?} instead of end of stream; gateway: {}", gw.proc.log()),
    }
    assert!(t.elapsed() < Duration::from_secs(5), "end of stream after {:?}", t.elapsed());
    let (code, out) = s.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "stderr: {}", s.log());
    assert_eq!(out, "ready\nserved 1 connections, 3 requests, 1 keys\n");
    assert!(!s.log().contains("note:"), "{}", s.log());
    let glog = gw.proc.log();
    assert!(!glog.contains("resetting"), "{glog}");
}

/// A client that resets its connection (SO_LINGER 0): behind the gateway the guest reads
/// `CONNRESET`, as it would on a direct TCP connection, not an end of stream.
#[test]
fn a_client_reset_reaches_the_guest_as_connreset() {
    use std::os::fd::AsRawFd;
    let dir = work("reset");
    let p = pki(&dir);
    let gw = start_gateway(&dir, &p, "60");
    let mut c = server(Engine::AotX86_64, &gw.link, &dir.join("reset.wsnap"), None, 2);
    with_credentials(&mut c, &p.kv, &p.ca);
    let mut s = Proc::start(c, "sock_kv on x86_64", dir.join("reset.log"));
    let mut a = connect(&gw.client);
    assert_eq!(request(&mut a, "1 SET k v").unwrap(), "1 OK\n");
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on an open socket with a valid `linger` of the length given.
    let r = unsafe {
        libc::setsockopt(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, (&l as *const libc::linger).cast(), std::mem::size_of::<libc::linger>() as libc::socklen_t)
    };
    assert_eq!(r, 0);
    drop(a); // closes with a reset
    let mut b = connect(&gw.client);
    assert_eq!(request(&mut b, "1 GET k").unwrap(), "1 VALUE v\n");
    assert_eq!(request(&mut b, "2 QUIT").unwrap(), "2 BYE\n");
    drop(b);
    let (code, out) = s.finish(Duration::from_secs(20));
    assert_eq!(code, Some(0), "stderr: {}", s.log());
    assert_eq!(out, "ready\nconnections reset by their client: 1\nserved 2 connections, 3 requests, 1 keys\n", "gateway: {}", gw.proc.log());
}

/// A client that sends requests without ever reading the answers: once `--max-queued` (1 MiB
/// here) of answers wait for it at the gateway it is reset (logged), and the program goes on
/// serving others.
#[test]
fn a_client_that_never_reads_is_reset_once_its_answers_pile_up() {
    let dir = work("no-read");
    let p = pki(&dir);
    let (link, client) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let gw = start_gateway_with(&dir, &p, &link, &client, "60", &["--max-queued", "1048576"]);
    let mut c = server(Engine::AotX86_64, &gw.link, &dir.join("no-read.wsnap"), None, 2);
    with_credentials(&mut c, &p.kv, &p.ca);
    let mut s = Proc::start(c, "sock_kv on x86_64", dir.join("no-read.log"));
    let t = Instant::now();
    while !gw.proc.log().contains("attached from") {
        assert!(t.elapsed() < Duration::from_secs(20), "the server did not attach: {}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut greedy = connect(&gw.client);
    greedy.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    // 3 KiB answers; 64 MiB of requests at most (the client's and the gateway's socket
    // buffers take some MiB before the answers queue up).
    let line = format!("1 ECHO {}\n", "y".repeat(3000));
    let t = Instant::now();
    let mut sent = 0usize;
    let err = loop {
        match greedy.write_all(line.as_bytes()) {
            Ok(()) => sent += line.len(),
            Err(e) => break e,
        }
        assert!(sent < 64 << 20, "64 MiB of requests went in, no reset; gateway: {}", gw.proc.log());
    };
    assert!(matches!(err.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe), "{err}");
    eprintln!("reset after {} bytes of requests, {:?}", sent, t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let glog = gw.proc.log();
    assert!(glog.contains("does not read") && glog.contains("resetting it"), "{glog}");
    // Another client is served.
    let mut b = connect(&gw.client);
    assert_eq!(request(&mut b, "1 ECHO hi").unwrap(), "1 hi\n");
    assert_eq!(request(&mut b, "2 QUIT").unwrap(), "2 BYE\n");
    drop(b);
    let (code, out) = s.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "stderr: {}", s.log());
    assert!(out.starts_with("ready\nconnections reset by their client: 1\nserved 2 connections, "), "{out}");
}
