//! Checkpoint/restore in the interpreter: `wanco interp
//! --checkpoint-after-points N` then `wanco interp --restore` gives the same
//! output, exit code and files as an uninterrupted run, for many N; damaged
//! snapshots, snapshots of another module and of a newer format are refused
//! with exit 2 and a clear message; `SIGUSR1` checkpoints at the next point.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/programs/wasm").join(format!("{name}.wasm"))
}

fn wanco(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_wanco")).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "wanco panicked: {stderr}");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir` (relative path → bytes).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

struct Case {
    program: &'static str,
    args: &'static [&'static str],
    /// Files created in the preopened `/data` before each run.
    files: &'static [(&'static str, &'static [u8])],
    /// Whether to preopen `/data`.
    data: bool,
}

/// A fresh `/data` directory for one run, in `root`.
fn fresh_data(root: &Path, name: &str, case: &Case) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (p, bytes) in case.files {
        let f = d.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, bytes).unwrap();
    }
    d
}

fn base_args(case: &Case, data: &Path) -> Vec<String> {
    let mut a = vec!["interp".to_string()];
    if case.data {
        a.push("--dir".into());
        a.push(format!("{}::/data", data.display()));
    }
    a
}

fn check_case(case: &Case, extra_points: &[u64]) {
    check_program(case, &program(case.program), extra_points, false);
}

/// Like [`check_case`] for the module at `prog`; with `every_point`, checkpoint at every
/// point. Returns the snapshots taken (decoded).
fn check_program(
    case: &Case,
    prog: &Path,
    extra_points: &[u64],
    every_point: bool,
) -> Vec<wanco_state::snapshot::Snapshot> {
    let mut snaps = Vec::new();
    let tmp = tempfile::tempdir().unwrap();
    let prog = prog.to_str().unwrap();

    // The uninterrupted run, counting the points.
    let data = fresh_data(tmp.path(), "full", case);
    let mut a = base_args(case, &data);
    a.extend(["--count-points".into(), prog.into(), "--".into()]);
    a.extend(case.args.iter().map(|s| s.to_string()));
    let full = wanco(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let err = stderr(&full);
    let total: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("migration points: "))
        .unwrap_or_else(|| panic!("no point count: {err}"))
        .trim()
        .parse()
        .unwrap();
    let full_tree = tree(&data);
    assert_eq!(full.status.code(), Some(0), "{}: the uninterrupted run failed: {err}", case.program);
    assert!(!full.stdout.is_empty());

    // Deterministic pseudo-random points below the total.
    let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ total;
    let mut points: Vec<u64> = [1, 10, 1000, 100_000].into_iter().filter(|n| *n < total).collect();
    for _ in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        points.push(1 + x % (total - 1));
    }
    points.push(total - 1);
    points.extend(extra_points.iter().copied().filter(|n| *n < total));
    if every_point {
        points = (1..total).collect();
    }

    for n in points {
        let name = format!("cr{n}");
        let data = fresh_data(tmp.path(), &name, case);
        let snap = tmp.path().join(format!("{name}.wsnap"));
        let snap_s = snap.to_str().unwrap().to_string();
        let mut a = base_args(case, &data);
        a.extend([
            "--checkpoint-after-points".into(),
            n.to_string(),
            "--checkpoint-file".into(),
            snap_s.clone(),
            prog.into(),
            "--".into(),
        ]);
        a.extend(case.args.iter().map(|s| s.to_string()));
        let first = wanco(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(first.status.code(), Some(0), "{}: checkpoint at {n}: {}", case.program, stderr(&first));
        assert!(
            stderr(&first).contains(&format!("checkpoint written to {snap_s} after {n} migration points")),
            "{}",
            stderr(&first)
        );
        snaps.push(wanco_state::snapshot::decode(&std::fs::read(&snap).unwrap()).unwrap());
        let second = wanco(&["interp", "--restore", &snap_s, prog]);
        let mut out = first.stdout.clone();
        out.extend_from_slice(&second.stdout);
        assert!(
            out == full.stdout,
            "{}: checkpoint at {n}: output differs\n--- before ---\n{}\n--- after ---\n{}\n--- expected ---\n{}",
            case.program,
            String::from_utf8_lossy(&first.stdout),
            String::from_utf8_lossy(&second.stdout),
            String::from_utf8_lossy(&full.stdout)
        );
        assert_eq!(second.status.code(), full.status.code(), "{}: checkpoint at {n}: {}", case.program, stderr(&second));
        assert_eq!(tree(&data), full_tree, "{}: checkpoint at {n}: files differ", case.program);
    }
    snaps
}

/// The C SIMD program (`wasm_simd128.h`, v128 values across calls, loops and recursion).
#[test]
fn simd_checkpoint_restore() {
    check_case(&Case { program: "simd", args: &[], files: &[], data: false }, &[2, 3, 50, 500, 5000]);
}

/// v128 in a global, in locals across calls and loops, and on the operand stack below a call:
/// checkpointed at every point, each snapshot holds v128 values where expected and restores.
const SIMD_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $g (mut v128) (v128.const i32x4 1 2 3 4))
  (func $step (param $v v128) (param $i i32) (result v128) (local $t v128) (local $k i32)
    (local.set $t (i32x4.add (local.get $v) (i32x4.splat (local.get $i))))
    (loop $in
      (local.set $t (i32x4.add (local.get $t) (local.get $v)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $in (i32.lt_u (local.get $k) (i32.const 3))))
    (i8x16.shuffle 4 5 6 7 8 9 10 11 12 13 14 15 0 1 2 3 (local.get $t) (local.get $t)))
  (func (export "_start") (local $i i32) (local $acc v128) (local $f v128)
    (local.set $f (f32x4.splat (f32.const 1.5)))
    (local.set $acc (v128.const i64x2 -1 0x0123456789abcdef))
    (loop $l
      (local.set $acc
        (v128.xor (local.get $acc)
          (i32x4.add (global.get $g) (call $step (local.get $acc) (local.get $i)))))
      (global.set $g (i32x4.mul (global.get $g) (i32x4.splat (i32.const 3))))
      (local.set $f (f32x4.add (local.get $f) (f32x4.convert_i32x4_s (i32x4.shr_s (local.get $acc) (i32.const 20)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 40))))
    (v128.store (i32.const 100) (local.get $acc))
    (v128.store (i32.const 116) (global.get $g))
    (v128.store (i32.const 132) (local.get $f))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 48))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

#[test]
fn simd_values_checkpoint_restore_at_every_point() {
    use wanco_state::Value;
    let tmp = tempfile::tempdir().unwrap();
    let wat = tmp.path().join("simd_values.wat");
    std::fs::write(&wat, SIMD_WAT).unwrap();
    let snaps = check_program(&Case { program: "simd_values", args: &[], files: &[], data: false }, &wat, &[], true);
    assert!(snaps.len() > 150, "{}", snaps.len());
    let v128 = |vs: &[Value]| vs.iter().filter(|v| matches!(v, Value::V128(_))).count();
    // The global is a v128 that changes; the callee's frame (at its loop) holds its
    // v128 parameter and local; the caller's operand stack holds two v128s below the
    // call, and its locals $acc and $f are v128s.
    let mut globals = std::collections::BTreeSet::new();
    let mut saw_stack = false;
    for s in &snaps {
        assert!(matches!(s.globals[0], Value::V128(_)));
        globals.insert(format!("{}", s.globals[0]));
        if s.frames.len() == 2 {
            assert_eq!(v128(&s.frames[0].locals), 2, "{:?}", s.frames[0]);
            // `local.get $acc` (for the xor) and `global.get $g` sit below the call.
            assert_eq!(v128(&s.frames[0].stack), 2, "{:?}", s.frames[0]);
            assert_eq!(v128(&s.frames[1].locals), 2, "{:?}", s.frames[1]);
            saw_stack = true;
        }
    }
    assert!(saw_stack);
    assert!(globals.len() > 30, "{}", globals.len());
}

#[test]
fn recursion_checkpoint_restore() {
    check_case(&Case { program: "recursion", args: &[], files: &[], data: false }, &[]);
}

#[test]
fn float_arith_checkpoint_restore() {
    check_case(&Case { program: "float_arith", args: &[], files: &[], data: false }, &[]);
}

#[test]
fn heap_checkpoint_restore() {
    check_case(&Case { program: "heap", args: &[], files: &[], data: false }, &[]);
}

const FILEIO_INPUT: &[u8] = "first line of the input\nsecond line: ünïcödé\nthird line\n\n".as_bytes();

#[test]
fn fileio_checkpoint_restore() {
    check_case(
        &Case {
            program: "fileio",
            args: &["extra-arg"],
            files: &[
                ("input.txt", FILEIO_INPUT),
                ("keep/untouched.bin", b"\x00\x01\x02binary-ish\xff"),
            ],
            data: true,
        },
        &[2, 3, 5, 50, 200, 500, 2000, 5000],
    );
}

/// A snapshot of `heap.wasm` after 1000 points.
fn heap_snapshot(dir: &Path) -> (PathBuf, Vec<u8>) {
    let snap = dir.join("h.wsnap");
    let o = wanco(&[
        "interp",
        "--checkpoint-after-points",
        "1000",
        "--checkpoint-file",
        snap.to_str().unwrap(),
        program("heap").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = std::fs::read(&snap).unwrap();
    (snap, bytes)
}

fn restore_err(snap: &Path, prog: &str) -> String {
    let o = wanco(&["interp", "--restore", snap.to_str().unwrap(), program(prog).to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(o.stdout.is_empty(), "nothing runs");
    e
}

#[test]
fn damaged_snapshots_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, good) = heap_snapshot(tmp.path());

    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x10;
    std::fs::write(&snap, &bad).unwrap();
    let e = restore_err(&snap, "heap");
    assert!(e.contains("checksum mismatch: the file is damaged"), "{e}");

    std::fs::write(&snap, &good[..good.len() - 7]).unwrap();
    let e = restore_err(&snap, "heap");
    assert!(e.contains("truncated"), "{e}");

    let mut bad = good.clone();
    bad[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&snap, &bad).unwrap();
    let e = restore_err(&snap, "heap");
    assert!(e.contains("snapshot format version 7 is newer than this wanco (supports 1 to 3)"), "{e}");

    std::fs::write(&snap, b"\x7fELF not a snapshot at all").unwrap();
    let e = restore_err(&snap, "heap");
    assert!(e.contains("not a wanco snapshot"), "{e}");

    // The intact snapshot still works.
    std::fs::write(&snap, &good).unwrap();
    let o = wanco(&["interp", "--restore", snap.to_str().unwrap(), program("heap").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn snapshot_of_another_module_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, _) = heap_snapshot(tmp.path());
    let e = restore_err(&snap, "recursion");
    assert!(e.contains("snapshot was written for module sha256 ") && e.contains(", this module is "), "{e}");
}

#[test]
fn sigusr1_checkpoints_at_the_next_point() {
    let tmp = tempfile::tempdir().unwrap();
    // Busy-waits 2.5 s of guest monotonic time, then prints "done".
    let wat = tmp.path().join("wait.wat");
    std::fs::write(
        &wat,
        r#"(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "done\n")
  (func $now (result i64)
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 0)))
    (i64.load (i32.const 0)))
  (func (export "_start") (local $end i64)
    (local.set $end (i64.add (call $now) (i64.const 2500000000)))
    (loop $l (br_if $l (i64.lt_u (call $now) (local.get $end))))
    (i32.store (i32.const 8) (i32.const 16))
    (i32.store (i32.const 12) (i32.const 5))
    (drop (call $write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 4)))))"#,
    )
    .unwrap();
    let snap = tmp.path().join("sig.wsnap");
    let child = Command::new(env!("CARGO_BIN_EXE_wanco"))
        .args(["interp", "--checkpoint-file", snap.to_str().unwrap(), wat.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let k = Command::new("kill").args(["-USR1", &child.id().to_string()]).status().unwrap();
    assert!(k.success());
    let first = child.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(stderr(&first).contains("checkpoint written to"), "{}", stderr(&first));
    assert!(first.stdout.is_empty());
    let second = wanco(&["interp", "--restore", snap.to_str().unwrap(), wat.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(String::from_utf8_lossy(&second.stdout), "done\n");
}

/// A run that ends in an `unreachable` trap (abort, a panic) counts its migration points as
/// the interpreter does, on both ISAs (`--count-points` and the "ended before" note): compiled
/// code keeps the count in a local between calls and once lost the points since the last call.
/// (At other traps compiled code prints no count: see `docs/cli.md`.)
#[test]
fn a_trap_counts_the_same_points_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = program("trap_unreachable");
    let wasm = wasm.to_str().unwrap();
    let count = |o: &Output| {
        let e = stderr(o);
        assert_eq!(o.status.code(), Some(134), "{e}");
        let n = e.lines().find_map(|l| l.strip_prefix("migration points: ")).unwrap_or_else(|| panic!("no count: {e}")).to_string();
        assert!(e.contains(&format!("note: the program ended after {n} migration points, before --checkpoint-after-points 999999999")), "{e}");
        n
    };
    let args = ["--count-points", "--checkpoint-after-points", "999999999"];
    let interp = count(&wanco(&[&["interp"][..], &args, &[wasm]].concat()));
    for isa in ["x86_64", "aarch64"] {
        let bin = dir.path().join(format!("trap_unreachable-{isa}"));
        let o = wanco(&["compile", wasm, "--target", isa, "-o", bin.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = common::on_isa(&bin, isa).args(args).output().unwrap();
        assert_eq!(count(&o), interp, "trap_unreachable on {isa} vs the interpreter");
    }
}

/// `--checkpoint-after-points N` with a snapshot already past point N says so (compiled code
/// and the interpreter), and the run goes on to its end.
#[test]
fn a_checkpoint_target_behind_the_snapshot_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = program("recursion");
    let wasm = wasm.to_str().unwrap();
    let snap = dir.path().join("r.wsnap");
    let o = wanco(&["interp", "--checkpoint-after-points", "500", "--checkpoint-file", snap.to_str().unwrap(), wasm]);
    assert!(o.status.success(), "{}", stderr(&o));
    let note = "note: --checkpoint-after-points 100: the snapshot was taken after 500 migration points, past that one: no checkpoint will be taken";
    let o = wanco(&["interp", "--restore", snap.to_str().unwrap(), "--checkpoint-after-points", "100", wasm]);
    assert!(o.status.success() && stderr(&o).contains(note), "{}", stderr(&o));
    let bin = dir.path().join("rec");
    assert!(wanco(&["compile", wasm, "-o", bin.to_str().unwrap()]).status.success());
    let o = Command::new(&bin).args(["--restore", snap.to_str().unwrap(), "--checkpoint-after-points", "100"]).output().unwrap();
    assert!(o.status.success() && stderr(&o).contains(note), "{}", stderr(&o));
}
