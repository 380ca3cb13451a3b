//! Compiling in parts (`wanco compile -j N`): the same programs compiled with -j1, -j2 and more
//! parts than functions run like wasmtime runs them; a -j N build is byte-for-byte reproducible;
//! a snapshot of a -j2 build matches the interpreter, restores in a -j1 build, on the interpreter
//! and on aarch64 (qemu), and a -j1 snapshot restores in the -j2 build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wanco_tests::engine::{Engine, Tools};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

fn tools() -> Tools {
    Tools::locate(&workspace(), &[Engine::Wasmtime, Engine::AotX86_64, Engine::AotAarch64]).unwrap_or_else(|e| panic!("{e}"))
}

fn program(name: &str) -> PathBuf {
    workspace().join("tests").join("programs").join("wasm").join(name)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `wanco compile WASM -j JOBS --target ISA -o OUT`.
fn compile(t: &Tools, wasm: &Path, jobs: u32, isa: &str, out: &Path) {
    ok(Command::new(&t.wanco).arg("compile").arg(wasm).arg("-j").arg(jobs.to_string()).args(["--target", isa, "-o"]).arg(out));
}

/// The command running a compiled program (aarch64 under qemu).
fn exe(t: &Tools, bin: &Path, isa: &str) -> Command {
    if isa == "aarch64" {
        let mut c = Command::new(&t.qemu);
        c.arg("-L").arg(&t.aarch64_sysroot).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// Output of every -j N build equals wasmtime's; a -j2 build is reproducible byte for byte and
/// differs from the -j1 build (it really is split).
#[test]
fn parts_run_like_wasmtime_and_are_reproducible() {
    let t = tools();
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["rust_collections.wasm"] {
        let wasm = program(name);
        let reference = ok(Command::new(&t.wasmtime).arg("run").arg(&wasm));
        let mut bins = Vec::new();
        for jobs in [1, 2, 4096] {
            let bin = dir.path().join(format!("{name}.j{jobs}"));
            compile(&t, &wasm, jobs, "x86_64", &bin);
            let got = run(&mut Command::new(&bin));
            assert_eq!(got.status.code(), reference.status.code(), "{name} -j{jobs}: exit status");
            assert!(got.stdout == reference.stdout, "{name} -j{jobs}: stdout differs from wasmtime's:\n{}", String::from_utf8_lossy(&got.stdout));
            bins.push(std::fs::read(&bin).expect("read binary"));
        }
        assert_ne!(bins[0], bins[1], "{name}: the -j2 build is the -j1 build (not split?)");
        let again = dir.path().join(format!("{name}.j2.again"));
        compile(&t, &wasm, 2, "x86_64", &again);
        assert!(std::fs::read(&again).expect("read") == bins[1], "{name}: two -j2 builds differ");
    }
}

/// A checkpoint of a -j2 build restores in a -j1 build, on the interpreter and in an aarch64
/// -j2 build; the snapshot matches the interpreter's state at that point; a -j1 snapshot
/// restores in the -j2 build.
#[test]
fn snapshots_cross_part_counts_and_isas() {
    let t = tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = program("recursion.wasm");
    let full = ok(Command::new(&t.wasmtime).arg("run").arg(&wasm)).stdout;
    let j1 = dir.path().join("j1");
    let j2 = dir.path().join("j2");
    let a64 = dir.path().join("j2.aarch64");
    compile(&t, &wasm, 1, "x86_64", &j1);
    compile(&t, &wasm, 2, "x86_64", &j2);
    compile(&t, &wasm, 2, "aarch64", &a64);
    let snap_tool = t.wanco.with_file_name("wanco-snap");
    let points = 3000;
    for (from, to) in [(&j2, &j1), (&j1, &j2)] {
        let snap = dir.path().join(format!("{}.wsnap", from.file_name().unwrap().to_string_lossy()));
        let first = ok(Command::new(from).arg("--checkpoint-after-points").arg(points.to_string()).arg("--checkpoint-file").arg(&snap));
        assert!(first.stdout.len() < full.len(), "the checkpoint came after the end of the output");
        let whole = |rest: &[u8]| [first.stdout.as_slice(), rest].concat();
        let mut restores: Vec<(String, Command)> = vec![(format!("{} --restore", to.display()), Command::new(to))];
        restores.last_mut().unwrap().1.arg("--restore").arg(&snap);
        if from == &j2 {
            let mut interp = Command::new(&t.wanco);
            interp.arg("interp").arg("--restore").arg(&snap).arg(&wasm);
            restores.push(("interp".into(), interp));
            let mut q = exe(&t, &a64, "aarch64");
            q.arg("--restore").arg(&snap);
            restores.push(("aarch64 -j2".into(), q));
            let diff = ok(Command::new(&snap_tool).args(["diff", "--against-interp"]).arg(&wasm).arg(&snap));
            assert!(String::from_utf8_lossy(&diff.stdout).contains("no divergence"), "{}", String::from_utf8_lossy(&diff.stdout));
        }
        for (what, mut cmd) in restores {
            let rest = ok(&mut cmd);
            assert!(whole(&rest.stdout) == full, "{what} of {}: output before + after the checkpoint differs from the whole run", snap.display());
        }
    }
}
