//! Lazy restore of linear memory (`wanco-rt`'s pager, userfaultfd): a restored x86_64 program
//! runs before its pages are in place, each page it touches is put in first (the snapshot's
//! content, or zeros), the rest follows in the background, and the whole memory is in place
//! before any host call or checkpoint. Compared with the uninterrupted run and with an eager
//! restore (`WANCO_LAZY_RESTORE=0`).
//!
//! This machine (and CI) has userfaultfd: the tests assert the pager ran, so a system where it
//! cannot (the runtime then falls back to an eager restore) fails them visibly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wanco_tests::engine::{Engine, Tools};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

fn work(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wanco-cr-lazy").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create work dir");
    d
}

fn compile(program: &str, dir: &Path) -> PathBuf {
    let t = Tools::locate(&workspace(), &[Engine::AotX86_64]).unwrap_or_else(|e| panic!("{e}"));
    let src = workspace().join("tests/programs").join(program);
    let out = dir.join(Path::new(program).file_stem().expect("a file name"));
    let o = Command::new(&t.wanco).arg("compile").arg(&src).arg("-o").arg(&out).output().expect("run wanco compile");
    assert!(o.status.success(), "wanco compile {program}: {}", String::from_utf8_lossy(&o.stderr));
    out
}

fn run(bin: &Path, args: &[&str], lazy: Option<&str>) -> Output {
    let mut c = Command::new(bin);
    c.args(args).env("WANCO_CR_TIMING", "1").env_remove("WANCO_LAZY_RESTORE");
    if let Some(mode) = lazy {
        c.env("WANCO_LAZY_RESTORE", mode);
    }
    // A deadline: a pager that never finished would hang the program.
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run the program");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} {args:?}: still running after 60 s", bin.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("collect output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The pager's report: (stored pages, pages put in on demand), if it ran.
fn pager_report(stderr: &str) -> Option<(usize, usize)> {
    let line = stderr.lines().find(|l| l.starts_with("wanco-timing: lazy memory: "))?;
    let pages = line.strip_prefix("wanco-timing: lazy memory: ")?.split(' ').next()?.parse().ok()?;
    let demand = line.rsplit_once(", ")?.1.split(' ').next()?.parse().ok()?;
    Some((pages, demand))
}

/// `lazy_pages.wat` checkpointed at point 9 (5 stored pages); restored on demand only, exactly
/// the 3 pages it touches before its first host call come on demand (a stored one, two zero
/// ones); restored with prefetching and eagerly, the output is the same.
#[test]
fn pages_come_when_touched_and_all_before_a_host_call() {
    let dir = work("touched");
    let bin = compile("cr/lazy_pages.wat", &dir);
    let reference = run(&bin, &[], None);
    assert!(reference.status.success(), "{}", text(&reference.stderr));
    assert_eq!(text(&reference.stdout), "3\n");
    let snap = dir.join("p9.wsnap");
    let s = snap.to_str().expect("utf-8 path");
    let cp = run(&bin, &["--checkpoint-after-points", "9", "--checkpoint-file", s], None);
    assert!(cp.status.success(), "{}", text(&cp.stderr));
    assert_eq!(text(&cp.stdout), "");

    let demand = run(&bin, &["--restore", s], Some("demand"));
    assert!(demand.status.success(), "{}", text(&demand.stderr));
    assert_eq!(text(&demand.stdout), "3\n");
    assert_eq!(pager_report(&text(&demand.stderr)), Some((5, 3)), "{}", text(&demand.stderr));

    let prefetch = run(&bin, &["--restore", s], None);
    assert!(prefetch.status.success(), "{}", text(&prefetch.stderr));
    assert_eq!(text(&prefetch.stdout), "3\n");
    let (pages, on_demand) = pager_report(&text(&prefetch.stderr)).expect("the pager ran");
    assert_eq!(pages, 5);
    assert!(on_demand <= 3, "{}", text(&prefetch.stderr));

    let eager = run(&bin, &["--restore", s], Some("0"));
    assert!(eager.status.success(), "{}", text(&eager.stderr));
    assert_eq!(text(&eager.stdout), "3\n");
    assert_eq!(pager_report(&text(&eager.stderr)), None, "{}", text(&eager.stderr));
}

/// A checkpoint taken right after a lazy restore waits for the pager (here one that serves only
/// on demand, so the checkpoint's wait is what brings the rest in) and writes the whole memory:
/// the second snapshot restores to the same output, and holds the same memory as one taken at
/// that point by an uninterrupted run.
#[test]
fn a_checkpoint_after_a_lazy_restore_has_the_whole_memory() {
    let dir = work("chain");
    let bin = compile("cr/lazy_pages.wat", &dir);
    let first = dir.join("p9.wsnap");
    let second = dir.join("p10.wsnap");
    let direct = dir.join("p10-direct.wsnap");
    let (f, s, d) = (first.to_str().unwrap(), second.to_str().unwrap(), direct.to_str().unwrap());
    assert!(run(&bin, &["--checkpoint-after-points", "9", "--checkpoint-file", f], None).status.success());
    let o = run(&bin, &["--restore", f, "--checkpoint-after-points", "10", "--checkpoint-file", s], Some("demand"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "");
    assert_eq!(pager_report(&text(&o.stderr)).map(|r| r.0), Some(5), "{}", text(&o.stderr));
    let o = run(&bin, &["--checkpoint-after-points", "10", "--checkpoint-file", d], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let memory = |p: &Path| {
        let snap = wanco_state::snapshot::decode(&std::fs::read(p).expect("read snapshot")).expect("decode snapshot");
        snap.memory.expect("a memory")
    };
    assert_eq!(memory(&second), memory(&direct));
    for mode in [None, Some("0")] {
        let o = run(&bin, &["--restore", s], mode);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "3\n", "mode {mode:?}");
    }
}

/// A stored page that is not valid LZ4 (its bytes zeroed in place and the file resealed, so
/// only the page is wrong) is refused, lazily as eagerly: nothing on stdout, exit 2, the
/// refusal naming the page. So is the same page damaged without resealing (the checksum, which
/// a lazy restore compares while the program runs, does not match): the program may have run
/// by then, but nothing it did is seen.
#[test]
fn a_bad_page_is_refused_before_anything_is_seen() {
    let dir = work("bad-page");
    let bin = compile("cr/lazy_pages.wat", &dir);
    let snap = dir.join("p9.wsnap");
    assert!(run(&bin, &["--checkpoint-after-points", "9", "--checkpoint-file", snap.to_str().unwrap()], None)
        .status
        .success());
    let mut bytes = std::fs::read(&snap).unwrap();
    // Page 4's chunk, `{page: 4, lz4: bin}` (MessagePack): its data zeroed keeps every length
    // and reads as a match at offset 0.
    let key = b"\xa4page\x04\xa3lz4";
    let at = bytes.windows(key.len()).position(|w| w == key).expect("page 4 is stored") + key.len();
    let (len, data) = match bytes[at] {
        0xc4 => (bytes[at + 1] as usize, at + 2),
        0xc5 => (u16::from_be_bytes([bytes[at + 1], bytes[at + 2]]) as usize, at + 3),
        m => panic!("unexpected MessagePack marker {m:#x} for page 4's data"),
    };
    bytes[data..data + len].fill(0);
    let damaged = dir.join("damaged.wsnap");
    std::fs::write(&damaged, &bytes).unwrap();
    // Reseal: the checksum is the SHA-256 of everything before it.
    let end = bytes.len() - 32;
    let sum: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(<sha2::Sha256 as sha2::Digest>::new(), &bytes[..end])).into();
    bytes[end..].copy_from_slice(&sum);
    let bad = dir.join("bad.wsnap");
    std::fs::write(&bad, &bytes).unwrap();
    for mode in [None, Some("demand"), Some("0")] {
        let o = run(&bin, &["--restore", bad.to_str().unwrap()], mode);
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "mode {mode:?}: {stderr}");
        assert_eq!(text(&o.stdout), "", "mode {mode:?}");
        assert!(stderr.contains("invalid memory: page 4 is not valid LZ4 data"), "mode {mode:?}: {stderr}");
        assert_eq!(pager_report(&stderr), None, "mode {mode:?}: the pager never finished: {stderr}");
        let o = run(&bin, &["--restore", damaged.to_str().unwrap()], mode);
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "mode {mode:?}: {stderr}");
        assert_eq!(text(&o.stdout), "", "mode {mode:?}");
        assert!(stderr.contains("checksum mismatch: the file is damaged"), "mode {mode:?}: {stderr}");
    }
}
