//! `wanco` on bad input: a clear message naming what is wrong (and where),
//! exit code 2, never a panic.

mod common;

use std::path::Path;
use std::process::Command;

fn wanco(args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wanco")).args(args).current_dir(dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "wanco panicked: {stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

fn compile_err(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    let (code, stderr) = wanco(&["compile", name, "-o", "out"], dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(!dir.path().join("out").exists(), "no output on failure");
    stderr
}

#[test]
fn garbage_is_not_a_module() {
    let e = compile_err("bad.wasm", b"\x7fELF\x02\x01garbage");
    assert!(e.contains("not a WebAssembly module") && e.contains("offset 0x0"), "{e}");
}

#[test]
fn truncated_module_names_the_offset() {
    let e = compile_err("t.wasm", b"\0asm\x01\0\0\0\x01\x05\x01\x60");
    assert!(e.contains("invalid module") && e.contains("offset 0x"), "{e}");
}

#[test]
fn type_error_names_the_offset() {
    let e = compile_err("t.wat", b"(module (func (result i32) (i32.add (i32.const 1))))");
    assert!(e.contains("type mismatch") && e.contains("(at offset 0x"), "{e}");
}

#[test]
fn relaxed_simd_is_refused_by_name() {
    // 128-bit SIMD compiles; relaxed SIMD (Wasm 3.0) is refused, naming it and the offset.
    let e = compile_err(
        "s.wat",
        b"(module (func (drop (i8x16.relaxed_swizzle (v128.const i32x4 0 0 0 0) (v128.const i32x4 0 0 0 0)))))",
    );
    assert!(e.to_lowercase().contains("relaxed simd") && e.contains("offset 0x"), "{e}");
}

#[test]
fn threads_are_refused_by_name() {
    let e = compile_err("s.wat", b"(module (memory 1 1 shared))");
    assert!(e.to_lowercase().contains("thread"), "{e}");
}

#[test]
fn exceptions_are_refused_as_unsupported() {
    // C++ programs built with exceptions (exnref): valid, but of a proposal wanco lacks.
    let e = compile_err("x.wat", b"(module (func (local exnref)))");
    assert!(e.contains("unsupported") && e.contains("WebAssembly 2.0") && !e.contains("invalid module"), "{e}");
}

/// The executable links with LLVM's `lld` where it is installed (`tools/setup.sh` installs it),
/// without the runtime's debug information, and with GNU ld when asked (`WANCO_LINKER=system`,
/// the fallback where no `lld` is installed); both run alike, for both ISAs.
#[test]
fn links_with_lld_or_the_system_linker() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/programs/wasm/recursion.wasm");
    let lld = wanco_compiler::lld_installed();
    let mut outputs = Vec::new();
    for isa in ["x86_64", "aarch64"] {
        for linker in ["default", "system"] {
            let out = dir.path().join(format!("rec-{isa}-{linker}"));
            let o = Command::new(env!("CARGO_BIN_EXE_wanco"))
                .args(["compile", wasm, "--target", isa, "-o", out.to_str().unwrap()])
                .env("WANCO_LINKER", linker)
                .output()
                .unwrap();
            assert!(o.status.success(), "{isa} {linker}: {}", String::from_utf8_lossy(&o.stderr));
            use object::{Object, ObjectSection};
            let bin = std::fs::read(&out).unwrap();
            let elf = object::File::parse(&*bin).unwrap();
            let names: Vec<&str> = elf.sections().filter_map(|s| s.name().ok()).collect();
            assert!(!names.iter().any(|n| n.starts_with(".debug")), "{isa} {linker}: debug info linked in: {names:?}");
            assert!(names.contains(&".eh_frame_hdr"), "{isa} {linker}: no .eh_frame_hdr (wanco-snap unwinds with it)");
            if linker == "default" && lld {
                let comment = elf.section_by_name(".comment").and_then(|s| s.data().ok()).unwrap_or_default();
                let comment = String::from_utf8_lossy(comment);
                assert!(comment.contains("LLD"), "{isa}: lld is installed but was not used: {comment}");
            }
            if isa == "x86_64" {
                let run = Command::new(&out).output().unwrap();
                assert!(run.status.success(), "{linker}: {}", String::from_utf8_lossy(&run.stderr));
                outputs.push(run.stdout);
            }
        }
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "the two links print different things");
}

#[test]
fn unknown_import_is_refused() {
    let e = compile_err("i.wat", b"(module (import \"env\" \"f\" (func)) (func (export \"_start\")))");
    assert!(e.contains("unknown import `env::f`"), "{e}");
}

#[test]
fn wasi_import_with_wrong_type_is_refused() {
    let e = compile_err("i.wat", b"(module (import \"wasi_snapshot_preview1\" \"fd_write\" (func (param i32))) (func (export \"_start\")))");
    assert!(e.contains("fd_write") && e.contains("WASI defines"), "{e}");
}

#[test]
fn missing_file_and_bad_target() {
    let dir = tempfile::tempdir().unwrap();
    let (code, e) = wanco(&["compile", "nope.wasm"], dir.path());
    assert_eq!(code, 2);
    assert!(e.contains("cannot read `nope.wasm`"), "{e}");
    std::fs::write(dir.path().join("m.wat"), "(module)").unwrap();
    let (code, e) = wanco(&["compile", "m.wat", "--target", "riscv"], dir.path());
    assert_eq!(code, 2);
    assert!(e.contains("expected x86_64 or aarch64"), "{e}");
}

#[test]
fn explicit_bounds_checks_trap_like_guard_pages() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/programs/wasm/trap_oob_load.wasm");
    for mode in ["guard", "explicit"] {
        let out = dir.path().join(format!("oob-{mode}"));
        let (code, e) = wanco(&["compile", wasm, "--bounds-checks", mode, "-o", out.to_str().unwrap()], dir.path());
        assert_eq!(code, 0, "{e}");
        let run = Command::new(&out).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(134), "{mode}: {stderr}");
        assert!(stderr.contains("wasm trap: out of bounds memory access"), "{mode}: {stderr}");
    }
}

/// Every optimisation level compiles a C program for both ISAs, and its output is the same:
/// `-O 0` once ran out of registers (the fast register allocator and the deopt values of the
/// C/R instrumentation) and exited 1.
#[test]
fn every_opt_level_compiles_a_c_program_for_both_isas() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/programs/wasm/recursion.wasm");
    let mut outputs = Vec::new();
    for opt in ["0", "1", "2", "3"] {
        for isa in ["x86_64", "aarch64"] {
            let out = dir.path().join(format!("rec-{opt}-{isa}"));
            let (code, e) = wanco(&["compile", wasm, "-O", opt, "--target", isa, "-o", out.to_str().unwrap()], dir.path());
            assert_eq!(code, 0, "-O {opt} --target {isa}: {e}");
            if isa == "x86_64" {
                let run = Command::new(&out).output().unwrap();
                assert!(run.status.success(), "-O {opt}: {}", String::from_utf8_lossy(&run.stderr));
                outputs.push(run.stdout);
            }
        }
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "the levels print different things");
}

/// `--canonicalize-nans`: NaNs made by operations have the same bits on x86_64 and aarch64
/// (output, migration points, and a checkpoint on one restored on the other); without it x86
/// makes negative NaNs and aarch64 positive ones, and the program's path follows the sign.
#[test]
fn canonical_nans_are_the_same_on_both_isas() {
    let dir = tempfile::tempdir().unwrap();
    let wat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/programs/wat/nan_ops.wat");
    let run = |bin: &Path, isa: &str, args: &[&str]| {
        let o = common::on_isa(bin, isa).args(args).output().unwrap();
        assert!(o.status.success(), "{isa}: {}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
    };
    let mut bins = Vec::new();
    let mut outs = Vec::new();
    for (flag, name) in [(Some("--canonicalize-nans"), "canon"), (None, "native")] {
        for isa in ["x86_64", "aarch64"] {
            let bin = dir.path().join(format!("{name}-{isa}"));
            let mut args = vec!["compile", wat, "--target", isa, "-o", bin.to_str().unwrap()];
            args.extend(flag);
            let (code, e) = wanco(&args, dir.path());
            assert_eq!(code, 0, "{e}");
            outs.push(run(&bin, isa, &["--count-points"]));
            bins.push((bin, isa));
        }
    }
    let (canon_x86, canon_arm, native_x86, native_arm) = (&outs[0], &outs[1], &outs[2], &outs[3]);
    assert_eq!(canon_x86, canon_arm, "canonical NaNs differ between the ISAs");
    assert!(canon_x86.0.starts_with("7ff8000000000000\n7ff8000000000000\n7fc0000000000000\n"), "{}", canon_x86.0);
    // Bit operations keep a NaN's bits either way.
    assert!(canon_x86.0.contains("ffa0000100000000\n7ff4000000000001\nffa0000100000000\n"), "{}", canon_x86.0);
    // What the hardware does without it (the reason for the option).
    assert!(native_x86.0.starts_with("fff8000000000000"), "{}", native_x86.0);
    assert!(native_arm.0.starts_with("7ff8000000000000"), "{}", native_arm.0);
    assert_ne!(native_x86.1, native_arm.1, "the paths were expected to differ");
    // A checkpoint of the canonical x86_64 build restores on the canonical aarch64 build.
    let snap = dir.path().join("n.wsnap");
    let (before, _) = run(&bins[0].0, "x86_64", &["--checkpoint-after-points", "200", "--checkpoint-file", snap.to_str().unwrap()]);
    let (after, _) = run(&bins[1].0, "aarch64", &["--restore", snap.to_str().unwrap()]);
    assert_eq!(before + &after, canon_x86.0);
}

/// `x + (-0.0)` and `x * 1` with the constant a lane of a `v128.const`: LLVM
/// keeps the lane as a constant expression (`extractelement (bitcast ...)`),
/// which the compiler once read as a float (garbage, or a crash found by
/// `wanco-fuzz --aot`), and folds the operation away later, so a signalling
/// NaN operand must still come out quiet (Wasm: an arithmetic NaN). The
/// program exits with a bit set per result whose quiet bit is clear.
#[test]
fn identity_lane_of_a_v128_const_quiets_a_signalling_nan() {
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory 1)
      (data (i32.const 0) "\01\00\00\00\00\00\f4\7f\01\00\a0\7f")
      (func (export "_start") (local $bad i32)
        (if (i64.eqz (i64.and (i64.reinterpret_f64
              (f64.add (f64.load (i32.const 0)) (f64x2.extract_lane 0 (v128.const f64x2 -0.0 5.0))))
              (i64.const 0x0008000000000000)))
          (then (local.set $bad (i32.or (local.get $bad) (i32.const 1)))))
        (if (i32.eqz (i32.and (i32.reinterpret_f32
              (f32.mul (f32.load (i32.const 8)) (f32x4.extract_lane 1 (v128.const f32x4 3 1 0 0))))
              (i32.const 0x00400000)))
          (then (local.set $bad (i32.or (local.get $bad) (i32.const 2)))))
        (call $exit (local.get $bad))))"#;
    std::fs::write(dir.path().join("id.wat"), wat).unwrap();
    for isa in ["x86_64", "aarch64"] {
        let bin = dir.path().join(format!("id-{isa}"));
        let (code, e) = wanco(&["compile", "id.wat", "--target", isa, "-o", bin.to_str().unwrap()], dir.path());
        assert_eq!(code, 0, "{isa}: {e}");
        let o = common::on_isa(&bin, isa).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{isa}: signalling NaNs came out of an identity operation (exit = mask of them); {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// A source that goes silent before its snapshot is in (a link cut without a
/// reset): the agent gives the migration up after `--silence-limit` and says
/// why, instead of waiting for ever.
#[test]
fn agent_gives_up_on_a_silent_source() {
    use std::io::{BufRead, BufReader};
    let mut agent = Command::new(env!("CARGO_BIN_EXE_wanco"))
        .args(["agent", "--listen", "127.0.0.1:0", "--insecure", "--once", "--silence-limit", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(agent.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
    let t0 = std::time::Instant::now();
    let _silent = std::net::TcpStream::connect(&addr).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = agent.wait().unwrap();
    let waited = t0.elapsed();
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("no answer within the time limit"), "{rest}");
    assert!(waited >= std::time::Duration::from_millis(900) && waited < std::time::Duration::from_secs(30), "{waited:?}: {rest}");
}

/// A program waiting in a host call (a read of its input that blocks) is checkpointed only when
/// the call returns: `wanco migrate` gives up after `--stop-timeout` and says why — pre-copy's
/// first round and stop-and-copy's stop alike —, the request is withdrawn, and the program goes
/// on as if nothing happened once its input comes (no snapshot, no stop, the same output).
#[test]
fn migrate_gives_up_on_a_program_waiting_in_a_host_call() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/programs/wasm/stdin_echo.wasm");
    let bin = dir.path().join("echo");
    let (code, e) = wanco(&["compile", wasm.to_str().unwrap(), "-o", bin.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{e}");
    let input = b"hello after\n";
    let mut r = Command::new(&bin).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    r.stdin.take().unwrap().write_all(input).unwrap();
    let reference = r.wait_with_output().unwrap();
    assert_eq!(reference.status.code(), Some(0));
    let mut agent = Command::new(env!("CARGO_BIN_EXE_wanco"))
        .args(["agent", "--listen", "127.0.0.1:0", "--insecure", "--work-dir"])
        .arg(dir.path().join("agent"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(agent.stderr.as_mut().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
    for mode in ["--precopy", "--stop-and-copy"] {
        let sock = dir.path().join(format!("ctl{mode}.sock"));
        let mut prog = Command::new(&bin)
            .arg(format!("--control={}", sock.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while !sock.exists() {
            assert!(t.elapsed() < std::time::Duration::from_secs(10), "no control socket");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let pid = prog.id().to_string();
        let to = format!("tcp://{addr}");
        let (code, e) = wanco(&["migrate", &pid, "--to", &to, "--insecure", "--control", sock.to_str().unwrap(), "--stop-timeout", "1", mode], dir.path());
        assert_eq!(code, 1, "{mode}: {e}");
        assert!(e.contains("has not reached a migration point within 1 s (--stop-timeout): it waits in a host call"), "{mode}: {e}");
        assert!(e.contains(&format!("nothing was moved: the program goes on here (process {pid})")), "{mode}: {e}");
        prog.stdin.take().unwrap().write_all(input).unwrap();
        let o = prog.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{mode}: {err}");
        assert_eq!(o.stdout, reference.stdout, "{mode}: the program went on as if nothing happened");
        assert!(err.is_empty(), "{mode}: nothing to say: {err}");
    }
    let _ = agent.kill();
    let _ = agent.wait();
}
