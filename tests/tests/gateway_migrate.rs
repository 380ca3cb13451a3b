//! `wanco gateway` and `wanco migrate` between two hosts (issue 19): network namespaces A and B
//! joined by a veth pair (the migration link), and a third, G, where the gateway runs, with a
//! link of its own to each host (tests/tests/common/net.rs). The key-value server `sock_kv`
//! (journaling every SET to a file) runs on A behind the gateway; sixteen clients (threads in
//! G) send sequence-numbered requests without pause while `wanco migrate` moves the server
//! x86_64 (A) -> aarch64 (B, under qemu; over ssh to a real sshd) -> x86_64 (A; over mutual
//! TLS), to `wanco agent`s that give restored programs their gateway credentials
//! (`--gateway-cert/key/ca`). Checked: no
//! client error or reset, every request answered once, in order and right, the server's count
//! of requests, and its journal as an uninterrupted run writes it (each client's SETs, in its
//! order). A cut of B's link to the gateway during a move makes the move fail: the program
//! carries on at A and the clients get every answer.
//!
//! Needs root (namespaces).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wanco_tests::engine::{Engine, Tools};

mod common;
use common::net::{enter_netns, run_ok, Ca, Net, Pki, DST_ADDR, GW_ADDR, SRC_ADDR};
use common::sock::{client, wait_answers, Stats, StopOnDrop, CLIENTS};

use common::{when_paused, workspace};

fn tools() -> &'static Tools {
    static T: OnceLock<Tools> = OnceLock::new();
    T.get_or_init(|| Tools::locate(&workspace(), &[Engine::AotX86_64, Engine::AotAarch64]).unwrap_or_else(|e| panic!("{e}")))
}

fn work(name: &str) -> PathBuf {
    common::fresh_dir("wanco-gateway-migrate", name)
}

fn compiled(isa: &str) -> PathBuf {
    common::sock::compiled(&workspace(), &tools().wanco, "sock_kv", isa)
}

fn runner() -> String {
    format!("{} -L {}", tools().qemu.display(), tools().aarch64_sysroot.display())
}

const LINK_PORT: u16 = 7443;
const CLIENT_PORT: u16 = 8080;

/// The hosts, the gateway in G for program `kv`, and the credentials.
struct Setup {
    net: Net,
    dir: PathBuf,
    /// Migration: the agents' CA and `wanco migrate`'s certificate.
    mig: Pki,
    /// The runtime's gateway credentials: certificate and key for `kv`, the gateway's CA.
    kv: (PathBuf, PathBuf),
    gw_ca: PathBuf,
    mig_ca: Ca,
    gw_log: PathBuf,
}

fn setup(name: &str, tag: &str) -> Setup {
    let dir = work(name);
    let mut net = Net::new(tag);
    let gw_ns = net.add_gateway_host();
    let gw_ca = Ca::new(&dir, "gw");
    let gw_cert = gw_ca.leaf(GW_ADDR, true, "gateway");
    let kv = gw_ca.leaf("kv", false, "kv");
    let mig_ca = Ca::new(&dir, "mig");
    let mig = Pki { ca: mig_ca.pem.clone(), server: mig_ca.leaf(DST_ADDR, true, "agent-b"), client: mig_ca.leaf("migrate-client", false, "client") };
    let mut c = Net::exec(&gw_ns, &tools().wanco);
    c.args(["gateway", "--link", &format!("{GW_ADDR}:{LINK_PORT}"), "--program", &format!("kv={GW_ADDR}:{CLIENT_PORT}"), "--timeout", "120"]);
    c.arg("--cert").arg(&gw_cert.0).arg("--key").arg(&gw_cert.1).arg("--ca").arg(&gw_ca.pem);
    let gw_log = dir.join("gateway.log");
    net.daemon(c, "clients of `kv` connect to", &gw_log);
    Setup { net, dir, mig, kv, gw_ca: gw_ca.pem.clone(), mig_ca, gw_log }
}

impl Setup {
    /// `wanco agent` on `host` (A or B) listening on `addr`, restoring for `isa`, giving
    /// restored programs the `kv` gateway credentials.
    fn agent(&mut self, on_src: bool, aarch64: bool, env: &[(&str, &str)], extra: &[&str]) -> String {
        let (ns, addr, log) = if on_src { (self.net.src.clone(), SRC_ADDR, "agent-a") } else { (self.net.dst.clone(), DST_ADDR, "agent-b") };
        let pki = if on_src {
            Pki { ca: self.mig.ca.clone(), server: self.mig_ca.leaf(SRC_ADDR, true, "agent-a"), client: self.mig.client.clone() }
        } else {
            Pki { ca: self.mig.ca.clone(), server: self.mig.server.clone(), client: self.mig.client.clone() }
        };
        let mut args: Vec<String> = vec![
            "--gateway-cert".into(),
            self.kv.0.display().to_string(),
            "--gateway-key".into(),
            self.kv.1.display().to_string(),
            "--gateway-ca".into(),
            self.gw_ca.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let dir = self.dir.join(log);
        std::fs::create_dir_all(&dir).unwrap();
        let runner = aarch64.then(runner);
        common::net::start_agent(&mut self.net, &ns, &tools().wanco, &format!("{addr}:7878"), &dir, "agent.log", &pki, runner.as_deref(), env, &args)
    }

    /// `sock_kv CONNS /data/journal.txt` on A (x86_64) behind the gateway, with `--control`;
    /// returns once it said `ready`.
    fn server(&self, conns: usize) -> Server {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut c = Net::exec(&self.net.src, &compiled("x86_64"));
        c.arg("--control").arg("--dir").arg(format!("{}::/data", data.display()));
        c.args(["--tcplisten", &format!("tls://{GW_ADDR}:{LINK_PORT}/kv"), "--", &conns.to_string(), "/data/journal.txt"]);
        c.env("WANCO_GATEWAY_CERT", &self.kv.0).env("WANCO_GATEWAY_KEY", &self.kv.1).env("WANCO_GATEWAY_CA", &self.gw_ca);
        let err = self.dir.join("server-a.log");
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(std::fs::File::create(&err).unwrap());
        let mut child = c.spawn().expect("start sock_kv");
        let stdout = Arc::new(Mutex::new(String::new()));
        let out = stdout.clone();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut o = out.lock().unwrap();
                o.push_str(&l);
                o.push('\n');
            }
        });
        let t = Instant::now();
        while !stdout.lock().unwrap().contains("ready") {
            assert!(t.elapsed() < Duration::from_secs(20), "sock_kv did not start: {}", std::fs::read_to_string(&err).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, stdout, err, data }
    }

    fn gateway_log(&self) -> String {
        std::fs::read_to_string(&self.gw_log).unwrap_or_default()
    }
}

struct Server {
    child: Child,
    stdout: Arc<Mutex<String>>,
    err: PathBuf,
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Waits for its end: exit code, stdout, stderr.
    fn finish(&mut self, limit: Duration) -> (Option<i32>, String, String) {
        let t = Instant::now();
        let st = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(t.elapsed() < limit, "the server at A did not end: {}", std::fs::read_to_string(&self.err).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        (st.code(), self.stdout.lock().unwrap().clone(), std::fs::read_to_string(&self.err).unwrap_or_default())
    }
}

/// `wanco migrate PID --to DEST --detach --json` run on host `ns`, /data kept at the same path;
/// over TLS with `mig`'s certificates unless `DEST` is ssh://.
fn migrate(ns: &str, pid: u32, dest: &str, data: &Path, mig: &Pki, extra: &[String]) -> Output {
    let mut c = Net::exec(ns, &tools().wanco);
    c.arg("migrate").arg(pid.to_string()).args(["--to", dest, "--detach", "--json"]);
    c.arg("--dir-map").arg(format!("/data={}", data.display()));
    if dest.starts_with("tls://") {
        c.args(common::net::tls_args(mig));
    }
    c.args(extra).stdin(Stdio::null());
    common::output_within(&mut c, Duration::from_secs(300))
}

/// The JSON summary of a successful `wanco migrate --json`.
fn moved(m: &Output, what: &str) -> serde_json::Value {
    let err = String::from_utf8_lossy(&m.stderr).to_string();
    assert_eq!(m.status.code(), Some(0), "{what}: wanco migrate --detach exits 0 once the program runs there\n{err}");
    let json = err.lines().find_map(|l| l.strip_prefix("wanco migrate: {")).map(|l| format!("{{{l}"));
    let v: serde_json::Value = serde_json::from_str(&json.unwrap_or_else(|| panic!("{what}: no JSON summary:\n{err}"))).unwrap();
    assert_eq!(v["migrated"], true, "{what}: {v}");
    v
}

/// Each client's SETs (from the number of requests it sent: SET, GET, ECHO per round, then
/// QUIT), as the journal must hold them: "K V" lines.
fn expected_sets(id: usize, sent: u64) -> Vec<String> {
    let rounds = (sent - 1) / 3;
    (0..rounds).map(|k| format!("c{id}k{} v{id}-{k}-{}", k % 8, "x".repeat((k % 5) as usize * 40))).collect()
}

/// The journal, split by client, must be each client's SETs in its order (how the clients'
/// lines interleave depends on timing even without a move).
fn check_journal(data: &Path, sent: &[u64]) {
    let j = std::fs::read_to_string(data.join("journal.txt")).expect("the journal");
    for (id, &n) in sent.iter().enumerate() {
        let prefix = format!("c{id}k");
        let got: Vec<&str> = j.lines().filter(|l| l.starts_with(&prefix)).collect();
        let want = expected_sets(id, n);
        assert_eq!(got.len(), want.len(), "client {id}: {} SETs journaled, {} sent", got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(g, w)| g == w), "client {id}: the journal differs from its SETs");
    }
    let total: usize = sent.iter().map(|&n| ((n - 1) / 3) as usize).sum();
    assert_eq!(j.lines().count(), total, "no other lines in the journal");
}

/// `CLIENTS` clients of `kv` (from the gateway's namespace) running while `body` runs — it
/// starts once they had 600 answers from the program at A — then told to stop: each client's
/// count of requests sent (or its error), and what `body` returned.
fn with_clients<R: Send>(s: &Setup, body: impl FnOnce(&Stats) -> R + Send) -> (Vec<Result<u64, String>>, R) {
    let gw_ns = s.net.gw.clone().unwrap();
    let stop = AtomicBool::new(false);
    let stats = Stats::default();
    let addr = format!("{GW_ADDR}:{CLIENT_PORT}");
    let (stop_r, stats_r, addr_r, gw_r) = (&stop, &stats, addr.as_str(), gw_ns.as_str());
    std::thread::scope(|sc| {
        let _stop = StopOnDrop(stop_r);
        let hs: Vec<_> = (0..CLIENTS)
            .map(|id| {
                sc.spawn(move || {
                    enter_netns(gw_r);
                    client(addr_r, id, stop_r, stats_r)
                })
            })
            .collect();
        wait_answers(stats_r, 600, Duration::from_secs(60), "x86_64 at A");
        let r = body(stats_r);
        stop_r.store(true, Ordering::Relaxed);
        (hs.into_iter().map(|h| h.join().expect("client thread")).collect::<Vec<_>>(), r)
    })
}

/// The stdout of the detached program at the agent of `agent_dir` once it ended (within
/// `limit`) with exit code 0.
fn detached_output(agent_dir: &Path, limit: Duration) -> String {
    let run = run_dir(agent_dir);
    let t = Instant::now();
    while !run.join("exit-code").exists() {
        assert!(t.elapsed() < limit, "the program at {} did not end: {}", agent_dir.display(), std::fs::read_to_string(run.join("stderr.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(run.join("exit-code")).unwrap(), "0\n");
    std::fs::read_to_string(run.join("stdout.log")).unwrap()
}

/// The run directory of a detached program at an agent (`DIR/agent/run-*`).
fn run_dir(agent_dir: &Path) -> PathBuf {
    std::fs::read_dir(agent_dir.join("agent"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("run-")))
        .unwrap_or_else(|| panic!("no run directory in {}", agent_dir.display()))
}

#[test]
fn sixteen_clients_keep_their_connections_while_wanco_migrate_moves_the_server_between_hosts() {
    let mut s = setup("moves", "gm");
    // A -> B over ssh (a real sshd at B starts `wanco agent --stdio`, given the gateway
    // credentials with --agent-arg), B -> A over TLS.
    let ssh = common::net::start_sshd(&mut s.net, &s.dir);
    let to_a = s.agent(true, false, &[], &[]);
    let mut ssh_args = vec!["--remote-wanco".to_string(), tools().wanco.display().to_string()];
    ssh_args.extend(ssh.iter().map(|a| format!("--ssh-arg={a}")));
    ssh_args.extend([
        "--agent-arg=--isa=aarch64".to_string(),
        format!("--agent-arg=--runner={}", runner()),
        format!("--agent-arg=--work-dir={}", s.dir.join("agent-b/agent").display()),
        format!("--agent-arg=--gateway-cert={}", s.kv.0.display()),
        format!("--agent-arg=--gateway-key={}", s.kv.1.display()),
        format!("--agent-arg=--gateway-ca={}", s.gw_ca.display()),
        "--dest-binary".to_string(),
        compiled("aarch64").display().to_string(),
    ]);
    let to_b = format!("ssh://root@{DST_ADDR}");
    compiled("aarch64");
    let mut server = s.server(CLIENTS);
    let data = server.data.clone();
    let (results, (answered, longest_us)) = with_clients(&s, |stats| {
        // A -> B (aarch64), over ssh.
        let m = migrate(&s.net.src, server.child.id(), &to_b, &data, &s.mig, &ssh_args);
        let v = moved(&m, "A -> B");
        assert_eq!(v["dest_isa"], "aarch64", "{v}");
        let pid_b = v["dest_pid"].as_u64().unwrap() as u32;
        wait_answers(stats, 600, Duration::from_secs(120), "aarch64 at B");
        // B -> A (x86_64), from B.
        let m = migrate(&s.net.dst, pid_b, &to_a, &data, &s.mig, &["--dest-binary".into(), compiled("x86_64").display().to_string()]);
        let v = moved(&m, "B -> A");
        assert_eq!(v["dest_isa"], "x86_64", "{v}");
        wait_answers(stats, 600, Duration::from_secs(60), "x86_64 at A again");
        (stats.answered.load(Ordering::Relaxed), stats.longest_us.load(Ordering::Relaxed))
    });
    let sent: Vec<u64> = results
        .iter()
        .map(|r| *r.as_ref().unwrap_or_else(|e| panic!("{e}\ngateway: {}", s.gateway_log())))
        .collect();
    // The first copy ended once the program ran at B.
    let (code, out, err) = server.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "ready\n");
    assert!(err.contains("moved to another host"), "{err}");
    // The last copy (at A, detached: its output in the agent's run directory) served them all.
    let last = detached_output(&s.dir.join("agent-a"), Duration::from_secs(20));
    let total: u64 = sent.iter().sum();
    assert!(last.starts_with(&format!("served {CLIENTS} connections, {total} requests, ")), "{last}");
    check_journal(&data, &sent);
    let glog = s.gateway_log();
    assert!(!glog.contains("resetting"), "gateway: {glog}");
    eprintln!("{answered} answers; longest wait for an answer (a move): {:.0} ms", longest_us as f64 / 1000.0);
}

#[test]
fn gateway_link_cut_during_the_move_leaves_the_program_at_the_source() {
    let mut s = setup("gw-cut", "gc");
    // The agent pauses 3 s when the pre-copy round arrives; B's link to the gateway goes
    // down meanwhile, so the restored copy cannot attach.
    let to_b = s.agent(false, false, &[("WANCO_AGENT_TEST_PAUSE_AT", "precopy")], &[]);
    let mut server = s.server(CLIENTS);
    let data = server.data.clone();
    let (ns, dev, log) = (s.net.dst.clone(), s.net.dst_gw_dev.clone(), s.dir.join("agent-b/agent.log"));
    let (results, m) = with_clients(&s, |stats| {
        let cutter = when_paused(log, move || {
            run_ok(Command::new("ip").args(["-n", &ns, "link", "set", &dev, "down"]));
        });
        let m = migrate(&s.net.src, server.child.id(), &to_b, &data, &s.mig, &["--precopy-rounds".into(), "1".into()]);
        cutter.join().unwrap();
        // The program goes on at A: more answers.
        wait_answers(stats, 600, Duration::from_secs(60), "x86_64 at A after the failed move");
        m
    });
    let e = String::from_utf8_lossy(&m.stderr);
    assert_eq!(m.status.code(), Some(1), "{e}");
    assert!(e.contains("the destination refused (restore)") && e.contains(&format!("tls://{GW_ADDR}:{LINK_PORT}/kv")), "{e}");
    assert!(e.contains("the program goes on here"), "{e}");
    let sent: Vec<u64> = results.iter().map(|r| *r.as_ref().unwrap_or_else(|e| panic!("{e}\ngateway: {}", s.gateway_log()))).collect();
    let (code, out, err) = server.finish(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{err}");
    let total: u64 = sent.iter().sum();
    assert!(out.starts_with(&format!("ready\nserved {CLIENTS} connections, {total} requests, ")), "{out}");
    check_journal(&data, &sent);
    // No restored copy at B.
    let agent = s.dir.join("agent-b/agent");
    let left: Vec<_> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path().join("exe")).ok())
        .filter(|x| x.starts_with(&agent))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// B's link to the gateway cut after the copy at B restored and attached — pre-copy: before it
/// was told to run; post-copy: while its pages go, before its release — and back 7 s later:
/// the move completes (the migration link is another one), the moved program's gateway link
/// returns, and every client's connection goes on — their requests wait meanwhile (the
/// gateway's `--timeout`) — with every SET journaled once, in order.
#[test]
fn gateway_link_cut_after_the_restore_the_moved_program_goes_on_when_it_returns() {
    gateway_link_back("gw-back", "gb", "restored", &[]);
    gateway_link_back("gw-back-postcopy", "gp", "postcopy", &["--postcopy".into()]);
}

fn gateway_link_back(name: &str, tag: &str, pause_at: &str, mode: &[String]) {
    let mut s = setup(name, tag);
    let to_b = s.agent(false, false, &[("WANCO_AGENT_TEST_PAUSE_AT", pause_at)], &[]);
    let mut server = s.server(CLIENTS);
    let data = server.data.clone();
    let (ns, dev, log) = (s.net.dst.clone(), s.net.dst_gw_dev.clone(), s.dir.join("agent-b/agent.log"));
    let (results, ()) = with_clients(&s, |stats| {
        let cutter = when_paused(log, move || {
            run_ok(Command::new("ip").args(["-n", &ns, "link", "set", &dev, "down"]));
            std::thread::sleep(Duration::from_secs(7));
            run_ok(Command::new("ip").args(["-n", &ns, "link", "set", &dev, "up"]));
            // The link down took B's route to the gateway with it (common::net::add_gateway_host).
            run_ok(Command::new("ip").args(["-n", &ns, "route", "replace", &format!("{GW_ADDR}/32"), "via", "10.231.2.2"]));
        });
        let m = migrate(&s.net.src, server.child.id(), &to_b, &data, &s.mig, mode);
        moved(&m, &format!("A -> B {mode:?} with B's gateway link down"));
        cutter.join().unwrap();
        wait_answers(stats, 600, Duration::from_secs(90), "x86_64 at B once its gateway link returned");
    });
    let sent: Vec<u64> = results.iter().map(|r| *r.as_ref().unwrap_or_else(|e| panic!("{e}\ngateway: {}", s.gateway_log()))).collect();
    let (code, out, err) = server.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "ready\n");
    let total: u64 = sent.iter().sum();
    let last = detached_output(&s.dir.join("agent-b"), Duration::from_secs(30));
    assert!(last.starts_with(&format!("served {CLIENTS} connections, {total} requests, ")), "{last}");
    check_journal(&data, &sent);
}
