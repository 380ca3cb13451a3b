//! `wanco-snap`: dump (tables and JSON), decode/encode round trip, verify
//! against the right and a wrong module, diff, damaged inputs (exit 2, never
//! a panic) and the golden dump of `snapshots/recursion-1000.wsnap`
//! (`BLESS=1` rewrites `snapshots/recursion-1000.dump.txt`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn program(name: &str) -> PathBuf {
    root()
        .join("tests/programs/wasm")
        .join(format!("{name}.wasm"))
}

fn run(bin: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{bin} {args:?} panicked: {err}");
    out
}

fn snap(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_wanco-snap"), args, None)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Checkpoint `recursion.wasm` after `n` migration points into `dir`.
fn checkpoint(dir: &Path, n: u64) -> PathBuf {
    let file = dir.join(format!("recursion-{n}.wsnap"));
    let prog = program("recursion");
    let o = run(
        env!("CARGO_BIN_EXE_wanco"),
        &[
            "interp",
            "--checkpoint-after-points",
            &n.to_string(),
            "--checkpoint-file",
            file.to_str().unwrap(),
            prog.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    file
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn dump_decode_encode_verify_diff() {
    let dir = tempfile::tempdir().unwrap();
    let a = checkpoint(dir.path(), 1000);
    let b = checkpoint(dir.path(), 2500);
    let prog = program("recursion");

    // dump: tables, with names from the module.
    let o = snap(&["dump", "--module", s(&prog), s(&a)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = stdout(&o);
    for want in [
        "migration points | 1000",
        "outermost first",
        "fib",
        "_start",
        "entry",
        "call",
        "i32:",
        "memory",
        "wasi fds",
    ] {
        assert!(t.contains(want), "dump lacks {want:?}:\n{t}");
    }
    // dump --json from stdin.
    let bytes = std::fs::read(&a).unwrap();
    let o = run(
        env!("CARGO_BIN_EXE_wanco-snap"),
        &["dump", "--json", "--module", s(&prog), "-"],
        Some(&bytes),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["migration_points"], 1000);
    let frames = j["frames"].as_array().unwrap();
    assert!(frames.len() > 2);
    assert!(frames.iter().any(|f| f["name"] == "fib"), "{j}");
    let last = frames.last().unwrap();
    assert!(last["kind"] == "Loop" || last["kind"] == "Entry", "{last}");

    // decode → encode is byte-identical.
    let o = snap(&["decode", s(&a)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json = dir.path().join("a.json");
    std::fs::write(&json, &o.stdout).unwrap();
    let back = dir.path().join("back.wsnap");
    let o = snap(&["encode", s(&json), "-o", s(&back)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&back).unwrap(),
        bytes,
        "decode → encode changed the bytes"
    );
    // A broken JSON is bad input.
    std::fs::write(&json, b"{\"format_version\": 1}").unwrap();
    let o = snap(&["encode", s(&json), "-o", s(&back)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));

    // verify: ok with the right module, problems with another.
    let o = snap(&["verify", s(&a)]);
    assert_eq!(
        (o.status.code(), stdout(&o).trim()),
        (Some(0), "ok"),
        "{}",
        stderr(&o)
    );
    let o = snap(&["verify", "--module", s(&prog), s(&b)]);
    assert_eq!(
        (o.status.code(), stdout(&o).trim()),
        (Some(0), "ok"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = snap(&["verify", "--module", s(&program("fileio")), s(&a)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("snapshot was written for module sha256"),
        "{}",
        stdout(&o)
    );

    // An entry point (the first migration point) verifies too.
    let first = checkpoint(dir.path(), 1);
    let o = snap(&["verify", "--module", s(&prog), s(&first)]);
    assert_eq!(
        (o.status.code(), stdout(&o).trim()),
        (Some(0), "ok"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    // A frame moved off its migration point, an extra local: problems, exit 1.
    let mut doc: serde_json::Value =
        serde_json::from_slice(&snap(&["decode", s(&a)]).stdout).unwrap();
    let last = doc["frames"].as_array().unwrap().len() - 1;
    let off = doc["frames"][last]["code_offset"].as_u64().unwrap();
    doc["frames"][last]["code_offset"] = (off + 1).into();
    doc["frames"][0]["locals"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"I64": 7}));
    std::fs::write(&json, serde_json::to_vec(&doc).unwrap()).unwrap();
    let bad = dir.path().join("bad.wsnap");
    let o = snap(&["encode", s(&json), "-o", s(&bad)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = snap(&["verify", "--module", s(&prog), s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = stdout(&o);
    assert!(
        v.contains(&format!("frame {last} (function ")) && v.contains("is not a migration point"),
        "{v}"
    );
    assert!(
        v.contains("frame 0 (function ") && v.contains("locals, expected"),
        "{v}"
    );

    // diff.
    let o = snap(&["diff", s(&a), s(&back)]);
    assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "same"));
    let o = snap(&["diff", s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let d = stdout(&o);
    assert!(d.contains("migration points: 1000 -> 2500"), "{d}");
    assert!(d.contains("frame ") || d.contains("global "), "{d}");
}

#[test]
fn damaged_inputs_are_bad_input() {
    let good = std::fs::read(root().join("snapshots/recursion-1000.wsnap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
        ("empty", Vec::new(), "truncated"),
        (
            "magic",
            [b"XSNAP".as_slice(), &good[5..]].concat(),
            "not a wanco snapshot",
        ),
    ];
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    cases.push(("flipped", flipped, "checksum mismatch"));
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&9u32.to_le_bytes());
    cases.push(("version", newer, "version 9 is newer"));
    let prog = program("recursion");
    for (name, bytes, msg) in cases {
        let f = dir.path().join(format!("{name}.wsnap"));
        std::fs::write(&f, &bytes).unwrap();
        let good_f = root().join("snapshots/recursion-1000.wsnap");
        for args in [
            vec!["dump", s(&f)],
            vec!["dump", "--json", s(&f)],
            vec!["decode", s(&f)],
            vec!["verify", s(&f)],
            vec!["verify", "--module", s(&prog), s(&f)],
            vec!["diff", s(&good_f), s(&f)],
            vec!["diff", s(&f), s(&good_f)],
        ] {
            let o = snap(&args);
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?} ({name}): {e}");
            assert!(e.contains(msg), "{args:?} ({name}): {e}");
            assert_eq!(
                e.trim().lines().count(),
                1,
                "{args:?} ({name}): not one line: {e}"
            );
        }
    }
    // A missing file and a wrong --module for dump are bad input too.
    let o = snap(&["dump", "/nonexistent.wsnap"]);
    assert_eq!(o.status.code(), Some(2));
    let good_f = root().join("snapshots/recursion-1000.wsnap");
    let o = snap(&["dump", "--module", s(&program("fileio")), s(&good_f)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not the snapshot's module"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn golden_dump() {
    let fixture = root().join("snapshots/recursion-1000.wsnap");
    let expected = root().join("snapshots/recursion-1000.dump.txt");
    // Run from the repository root with relative paths: the output is the same everywhere.
    let o = Command::new(env!("CARGO_BIN_EXE_wanco-snap"))
        .current_dir(root())
        .args([
            "dump",
            "--module",
            "tests/programs/wasm/recursion.wasm",
            "snapshots/recursion-1000.wsnap",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = stdout(&o);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&expected, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&expected).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with BLESS=1 to create it)",
            expected.display()
        )
    });
    assert!(fixture.exists());
    assert_eq!(
        got,
        want,
        "dump of {} changed (BLESS=1 regenerates the expected text)",
        fixture.display()
    );
    // The fixture also verifies against its module.
    let o = Command::new(env!("CARGO_BIN_EXE_wanco-snap"))
        .current_dir(root())
        .args([
            "verify",
            "--module",
            "tests/programs/wasm/recursion.wasm",
            "snapshots/recursion-1000.wsnap",
        ])
        .output()
        .unwrap();
    // The fixture was written under migration-point rule 1 (every function
    // entry a point): everything in it is valid but its count, which this
    // wanco's engines would not reproduce, so verify names both rules.
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("counts migration points by rule 1 and this wanco counts by rule 2"),
        "{}",
        stdout(&o)
    );
}

/// `verify --module` (with its operand-stack and call-target checks) accepts real snapshots:
/// programs with values under call arguments, loops with parameters, `call_indirect`, NaNs and
/// deep recursion, checkpointed by the interpreter at points spread over their run (`.wat`
/// modules are read as text).
#[test]
fn verify_accepts_real_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    for prog in ["cr_stack", "cr_nan", "cr_deep"] {
        let module = root().join(format!("tests/programs/cr/{prog}.wat"));
        let o = run(
            env!("CARGO_BIN_EXE_wanco"),
            &["interp", "--count-points", s(&module)],
            None,
        );
        assert_eq!(o.status.code(), Some(0), "{prog}: {}", stderr(&o));
        let total: u64 = stderr(&o)
            .lines()
            .find_map(|l| l.strip_prefix("migration points: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{prog}: {}", stderr(&o)));
        for k in 1..=6u64 {
            let n = (total * k / 7).max(1);
            let file = dir.path().join(format!("{prog}-{n}.wsnap"));
            let o = run(
                env!("CARGO_BIN_EXE_wanco"),
                &[
                    "interp",
                    "--checkpoint-after-points",
                    &n.to_string(),
                    "--checkpoint-file",
                    s(&file),
                    s(&module),
                ],
                None,
            );
            assert_eq!(o.status.code(), Some(0), "{prog} at {n}: {}", stderr(&o));
            let o = snap(&["verify", "--module", s(&module), s(&file)]);
            assert_eq!(
                (o.status.code(), stdout(&o).trim()),
                (Some(0), "ok"),
                "{prog} at {n}: {}{}",
                stdout(&o),
                stderr(&o)
            );
        }
    }
}

/// v128 values in interpreter snapshots of the SIMD program: `dump` shows them as hex and as
/// lanes on request, `decode` → `encode` gives the same bytes, `verify` accepts them and refuses
/// one of the wrong type, `diff --against-interp` agrees.
#[test]
fn v128_values_dump_roundtrip_verify_diff() {
    let dir = tempfile::tempdir().unwrap();
    let prog = program("simd");
    for n in [700u64, 6000] {
        let file = dir.path().join(format!("simd-{n}.wsnap"));
        let o = run(
            env!("CARGO_BIN_EXE_wanco"),
            &["interp", "--checkpoint-after-points", &n.to_string(), "--checkpoint-file", s(&file), s(&prog)],
            None,
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let bytes = std::fs::read(&file).unwrap();

        let o = snap(&["dump", s(&file)]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let t = stdout(&o);
        assert!(t.contains("format version   | 2"), "{t}");
        let hex = t.lines().find(|l| l.contains("v128:")).unwrap_or_else(|| panic!("no v128 in:\n{t}"));
        assert!(hex.split("v128:").nth(1).unwrap().split_whitespace().take(4).all(|w| w.len() >= 8), "{hex}");
        let o = snap(&["dump", "--lanes", "i32x4", s(&file)]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("v128:i32x4 ["), "{}", stdout(&o));
        let o = snap(&["dump", "--lanes", "f64x2", s(&file)]);
        assert!(stdout(&o).contains("v128:f64x2 ["), "{}", stdout(&o));

        // decode → encode is byte-identical.
        let o = snap(&["decode", s(&file)]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let json_text = stdout(&o);
        assert!(json_text.contains("\"V128\": \"0x"), "{json_text}");
        let json = dir.path().join("s.json");
        std::fs::write(&json, &json_text).unwrap();
        let back = dir.path().join("back.wsnap");
        let o = snap(&["encode", s(&json), "-o", s(&back)]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(std::fs::read(&back).unwrap(), bytes, "decode → encode changed the bytes");

        // verify: the types match the module; a v128 turned into an i32 does not.
        let o = snap(&["verify", "--module", s(&prog), s(&file)]);
        assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "ok"), "{}{}", stdout(&o), stderr(&o));
        let at = json_text.find("\"V128\": \"0x").unwrap();
        let end = at + json_text[at..].find('}').unwrap();
        let bad_text = format!("{}\"I32\": 0{}", &json_text[..at], &json_text[end..]);
        std::fs::write(&json, bad_text).unwrap();
        let bad = dir.path().join("bad.wsnap");
        let o = snap(&["encode", s(&json), "-o", s(&bad)]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let o = snap(&["verify", "--module", s(&prog), s(&bad)]);
        assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains("v128"), "{}", stdout(&o));

        // The interpreter reaches the same state at that point.
        let o = snap(&["diff", "--against-interp", s(&prog), s(&file)]);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    }
}
