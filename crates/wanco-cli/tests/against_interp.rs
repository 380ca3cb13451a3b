//! `wanco-snap diff --against-interp PROG SNAP [--binary BIN]`: good
//! snapshots (interpreter, x86_64) show no divergence; a binary miscompiled on
//! purpose (`wanco compile --inject-fault OFFSET`) is bisected to the first
//! point where the fault shows, on x86_64 and on aarch64 under qemu; the
//! user's preopened files are never touched; bad input exits 2 with one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use wanco_state::snapshot::Snapshot;

/// The sum of i*i for i in [0, n), the running sum also kept in memory at
/// address 64, then printed.
///
/// Migration points: 1 `_start` entry, 2 `$sum_squares` entry, 3 its loop
/// header with i = 0 and acc = 0 (nothing added yet), 4 the header again
/// after the first iteration: acc = 0 + 0*0 = 0. With the fault planted at
/// the loop's first `i32.add` (acc + i*i) that iteration leaves acc = 1 and
/// stores 1 at address 64. So points 1-3 agree and point 4 is the first
/// divergence: frame 1 (`sum_squares`, function 1 after the one import), at
/// the `loop`, local 2 (acc) i32:1 in the binary, i32:0 in the interpreter,
/// and one byte of memory page 0 at address 0x40.
const SUM: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $sum_squares (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (i32.mul (local.get $i) (local.get $i))))
      (i32.store (i32.const 64) (local.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
  (func $print (param $v i32) (local $p i32)
    (local.set $p (i32.const 47))
    (i32.store8 (i32.const 47) (i32.const 10))
    (loop $d
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $d (local.get $v)))
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (i32.sub (i32.const 48) (local.get $p)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (call $print (call $sum_squares (i32.const 100)))))"#;

/// Prints a line, then creates (or truncates) `out.txt` in the first
/// preopened directory and writes "line\n" to it 20 times.
///
/// Points: 1 `_start`, 2 `$write` (stdout), 3 the loop header with i = 0,
/// 4 `$write` (first line), 5 the header with i = 1, … With the fault at
/// the only `i32.add` of `_start` (i + 1) the header is reached with i = 2 at
/// point 5: the first divergence, frame 0 (`$start`), local 1: i32:2 -> i32:1.
const WRITER: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "out.txt")
  (data (i32.const 120) "line\n")
  (data (i32.const 140) "hello from the program\n")
  (func $write (param $fd i32) (param $p i32) (param $n i32)
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $start (export "_start") (local $fd i32) (local $i i32)
    (call $write (i32.const 1) (i32.const 140) (i32.const 23))
    ;; oflags CREAT|TRUNC, rights FD_WRITE
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 7)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16)))
    (local.set $fd (i32.load (i32.const 16)))
    (loop $l
      (call $write (local.get $fd) (i32.const 120) (i32.const 5))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 20))))))"#;

fn run_in(bin: &str, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{bin} {args:?} panicked: {err}");
    out
}

fn wanco(args: &[&str], dir: &Path) -> Output {
    run_in(env!("CARGO_BIN_EXE_wanco"), args, dir)
}

fn snap(args: &[&str], dir: &Path) -> Output {
    run_in(env!("CARGO_BIN_EXE_wanco-snap"), args, dir)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Write `name.wasm` from WAT into `dir`; its bytes.
fn module(dir: &Path, name: &str, wat: &str) -> Vec<u8> {
    let wasm = wat::parse_str(wat).unwrap();
    std::fs::write(dir.join(format!("{name}.wasm")), &wasm).unwrap();
    wasm
}

/// Offsets of the first `loop` and of the first `i32.add` after it in
/// defined function `defined` (0-based), read with wasmparser.
fn loop_and_add(wasm: &[u8], defined: usize) -> (u64, u64) {
    use wasmparser::{Operator, Parser, Payload};
    let body = Parser::new(0)
        .parse_all(wasm)
        .filter_map(|p| match p.unwrap() {
            Payload::CodeSectionEntry(b) => Some(b),
            _ => None,
        })
        .nth(defined)
        .expect("function body");
    let mut ops = body.get_operators_reader().unwrap();
    let mut at_loop = None;
    while !ops.eof() {
        let (op, off) = ops.read_with_offset().unwrap();
        match op {
            Operator::Loop { .. } if at_loop.is_none() => at_loop = Some(off),
            Operator::I32Add => {
                if let Some(l) = at_loop {
                    return (l, off);
                }
            }
            _ => {}
        }
    }
    panic!("no i32.add after a loop")
}

/// Compile `name.wasm` in `dir` to `out` (extra options: target, fault).
fn compile(dir: &Path, name: &str, out: &str, extra: &[&str]) {
    let input = format!("{name}.wasm");
    let mut args = vec!["compile", input.as_str(), "-o", out];
    args.extend(extra);
    let o = wanco(&args, dir);
    assert_eq!(o.status.code(), Some(0), "compile {args:?}: {}", stderr(&o));
}

/// Run `bin` (maybe under qemu) to point `k`, writing `file`.
fn checkpoint(dir: &Path, bin: &str, aarch64: bool, k: u64, file: &str, extra: &[&str]) {
    let bin_path = dir.join(bin);
    let k = k.to_string();
    let mut args: Vec<String> = Vec::new();
    let exe = if aarch64 {
        args.extend(["-L", "/usr/aarch64-linux-gnu"].map(String::from));
        args.push(bin_path.to_string_lossy().into_owned());
        "qemu-aarch64".to_string()
    } else {
        bin_path.to_string_lossy().into_owned()
    };
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--checkpoint-after-points", &k, "--checkpoint-file", file].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run_in(&exe, &args, dir);
    assert_eq!(o.status.code(), Some(0), "{exe} {args:?}: {}", stderr(&o));
    assert!(dir.join(file).exists(), "{exe} {args:?}: no checkpoint");
}

/// `wanco interp` to point `k`, writing `file`.
fn interp_checkpoint(dir: &Path, prog: &str, k: u64, file: &str, extra: &[&str]) {
    let k = k.to_string();
    let mut args = vec![
        "interp",
        "--checkpoint-after-points",
        &k,
        "--checkpoint-file",
        file,
    ];
    args.extend(extra);
    args.push(prog);
    let o = wanco(&args, dir);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
}

fn read_snap(path: &Path) -> Snapshot {
    wanco_state::snapshot::decode(&std::fs::read(path).unwrap()).unwrap()
}

/// The program state proper (frames, globals, memory), for the test's own
/// comparison, independent of `wanco-snap`.
fn state(s: &Snapshot) -> impl PartialEq + std::fmt::Debug + '_ {
    (&s.frames, &s.globals, &s.memory)
}

#[test]
fn good_snapshots_show_no_divergence() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    module(dir, "sum", SUM);
    compile(dir, "sum", "sum", &[]);
    interp_checkpoint(dir, "sum.wasm", 60, "interp.wsnap", &[]);
    checkpoint(dir, "sum", false, 60, "x86.wsnap", &[]);

    let o = snap(
        &["diff", "--against-interp", "sum.wasm", "interp.wsnap"],
        dir,
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        "no divergence at point 60: `interp.wsnap` matches the interpreter\n"
    );
    // Not a terminal: no progress bar, nothing on stderr.
    assert_eq!(stderr(&o), "");

    let o = snap(
        &[
            "diff",
            "--against-interp",
            "sum.wasm",
            "x86.wsnap",
            "--binary",
            "sum",
        ],
        dir,
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        "no divergence at point 60: `x86.wsnap` matches the interpreter\n"
    );
    assert_eq!(stderr(&o), "");
}

/// The expected report for the planted fault in `SUM` (see its comment).
fn assert_sum_fault_report(o: &Output, snap_name: &str, bin: &str, isa: &str, loop_at: u64) {
    let out = stdout(o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(o));
    assert!(
        out.starts_with(&format!(
            "`{snap_name}` differs from the interpreter at point 60 (snapshot -> interpreter):\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("bisecting points 1..60 with `{bin}` ({isa})")),
        "{out}"
    );
    let report = out
        .split_once("first divergence")
        .map(|(_, r)| format!("first divergence{r}"))
        .unwrap_or_else(|| panic!("no report: {out}"));
    assert_eq!(
        report,
        format!(
            "first divergence at point 4 (point 3 agrees)\n\
             \x20 at: func 1 `sum_squares`, loop at code offset 0x{loop_at:x} (innermost frame 1)\n\
             \x20 binary -> interpreter:\n\
             \x20 frame 1 (sum_squares) local 2: i32:1 -> i32:0\n\
             \x20 memory page 0: 1 bytes differ, first at page offset 0x40 (address 0x40): 0x01 -> 0x00\n"
        ),
        "{out}"
    );
}

#[test]
fn planted_fault_is_bisected_on_x86_64() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wasm = module(dir, "sum", SUM);
    let (loop_at, add_at) = loop_and_add(&wasm, 0);
    let fault = format!("0x{add_at:x}");
    compile(dir, "sum", "sum.bad", &["--inject-fault", &fault]);

    // The expectation, independently: run both engines to k = 1..6 and
    // compare the decoded states here.
    let mut first = None;
    for k in 1..=6u64 {
        let (b, i) = (format!("b{k}.wsnap"), format!("i{k}.wsnap"));
        checkpoint(dir, "sum.bad", false, k, &b, &[]);
        interp_checkpoint(dir, "sum.wasm", k, &i, &[]);
        let (sb, si) = (read_snap(&dir.join(&b)), read_snap(&dir.join(&i)));
        if state(&sb) != state(&si) && first.is_none() {
            first = Some(k);
            let (fb, fi) = (sb.frames.last().unwrap(), si.frames.last().unwrap());
            assert_eq!((fi.func, fi.code_offset), (1, loop_at as u32));
            assert_eq!(fb.locals[2], wanco_state::Value::I32(1));
            assert_eq!(fi.locals[2], wanco_state::Value::I32(0));
        }
    }
    assert_eq!(first, Some(4), "the fault shows at point 4");

    // The faulty binary's snapshot at a late point differs from the interpreter…
    checkpoint(dir, "sum.bad", false, 60, "bad.wsnap", &[]);
    let o = snap(&["diff", "--against-interp", "sum.wasm", "bad.wsnap"], dir);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("frame 1 (sum_squares) local 2: i32:"),
        "{}",
        stdout(&o)
    );
    // … and with the binary, the bisection finds point 4.
    let o = snap(
        &[
            "diff",
            "--against-interp",
            "sum.wasm",
            "bad.wsnap",
            "--binary",
            "sum.bad",
        ],
        dir,
    );
    assert_sum_fault_report(&o, "bad.wsnap", "sum.bad", "x86_64", loop_at);
    assert_eq!(stderr(&o), "");
}

#[test]
fn planted_fault_is_bisected_on_aarch64_under_qemu() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wasm = module(dir, "sum", SUM);
    let (loop_at, add_at) = loop_and_add(&wasm, 0);
    let fault = format!("0x{add_at:x}");
    compile(
        dir,
        "sum",
        "sum.a64",
        &["--target", "aarch64", "--inject-fault", &fault],
    );
    checkpoint(dir, "sum.a64", true, 60, "a64.wsnap", &[]);
    let o = snap(
        &[
            "diff",
            "--against-interp",
            "sum.wasm",
            "a64.wsnap",
            "--binary",
            "sum.a64",
        ],
        dir,
    );
    assert_sum_fault_report(&o, "a64.wsnap", "sum.a64", "aarch64", loop_at);
}

/// Every file under `dir` with its bytes and modification time.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p.clone(), std::fs::read(&p).unwrap(), m)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn preopened_files_are_never_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wasm = module(dir, "writer", WRITER);
    let (loop_at, add_at) = loop_and_add(&wasm, 1);
    compile(dir, "writer", "writer", &[]);
    let fault = format!("0x{add_at:x}");
    compile(dir, "writer", "writer.bad", &["--inject-fault", &fault]);
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("out.txt"), "the user's old text\n").unwrap();
    std::fs::write(data.join("keep.txt"), "kept\n").unwrap();

    // A good snapshot (the interpreter's) at point 12, 4 lines written.
    interp_checkpoint(dir, "writer.wasm", 12, "w.wsnap", &["--dir", "data::/data"]);
    assert_eq!(
        std::fs::read_to_string(data.join("out.txt")).unwrap(),
        "line\n".repeat(4)
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = tree(&data);
    let o = snap(
        &[
            "diff",
            "--against-interp",
            "writer.wasm",
            "w.wsnap",
            "--binary",
            "writer",
        ],
        dir,
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        "no divergence at point 12: `w.wsnap` matches the interpreter\n"
    );
    assert_eq!(tree(&data), before, "the user's files changed");

    // The faulty binary: every run (both engines, every bisection step)
    // writes out.txt, in copies.
    checkpoint(
        dir,
        "writer.bad",
        false,
        12,
        "bad.wsnap",
        &["--dir", "data::/data"],
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = tree(&data);
    let o = snap(
        &[
            "diff",
            "--against-interp",
            "writer.wasm",
            "bad.wsnap",
            "--binary",
            "writer.bad",
        ],
        dir,
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(!out.contains("hello from the program"), "{out}");
    let report = &out[out.find("first divergence").expect(&out)..];
    assert_eq!(
        report,
        format!(
            "first divergence at point 5 (point 4 agrees)\n\
             \x20 at: func 3 `start`, loop at code offset 0x{loop_at:x} (innermost frame 0)\n\
             \x20 binary -> interpreter:\n\
             \x20 frame 0 (start) local 1: i32:2 -> i32:1\n\
             note: these runs used fresh copies of the preopened directories (data) as they are now: \
             if the program read files changed since the snapshot was taken, or keeps inode numbers \
             or times (from listing a directory or a stat) in its state, that alone makes a difference\n"
        ),
        "{out}"
    );
    assert_eq!(tree(&data), before, "the user's files changed");
}

/// Bad input: exit 2, one line on stderr saying what is wrong, nothing on stdout.
fn bad(dir: &Path, args: &[&str], expect: &str) {
    let o = snap(args, dir);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(expect),
        "{args:?}: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert_eq!(stdout(&o), "", "{args:?}");
}

#[test]
fn bad_input_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    module(dir, "sum", SUM);
    module(dir, "writer", WRITER);
    compile(dir, "writer", "writer", &[]);
    compile(dir, "sum", "sum.nocr", &["--no-cr"]);
    interp_checkpoint(dir, "sum.wasm", 10, "s.wsnap", &[]);
    std::fs::write(dir.join("junk.wsnap"), b"not a snapshot").unwrap();
    let me = env!("CARGO_BIN_EXE_wanco-snap");
    let d = ["diff", "--against-interp"];
    let with =
        |rest: &[&'static str]| -> Vec<&'static str> { d.iter().chain(rest).copied().collect() };

    bad(
        dir,
        &with(&["sum.wasm", "none.wsnap"]),
        "cannot read `none.wsnap`",
    );
    bad(
        dir,
        &with(&["none.wasm", "s.wsnap"]),
        "cannot read `none.wasm`",
    );
    bad(
        dir,
        &with(&["sum.wasm", "junk.wsnap"]),
        "not a wanco snapshot",
    );
    bad(
        dir,
        &with(&["s.wsnap", "s.wsnap"]),
        "cannot parse module `s.wsnap`",
    );
    bad(
        dir,
        &with(&["writer.wasm", "s.wsnap"]),
        "`s.wsnap` is not a snapshot of `writer.wasm`: snapshot was written for module sha256 ",
    );
    bad(
        dir,
        &with(&["sum.wasm", "s.wsnap", "--binary", "none"]),
        "cannot read `none`",
    );
    bad(
        dir,
        &with(&["sum.wasm", "s.wsnap", "--binary", "sum.wasm"]),
        "`sum.wasm` is not an ELF executable",
    );
    let o = snap(
        &[
            "diff",
            "--against-interp",
            "sum.wasm",
            "s.wsnap",
            "--binary",
            me,
        ],
        dir,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a wanco executable (it has no `wanco_program_main`)"),
        "{}",
        stderr(&o)
    );
    bad(
        dir,
        &with(&["sum.wasm", "s.wsnap", "--binary", "writer"]),
        "`writer` was compiled from another module than `sum.wasm`",
    );
    bad(
        dir,
        &with(&["sum.wasm", "s.wsnap", "--binary", "sum.nocr"]),
        "`sum.nocr` is not a wanco executable with checkpoint support",
    );
    bad(
        dir,
        &["diff", "s.wsnap", "s.wsnap", "--binary", "writer"],
        "--binary needs --against-interp",
    );

    // The planted fault must name an add/sub/mul.
    let o = wanco(
        &["compile", "sum.wasm", "-o", "x", "--inject-fault", "0"],
        dir,
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: --inject-fault: no i32/i64 add/sub/mul at offset 0x0\n"
    );
    assert!(!dir.join("x").exists());
}
