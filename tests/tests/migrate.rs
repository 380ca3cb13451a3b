//! `wanco migrate` between two "hosts": two network namespaces joined by a veth pair (rate
//! limited with `tc ... tbf`), a real `sshd` in the destination namespace for `ssh://`, and
//! `wanco agent --listen` with mutual TLS (certificates made here with rcgen) for `tls://`.
//!
//! The program (`tests/programs/migrate/migrate_ticks.wat`) prints and appends to a file while it
//! runs; it is started with `--control` in the source namespace and moved mid-run. The source's
//! output followed by what `wanco migrate` relays must equal an uninterrupted run under wasmtime
//! (the reference), and so must the exit code and the file. Moves: x86_64 -> x86_64 and
//! x86_64 -> aarch64 over ssh and TLS, aarch64 (under qemu) -> x86_64 over TLS. Failures (a destination that
//! refuses, a destination killed at each phase, a client certificate of another CA) must leave
//! exactly one copy running — or, after the point of no return, the state kept — and the output
//! intact.
//!
//! Needs root (namespaces, sshd); `just migrate-test` runs these with more repetitions.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wanco_tests::engine::{Engine, Tools};

mod common;
use common::net::{pki, run_ok, start_sshd, tls_args, Net, Pki, DST_ADDR};
use common::when_paused;

const PROGRAM: &str = "migrate/migrate_ticks.wat";
const EXIT: i32 = 7;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

fn tools() -> &'static Tools {
    static T: OnceLock<Tools> = OnceLock::new();
    T.get_or_init(|| Tools::locate(&workspace(), &[Engine::Wasmtime, Engine::AotX86_64, Engine::AotAarch64]).unwrap_or_else(|e| panic!("{e}")))
}

fn tmp() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wanco-migrate")
}

/// A fresh directory for one test.
fn work(name: &str) -> PathBuf {
    let d = tmp().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create work dir");
    d
}

/// The program compiled for x86_64 and aarch64, and another module's x86_64 binary.
struct Bins {
    x86_64: PathBuf,
    aarch64: PathBuf,
    other_x86_64: PathBuf,
}

fn bins() -> &'static Bins {
    static B: OnceLock<Bins> = OnceLock::new();
    B.get_or_init(|| {
        let d = tmp().join("bins");
        std::fs::create_dir_all(&d).unwrap();
        let src = workspace().join("tests/programs").join(PROGRAM);
        let compile = |src: &Path, isa: &str, out: &Path| {
            run_ok(Command::new(&tools().wanco).arg("compile").arg(src).arg("--target").arg(isa).arg("-o").arg(out));
        };
        let other = d.join("other.wat");
        std::fs::write(&other, "(module (memory (export \"memory\") 1) (func (export \"_start\")))").unwrap();
        let b = Bins { x86_64: d.join("ticks.x86_64"), aarch64: d.join("ticks.aarch64"), other_x86_64: d.join("other.x86_64") };
        std::thread::scope(|s| {
            s.spawn(|| compile(&src, "x86_64", &b.x86_64));
            s.spawn(|| compile(&src, "aarch64", &b.aarch64));
            s.spawn(|| compile(&other, "x86_64", &b.other_x86_64));
        });
        b
    })
}

/// The uninterrupted run under wasmtime: stdout, exit code, /data/out.txt.
struct Reference {
    stdout: String,
    file: Vec<u8>,
}

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| {
        let d = work("reference");
        let data = d.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let o = Command::new(&tools().wasmtime)
            .arg("run")
            .arg("--dir")
            .arg(format!("{}::/data", data.display()))
            .arg(workspace().join("tests/programs").join(PROGRAM))
            .output()
            .expect("run wasmtime");
        assert_eq!(o.status.code(), Some(EXIT), "wasmtime: {}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8(o.stdout).unwrap();
        assert!(stdout.contains("tick 59 ") && stdout.contains("table checksum "), "{stdout}");
        Reference { stdout, file: std::fs::read(data.join("out.txt")).expect("out.txt") }
    })
}

fn start_agent(net: &mut Net, dir: &Path, pki: &Pki, aarch64: bool, kill_at: Option<&str>) -> String {
    let env: Vec<(&str, &str)> = kill_at.map(|p| ("WANCO_AGENT_TEST_KILL_AT", p)).into_iter().collect();
    start_agent_with(net, dir, pki, aarch64, &env, &[])
}

fn start_agent_with(net: &mut Net, dir: &Path, pki: &Pki, aarch64: bool, env: &[(&str, &str)], extra: &[&str]) -> String {
    let dst = net.dst.clone();
    let runner = aarch64.then(runner);
    common::net::start_agent(net, &dst, &tools().wanco, &format!("{DST_ADDR}:7878"), dir, "agent.log", pki, runner.as_deref(), env, extra)
}

fn runner() -> String {
    format!("{} -L {}", tools().qemu.display(), tools().aarch64_sysroot.display())
}

/// The program running in the source namespace, its stdout collected as it comes.
struct Source {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    data: PathBuf,
}

impl Source {
    fn start(net: &Net, dir: &Path) -> Source {
        Source::start_at(net, dir, 3, false)
    }

    /// Start the program (the aarch64 binary under qemu if `aarch64`); return once it printed
    /// tick `tick`.
    fn start_at(net: &Net, dir: &Path, tick: u32, aarch64: bool) -> Source {
        Source::start_program(net, dir, tick, aarch64, None)
    }

    /// [`Source::start_at`] with another x86_64 binary than the ticks program's.
    fn start_program(net: &Net, dir: &Path, tick: u32, aarch64: bool, binary: Option<&Path>) -> Source {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut cmd = if aarch64 {
            let mut c = Net::exec(&net.src, &tools().qemu);
            c.arg("-L").arg(&tools().aarch64_sysroot).arg(&bins().aarch64);
            c
        } else {
            Net::exec(&net.src, binary.unwrap_or(&bins().x86_64))
        };
        cmd.arg("--control").arg("--dir").arg(format!("{}::/data", data.display()));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the program");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        for (pipe, buf) in [
            (Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, stdout.clone()),
            (Box::new(child.stderr.take().unwrap()), stderr.clone()),
        ] {
            std::thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    buf.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
        }
        let s = Source { child, stdout, stderr, data };
        // Mid-run: a few ticks printed, and its control socket there.
        let deadline = Instant::now() + Duration::from_secs(30);
        let want = format!("tick {tick} ");
        while !s.stdout.lock().unwrap().contains(&want) {
            assert!(Instant::now() < deadline, "the program did not get going: {}", s.stderr.lock().unwrap());
            std::thread::sleep(Duration::from_millis(10));
        }
        s
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the end: (exit code, stdout, stderr).
    fn finish(mut self) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the source program did not end");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The readers hit EOF right after the exit.
        std::thread::sleep(Duration::from_millis(100));
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (status.code(), out, err)
    }
}

/// One TLS move's setup: its work directory `name`, the two hosts (namespaces tagged `tag`),
/// the certificates, a `wanco agent` at the destination (for aarch64 or x86_64, with extra
/// environment and options) and the ticks program started at the source.
struct TlsMove {
    dir: PathBuf,
    net: Net,
    p: Pki,
    dest: String,
    src: Source,
}

fn tls_move(name: &str, tag: &str, aarch64: bool, env: &[(&str, &str)], extra: &[&str]) -> TlsMove {
    let dir = work(name);
    let mut net = Net::new(tag);
    let p = pki(&dir, "good");
    let dest = start_agent_with(&mut net, &dir, &p, aarch64, env, extra);
    let src = Source::start(&net, &dir);
    TlsMove { dir, net, p, dest, src }
}

/// `wanco migrate PID --to DEST --dir-map /data=… --cert … --key … --ca …` run at the source,
/// for a test to add to and run.
fn migrate_cmd(net: &Net, src: &Source, dest: &str, p: &Pki) -> Command {
    let mut cmd = Net::exec(&net.src, &tools().wanco);
    cmd.arg("migrate").arg(src.pid().to_string()).arg("--to").arg(dest);
    cmd.arg("--dir-map").arg(format!("/data={}", src.data.display())).args(tls_args(p));
    cmd.stdin(Stdio::null());
    cmd
}

/// A TLS move whose `wanco migrate` kills itself at `phase` (`WANCO_MIGRATE_TEST_KILL_AT`),
/// with `extra` options, before its point of no return: it dies by SIGKILL, the source resumes
/// and finishes with the uninterrupted run's output and file, and no copy is left at the
/// destination. Returns the move's work directory (its `agent.log`).
fn migrate_killed_before_the_point_of_no_return(name: &str, tag: &str, phase: &str, extra: &[&str]) -> PathBuf {
    let TlsMove { dir, net, p, dest, src } = tls_move(name, tag, false, &[], &[]);
    let mut cmd = migrate_cmd(&net, &src, &dest, &p);
    cmd.args(extra).env("WANCO_MIGRATE_TEST_KILL_AT", phase);
    let m = common::output_within(&mut cmd, Duration::from_secs(300));
    assert_eq!(m.status.signal(), Some(libc::SIGKILL), "{name}: {}", String::from_utf8_lossy(&m.stderr));
    let (code, out, err) = src.finish();
    assert_eq!(code, Some(EXIT), "{name}: {err}");
    assert_eq!(out, reference().stdout, "{name}: output");
    assert_eq!(std::fs::read(dir.join("data/out.txt")).unwrap(), reference().file, "{name}: out.txt");
    no_copy_at_destination(&dir);
    dir
}

/// `wanco migrate` from the source namespace.
fn migrate(net: &Net, src: &Source, dest: &str, extra: &[String]) -> Output {
    migrate_mapped(net, src, dest, &src.data, extra)
}

/// `wanco migrate` with /data at `data` on the destination.
fn migrate_mapped(net: &Net, src: &Source, dest: &str, data: &Path, extra: &[String]) -> Output {
    let mut cmd = Net::exec(&net.src, &tools().wanco);
    cmd.arg("migrate").arg(src.pid().to_string()).arg("--to").arg(dest);
    cmd.arg("--dir-map").arg(format!("/data={}", data.display()));
    cmd.args(extra);
    cmd.stdin(Stdio::null());
    common::output_within(&mut cmd, Duration::from_secs(300))
}

fn ssh_args(ssh: &[String], aarch64: bool) -> Vec<String> {
    let mut a = vec!["--remote-wanco".to_string(), tools().wanco.display().to_string()];
    for s in ssh {
        a.push(format!("--ssh-arg={s}"));
    }
    if aarch64 {
        a.push("--agent-arg=--isa=aarch64".into());
        a.push(format!("--agent-arg=--runner={}", runner()));
    }
    a
}

/// A successful move: the source ends after the destination runs the program; joined output,
/// exit code and file equal the uninterrupted run's.
fn check_moved(src: Source, m: Output, what: &str) {
    let r = reference();
    let data = src.data.clone();
    let (code, out, err) = src.finish();
    let m_err = String::from_utf8_lossy(&m.stderr);
    assert_eq!(m.status.code(), Some(EXIT), "{what}: wanco migrate exits with the program's code\n{m_err}");
    assert!(m_err.contains("moved to ") || m_err.contains("\"migrated\":true"), "{what}: no summary\n{m_err}");
    assert_eq!(code, Some(0), "{what}: the source ends once the program runs elsewhere: {err}");
    assert!(err.contains("moved to another host"), "{what}: {err}");
    let relayed = String::from_utf8_lossy(&m.stdout);
    assert!(out.contains("tick 1 ") && !relayed.is_empty() && !out.contains("final hash"), "{what}: moved mid-run\nsource:\n{out}\nrelayed:\n{relayed}");
    assert_eq!(format!("{out}{relayed}"), r.stdout, "{what}: joined output");
    assert_eq!(std::fs::read(data.join("out.txt")).unwrap(), r.file, "{what}: out.txt");
}

/// A failed move: the source went on (or never stopped) and finished as if nothing happened.
fn check_stayed(src: Source, m: Output, what: &str, message: &str) {
    let r = reference();
    let data = src.data.clone();
    let (code, out, err) = src.finish();
    let m_err = String::from_utf8_lossy(&m.stderr);
    assert_eq!(m.status.code(), Some(1), "{what}: wanco migrate fails\n{m_err}");
    assert!(m_err.contains(message), "{what}: expected `{message}` in\n{m_err}");
    assert!(m.stdout.is_empty(), "{what}: nothing relayed");
    assert_eq!(code, Some(EXIT), "{what}: the source finishes: {err}");
    assert_eq!(out, r.stdout, "{what}: output");
    assert_eq!(std::fs::read(data.join("out.txt")).unwrap(), r.file, "{what}: out.txt");
}

/// No process runs a binary of the agent's work directory (a restored copy left behind).
fn no_copy_at_destination(dir: &Path) {
    let agent = dir.join("agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path().join("exe")).ok().map(|x| (e.file_name(), x)))
            .filter(|(_, exe)| exe.starts_with(&agent))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "a restored copy still runs at the destination: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ssh_x86_64_to_x86_64() {
    let dir = work("ssh-x86_64");
    let mut net = Net::new("sx");
    let ssh = start_sshd(&mut net, &dir);
    let src = Source::start(&net, &dir);
    let mut args = ssh_args(&ssh, false);
    args.push("--json".into());
    let m = migrate(&net, &src, &format!("ssh://root@{DST_ADDR}"), &args);
    let v = summary(&m);
    // Pre-copy is the default: memory went in rounds while the program ran.
    assert_eq!(v["mode"], "precopy", "{v}");
    assert!(v["rounds"].as_u64().unwrap() >= 1, "{v}");
    check_moved(src, m, "ssh x86_64 -> x86_64");
}

/// The JSON summary `wanco migrate --json` prints on stderr.
fn summary(m: &Output) -> serde_json::Value {
    let err = String::from_utf8_lossy(&m.stderr).to_string();
    let json = err.lines().find_map(|l| l.strip_prefix("wanco migrate: {")).map(|l| format!("{{{l}"));
    serde_json::from_str(&json.unwrap_or_else(|| panic!("no JSON summary:\n{err}"))).unwrap()
}

#[test]
fn ssh_x86_64_to_aarch64() {
    let dir = work("ssh-aarch64");
    let mut net = Net::new("sa");
    let ssh = start_sshd(&mut net, &dir);
    let src = Source::start(&net, &dir);
    let mut args = ssh_args(&ssh, true);
    args.extend(["--dest-binary".into(), bins().aarch64.display().to_string(), "--json".into()]);
    let m = migrate(&net, &src, &format!("ssh://root@{DST_ADDR}:22"), &args);
    let v = summary(&m);
    assert_eq!(v["dest_isa"], "aarch64", "{v}");
    assert_eq!(v["mode"], "precopy", "{v}");
    assert!(v["downtime_ms"].as_f64().unwrap() > 0.0 && v["snapshot_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["bytes_sent"].as_u64().unwrap() > v["snapshot_bytes"].as_u64().unwrap(), "{v}");
    // The rounds' memory image is used under qemu-user too.
    assert!(v["memory"].as_str().is_some_and(|m| m.starts_with("image-")), "{v}");
    eprintln!("ssh x86_64 -> aarch64: memory {}, downtime on the runtimes' clocks {} ms", v["memory"], v["downtime_runtime_ms"]);
    check_moved(src, m, "ssh x86_64 -> aarch64");
}

#[test]
fn tls_x86_64_to_x86_64() {
    let TlsMove { net, p, dest, src, .. } = tls_move("tls-x86_64", "tx", false, &[], &[]);
    let mut args = tls_args(&p);
    args.extend(["--stop-and-copy".into(), "--json".into()]);
    let m = migrate(&net, &src, &dest, &args);
    let v = summary(&m);
    assert!(v["mode"] == "stop-and-copy" && v["rounds"] == 0 && v["memory"] == "snapshot", "{v}");
    check_moved(src, m, "tls x86_64 -> x86_64 (stop-and-copy)");
}

#[test]
fn tls_x86_64_to_aarch64() {
    let TlsMove { net, p, dest, src, .. } = tls_move("tls-aarch64", "ta", true, &[], &[]);
    let mut args = tls_args(&p);
    args.extend(["--dest-binary".into(), bins().aarch64.display().to_string()]);
    let m = migrate(&net, &src, &dest, &args);
    check_moved(src, m, "tls x86_64 -> aarch64");
}

#[test]
fn tls_aarch64_to_x86_64() {
    let dir = work("tls-from-aarch64");
    let mut net = Net::new("fa");
    let p = pki(&dir, "good");
    let dest = start_agent(&mut net, &dir, &p, false, None);
    let src = Source::start_at(&net, &dir, 3, true);
    let mut args = tls_args(&p);
    args.extend(["--dest-binary".into(), bins().x86_64.display().to_string()]);
    let m = migrate(&net, &src, &dest, &args);
    assert!(String::from_utf8_lossy(&m.stderr).contains("(aarch64 -> x86_64"), "{}", String::from_utf8_lossy(&m.stderr));
    check_moved(src, m, "tls aarch64 -> x86_64");
}

#[test]
fn destination_refuses_another_module_and_a_missing_binary() {
    let TlsMove { net, p, dest, src, .. } = tls_move("refuse", "rf", true, &[], &[]);
    // A binary of another module.
    let mut args = tls_args(&p);
    args.extend(["--dest-binary".into(), bins().other_x86_64.display().to_string()]);
    let m = migrate(&net, &src, &dest, &args);
    let e = String::from_utf8_lossy(&m.stderr);
    assert_eq!(m.status.code(), Some(1), "{e}");
    assert!(e.contains("the binary sent is for x86_64, this destination runs aarch64"), "{e}");
    // No binary for the destination's ISA at all.
    let m = migrate(&net, &src, &dest, &tls_args(&p));
    check_stayed(src, m, "no binary", "no binary of module");
    // And the other module's binary for the right ISA.
    let dir = work("refuse-module");
    let mut net = Net::new("rm");
    let dest = start_agent(&mut net, &dir, &p, false, None);
    let src = Source::start(&net, &dir);
    let mut args = tls_args(&p);
    args.extend(["--dest-binary".into(), bins().other_x86_64.display().to_string()]);
    let m = migrate(&net, &src, &dest, &args);
    check_stayed(src, m, "another module", "was compiled from module sha256");
}

#[test]
fn sync_dirs_copies_what_the_destination_lacks() {
    let dir = work("sync");
    let mut net = Net::new("sy");
    let p = pki(&dir, "good");
    let dest = start_agent(&mut net, &dir, &p, true, None);
    // At the source: a 3 MiB file the program never touches and one the destination already
    // has (same size and time: not sent); the destination's directory has a file of its own.
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(data.join("sub/big.bin"), &big).unwrap();
    std::fs::write(data.join("same.txt"), "same\n").unwrap();
    let dst = dir.join("dst-data");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(data.join("same.txt"), dst.join("same.txt")).unwrap();
    let t = std::fs::metadata(data.join("same.txt")).unwrap().modified().unwrap();
    std::fs::File::options().write(true).open(dst.join("same.txt")).unwrap().set_modified(t).unwrap();
    std::fs::write(dst.join("theirs.txt"), "kept\n").unwrap();
    let src = Source::start(&net, &dir);
    let mut args = tls_args(&p);
    args.extend(["--dest-binary".into(), bins().aarch64.display().to_string(), "--sync-dirs".into(), "--json".into()]);
    let m = migrate_mapped(&net, &src, &dest, &dst, &args);
    let err = String::from_utf8_lossy(&m.stderr).to_string();
    let json = err.lines().find_map(|l| l.strip_prefix("wanco migrate: {")).map(|l| format!("{{{l}"));
    let v: serde_json::Value = serde_json::from_str(&json.unwrap_or_else(|| panic!("no JSON summary:\n{err}"))).unwrap();
    // Before the stop: big.bin and out.txt (not same.txt); after: out.txt again if the program
    // wrote to it in between (it writes once per 50 ms), nothing else.
    assert_eq!(v["sync_files_before_stop"].as_u64(), Some(2), "{v}");
    assert!(v["sync_files_after_stop"].as_u64().unwrap() <= 1, "{v}");
    assert!(v["sync_bytes_before_stop"].as_u64().unwrap() > 3 << 20, "{v}");
    assert!(v["sync_bytes_after_stop"].as_u64().unwrap() < 10_000, "{v}");
    let (code, out, serr) = src.finish();
    assert_eq!(code, Some(0), "{serr}");
    assert_eq!(m.status.code(), Some(EXIT), "{err}");
    let r = reference();
    assert_eq!(format!("{out}{}", String::from_utf8_lossy(&m.stdout)), r.stdout);
    // The program went on writing at the destination: its file is whole there, cut at the source.
    assert_eq!(std::fs::read(dst.join("out.txt")).unwrap(), r.file);
    let at_source = std::fs::read(data.join("out.txt")).unwrap();
    assert!(at_source.len() < r.file.len() && r.file.starts_with(&at_source), "{} of {} bytes", at_source.len(), r.file.len());
    assert_eq!(std::fs::read(dst.join("sub/big.bin")).unwrap(), big);
    assert_eq!(std::fs::read_to_string(dst.join("theirs.txt")).unwrap(), "kept\n");
}

/// Move the 32 MiB heap program (`tests/programs/migrate/migrate_heap.wat`, compiled for
/// x86_64) between two namespaces over mutual TLS with `extra` options and `--json`; checks the
/// exit codes and that the joined output equals wasmtime's uninterrupted run. Returns the work
/// directory and the migration's summary.
fn move_large_heap(name: &str, net_tag: &str, extra: &[&str]) -> (PathBuf, serde_json::Value) {
    let dir = work(name);
    let src_wat = workspace().join("tests/programs/migrate/migrate_heap.wat");
    let bin = dir.join("heap.x86_64");
    run_ok(Command::new(&tools().wanco).arg("compile").arg(&src_wat).arg("--target").arg("x86_64").arg("-o").arg(&bin));
    let r = Command::new(&tools().wasmtime).arg("run").arg(&src_wat).output().unwrap();
    assert_eq!(r.status.code(), Some(EXIT));
    let want = String::from_utf8(r.stdout).unwrap();
    let mut net = Net::new(net_tag);
    let p = pki(&dir, "good");
    let dest = start_agent(&mut net, &dir, &p, false, None);
    let src = Source::start_program(&net, &dir, 3, false, Some(&bin));
    let mut args = tls_args(&p);
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push("--json".into());
    let m = migrate(&net, &src, &dest, &args);
    let v = summary(&m);
    let (code, out, err) = src.finish();
    assert_eq!(m.status.code(), Some(EXIT), "{name}: {}", String::from_utf8_lossy(&m.stderr));
    assert_eq!(code, Some(0), "{name}: the source ends once the program runs elsewhere: {err}");
    assert_eq!(format!("{out}{}", String::from_utf8_lossy(&m.stdout)), want, "{name}: joined output");
    (dir, v)
}

/// Pre-copy of a program with a 32 MiB heap of pseudo-random bytes that rewrites 1 MiB of it
/// per tick: the heap goes in the rounds while the program runs, the final snapshot (sent
/// while it is stopped) holds little more than the working set; output and exit code equal
/// wasmtime's uninterrupted run.
#[test]
fn precopy_large_heap_x86_64_to_x86_64() {
    let (dir, v) = move_large_heap("precopy-heap", "ph", &[]);
    assert_eq!(v["mode"], "precopy", "{v}");
    let rounds: Vec<u64> = v["round_pages"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    assert!(rounds[0] >= 512, "the first round has the whole heap: {v}");
    assert!(rounds.len() >= 2 && *rounds.last().unwrap() <= 40, "later rounds only the working set: {v}");
    // The heap is 32 MiB of incompressible bytes; while stopped only what changed since the
    // last round went.
    assert!(v["snapshot_bytes"].as_u64().unwrap() < 8 << 20, "{v}");
    assert!(v["bytes_sent"].as_u64().unwrap() > 32 << 20, "{v}");
    // The rounds went into a memory image at the destination, which the restore mapped
    // (nothing after the stop read the heap); the downtime on the runtimes' clocks is there.
    assert_eq!(v["memory"], "image-mapped", "{v}");
    let d = v["downtime_runtime_ms"].as_f64().unwrap_or(-1.0);
    assert!(d > 0.0 && d <= v["downtime_ms"].as_f64().unwrap(), "stop to first instruction within the measured downtime: {v}");
    // The restoring process was started with the first round (`--await-snapshot`): its start
    // is not part of the downtime.
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap();
    assert!(log.contains("the restore maps it") && log.contains("(started before the snapshot; memory: image-mapped"), "the agent's log: {log}");
}

/// A program restored over a memory image moves on again: its pre-copy reads the mapped memory
/// (the checkpoint must not take the image's untouched pages for zero pages, and write tracking
/// must work over the mapping: later rounds hold only the working set); the output of the source
/// and of both hops, joined, equals wasmtime's uninterrupted run.
#[test]
fn precopy_again_from_a_mapped_image() {
    let dir = work("precopy-twice");
    // 300 ticks of 20 ms instead of 200: time for two moves.
    let wat = std::fs::read_to_string(workspace().join("tests/programs/migrate/migrate_heap.wat")).unwrap();
    let wat = wat.replace("(global $ticks i32 (i32.const 200))", "(global $ticks i32 (i32.const 300))");
    assert!(wat.contains("(global $ticks i32 (i32.const 300))"), "the ticks of migrate_heap.wat");
    let src_wat = dir.join("heap-300.wat");
    std::fs::write(&src_wat, wat).unwrap();
    let bin = dir.join("heap.x86_64");
    run_ok(Command::new(&tools().wanco).arg("compile").arg(&src_wat).arg("--target").arg("x86_64").arg("-o").arg(&bin));
    let r = Command::new(&tools().wasmtime).arg("run").arg(&src_wat).output().unwrap();
    let want = String::from_utf8(r.stdout).unwrap();
    let mut net = Net::new("pt");
    let p = pki(&dir, "good");
    let dest = start_agent(&mut net, &dir, &p, false, None);
    let src = Source::start_program(&net, &dir, 3, false, Some(&bin));
    let mut args = tls_args(&p);
    args.extend(["--json".into(), "--detach".into()]);
    let m1 = migrate(&net, &src, &dest, &args);
    let v1 = summary(&m1);
    assert_eq!(v1["memory"], "image-mapped", "{v1}");
    let (code, out, err) = src.finish();
    assert_eq!(code, Some(0), "the source ends once the program runs elsewhere: {err}");
    // The second hop, from the destination host to its own agent.
    let pid = v1["dest_pid"].as_u64().unwrap();
    let mut cmd = Net::exec(&net.dst, &tools().wanco);
    cmd.arg("migrate").arg(pid.to_string()).arg("--to").arg(&dest).args(tls_args(&p)).arg("--json").stdin(Stdio::null());
    let m2 = common::output_within(&mut cmd, Duration::from_secs(300));
    assert_eq!(m2.status.code(), Some(EXIT), "{}", String::from_utf8_lossy(&m2.stderr));
    let v2 = summary(&m2);
    assert_eq!(v2["memory"], "image-mapped", "{v2}");
    let rounds: Vec<u64> = v2["round_pages"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    assert!(rounds[0] >= 512 && rounds.len() >= 2 && *rounds.last().unwrap() <= 40, "whole heap, then the working set: {v2}");
    // The first hop's output, kept by the agent (--detach) once that process ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    let hop1 = loop {
        let kept = std::fs::read_dir(dir.join("agent")).unwrap().flatten().map(|e| e.path()).find(|d| d.join("exit-code").is_file());
        if let Some(d) = kept {
            break std::fs::read_to_string(d.join("stdout.log")).unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "the first hop's process did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(format!("{out}{hop1}{}", String::from_utf8_lossy(&m2.stdout)), want, "joined output of the source and both hops");
}

/// A memory image that is not the one the final snapshot continues (its header names
/// another snapshot), or whose header is damaged, is refused by the restore: nothing runs
/// at the destination and the source goes on.
#[test]
fn wrong_or_damaged_memory_image_is_refused_and_the_source_goes_on() {
    for (how, tag, message) in [("wrong", "iw", "a wrong image"), ("damaged", "id", "header checksum mismatch")] {
        let TlsMove { dir, net, p, dest, src } = tls_move(&format!("image-{how}"), tag, false, &[("WANCO_AGENT_TEST_IMAGE", how)], &[]);
        let m = migrate(&net, &src, &dest, &tls_args(&p));
        check_stayed(src, m, &format!("{how} memory image"), message);
        no_copy_at_destination(&dir);
    }
}

#[test]
fn failed_restore_resumes_the_source() {
    // /data mapped to an empty directory: the restore cannot reopen out.txt there.
    let dir = work("restore-fails");
    let mut net = Net::new("rs");
    let p = pki(&dir, "good");
    let dest = start_agent(&mut net, &dir, &p, false, None);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let src = Source::start(&net, &dir);
    let m = migrate_mapped(&net, &src, &dest, &empty, &tls_args(&p));
    check_stayed(src, m, "failed restore", "the destination refused (restore): the restore failed (exit 2): error: cannot restore");
    no_copy_at_destination(&dir);
    assert!(std::fs::read_dir(&empty).unwrap().next().is_none(), "the refused restore created no file");
}

#[test]
fn destination_killed_during_precopy_transfer_or_restore() {
    for (phase, tag, ssh) in [("precopy", "kp", false), ("transfer", "kt", true), ("restored", "kr", false)] {
        let dir = work(&format!("kill-{phase}"));
        let mut net = Net::new(tag);
        let p = pki(&dir, "good");
        let (dest, args) = if ssh {
            let s = start_sshd(&mut net, &dir);
            let mut a = ssh_args(&s, false);
            // The agent started by ssh kills itself at the phase.
            a.push(format!("--ssh-arg=-oSetEnv=WANCO_AGENT_TEST_KILL_AT={phase}"));
            (format!("ssh://root@{DST_ADDR}"), a)
        } else {
            (start_agent(&mut net, &dir, &p, false, Some(phase)), tls_args(&p))
        };
        let src = Source::start(&net, &dir);
        let m = migrate(&net, &src, &dest, &args);
        check_stayed(src, m, &format!("agent killed at {phase}"), "the program goes on here");
        no_copy_at_destination(&dir);
    }
}

#[test]
fn wanco_migrate_killed_before_go_leaves_the_source_running() {
    // The source resumes (its control connection closed before the point of no return), the
    // destination discards the restored program (its connection closed before Go).
    let dir = migrate_killed_before_the_point_of_no_return("kill-migrate", "km", "restored", &[]);
    let agent_log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    assert!(agent_log.contains("restored program was discarded"), "{agent_log}");
}

#[test]
fn link_cut_while_the_program_is_stopped_resumes_the_source() {
    let dir = work("link-cut");
    let mut net = Net::new("lc");
    let p = pki(&dir, "good");
    // The agent restores the program, then pauses 3 s before saying so; the link goes down
    // meanwhile. It discards the program when Go has not come 4 s later.
    let dest = start_agent_with(&mut net, &dir, &p, false, &[("WANCO_AGENT_TEST_PAUSE_AT", "restored")], &["--go-timeout", "4"]);
    let src = Source::start(&net, &dir);
    let (ns, dev) = (net.dst.clone(), net.dst_dev.clone());
    let cutter = when_paused(dir.join("agent.log"), move || {
        run_ok(Command::new("ip").args(["-n", &ns, "link", "set", &dev, "down"]));
    });
    let mut args = tls_args(&p);
    args.extend(["--timeout".into(), "2".into()]);
    let m = migrate(&net, &src, &dest, &args);
    cutter.join().unwrap();
    let e = String::from_utf8_lossy(&m.stderr).to_string();
    assert!(e.contains("no answer within the time limit"), "{e}");
    check_stayed(src, m, "link cut", "the program goes on here");
    no_copy_at_destination(&dir);
    // The agent says so once it has killed the gated program.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut agent_log = String::new();
    while !agent_log.contains("restored program was discarded") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        agent_log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    }
    assert!(agent_log.contains("restored program was discarded"), "{agent_log}");
}

/// A destination host that is there but never answers (B's link drops everything B sends: a
/// `tbf` queue with a 10-byte bucket; A knows B's MAC address, so A's packets reach B):
/// `wanco migrate` over ssh gives up within the connect time limit — the user's
/// `--ssh-arg=-oConnectTimeout=2`, which overrides wanco's default of 20 s — says which
/// destination, and the program goes on at the source, its output and file as an uninterrupted
/// run's.
#[test]
fn silent_destination_fails_within_the_connect_limit_and_the_program_goes_on() {
    let dir = work("silent");
    let net = Net::new("sl");
    let link = run_ok(Command::new("ip").args(["-n", &net.dst, "-o", "link", "show", "dev", &net.dst_dev]));
    let link = String::from_utf8_lossy(&link.stdout).to_string();
    let mac = link.split_whitespace().skip_while(|w| *w != "link/ether").nth(1).unwrap_or_else(|| panic!("no MAC address in {link}"));
    run_ok(Command::new("ip").args(["-n", &net.src, "neigh", "replace", DST_ADDR, "lladdr", mac, "dev", &net.src_dev, "nud", "permanent"]));
    run_ok(Command::new("ip").args(["netns", "exec", &net.dst, "tc", "qdisc", "replace", "dev", &net.dst_dev, "root", "tbf", "rate", "8bit", "burst", "10", "limit", "1"]));
    let src = Source::start(&net, &dir);
    let t = Instant::now();
    let m = migrate(&net, &src, &format!("ssh://root@{DST_ADDR}"), &["--ssh-arg=-oConnectTimeout=2".into()]);
    let took = t.elapsed();
    let e = String::from_utf8_lossy(&m.stderr).to_string();
    assert!(e.contains("Connection timed out") && e.contains("ssh's own message above says why"), "ssh's own message, and wanco's pointing to it:\n{e}");
    assert!(took < Duration::from_secs(10), "gave up after {took:?}\n{e}");
    assert!(e.contains(&format!("ssh://root@{DST_ADDR}")), "the message names the destination\n{e}");
    check_stayed(src, m, "silent destination", "the program goes on here");
}

#[test]
fn destination_killed_after_the_point_of_no_return_keeps_the_state() {
    let TlsMove { dir, net, p, dest, src } = tls_move("kill-go", "kg", false, &[("WANCO_AGENT_TEST_KILL_AT", "go")], &[]);
    let m = migrate(&net, &src, &dest, &tls_args(&p));
    let e = String::from_utf8_lossy(&m.stderr).to_string();
    assert_eq!(m.status.code(), Some(3), "{e}");
    let (code, out, err) = src.finish();
    // Neither copy runs: the source stopped with its state kept, the destination's never ran.
    assert_eq!(code, Some(3), "{err}");
    no_copy_at_destination(&dir);
    // Nothing is lost: the kept state continues the program here.
    let kept = continue_from_kept_state(&e, &out, &dir, "wanco migrate");
    assert!(err.contains(&kept), "{err}");
}

/// The snapshot a stopped source kept (named in `text`: "its state is kept in PATH"), restored
/// here: the program ends as the uninterrupted run, its output joined to `out` (the source's).
/// Returns the snapshot's path.
fn continue_from_kept_state(text: &str, out: &str, dir: &Path, who: &str) -> String {
    let kept = text
        .lines()
        .find_map(|l| l.split("its state is kept in ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{who} names no kept state:\n{text}"));
    let o = Command::new(&bins().x86_64).arg("--restore").arg(kept).output().unwrap();
    assert_eq!(o.status.code(), Some(EXIT), "{who}: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(format!("{out}{}", String::from_utf8_lossy(&o.stdout)), reference().stdout, "{who}: joined output");
    assert_eq!(std::fs::read(dir.join("data/out.txt")).unwrap(), reference().file, "{who}: out.txt");
    kept.to_string()
}

#[test]
fn tls_client_certificate_of_another_ca_is_refused() {
    let dir = work("bad-cert");
    let mut net = Net::new("bc");
    let good = pki(&dir, "good");
    let rogue = pki(&dir, "rogue");
    let dest = start_agent(&mut net, &dir, &good, false, None);
    let src = Source::start(&net, &dir);
    // The client trusts the agent's CA but presents a certificate of another CA.
    let args = vec![
        "--cert".to_string(),
        rogue.client.0.display().to_string(),
        "--key".into(),
        rogue.client.1.display().to_string(),
        "--ca".into(),
        good.ca.display().to_string(),
    ];
    let m = migrate(&net, &src, &dest, &args);
    let e = String::from_utf8_lossy(&m.stderr).to_string();
    assert_eq!(m.status.code(), Some(1), "{e}");
    assert!(e.contains(&format!("cannot connect to {dest}: TLS: {DST_ADDR}:7878 refused this side's certificate")), "{e}");
    assert!(e.contains("received fatal alert"), "{e}");
    // Nor does it accept an agent whose certificate it cannot verify.
    let args = vec![
        "--cert".to_string(),
        good.client.0.display().to_string(),
        "--key".into(),
        good.client.1.display().to_string(),
        "--ca".into(),
        rogue.ca.display().to_string(),
    ];
    let m2 = migrate(&net, &src, &dest, &args);
    let e2 = String::from_utf8_lossy(&m2.stderr).to_string();
    assert_eq!(m2.status.code(), Some(1), "{e2}");
    assert!(e2.contains("TLS: handshake") && e2.contains("UnknownIssuer"), "{e2}");
    let r = reference();
    let data = src.data.clone();
    let (code, out, err) = src.finish();
    assert_eq!(code, Some(EXIT), "{err}");
    assert_eq!(out, r.stdout);
    assert!(!err.contains("moved"), "{err}");
    assert_eq!(std::fs::read(data.join("out.txt")).unwrap(), r.file);
}

/// `just migrate-test`: moves at several moments of the run, over both transports, to both ISAs,
/// each route in all three modes.
#[test]
#[ignore = "slow: run by `just migrate-test`"]
fn matrix_of_moments() {
    let dir = work("matrix");
    let mut net = Net::new("mx");
    let ssh = start_sshd(&mut net, &dir);
    let p = pki(&dir, "good");
    std::fs::create_dir_all(dir.join("x")).unwrap();
    let tls_x = start_agent(&mut net, &dir.join("x"), &p, false, None);
    // A second agent for aarch64 on another port.
    let mut cmd = Net::exec(&net.dst, &tools().wanco);
    cmd.args(["agent", "--listen", &format!("{DST_ADDR}:7879")])
        .arg("--cert")
        .arg(&p.server.0)
        .arg("--key")
        .arg(&p.server.1)
        .arg("--ca")
        .arg(&p.ca)
        .arg("--work-dir")
        .arg(dir.join("a"))
        .args(["--isa", "aarch64", "--runner"])
        .arg(runner());
    net.daemon(cmd, "listening on", &dir.join("agent-a.log"));
    let tls_a = format!("tls://{DST_ADDR}:7879");
    // Each route moves once in each mode (over the three moments).
    let modes = ["--precopy", "--postcopy", "--stop-and-copy"];
    for (t, tick) in [1u32, 8, 16].into_iter().enumerate() {
        for (r, (transport, aarch64)) in [("ssh", false), ("ssh", true), ("tls", false), ("tls", true)].into_iter().enumerate() {
            let mode = modes[(t + r) % modes.len()];
            let what = format!("{transport} {} {mode} at tick {tick}", if aarch64 { "aarch64" } else { "x86_64" });
            let run = dir.join(format!("{transport}-{aarch64}-{tick}"));
            std::fs::create_dir_all(&run).unwrap();
            let src = Source::start_at(&net, &run, tick, false);
            let (dest, mut args) = match transport {
                "ssh" => (format!("ssh://root@{DST_ADDR}"), ssh_args(&ssh, aarch64)),
                _ => (if aarch64 { tls_a.clone() } else { tls_x.clone() }, tls_args(&p)),
            };
            if aarch64 {
                args.extend(["--dest-binary".into(), bins().aarch64.display().to_string()]);
            }
            args.push(mode.into());
            let m = migrate(&net, &src, &dest, &args);
            eprintln!("{what}: {}", String::from_utf8_lossy(&m.stderr).lines().find(|l| l.contains("moved to")).unwrap_or("?"));
            check_moved(src, m, &what);
        }
    }
}

/// The control channel by hand: `info`, a bad request, and `checkpoint PATH` — a snapshot
/// taken while the program goes on (it finishes as if nothing happened), which restores.
#[test]
fn control_channel_checkpoint_leaves_the_program_running() {
    use std::io::Write;
    let dir = work("control");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let sock = dir.join("ctl.sock");
    let mut child = Command::new(&bins().x86_64)
        .arg(format!("--control={}", sock.display()))
        .arg("--dir")
        .arg(format!("{}::/data", data.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    while !first.contains("tick 3 ") {
        assert!(out.read_line(&mut first).unwrap() > 0, "the program ended early: {first}");
    }
    let s = std::os::unix::net::UnixStream::connect(&sock).expect("the control socket");
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s).lines();
    let mut ask = |req: &str| {
        writeln!(w, "{req}").unwrap();
        r.next().unwrap().unwrap()
    };
    let info = ask("info");
    let hex: String = "/data".bytes().map(|b| format!("{b:02x}")).collect();
    assert!(info.starts_with("info isa=x86_64 hash=") && info.contains(&format!("pid={}", child.id())) && info.contains(&format!("preopens={hex}:")), "{info}");
    assert!(ask("dance").starts_with("error unknown request `dance`"));
    let snap = dir.join("leave-running.wsnap");
    let ok = ask(&format!("checkpoint {}", snap.display()));
    assert!(ok.starts_with("ok points=") && ok.contains(" bytes="), "{ok}");
    drop(r);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let r = reference();
    assert_eq!(status.code(), Some(EXIT));
    assert_eq!(first + &rest, r.stdout, "the program went on as if nothing happened");
    assert_eq!(std::fs::read(data.join("out.txt")).unwrap(), r.file);
    assert!(!sock.exists(), "the socket is removed at exit");
    // The snapshot continues the program from where it was taken: its output is the rest of
    // the reference's. out.txt is put back as it was then (a restore refuses a file that
    // changed since the checkpoint).
    let taken = wanco_state::snapshot::decode(&std::fs::read(&snap).unwrap()).expect("decode the snapshot");
    let size = taken.wasi.fds.iter().find(|f| f.rel_path == "out.txt").and_then(|f| f.size).expect("out.txt open at the checkpoint");
    assert!(size > 0 && size < r.file.len() as u64, "{size}");
    std::fs::File::options().write(true).open(data.join("out.txt")).unwrap().set_len(size).unwrap();
    let o = Command::new(&bins().x86_64).arg("--restore").arg(&snap).output().unwrap();
    assert_eq!(o.status.code(), Some(EXIT), "{}", String::from_utf8_lossy(&o.stderr));
    let tail = String::from_utf8(o.stdout).unwrap();
    assert!(!tail.is_empty() && r.stdout.ends_with(&tail) && tail.len() < r.stdout.len() - 60, "{tail}");
    assert_eq!(std::fs::read(data.join("out.txt")).unwrap(), r.file);
}

/// Incremental checkpoints over the control channel: a full snapshot, then two that each name
/// the one before as their parent; `wanco-snap chain` shows and checks them, `wanco-snap merge`
/// makes one full snapshot of them that continues the program like the reference. A chain with
/// a link left out, or an increment restored by itself, is refused saying which.
#[test]
fn incremental_checkpoints_chain_and_merge() {
    use std::io::Write;
    let dir = work("incremental");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let sock = dir.join("ctl.sock");
    let mut child = Command::new(&bins().x86_64)
        .arg(format!("--control={}", sock.display()))
        .arg("--dir")
        .arg(format!("{}::/data", data.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut wait_for = |tick: u32, seen: &mut String| {
        while !seen.contains(&format!("tick {tick} ")) {
            assert!(out.read_line(seen).unwrap() > 0, "the program ended early: {seen}");
        }
    };
    wait_for(3, &mut seen);
    let s = std::os::unix::net::UnixStream::connect(&sock).expect("the control socket");
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s).lines();
    let mut ask = |req: &str| {
        writeln!(w, "{req}").unwrap();
        r.next().unwrap().unwrap()
    };
    let field = |reply: &str, key: &str| -> String {
        reply.split(' ').find_map(|f| f.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key}= in {reply}")).to_string()
    };
    let snaps: Vec<PathBuf> = (0..3).map(|k| dir.join(format!("s{k}.wsnap"))).collect();
    let base = ask(&format!("checkpoint {}", snaps[0].display()));
    assert!(base.starts_with("ok ") && field(&base, "parent") == "none", "{base}");
    wait_for(5, &mut seen);
    let r1 = ask(&format!("checkpoint-incremental {}", snaps[1].display()));
    assert_eq!(field(&r1, "parent"), field(&base, "id"), "the increment names the full snapshot: {r1}");
    wait_for(7, &mut seen);
    let r2 = ask(&format!("checkpoint-incremental {}", snaps[2].display()));
    assert_eq!(field(&r2, "parent"), field(&r1, "id"), "{r2}");
    // Each id is the file's checksum.
    for (k, reply) in [&base, &r1, &r2].into_iter().enumerate() {
        let id: String = wanco_state::snapshot::snapshot_id(&std::fs::read(&snaps[k]).unwrap()).unwrap().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(field(reply, "id"), id);
    }
    drop(ask);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(EXIT));
    let reference = reference();
    assert_eq!(seen + &rest, reference.stdout, "the program went on as if nothing happened");

    let snap_tool = tools().wanco.with_file_name("wanco-snap");
    let chain = run_ok(Command::new(&snap_tool).arg("chain").args(&snaps));
    let text = String::from_utf8_lossy(&chain.stdout);
    assert!(text.contains("ok: a chain of 3 snapshots") && text.contains("parent none (full)"), "{text}");
    // A link left out: s2's parent is s1, not s0.
    let o = Command::new(&snap_tool).arg("merge").arg(&snaps[0]).arg(&snaps[2]).arg("-o").arg(dir.join("bad.wsnap")).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("s2.wsnap (snapshot 1 of the chain)") && e.contains("foreign parent") && e.contains(&field(&r1, "id")[..16]), "{e}");
    // The parent missing at the start.
    let o = Command::new(&snap_tool).arg("chain").arg(&snaps[1]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && e.contains("is missing") && e.contains(&field(&r1, "parent")[..16]), "{e}");
    // An increment is not restored by itself.
    let o = Command::new(&bins().x86_64).arg("--restore").arg(&snaps[2]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && e.contains("incremental snapshot") && e.contains("wanco-snap merge"), "{e}");

    // The merged chain continues the program from the last increment.
    let merged = dir.join("merged.wsnap");
    run_ok(Command::new(&snap_tool).arg("merge").args(&snaps).arg("-o").arg(&merged));
    let taken = wanco_state::snapshot::decode(&std::fs::read(&merged).unwrap()).expect("the merged snapshot is a full one");
    let size = taken.wasi.fds.iter().find(|f| f.rel_path == "out.txt").and_then(|f| f.size).expect("out.txt open");
    std::fs::File::options().write(true).open(data.join("out.txt")).unwrap().set_len(size).unwrap();
    let o = Command::new(&bins().x86_64).arg("--restore").arg(&merged).output().unwrap();
    assert_eq!(o.status.code(), Some(EXIT), "{}", String::from_utf8_lossy(&o.stderr));
    let tail = String::from_utf8(o.stdout).unwrap();
    assert!(tail.starts_with("tick ") && tail.len() > 100, "{tail}");
    assert!(reference.stdout.ends_with(&tail), "{tail}");
    assert_eq!(std::fs::read(data.join("out.txt")).unwrap(), reference.file);
}

/// Issue 18: the link between the hosts cut (the destination's veth down) while the pre-copy
/// rounds go (the program runs) and while the final snapshot goes (it is stopped): `wanco
/// migrate` gives up after `--timeout`, the program goes on at the source and finishes as if
/// nothing happened, and no copy runs at the destination (what it got is discarded).
#[test]
fn migration_link_cut_during_precopy_or_transfer_resumes_the_source() {
    for (phase, tag) in [("precopy", "cp"), ("transfer", "ct")] {
        let dir = work(&format!("cut-{phase}"));
        let mut net = Net::new(tag);
        let p = pki(&dir, "good");
        // The agent pauses 3 s when the first piece of that phase arrives; the link goes down
        // meanwhile. A program it restored waits at most 4 s for Go; after 4 s without a word
        // from the source it gives the migration up (and kills the process it started for the
        // restore during the rounds, which waits for its snapshot).
        let dest = start_agent_with(
            &mut net,
            &dir,
            &p,
            false,
            &[("WANCO_AGENT_TEST_PAUSE_AT", phase)],
            &["--go-timeout", "4", "--silence-limit", "4"],
        );
        let src = Source::start(&net, &dir);
        let (ns, dev) = (net.dst.clone(), net.dst_dev.clone());
        let cutter = when_paused(dir.join("agent.log"), move || {
            run_ok(Command::new("ip").args(["-n", &ns, "link", "set", &dev, "down"]));
        });
        let mut args = tls_args(&p);
        args.extend(["--timeout".into(), "2".into()]);
        let t = Instant::now();
        let m = migrate(&net, &src, &dest, &args);
        let took = t.elapsed();
        cutter.join().unwrap();
        let e = String::from_utf8_lossy(&m.stderr).to_string();
        assert!(e.contains("no answer within the time limit") || e.contains("took no data within the time limit"), "cut during {phase}: {e}");
        assert!(took < Duration::from_secs(20), "cut during {phase}: wanco migrate took {took:?}");
        check_stayed(src, m, &format!("link cut during {phase}"), "the program goes on here");
        no_copy_at_destination(&dir);
    }
}

/// Issue 18: the source killed mid-move — the program itself (SIGKILL) during the pre-copy
/// and during the final transfer, and `wanco migrate` during the pre-copy. A dead program is
/// never started at the destination (what it got is discarded, `wanco migrate` exits 1 saying
/// the program ended); a dead `wanco migrate` leaves the program running at the source.
#[test]
fn source_killed_mid_move_leaves_no_copy_at_the_destination() {
    for (phase, tag) in [("precopy", "sp"), ("transfer", "st")] {
        let dir = work(&format!("src-killed-{phase}"));
        let mut net = Net::new(tag);
        let p = pki(&dir, "good");
        // During the pre-copy `wanco migrate` pauses 3 s after the first round (the program
        // runs); during the transfer the agent pauses at the first snapshot piece (the program
        // is stopped). The program is killed meanwhile.
        type Env = Vec<(&'static str, &'static str)>;
        let (agent_env, migrate_env, log): (Env, Env, PathBuf) = if phase == "precopy" {
            (vec![], vec![("WANCO_MIGRATE_TEST_PAUSE_AT", "precopy")], dir.join("migrate.log"))
        } else {
            (vec![("WANCO_AGENT_TEST_PAUSE_AT", "transfer")], vec![], dir.join("agent.log"))
        };
        let dest = start_agent_with(&mut net, &dir, &p, false, &agent_env, &["--go-timeout", "10"]);
        let src = Source::start(&net, &dir);
        let pid = src.pid() as i32;
        let killer = when_paused(log.clone(), move || {
            // SAFETY: kill(2) on the program this test started (not yet reaped).
            assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        });
        let mut cmd = migrate_cmd(&net, &src, &dest, &p);
        cmd.envs(migrate_env).stdin(Stdio::null()).stderr(std::fs::File::create(dir.join("migrate.log")).unwrap());
        let mut m = cmd.output().unwrap();
        m.stderr = std::fs::read(dir.join("migrate.log")).unwrap();
        killer.join().unwrap();
        let e = String::from_utf8_lossy(&m.stderr).to_string();
        assert_eq!(m.status.code(), Some(1), "source killed during {phase}: {e}");
        assert!(
            e.contains(&format!("nothing was moved: process {pid} has ended")) || e.contains("the program ended at the source before the point of no return"),
            "source killed during {phase}: {e}"
        );
        assert!(m.stdout.is_empty(), "nothing relayed");
        no_copy_at_destination(&dir);
        let (code, _, _) = src.finish();
        assert_eq!(code, None, "killed by a signal");
    }
    // `wanco migrate` killed after the first pre-copy round: the program never stopped and
    // goes on; the agent drops what it got.
    let dir = migrate_killed_before_the_point_of_no_return("migrate-killed-precopy", "mp", "precopy", &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut agent_log = String::new();
    while !agent_log.contains("failed") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        agent_log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    }
    assert!(agent_log.contains("migration from") && agent_log.contains("failed"), "{agent_log}");
}

/// Issue 18, `--postcopy`: the program stops at once, only its state goes before it runs at
/// the destination; its pages follow (asked for as it touches them, the rest pushed). Over TLS
/// and ssh, the ticks program (it writes a file): joined output, exit code and file equal the
/// uninterrupted run's; the summary counts the pages.
#[test]
fn postcopy_tls_and_ssh_x86_64_to_x86_64() {
    for ssh in [false, true] {
        let name = if ssh { "postcopy-ssh" } else { "postcopy-tls" };
        let dir = work(name);
        let mut net = Net::new(if ssh { "qs" } else { "qt" });
        let (dest, mut args) = if ssh {
            let s = start_sshd(&mut net, &dir);
            (format!("ssh://root@{DST_ADDR}"), ssh_args(&s, false))
        } else {
            let p = pki(&dir, "good");
            (start_agent(&mut net, &dir, &p, false, None), tls_args(&p))
        };
        let src = Source::start(&net, &dir);
        args.extend(["--postcopy".into(), "--json".into()]);
        let m = migrate(&net, &src, &dest, &args);
        let v = summary(&m);
        assert_eq!(v["mode"], "postcopy", "{name}: {v}");
        assert_eq!(v["memory"], "postcopy-lazy", "{name}: the pages came through userfaultfd: {v}");
        let pages = v["pages"].as_u64().unwrap();
        assert!(pages >= 1, "{name}: {v}");
        assert_eq!(v["pages_on_demand"].as_u64().unwrap() + v["pages_pushed"].as_u64().unwrap(), pages, "{name}: {v}");
        assert!(v["downtime_runtime_ms"].as_f64().is_some_and(|d| d > 0.0), "{name}: {v}");
        check_moved(src, m, &format!("{name} x86_64 -> x86_64"));
    }
}

/// `--postcopy` of the 32 MiB heap program: only the state (no page) goes while it is stopped,
/// all 512+ pages follow after it runs at the destination; joined output equals wasmtime's.
#[test]
fn postcopy_large_heap_x86_64_to_x86_64() {
    let (_dir, v) = move_large_heap("postcopy-heap", "qh", &["--postcopy"]);
    assert_eq!(v["mode"], "postcopy", "{v}");
    assert!(v["pages"].as_u64().unwrap() >= 512, "{v}");
    // While stopped only the state went: the snapshot without its pages is small.
    assert!(v["snapshot_bytes"].as_u64().unwrap() < 1 << 20, "{v}");
    assert!(v["bytes_sent"].as_u64().unwrap() > 32 << 20, "the heap went after the resume: {v}");
    assert_eq!(v["memory"], "postcopy-lazy", "{v}");
    eprintln!(
        "post-copy 32 MiB heap: downtime {} ms ({} ms on the runtimes' clocks), {} pages on demand, {} pushed, all in {} ms after the resume",
        v["downtime_ms"], v["downtime_runtime_ms"], v["pages_on_demand"], v["pages_pushed"], v["postcopy_ms"]
    );
}

/// `--postcopy` to aarch64 under qemu-user (no userfaultfd there): the eager fallback fetches
/// every page over the connection before the program runs; the move is still correct.
#[test]
fn postcopy_x86_64_to_aarch64_eager() {
    let TlsMove { net, p, dest, src, .. } = tls_move("postcopy-aarch64", "qa", true, &[], &[]);
    let mut args = tls_args(&p);
    args.extend(["--dest-binary".into(), bins().aarch64.display().to_string(), "--postcopy".into(), "--json".into()]);
    let m = migrate(&net, &src, &dest, &args);
    let v = summary(&m);
    assert_eq!(v["mode"], "postcopy", "{v}");
    assert_eq!(v["memory"], "postcopy-eager", "{v}");
    check_moved(src, m, "postcopy tls x86_64 -> aarch64");
}

/// Post-copy failures while the pages go (the program already runs at the destination, its
/// host calls waiting for the release): the destination killed, the link cut, `wanco migrate`
/// killed. Exactly one
/// copy: the destination's program is gone (it made no host call), the source goes on and
/// finishes with the uninterrupted run's output and file.
#[test]
fn postcopy_destination_killed_or_link_cut_during_page_transfer() {
    for (how, tag) in [("killed", "qk"), ("cut", "qc")] {
        let dir = work(&format!("postcopy-{how}"));
        let mut net = Net::new(tag);
        let p = pki(&dir, "good");
        let (env, cutter) = if how == "killed" {
            (("WANCO_AGENT_TEST_KILL_AT", "postcopy"), None)
        } else {
            let (ns, dev) = (net.dst.clone(), net.dst_dev.clone());
            let c = when_paused(dir.join("agent.log"), move || {
                run_ok(Command::new("ip").args(["-n", &ns, "link", "set", &dev, "down"]));
            });
            (("WANCO_AGENT_TEST_PAUSE_AT", "postcopy"), Some(c))
        };
        let dest = start_agent_with(&mut net, &dir, &p, false, &[env], &["--go-timeout", "4"]);
        let src = Source::start(&net, &dir);
        let mut args = tls_args(&p);
        args.extend(["--postcopy".into(), "--timeout".into(), "2".into()]);
        let m = migrate(&net, &src, &dest, &args);
        if let Some(c) = cutter {
            c.join().unwrap();
        }
        check_stayed(src, m, &format!("post-copy, destination {how}"), "the program goes on here");
        no_copy_at_destination(&dir);
    }
    // `wanco migrate` killed when it sent the first page (the program runs at the destination,
    // unreleased): the source resumes (its control connection closed without `hold`), the agent
    // kills the destination's program (its connection closed).
    migrate_killed_before_the_point_of_no_return("postcopy-migrate-killed", "qm", "postcopy", &["--postcopy"]);
}

/// `--postcopy` from a program under qemu-user (aarch64 on this x86_64 host) is refused before
/// the program stops: its memory cannot be read at the program's addresses from the process.
#[test]
fn postcopy_from_an_emulated_source_is_refused_before_the_stop() {
    let dir = work("postcopy-from-aarch64");
    let mut net = Net::new("qe");
    let p = pki(&dir, "good");
    let dest = start_agent(&mut net, &dir, &p, false, None);
    let src = Source::start_at(&net, &dir, 3, true);
    let mut args = tls_args(&p);
    args.extend(["--dest-binary".into(), bins().x86_64.display().to_string(), "--postcopy".into()]);
    let m = migrate(&net, &src, &dest, &args);
    check_stayed(src, m, "post-copy from qemu", "runs under an emulator");
    no_copy_at_destination(&dir);
}

/// Post-copy past the point of no return (the source held, `Release` sent or about to be, no
/// `Released` yet): the destination's agent killed when `Release` arrives, and `wanco migrate`
/// killed just before it sends `Release`. Never two copies: the source stops with a full
/// snapshot of its state kept (exit 3), the destination's program dies unreleased (it made no
/// host call); and nothing is lost: the kept snapshot continues the program here to the
/// uninterrupted run's output and file.
#[test]
fn postcopy_failure_after_the_point_of_no_return_keeps_the_state() {
    for (who, tag) in [("destination", "qr"), ("migrate", "qn")] {
        let kill: &[(&str, &str)] = if who == "destination" { &[("WANCO_AGENT_TEST_KILL_AT", "release")] } else { &[] };
        let TlsMove { dir, net, p, dest, src } = tls_move(&format!("postcopy-release-{who}"), tag, false, kill, &[]);
        let mut cmd = migrate_cmd(&net, &src, &dest, &p);
        cmd.arg("--postcopy");
        if who == "migrate" {
            cmd.env("WANCO_MIGRATE_TEST_KILL_AT", "release");
        }
        let m = common::output_within(&mut cmd, Duration::from_secs(300));
        let e = String::from_utf8_lossy(&m.stderr).to_string();
        if who == "migrate" {
            assert_eq!(m.status.signal(), Some(libc::SIGKILL), "{e}");
        } else {
            assert_eq!(m.status.code(), Some(3), "{e}");
            assert!(e.contains("its state is kept in"), "{e}");
        }
        let (code, out, err) = src.finish();
        assert_eq!(code, Some(3), "{who} killed after the point of no return: the source stops, state kept: {err}");
        no_copy_at_destination(&dir);
        continue_from_kept_state(&err, &out, &dir, &format!("the source ({who} killed)"));
    }
}

/// Post-copy: the source program killed (SIGKILL) while its pages go to the destination, where
/// it already runs unreleased. Its memory can no longer be read: `wanco migrate` fails (exit 1),
/// the destination discards its copy (it made no host call) — the program runs nowhere, as a
/// program killed at the source without a migration.
#[test]
fn postcopy_source_killed_while_the_pages_go() {
    let TlsMove { dir, net, p, dest, src } = tls_move("postcopy-src-killed", "qx", false, &[("WANCO_AGENT_TEST_PAUSE_AT", "postcopy")], &[]);
    let pid = src.pid() as i32;
    let killer = when_paused(dir.join("agent.log"), move || {
        // SAFETY: kill(2) on the program this test started (not yet reaped).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    });
    let mut args = tls_args(&p);
    args.push("--postcopy".into());
    let m = migrate(&net, &src, &dest, &args);
    killer.join().unwrap();
    let e = String::from_utf8_lossy(&m.stderr).to_string();
    assert_eq!(m.status.code(), Some(1), "{e}");
    assert!(e.contains(&format!("process {pid} has ended")) && e.contains("the destination was told to discard what it got: the program runs nowhere"), "{e}");
    assert!(!e.contains("backtrace"), "a message, not a debug dump: {e}");
    assert!(m.stdout.is_empty(), "nothing relayed before the release: {}", String::from_utf8_lossy(&m.stdout));
    no_copy_at_destination(&dir);
    let (code, _, _) = src.finish();
    assert_eq!(code, None, "killed by a signal");
    // The program made no host call at the destination: out.txt is as the source left it.
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap();
    assert!(!log.contains("is released"), "{log}");
}
