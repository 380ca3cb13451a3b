//! `SIGUSR1` and the checkpoint file as a user meets them: a program waiting for input is
//! checkpointed when the input comes, a signal during a restore is not fatal, a checkpoint that cannot
//! be written lets a signalled program go on, and a checkpoint file in a missing directory is
//! refused before the program runs; standard input from a file goes on where it stopped, and a
//! file of another size is refused (compiled x86_64 binaries and `wanco interp`).

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use wanco_tests::engine::{Engine, Tools};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

fn tools() -> Tools {
    Tools::locate(&workspace(), &[Engine::AotX86_64]).unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh directory for one test.
fn work(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wanco-cr-signals").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create work dir");
    d
}

/// Compile a test program (`tests/programs/...`) for x86_64 into `dir`.
fn compile(t: &Tools, program: &str, dir: &Path) -> PathBuf {
    let src = workspace().join("tests/programs").join(program);
    let out = dir.join(Path::new(program).file_stem().expect("a file name"));
    let o = Command::new(&t.wanco).arg("compile").arg(&src).arg("-o").arg(&out).output().expect("run wanco compile");
    assert!(o.status.success(), "wanco compile {program}: {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Start `bin ARGS` with stdin, stdout and stderr piped.
fn spawn_piped(bin: &Path, args: &[&std::ffi::OsStr]) -> Child {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the program")
}

fn signal(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGUSR1) };
    assert_eq!(r, 0, "kill -USR1");
}

/// Wait until `child` catches SIGUSR1 (its runtime has started: before
/// that, as for any process, the signal would end it).
fn wait_until_catching(child: &Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = format!("/proc/{}/status", child.id());
    loop {
        let caught = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("SigCgt:").map(|m| m.trim().to_string())))
            .and_then(|m| u64::from_str_radix(&m, 16).ok());
        if caught.is_some_and(|m| m & (1 << (libc::SIGUSR1 - 1)) != 0) {
            return;
        }
        assert!(Instant::now() < deadline, "the program never started to catch SIGUSR1");
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Wait for `child` with a deadline (killed and reported if it does not end).
fn finish(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A program blocked reading stdin gets the signal; it is checkpointed as soon as the next input
/// lets it go on (not 65,536 migration points later, which it would never reach), and the
/// snapshot continues with the restored process's own input.
#[test]
fn signal_while_waiting_for_input_checkpoints_when_it_goes_on() {
    let t = tools();
    let dir = work("waiting");
    let bin = compile(&t, "wasm/stdin_echo.wasm", &dir);
    let reference = {
        let mut c = Command::new(&bin).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("run");
        c.stdin.take().expect("stdin").write_all(b"one\ntwo\nthree\n").expect("write stdin");
        finish(c, "uninterrupted run")
    };
    assert!(reference.status.success());
    let snap = dir.join("cp.wsnap");
    let mut c = spawn_piped(&bin, &["--checkpoint-file".as_ref(), snap.as_os_str()]);
    let mut input = c.stdin.take().expect("stdin");
    input.write_all(b"one\n").expect("write stdin");
    std::thread::sleep(Duration::from_millis(300));
    signal(&c);
    std::thread::sleep(Duration::from_millis(100));
    // The read returns, the program goes on: the next migration point checkpoints.
    let _ = input.write_all(b"two\n");
    let before = finish(c, "signalled run");
    drop(input);
    assert!(before.status.success(), "signalled run: {:?} {}", before.status, text(&before.stderr));
    assert!(text(&before.stderr).contains("checkpoint written to"), "no checkpoint: {}", text(&before.stderr));
    let mut r = spawn_piped(&bin, &["--restore".as_ref(), snap.as_os_str()]);
    r.stdin.take().expect("stdin").write_all(b"three\n").expect("write stdin");
    let after = finish(r, "restore");
    assert!(after.status.success(), "restore: {:?} {}", after.status, text(&after.stderr));
    let mut whole = before.stdout.clone();
    whole.extend_from_slice(&after.stdout);
    assert_eq!(text(&whole), text(&reference.stdout));
}

/// A signal while a snapshot is being restored (reading it, instantiating, putting ~24 MiB of
/// memory in: well under a millisecond to a few, eager or lazy) does not kill the program: it is
/// served once the program runs again.
#[test]
fn signal_during_a_restore_is_not_fatal() {
    let t = tools();
    let dir = work("restoring");
    let bin = compile(&t, "wasm/memgrow.wasm", &dir);
    let snap = dir.join("late.wsnap");
    let o = Command::new(&bin).arg("--checkpoint-after-points").arg("1300000").arg("--checkpoint-file").arg(&snap).output().expect("run");
    assert!(o.status.success() && snap.exists(), "{}", text(&o.stderr));
    for (lazy, us) in [("1", 0u64), ("1", 100), ("1", 300), ("1", 1000), ("0", 0), ("0", 300), ("0", 1000), ("0", 3000)] {
        let again = dir.join(format!("again{us}.wsnap"));
        let mut cmd = Command::new(&bin);
        cmd.args(["--restore".as_ref(), snap.as_os_str(), "--checkpoint-file".as_ref(), again.as_os_str()]);
        let c = cmd.env("WANCO_LAZY_RESTORE", lazy).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run");
        // After the process has started (the runtime catches SIGUSR1 first thing).
        wait_until_catching(&c);
        std::thread::sleep(Duration::from_micros(us));
        signal(&c);
        let o = finish(c, "signalled restore");
        assert_eq!(o.status.signal(), None, "signal {us} µs into the restore killed it: {}", text(&o.stderr));
        assert!(o.status.success(), "{:?} {}", o.status, text(&o.stderr));
    }
}

/// A checkpoint asked for by a signal that cannot be written is reported, and the program goes on
/// to its normal end (nothing is lost); one asked for by `--checkpoint-after-points` exits 2.
#[test]
fn unwritable_checkpoint_lets_a_signalled_program_go_on() {
    let t = tools();
    let dir = work("unwritable");
    let bin = compile(&t, "cr/cr_long.wat", &dir);
    let reference = Command::new(&bin).output().expect("run");
    assert!(reference.status.success());
    let snap = dir.join("cp.wsnap");
    // The temporary file the snapshot is written to first is a directory.
    std::fs::create_dir_all(dir.join("cp.wsnap.tmp")).expect("mkdir");
    let c = spawn_piped(&bin, &["--checkpoint-file".as_ref(), snap.as_os_str()]);
    std::thread::sleep(Duration::from_millis(200));
    signal(&c);
    let o = finish(c, "signalled run");
    assert!(o.status.success(), "{:?} {}", o.status, text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("checkpoint failed") && err.contains("the program goes on"), "{err}");
    assert_eq!(text(&o.stdout), text(&reference.stdout));
    assert!(!snap.exists());
    let o = Command::new(&bin).arg("--checkpoint-after-points").arg("1000").arg("--checkpoint-file").arg(&snap).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("cannot write the checkpoint to"), "{}", text(&o.stderr));
}

/// `--checkpoint-file` in a directory that does not exist is refused before the program runs,
/// by compiled binaries and by the interpreter alike.
#[test]
fn checkpoint_file_in_a_missing_directory_is_refused_up_front() {
    let t = tools();
    let dir = work("missing-dir");
    let bin = compile(&t, "cr/cr_long.wat", &dir);
    let snap = dir.join("no-such-dir").join("cp.wsnap");
    let wasm = workspace().join("tests/programs/cr/cr_long.wat");
    let runs = [
        Command::new(&bin).arg("--checkpoint-file").arg(&snap).output().expect("run"),
        Command::new(&t.wanco).arg("interp").arg("--checkpoint-file").arg(&snap).arg(&wasm).output().expect("run interp"),
    ];
    for o in runs {
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(o.stdout.is_empty(), "the program ran: {}", text(&o.stdout));
        let err = text(&o.stderr);
        assert!(err.contains("no-such-dir") && err.contains("does not exist"), "{err}");
    }
    // An existing directory as the checkpoint file: refused too (and left where it is).
    let taken = dir.join("taken");
    std::fs::create_dir_all(taken.join("inside")).expect("mkdir");
    let runs = [
        Command::new(&bin).arg("--checkpoint-file").arg(&taken).output().expect("run"),
        Command::new(&t.wanco).arg("interp").arg("--checkpoint-file").arg(&taken).arg(&wasm).output().expect("run interp"),
    ];
    for o in runs {
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains("is a directory"), "{}", text(&o.stderr));
    }
    assert!(taken.join("inside").is_dir());
}

/// Standard input redirected from a file: a restore given the same file goes on from where the
/// checkpointed process had read to (the guest's own buffer is in the snapshot), instead of
/// reading the file again from its start.
#[test]
fn stdin_from_a_file_goes_on_where_it_stopped() {
    let t = tools();
    let dir = work("stdin-file");
    let bin = compile(&t, "wasm/stdin_echo.wasm", &dir);
    let input = dir.join("input.txt");
    std::fs::write(&input, "one\ntwo\nthree\n".repeat(40)).expect("write input");
    let stdin = || std::fs::File::open(&input).expect("open input");
    let reference = Command::new(&bin).arg("--count-points").stdin(stdin()).output().expect("run");
    assert!(reference.status.success());
    let total: u64 = text(&reference.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("migration points: ")?.trim().parse().ok())
        .expect("point count");
    let stdout_only = reference.stdout.clone();
    for n in [total / 2, total - 3] {
        let snap = dir.join(format!("cp{n}.wsnap"));
        let before = Command::new(&bin)
            .arg("--checkpoint-after-points")
            .arg(n.to_string())
            .arg("--checkpoint-file")
            .arg(&snap)
            .stdin(stdin())
            .output()
            .expect("checkpoint");
        assert!(before.status.success() && snap.exists(), "{}", text(&before.stderr));
        let engines: [(&str, Command); 2] = [
            ("x86_64", {
                let mut c = Command::new(&bin);
                c.arg("--restore").arg(&snap);
                c
            }),
            ("interp", {
                let mut c = Command::new(&t.wanco);
                c.arg("interp").arg("--restore").arg(&snap).arg(workspace().join("tests/programs/wasm/stdin_echo.wasm"));
                c
            }),
        ];
        let shorter = dir.join("shorter.txt");
        std::fs::write(&shorter, "one\ntwo\n").expect("write input");
        for (name, mut c) in engines {
            // Another (shorter) file is refused: the program would go on with input it never had.
            let refused = c.stdin(std::fs::File::open(&shorter).expect("open")).output().expect("restore");
            assert_eq!(refused.status.code(), Some(2), "{name}: {}", text(&refused.stderr));
            assert_eq!(text(&refused.stdout), "", "{name}");
            assert!(
                text(&refused.stderr).contains("standard input is a file of 8 bytes; at the checkpoint it was a file of 560 bytes"),
                "{name}: {}",
                text(&refused.stderr)
            );
            let after = c.stdin(stdin()).output().expect("restore");
            assert!(after.status.success(), "{name}: {}", text(&after.stderr));
            let mut whole = before.stdout.clone();
            whole.extend_from_slice(&after.stdout);
            assert_eq!(text(&whole), text(&stdout_only), "checkpoint at {n} of {total}, restored on {name}");
        }
    }
}
