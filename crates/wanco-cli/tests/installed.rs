//! wanco as an installed toolchain (docs/installing.md): `tools/install.sh`
//! into a scratch prefix, then the tools run from there — with a PATH that
//! holds neither the cargo target directory nor `~/.cargo/bin`, in a
//! directory outside the checkout, without `WANCO_RT_DIR` — through every
//! command of README's "Using it" (`tools/smoke-installed.sh`): compile for
//! both ISAs, run, checkpoint (after N points, SIGUSR1), restore (natively,
//! on aarch64 under qemu, in the interpreter), `wanco-snap dump`/`translate`/
//! `verify`/`diff`. Also: `--version`, a compiled program's `--help`, shell
//! completions, `wanco run`'s cache, and the errors naming a missing piece
//! and the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TRIPLES: [&str; 2] = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The cargo target directory of this build (binaries in `<it>/debug`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_wanco")).parent().unwrap().parent().unwrap().to_path_buf()
}

/// A PATH of system directories only (not /usr/local/bin, where `just
/// install` may have put another wanco), after `first`.
fn system_path(first: &Path) -> String {
    format!("{}:/usr/bin:/bin", first.display())
}

/// `prog` with a clean environment for wanco: PATH as given, HOME in `home`,
/// no WANCO_RT_DIR, no cache variables.
fn tool(prog: impl AsRef<std::ffi::OsStr>, path: &str, home: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(prog);
    c.env("PATH", path)
        .env("HOME", home)
        .env_remove("WANCO_RT_DIR")
        .env_remove("WANCO_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(cwd);
    c
}

fn ok(out: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed ({}):\n{}\n{stderr}", out.status, String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stdout).unwrap()
}

/// Install this build's binaries and runtime libraries under `prefix`.
fn install(prefix: &Path) {
    for t in TRIPLES {
        let lib = target_dir().join(t).join("release/libwanco_rt.a");
        assert!(lib.is_file(), "{} is not built: run `bash tools/build-runtime.sh` (`just test` does)", lib.display());
    }
    let out = Command::new("bash")
        .arg(repo().join("tools/install.sh"))
        .arg(prefix)
        .env("WANCO_BIN_DIR", target_dir().join("debug"))
        .env_remove("DESTDIR")
        .output()
        .unwrap();
    ok(out, "tools/install.sh");
}

#[test]
fn installed_tools_run_readme_commands_from_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("usr");
    install(&prefix);

    // The documented layout.
    for b in ["wanco", "wanco-snap"] {
        assert!(prefix.join("bin").join(b).is_file(), "bin/{b}");
        let bash = prefix.join("share/bash-completion/completions").join(b);
        assert!(bash.is_file(), "{}", bash.display());
        ok(Command::new("bash").arg("-n").arg(&bash).output().unwrap(), "bash -n completion");
        assert!(prefix.join("share/zsh/site-functions").join(format!("_{b}")).is_file());
        assert!(prefix.join("share/fish/vendor_completions.d").join(format!("{b}.fish")).is_file());
    }
    for t in TRIPLES {
        assert!(prefix.join("lib/wanco").join(t).join("libwanco_rt.a").is_file(), "{t}");
    }
    assert!(prefix.join("share/doc/wanco/cli.md").is_file());
    assert!(prefix.join("share/doc/wanco/installing.md").is_file());

    let home = tmp.path().join("home");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let path = system_path(&prefix.join("bin"));

    // Compile, run, checkpoint after N points, restore, dump: the installed
    // wanco finds both runtime libraries of its prefix.
    std::fs::copy(repo().join("tools/smoke/app.wasm"), work.join("app.wasm")).unwrap();
    ok(tool("wanco", &path, &home, &work).args(["compile", "app.wasm", "-o", "app"]).output().unwrap(), "compile");
    ok(
        tool("wanco", &path, &home, &work).args(["compile", "app.wasm", "--target", "aarch64", "-o", "app.a64"]).output().unwrap(),
        "compile --target aarch64",
    );
    let whole = ok(tool(work.join("app"), &path, &home, &work).output().unwrap(), "./app");
    let interp = ok(tool("wanco", &path, &home, &work).args(["interp", "app.wasm"]).output().unwrap(), "wanco interp");
    assert!(whole.starts_with("round 1 hash ") && whole.contains("\nround 40 hash "), "{whole}");
    assert!(whole.ends_with("done\n") && whole.lines().count() == 41, "{whole}");
    assert_eq!(whole, interp, "compiled program vs the interpreter");
    let part1 = ok(
        tool(work.join("app"), &path, &home, &work)
            .args(["--checkpoint-after-points", "100000", "--checkpoint-file", "cp.wsnap"])
            .output()
            .unwrap(),
        "./app --checkpoint-after-points",
    );
    let part2 = ok(tool(work.join("app"), &path, &home, &work).args(["--restore", "cp.wsnap"]).output().unwrap(), "--restore");
    assert!(!part1.is_empty() && !part2.is_empty());
    assert_eq!(part1 + &part2, whole, "checkpoint + restore = the whole run");
    let dump = ok(tool("wanco-snap", &path, &home, &work).args(["dump", "cp.wsnap"]).output().unwrap(), "wanco-snap dump");
    assert!(dump.contains("migration points") && dump.contains("100000"), "{dump}");
    assert!(dump.contains("isa x86_64"), "{dump}");

    // Every command of README's "Using it", as written.
    let out = tool("bash", &path, &home, &work).arg(repo().join("tools/smoke-installed.sh")).output().unwrap();
    let log = ok(out, "tools/smoke-installed.sh");
    assert!(log.contains("commands of README's \"Using it\" work"), "{log}");
}

/// `wanco` copied somewhere without its runtime libraries.
fn lone_wanco(tmp: &Path) -> PathBuf {
    let bin = tmp.join("opt/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_wanco"), bin.join("wanco")).unwrap();
    bin.join("wanco")
}

#[test]
fn missing_pieces_are_named_with_the_command_that_installs_them() {
    let tmp = tempfile::tempdir().unwrap();
    let wanco = lone_wanco(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(repo().join("tools/smoke/app.wasm"), work.join("app.wasm")).unwrap();
    let path = system_path(wanco.parent().unwrap());

    // No runtime library: where it was looked for, and how to install it.
    for (target, triple) in [("x86_64", TRIPLES[0]), ("aarch64", TRIPLES[1])] {
        let out = tool(&wanco, &path, tmp.path(), &work).args(["compile", "app.wasm", "--target", target, "-o", "app"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let e = String::from_utf8_lossy(&out.stderr);
        let expected = tmp.path().join("opt/lib/wanco").join(triple).join("libwanco_rt.a");
        assert!(e.contains(&format!("runtime library for {target}")), "{e}");
        assert!(e.contains(&expected.display().to_string()), "{e}");
        assert!(e.contains(&format!("`just install {}`", tmp.path().join("opt").display())), "{e}");
        assert!(!e.contains("just runtime"), "{e}");
        // Not in a cargo target directory: no guesses of one.
        assert!(!e.contains("/release/libwanco_rt.a") && !e.contains("/debug/libwanco_rt.a"), "{e}");
        assert!(!work.join("app").exists());
    }

    // A build in a checkout whose runtime is not built: the checkout's command.
    let checkout = tmp.path().join("checkout");
    std::fs::create_dir_all(checkout.join("target/debug")).unwrap();
    std::fs::write(checkout.join("target/CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n").unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_wanco"), checkout.join("target/debug/wanco")).unwrap();
    let out = tool(checkout.join("target/debug/wanco"), &path, tmp.path(), &work)
        .args(["compile", "app.wasm", "--target", "aarch64", "-o", "app"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    let cmd = format!("`cd {} && rustup target add {} && bash tools/build-runtime.sh`", checkout.display(), TRIPLES[1]);
    assert!(e.contains(&cmd), "{e}");

    // WANCO_RT_DIR still works: DIR/<triple>/libwanco_rt.a.
    let rt = tmp.path().join("rt");
    for t in TRIPLES {
        std::fs::create_dir_all(rt.join(t)).unwrap();
        std::os::unix::fs::symlink(target_dir().join(t).join("release/libwanco_rt.a"), rt.join(t).join("libwanco_rt.a")).unwrap();
    }
    let out = tool(&wanco, &path, tmp.path(), &work).env("WANCO_RT_DIR", &rt).args(["compile", "app.wasm", "-o", "app"]).output().unwrap();
    ok(out, "compile with WANCO_RT_DIR");
    assert!(work.join("app").is_file());

    // No C toolchain on PATH: the linker and the packages that have it.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let bare = empty.display().to_string();
    for (target, linker, packages) in [
        ("x86_64", "`cc`", "apt-get install gcc libc6-dev`"),
        ("aarch64", "`aarch64-linux-gnu-gcc`", "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross`"),
    ] {
        let out = tool(&wanco, &bare, tmp.path(), &work)
            .env("WANCO_RT_DIR", &rt)
            .args(["compile", "app.wasm", "--target", target, "-o", "nolink"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(linker) && e.contains("not installed") && e.contains(packages), "{e}");
        assert!(!work.join("nolink").exists());
    }
}

#[test]
fn version_names_wanco_llvm_and_snapshot_format() {
    let out = Command::new(env!("CARGO_BIN_EXE_wanco")).arg("--version").output().unwrap();
    let v = ok(out, "wanco --version");
    // The LLVM wanco was built against, as its own llvm-config reports it.
    let llvm = Command::new("/usr/lib/llvm-19/bin/llvm-config").arg("--version").output().unwrap();
    let llvm = String::from_utf8(llvm.stdout).unwrap();
    use wanco_state::snapshot::{FORMAT_VERSION, INCREMENTAL_VERSION, MIN_FORMAT_VERSION};
    // The versions written (full and incremental) and the range still read are named.
    let format = format!(
        "snapshot format: writes {FORMAT_VERSION} ({INCREMENTAL_VERSION} for incremental snapshots), reads {MIN_FORMAT_VERSION}-{INCREMENTAL_VERSION}"
    );
    assert!(v.starts_with(&format!("wanco {} ", env!("CARGO_PKG_VERSION"))), "{v}");
    assert!(v.contains(&format!("LLVM {}", llvm.trim())), "{v} vs llvm-config {llvm}");
    assert!(v.contains(&format), "{v}");
    let out = Command::new(env!("CARGO_BIN_EXE_wanco-snap")).arg("--version").output().unwrap();
    let v = ok(out, "wanco-snap --version");
    assert!(v.starts_with(&format!("wanco-snap {} ", env!("CARGO_PKG_VERSION"))) && v.contains(&format), "{v}");
}

#[test]
fn completions_are_generated_for_both_tools() {
    for (bin, name) in [(env!("CARGO_BIN_EXE_wanco"), "wanco"), (env!("CARGO_BIN_EXE_wanco-snap"), "wanco-snap")] {
        let bash = ok(Command::new(bin).args(["completions", "bash"]).output().unwrap(), "completions bash");
        assert!(bash.contains(&format!("complete -F _{} ", name.replace('-', "__"))), "{bash}");
        let zsh = ok(Command::new(bin).args(["completions", "zsh"]).output().unwrap(), "completions zsh");
        assert!(zsh.starts_with(&format!("#compdef {name}")), "{zsh}");
        let fish = ok(Command::new(bin).args(["completions", "fish"]).output().unwrap(), "completions fish");
        assert!(fish.contains(&format!("complete -c {name}")), "{fish}");
        // The subcommands are completed.
        let sub = if name == "wanco" { "compile" } else { "translate" };
        assert!(bash.contains(sub) && zsh.contains(sub) && fish.contains(sub));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wanco")).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash"));
}

#[test]
fn compiled_program_help_is_usage_on_stdout_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    let wasm = repo().join("tools/smoke/app.wasm");
    ok(Command::new(env!("CARGO_BIN_EXE_wanco")).arg("compile").arg(&wasm).arg("-o").arg(&app).output().unwrap(), "compile");
    for flag in ["--help", "-h"] {
        let out = Command::new(&app).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("usage: ") && stdout.contains("--restore SNAP"), "{stdout}");
        assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!stdout.contains("round 1"), "the program did not run");
    }
    // A bad option is still an error: usage on stderr, exit 2.
    let out = Command::new(&app).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("usage: "));
}

/// The cache entries (file names) in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(r) => r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn run_compiles_once_into_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let wasm = repo().join("tests/programs/wasm/recursion.wasm");
    let cache = tmp.path().join("xdg/wanco");
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wanco"))
            .env_remove("WANCO_CACHE_DIR")
            .env("XDG_CACHE_HOME", tmp.path().join("xdg"))
            .arg("run")
            .args(extra)
            .arg("-v")
            .arg(&wasm)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (ok(out, "wanco run"), stderr)
    };
    let expected = ok(Command::new(env!("CARGO_BIN_EXE_wanco")).arg("interp").arg(&wasm).output().unwrap(), "interp");

    let (out1, err1) = run(&[]);
    assert_eq!(out1, expected);
    assert!(err1.contains("wanco: compiling into the cache: "), "{err1}");
    let files = entries(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let entry = cache.join(&files[0]);
    assert!(err1.contains(&entry.display().to_string()), "{err1}");
    let mtime = std::fs::metadata(&entry).unwrap().modified().unwrap();

    // The second run uses the cached binary: nothing compiled or written.
    let (out2, err2) = run(&[]);
    assert_eq!(out2, expected);
    assert!(err2.contains(&format!("wanco: cache hit: {}", entry.display())) && !err2.contains("compiling"), "{err2}");
    assert_eq!(std::fs::metadata(&entry).unwrap().modified().unwrap(), mtime, "the cached binary was rewritten");
    assert_eq!(entries(&cache), files);

    // --no-cache compiles elsewhere and leaves the cache alone.
    let (out3, err3) = run(&["--no-cache"]);
    assert_eq!(out3, expected);
    assert!(err3.contains("compiling (--no-cache)") && !err3.contains("cache hit"), "{err3}");
    assert_eq!(entries(&cache), files);

    // Other options are another entry.
    let (out4, err4) = run(&["-O1"]);
    assert_eq!(out4, expected);
    assert!(err4.contains("compiling into the cache"), "{err4}");
    assert_eq!(entries(&cache).len(), 2);
    assert!(!entries(&cache).iter().any(|f| f.contains("tmp")), "no temporary files left");
}
