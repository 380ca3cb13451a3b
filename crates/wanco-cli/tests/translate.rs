//! `wanco-snap translate` across ISAs, end to end: a snapshot taken by an
//! x86_64 binary (native x86_64 frames) is translated to the aarch64
//! binary's frame layout and resumes there under qemu with the output of an
//! uninterrupted run, and the reverse; translating to neutral gives the same
//! state from the original and from the translation, and translating back
//! gives the original bytes. Bad inputs are refused with exit 2, and a
//! tampered native view is refused by the binary it claims to fit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check_no_panic(what: &str, o: &Output) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!e.contains("panicked"), "{what} panicked: {e}");
    assert!(o.status.code().is_some(), "{what} died by a signal: {e}");
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    check_no_panic(what, &o);
    o
}

fn snap(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_wanco-snap")).args(args), &format!("wanco-snap {args:?}"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Isa {
    X86,
    Arm,
}

impl Isa {
    fn name(self) -> &'static str {
        match self {
            Isa::X86 => "x86_64",
            Isa::Arm => "aarch64",
        }
    }
}

struct Prog {
    dir: tempfile::TempDir,
    x86: PathBuf,
    arm: PathBuf,
}

impl Prog {
    fn compile(name: &str) -> Prog {
        let dir = tempfile::tempdir().unwrap();
        let src = root().join("tests/programs/cr").join(format!("{name}.wat"));
        let x86 = dir.path().join(format!("{name}.x86_64"));
        let arm = dir.path().join(format!("{name}.aarch64"));
        for (t, out) in [("x86_64", &x86), ("aarch64", &arm)] {
            let o = run(
                Command::new(env!("CARGO_BIN_EXE_wanco")).args(["compile", "--target", t]).arg(&src).arg("-o").arg(out),
                "wanco compile",
            );
            assert!(o.status.success(), "compile {name} for {t}: {}", stderr(&o));
        }
        Prog { dir, x86, arm }
    }

    fn bin(&self, isa: Isa) -> &Path {
        match isa {
            Isa::X86 => &self.x86,
            Isa::Arm => &self.arm,
        }
    }

    fn exec(&self, isa: Isa, args: &[&str]) -> Output {
        let mut c = match isa {
            Isa::X86 => Command::new(&self.x86),
            Isa::Arm => {
                let mut c = Command::new("qemu-aarch64");
                c.args(["-L", "/usr/aarch64-linux-gnu"]).arg(&self.arm);
                c
            }
        };
        c.args(args).current_dir(self.dir.path());
        run(&mut c, &format!("{isa:?} {args:?}"))
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

/// Checkpoint on `from` after `n` points, translate to `to`'s layout,
/// restore on `to`: the two outputs make the uninterrupted run's.
fn across(p: &Prog, full: &Output, from: Isa, to: Isa, n: u64) {
    let tag = format!("{}-{}-{n}", from.name(), to.name());
    let cp = p.path(&format!("{tag}.wsnap"));
    let part1 = p.exec(from, &["--checkpoint-after-points", &n.to_string(), "--checkpoint-file", &cp]);
    assert!(part1.status.success(), "{tag}: checkpoint: {}", stderr(&part1));

    // The capture carries `from`'s native frames.
    let d = snap(&["dump", "--binary", p.bin(from).to_str().unwrap(), &cp]);
    assert!(d.status.success(), "{tag}: dump: {}", stderr(&d));
    let text = String::from_utf8_lossy(&d.stdout).into_owned();
    assert!(text.contains(&format!("native frames ({}, build", from.name())), "{tag}: {text}");

    let tr = p.path(&format!("{tag}.translated.wsnap"));
    let o = snap(&["translate", &cp, "--to", to.name(), "--binary", p.bin(to).to_str().unwrap(), "-o", &tr]);
    assert!(o.status.success(), "{tag}: translate: {}", stderr(&o));
    let d = snap(&["dump", "--binary", p.bin(to).to_str().unwrap(), "--disasm", &tr]);
    assert!(d.status.success(), "{tag}: dump translated: {}", stderr(&d));
    let text = String::from_utf8_lossy(&d.stdout).into_owned();
    assert!(text.contains(&format!("native frames ({}, build", to.name())), "{tag}: {text}");
    let call = if to == Isa::X86 { " call " } else { " bl " };
    assert!(text.contains("  -> 0x") && text.contains(call), "{tag}: no disassembly around the pcs: {text}");

    let part2 = p.exec(to, &["--restore", &tr]);
    let mut out = part1.stdout.clone();
    out.extend_from_slice(&part2.stdout);
    assert_eq!(part2.status.code(), full.status.code(), "{tag}: exit code; stderr {}", stderr(&part2));
    assert!(out == full.stdout, "{tag}: the output before the checkpoint and after the restore differs from the uninterrupted run");

    // Neutral from the original and from the translation: the same state.
    let n1 = p.path(&format!("{tag}.n1.wsnap"));
    let n2 = p.path(&format!("{tag}.n2.wsnap"));
    assert!(snap(&["translate", &cp, "--to", "neutral", "-o", &n1]).status.success());
    assert!(snap(&["translate", &tr, "--to", "neutral", "-o", &n2]).status.success());
    assert_eq!(std::fs::read(&n1).unwrap(), std::fs::read(&n2).unwrap(), "{tag}: neutral states differ");
    let j = String::from_utf8(snap(&["decode", &n1]).stdout).unwrap();
    assert!(!j.contains("\"native\""), "{tag}: --to neutral kept the native view");

    // And back to `from`: the captured native view, byte for byte (same
    // return addresses, frame sizes, locations and bits).
    let back = p.path(&format!("{tag}.back.wsnap"));
    let o = snap(&["translate", &tr, "--to", from.name(), "--binary", p.bin(from).to_str().unwrap(), "-o", &back]);
    assert!(o.status.success(), "{tag}: translate back: {}", stderr(&o));
    if std::fs::read(&back).unwrap() != std::fs::read(&cp).unwrap() {
        let a = String::from_utf8(snap(&["decode", &cp]).stdout).unwrap();
        let b = String::from_utf8(snap(&["decode", &back]).stdout).unwrap();
        let na = &a[a.find("\"native\"").unwrap_or(0)..];
        let nb = &b[b.find("\"native\"").unwrap_or(0)..];
        panic!("{tag}: translating back does not give the capture:\n{na}\n---\n{nb}");
    }
}

fn full_run(p: &Prog) -> (Output, u64) {
    let full = p.exec(Isa::X86, &["--count-points"]);
    let e = stderr(&full);
    let n: u64 = e
        .lines()
        .find_map(|l| l.strip_prefix("migration points: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no point count: {e}"));
    (full, n)
}

#[test]
fn x86_64_and_aarch64_translate_both_ways() {
    for name in ["cr_stack", "cr_deep", "cr_nan"] {
        let p = Prog::compile(name);
        let (full, n) = full_run(&p);
        across(&p, &full, Isa::X86, Isa::Arm, n / 3);
        across(&p, &full, Isa::Arm, Isa::X86, 2 * n / 3 + 1);
    }
}

#[test]
fn bad_inputs_are_refused() {
    let p = Prog::compile("cr_stack");
    let cp = p.path("a.wsnap");
    assert!(p.exec(Isa::X86, &["--checkpoint-after-points", "5000", "--checkpoint-file", &cp]).status.success());
    let out = p.path("out.wsnap");
    let x86 = p.x86.to_str().unwrap();
    let arm = p.arm.to_str().unwrap();
    let refused = |args: &[&str], want: &str| {
        let o = snap(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(want), "{args:?}: expected `{want}` in: {e}");
        assert!(!Path::new(&out).exists(), "{args:?} wrote an output");
    };
    refused(&["translate", &cp, "--to", "aarch64", "-o", &out], "needs the target binary");
    refused(&["translate", &cp, "--to", "aarch64", "--binary", x86, "-o", &out], "is an x86_64 binary, not aarch64");
    refused(&["translate", &cp, "--to", "riscv", "--binary", x86, "-o", &out], "expected x86_64, aarch64 or neutral");
    refused(&["translate", &cp, "--to", "neutral", "--binary", x86, "-o", &out], "needs no binary");
    refused(&["translate", &cp, "--to", "x86_64", "--binary", &cp, "-o", &out], "not an ELF executable");
    refused(&["dump", "--binary", arm, &cp], "the binary is aarch64");

    // A binary without checkpointing, and one of another module.
    let src = root().join("tests/programs/cr/cr_stack.wat");
    let nocr = p.path("nocr");
    assert!(run(
        Command::new(env!("CARGO_BIN_EXE_wanco")).args(["compile", "--no-cr"]).arg(&src).arg("-o").arg(&nocr),
        "compile --no-cr"
    )
    .status
    .success());
    refused(&["translate", &cp, "--to", "x86_64", "--binary", &nocr, "-o", &out], "compiled with --no-cr");
    let other = p.path("other");
    let src2 = root().join("tests/programs/cr/cr_nan.wat");
    assert!(run(
        Command::new(env!("CARGO_BIN_EXE_wanco")).args(["compile"]).arg(&src2).arg("-o").arg(&other),
        "compile other"
    )
    .status
    .success());
    refused(&["translate", &cp, "--to", "x86_64", "--binary", &other, "-o", &out], "was compiled from module sha256");
    refused(&["dump", "--binary", &other, &cp], "belong to build");

    // A native view whose location was changed: decodes (the values still
    // match), but the binary it claims to fit refuses it.
    let tr = p.path("t.wsnap");
    assert!(snap(&["translate", &cp, "--to", "aarch64", "--binary", arm, "-o", &tr]).status.success());
    let json = String::from_utf8(snap(&["decode", &tr]).stdout).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let slots = v["native"]["frames"][0]["slots"].as_array_mut().unwrap();
    let slot = slots.iter_mut().find(|s| s["location"].get("Register").is_some()).expect("a register slot");
    let reg = slot["location"]["Register"]["reg"].as_u64().unwrap();
    slot["location"]["Register"]["reg"] = serde_json::json!(if reg == 19 { 20 } else { 19 });
    let jp = p.path("bad.json");
    std::fs::write(&jp, serde_json::to_string(&v).unwrap()).unwrap();
    let bad = p.path("bad.wsnap");
    assert!(snap(&["encode", &jp, "-o", &bad]).status.success());
    // verify --binary finds it too, and passes the good translation.
    let o = snap(&["verify", "--binary", arm, &bad]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("native frames:") && text.contains("the binary has it in"), "{text}");
    let o = snap(&["verify", "--binary", arm, &tr]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let o = snap(&["verify", "--binary", &other, &tr]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("compiled from module sha256"));
    let o = p.exec(Isa::Arm, &["--restore", &bad]);
    assert_eq!(o.status.code(), Some(2), "tampered view restored: {}", stderr(&o));
    assert!(stderr(&o).contains("native aarch64 frames do not fit this binary"), "{}", stderr(&o));
    // The other ISA restores from the neutral frames and ignores the view.
    let o = p.exec(Isa::X86, &["--restore", &bad]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // A captured view whose pc or frame size was changed: verify --binary
    // checks both against the binary (symbols, unwind information), and
    // passes the capture as it was written.
    let o = snap(&["verify", "--binary", x86, &cp]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let json = String::from_utf8(snap(&["decode", &cp]).stdout).unwrap();
    let orig: serde_json::Value = serde_json::from_str(&json).unwrap();
    let frames = orig["native"]["frames"].as_array().unwrap().len();
    let sized = (0..frames).find(|&k| orig["native"]["frames"][k]["frame_size"].is_u64()).expect("a frame with a size");
    for (field, k, value, want) in [("pc", frames - 1, serde_json::json!(0), "so the return address is"), ("frame_size", sized, serde_json::json!(4096), "frame size 4096")] {
        let mut v = orig.clone();
        v["native"]["frames"][k][field] = value;
        let jp = p.path(&format!("{field}.json"));
        std::fs::write(&jp, serde_json::to_string(&v).unwrap()).unwrap();
        let bad = p.path(&format!("{field}.wsnap"));
        assert!(snap(&["encode", &jp, "-o", &bad]).status.success());
        let o = snap(&["verify", "--binary", x86, &bad]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(1), "{field}: {text}");
        assert!(text.contains("native frames:") && text.contains(want), "{field}: {text}");
        // The binary refuses a changed return address too (it does not read its unwind
        // tables at a restore: a frame size, which restoring does not use, is verify's).
        let o = p.exec(Isa::X86, &["--restore", &bad]);
        if field == "pc" {
            assert_eq!(o.status.code(), Some(2), "tampered pc restored: {}", stderr(&o));
            assert!(stderr(&o).contains("frames do not fit this binary") && stderr(&o).contains(want), "{}", stderr(&o));
        } else {
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
    }
}

/// Number of v128 values in the snapshot's Wasm frames (locals and operand
/// stacks), from `decode`'s JSON.
fn v128_in_frames(p: &Prog, cp: &str) -> usize {
    let d = snap(&["decode", cp]);
    assert!(d.status.success(), "decode {cp}: {}", stderr(&d));
    let v: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    let _ = p;
    v["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .flat_map(|f| {
            ["locals", "stack"].into_iter().flat_map(move |k| f[k].as_array().cloned().unwrap_or_default())
        })
        .filter(|x| x.get("V128").is_some())
        .count()
}

/// Run the interpreter on `src` in the program's directory.
fn interp(p: &Prog, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_wanco")).arg("interp").args(args).current_dir(p.dir.path()), &format!("interp {args:?}"))
}

/// 128-bit SIMD state across ISAs and engines: `cr_simd` (v128 locals,
/// operand-stack values below calls, a v128 global, v128 loop parameters)
/// checkpointed at several points on x86_64 and on aarch64, translated to
/// the other ISA's layout and restored there (and back, byte for byte); the
/// native captures and their translations restored in the interpreter; and
/// the interpreter's snapshots translated to each ISA's layout and restored
/// natively. Every pair of outputs makes the uninterrupted run's.
#[test]
fn v128_state_translates_across_isas_and_the_interpreter() {
    let p = Prog::compile("cr_simd");
    let src = root().join("tests/programs/cr/cr_simd.wat");
    let src = src.to_str().unwrap();
    let (full, n) = full_run(&p);
    let ifull = interp(&p, &[src]);
    assert!(ifull.status.success() && ifull.stdout == full.stdout, "interp full run: {}", stderr(&ifull));
    let mut with_v128 = 0;
    for k in [n / 4, n / 2 + 1, 3 * n / 4 + 3] {
        for (from, to) in [(Isa::X86, Isa::Arm), (Isa::Arm, Isa::X86)] {
            across(&p, &full, from, to, k);
            let tag = format!("{}-{}-{k}", from.name(), to.name());
            let cp = p.path(&format!("{tag}.wsnap"));
            let tr = p.path(&format!("{tag}.translated.wsnap"));
            with_v128 += (v128_in_frames(&p, &cp) > 0) as usize;
            // The same state as the interpreter's at that point.
            let icp = p.path(&format!("interp-{k}.wsnap"));
            let ipart1 = interp(&p, &["--checkpoint-after-points", &k.to_string(), "--checkpoint-file", &icp, src]);
            assert!(ipart1.status.success(), "interp checkpoint at {k}: {}", stderr(&ipart1));
            let o = snap(&["diff", &icp, &cp]);
            let d = String::from_utf8_lossy(&o.stdout).into_owned();
            // Only the producer, the native view, the program name (args[0])
            // and the clock may differ: every value, v128 ones included, agrees.
            let allowed = ["same", "producer ", "native view", "wasi args", "wasi monotonic clock"];
            assert!(
                d.lines().all(|l| allowed.iter().any(|a| l.starts_with(a))),
                "{tag}: interp and {} snapshots at {k} differ:\n{d}",
                from.name()
            );
            // Native capture and its translation restore in the interpreter.
            for s in [&cp, &tr] {
                let part2 = interp(&p, &["--restore", s, src]);
                let mut out = ipart1.stdout.clone();
                out.extend_from_slice(&part2.stdout);
                assert!(part2.status.success(), "{tag}: interp --restore {s}: {}", stderr(&part2));
                assert!(out == full.stdout, "{tag}: interp restore of {s}: the outputs differ from the uninterrupted run");
            }
            // The interpreter's snapshot, laid out for `to`, restores there.
            let it = p.path(&format!("interp-{k}-{}.wsnap", to.name()));
            let o = snap(&["translate", &icp, "--to", to.name(), "--binary", p.bin(to).to_str().unwrap(), "-o", &it]);
            assert!(o.status.success(), "interp {k} -> {}: translate: {}", to.name(), stderr(&o));
            let part2 = p.exec(to, &["--restore", &it]);
            let mut out = ipart1.stdout.clone();
            out.extend_from_slice(&part2.stdout);
            assert!(part2.status.success(), "interp {k} -> {}: restore: {}", to.name(), stderr(&part2));
            assert!(out == full.stdout, "interp {k} -> {}: the outputs differ from the uninterrupted run", to.name());
        }
    }
    // The points are ones with v128 values live in frames, not only in the global.
    assert!(with_v128 >= 4, "only {with_v128} of 6 captures hold v128 values in frames");
}
