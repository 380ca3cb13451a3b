//! Corrupted snapshots are refused, never crash.
//!
//! Good snapshots of a few programs, taken by the interpreter and by an x86_64 compiled binary,
//! are damaged with a seeded RNG: truncations, bit flips anywhere (caught by the checksum), and
//! mutations of the MessagePack body that are **re-sealed** (the header's body length and the
//! trailing SHA-256 fixed), so that the body parser and the structure checks see them. Targeted
//! semantic mutants (decode → JSON edit → encode, or a re-sealed byte edit) break one rule each:
//! a function index out of range, a code offset that is not a migration point, a local or stack
//! value of the wrong type, memory beyond the module's limits, an unknown fd kind, …
//!
//! For every mutant: `wanco-snap verify --module` exits 1 or 2 (0 only for a re-sealed mutant
//! that decodes to a snapshot fitting the module), and `wanco interp --restore` and
//! `BIN --restore` either refuse it (exit 2, one line `error: cannot restore …`) or — only a
//! re-sealed mutant that decodes and fits the module — run it in bounded time. Nothing may die by
//! a signal, exit 101, print "panicked" or hang.
//!
//! `WANCO_CORRUPT_MUTANTS=N` sets the number of random mutants checked by `verify` (default
//! 300; the restores get a third of them each). `WANCO_CORRUPT_SEED` changes the seed,
//! `WANCO_CORRUPT_VERBOSE=1` prints what verify said about the re-sealed mutants. Failing
//! mutants are kept in `<target>/tmp/corrupt-failures/`. A restore that runs gets a budget of
//! migration points (then it checkpoints and exits), so a mutant that made the program's work
//! endless (a loop bound or a recursion depth) still ends; a time-out is an engine hang.

use serde_json::{json, Value};
use std::io::{Read, Seek};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use wanco_state::snapshot::{CHECKSUM_LEN, HEADER_LEN};

/// Time limit of one `verify` or restore run.
const LIMIT: Duration = Duration::from_secs(20);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const WANCO: &str = env!("CARGO_BIN_EXE_wanco");
const SNAP: &str = env!("CARGO_BIN_EXE_wanco-snap");

/// xorshift64*: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// How a child process ended.
struct Ran {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn status(&self) -> String {
        match (self.timed_out, self.code, self.signal) {
            (true, ..) => format!("timed out after {} s (killed)", LIMIT.as_secs()),
            (_, Some(c), _) => format!("exit {c}"),
            (_, None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".into(),
        }
    }

    /// Status and the first lines of the output, for a failure message.
    fn show(&self) -> String {
        let cut = |s: &str| s.lines().take(6).collect::<Vec<_>>().join("\n      ");
        format!(
            "{}\n    stderr: {}\n    stdout: {}",
            self.status(),
            cut(&self.stderr),
            cut(&self.stdout)
        )
    }

    /// Problems every run must avoid: a signal, a hang, a panic (exit 101).
    fn crash(&self) -> Option<String> {
        (self.timed_out
            || self.signal.is_some()
            || self.code == Some(101)
            || self.stderr.contains("panicked")
            || self.stdout.contains("panicked"))
        .then(|| self.show())
    }

    /// A restore refused the snapshot the documented way.
    fn refused(&self) -> bool {
        self.code == Some(2) && self.stderr.starts_with("error: cannot restore `")
    }
}

/// Run `cmd` with no stdin, output into files, in its own process group, killed (the whole
/// group) after [`LIMIT`].
fn run_limited(cmd: &mut Command) -> Ran {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let mut nap = Duration::from_micros(500);
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break (st, false);
        }
        if start.elapsed() > LIMIT {
            // SAFETY: kill(2) of the child's own process group (it is its leader).
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    };
    let read = |mut f: std::fs::File| {
        let mut v = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut v).unwrap();
        // A restored guest's output can be anything: only its beginning matters here (a
        // decoded snapshot is smaller).
        v.truncate(64 << 20);
        String::from_utf8_lossy(&v).into_owned()
    };
    Ran {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        stdout: read(out),
        stderr: read(err),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A program whose snapshots are damaged.
struct Prog {
    name: &'static str,
    /// Relative to `tests/programs`.
    module: &'static str,
    /// Whether it needs a preopened `/data`.
    data: bool,
}

const PROGS: &[Prog] = &[
    // Funcref tables and globals, call_indirect, deep operand stacks.
    Prog {
        name: "cr_stack",
        module: "cr/cr_stack.wat",
        data: false,
    },
    // A C program: deep recursion, loops.
    Prog {
        name: "recursion",
        module: "wasm/recursion.wasm",
        data: false,
    },
    // Memory with a maximum, passive segments, a grown table.
    Prog {
        name: "cr_heap",
        module: "cr/cr_heap.wat",
        data: false,
    },
    // Files open across the checkpoint.
    Prog {
        name: "cr_files",
        module: "cr/cr_files.wat",
        data: true,
    },
];

/// One good snapshot.
struct Base {
    /// `program/producer`.
    label: String,
    module: PathBuf,
    /// The program compiled for x86_64.
    bin: PathBuf,
    bytes: Vec<u8>,
    /// Functions in the module (imported ones included).
    nfuncs: u32,
    /// The preopened directory the snapshot names and a copy of it as it was at the
    /// checkpoint: every restore starts from that copy (a restore refuses files whose size
    /// changed since the checkpoint, as an earlier restore's writes would have).
    data: Option<(PathBuf, PathBuf)>,
}

struct Fixtures {
    dir: PathBuf,
    bases: Vec<Base>,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(make_fixtures)
}

fn ok(ran: &Ran, what: &str) {
    assert_eq!(ran.code, Some(0), "{what}: {}", ran.show());
}

fn make_fixtures() -> Fixtures {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corrupt");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(failures_dir()).unwrap();
    let mut bases = Vec::new();
    for p in PROGS {
        let module = root().join("tests/programs").join(p.module);
        let bin = dir.join(format!("{}.x86_64", p.name));
        ok(
            &run_limited(Command::new(WANCO).args(["compile", s(&module), "-o", s(&bin)])),
            &format!("compile {}", p.name),
        );
        // A fresh preopened directory per run, with a long unique path (a damaged path in a
        // snapshot must not name another existing directory).
        let data = |run: &str| -> Vec<String> {
            if !p.data {
                return Vec::new();
            }
            let d = dir.join(format!("{}-{run}-preopened-data-directory", p.name));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            vec!["--dir".into(), format!("{}::/data", d.display())]
        };
        let count = run_limited(
            Command::new(WANCO)
                .arg("interp")
                .args(data("count"))
                .args(["--count-points", s(&module)]),
        );
        ok(&count, &format!("{}: uninterrupted run", p.name));
        let total: u64 = count
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("migration points: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no point count: {}", p.name, count.show()));
        let n = (total / 2).to_string();
        let text = std::fs::read(&module).unwrap();
        let info =
            wanco_compiler::module_info(&wanco_compiler::wasm_bytes(&text).unwrap()).unwrap();
        for producer in ["interp", "x86_64"] {
            let file = dir.join(format!("{}-{producer}.wsnap", p.name));
            let mut cmd = if producer == "interp" {
                let mut c = Command::new(WANCO);
                c.arg("interp");
                c
            } else {
                Command::new(&bin)
            };
            cmd.args(data(producer)).args([
                "--checkpoint-after-points",
                &n,
                "--checkpoint-file",
                s(&file),
            ]);
            if producer == "interp" {
                cmd.arg(&module);
            }
            ok(
                &run_limited(&mut cmd),
                &format!("{}: checkpoint on {producer}", p.name),
            );
            let base = Base {
                label: format!("{}/{producer}", p.name),
                module: module.clone(),
                bin: bin.clone(),
                bytes: std::fs::read(&file).unwrap(),
                nfuncs: info.funcs.len() as u32,
                data: p.data.then(|| {
                    let d = dir.join(format!("{}-{producer}-preopened-data-directory", p.name));
                    let kept = dir.join(format!("{}-{producer}-at-checkpoint", p.name));
                    copy_tree(&d, &kept);
                    (d, kept)
                }),
            };
            // The intact snapshot verifies and restores everywhere.
            let v = verify(&base, &file);
            assert_eq!(
                (v.code, v.stdout.trim()),
                (Some(0), "ok"),
                "{}: {}",
                base.label,
                v.show()
            );
            for engine in [Engine::Interp, Engine::X86_64] {
                let r = restore(&base, engine, &file);
                ok(&r, &format!("{}: restore on {engine:?}", base.label));
            }
            bases.push(base);
        }
    }
    Fixtures { dir, bases }
}

/// Where failing mutants are kept (not cleared between runs).
fn failures_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("corrupt-failures")
}

fn verify(base: &Base, snap: &Path) -> Ran {
    run_limited(Command::new(SNAP).args(["verify", "--module", s(&base.module), s(snap)]))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Interp,
    X86_64,
}

fn restore(base: &Base, engine: Engine, snap: &Path) -> Ran {
    restore_with(base, engine, snap, &[])
}

/// A restore with more options (before the module for the interpreter).
fn restore_with(base: &Base, engine: Engine, snap: &Path, opts: &[&str]) -> Ran {
    if let Some((dir, kept)) = &base.data {
        let _ = std::fs::remove_dir_all(dir);
        copy_tree(kept, dir);
    }
    match engine {
        Engine::Interp => run_limited(
            Command::new(WANCO)
                .args(["interp", "--restore", s(snap)])
                .args(opts)
                .arg(&base.module),
        ),
        Engine::X86_64 => run_limited(
            Command::new(&base.bin)
                .args(["--restore", s(snap)])
                .args(opts),
        ),
    }
}

/// Copy directory `from` (files and subdirectories) to a new directory `to`.
fn copy_tree(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Migration points a restored mutant may cross before it is checkpointed (and so ends):
/// a mutant that still decodes can be a valid state that computes for very long (a loop
/// bound or a recursion depth made huge), but every loop iteration and call crosses a point,
/// so this bounds its run; a restore that then still times out hangs in the engine.
const POINT_BUDGET: u64 = 2_000_000;

/// The body of a snapshot file.
fn body(bytes: &[u8]) -> &[u8] {
    &bytes[HEADER_LEN..bytes.len() - CHECKSUM_LEN]
}

/// A file with `header`'s first 44 bytes, `body`, the body length and a correct checksum.
fn seal(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = header[..44].to_vec();
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let sum = wanco_state::module::module_hash(&out);
    out.extend_from_slice(&sum);
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Truncated,
    Flipped,
    /// Body edited, length and checksum fixed.
    Resealed,
}

struct Mutant {
    kind: Kind,
    what: String,
    bytes: Vec<u8>,
}

/// MessagePack bytes worth writing: nil, bools, int and container markers, extremes.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc6, 0xcc,
    0xcd, 0xce, 0xcf, 0xd0, 0xd3, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff,
];

/// Where the memory pages (LZ4 data) are in a body: most mutations go elsewhere, into the
/// frames, globals, tables and WASI state.
fn memory_range(body: &[u8]) -> std::ops::Range<usize> {
    let find = |pat: &[u8], from: usize| {
        body[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|i| i + from)
    };
    match find(b"\xa6memory", 0) {
        Some(m) => m + 7..find(b"\xacdata_dropped", m).unwrap_or(body.len()),
        None => 0..0,
    }
}

fn pick(rng: &mut Rng, len: usize, mem: &std::ops::Range<usize>) -> usize {
    let mut p = rng.below(len);
    if rng.chance(85) {
        for _ in 0..20 {
            if !mem.contains(&p) {
                break;
            }
            p = rng.below(len);
        }
    }
    p
}

/// One edit of a body, described.
fn edit_body(rng: &mut Rng, b: &mut Vec<u8>, mem: &std::ops::Range<usize>) -> String {
    if b.is_empty() {
        b.push(INTERESTING[rng.below(INTERESTING.len())]);
        return "insert into an empty body".into();
    }
    let p = pick(rng, b.len(), mem);
    match rng.below(9) {
        0 => {
            let bit = rng.below(8);
            b[p] ^= 1 << bit;
            format!("flip bit {bit} of body byte {p}")
        }
        1 => {
            let v = rng.next() as u8;
            b[p] = v;
            format!("body byte {p} = {v:#04x}")
        }
        2 => {
            let v = INTERESTING[rng.below(INTERESTING.len())];
            b[p] = v;
            format!("body byte {p} = {v:#04x}")
        }
        3 => {
            b.truncate(p);
            format!("truncate the body to {p} bytes")
        }
        4 => {
            let n = 1 + rng.below(8);
            let ins: Vec<u8> = (0..n)
                .map(|_| {
                    if rng.chance(50) {
                        INTERESTING[rng.below(INTERESTING.len())]
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
            b.splice(p..p, ins.iter().copied());
            format!("insert {ins:02x?} at body byte {p}")
        }
        5 => {
            let n = (1 + rng.below(8)).min(b.len() - p);
            b.drain(p..p + n);
            format!("delete {n} body bytes at {p}")
        }
        6 => {
            // Make a small number big: indices, offsets, sizes and counts are small uints.
            let q = (0..64)
                .map(|k| (p + k) % b.len())
                .find(|&q| b[q] < 0x80)
                .unwrap_or(p);
            let big: Vec<u8> = match rng.below(4) {
                0 => vec![0xcc, 0xff],
                1 => vec![0xcd, 0xff, 0xff],
                2 => vec![0xce, 0x7f, 0xff, 0xff, 0xff],
                _ => {
                    let mut v = vec![0xcf];
                    v.extend_from_slice(&rng.next().to_be_bytes());
                    v
                }
            };
            b.splice(q..q + 1, big.iter().copied());
            format!("body byte {q} (small uint) -> {big:02x?}")
        }
        7 => {
            let q = pick(rng, b.len(), mem);
            b.swap(p, q);
            format!("swap body bytes {p} and {q}")
        }
        _ => {
            let n = (1 + rng.below(16)).min(b.len() - p);
            let chunk = b[p..p + n].to_vec();
            let q = pick(rng, b.len(), mem);
            b.splice(q..q, chunk);
            format!("copy {n} body bytes from {p} to {q}")
        }
    }
}

/// One MessagePack item of a body, as [`walk`] finds it.
#[derive(Clone, Copy, Debug)]
enum Item {
    Int(i128),
    Nil,
    Bool,
    Str,
    /// An array of `n` items behind a `head`-byte header.
    Array {
        n: usize,
        head: usize,
    },
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Node {
    start: usize,
    end: usize,
    item: Item,
    /// The key of a map entry.
    key: bool,
    /// The key of a one-entry map: a variant name (`{"I32": 5}`).
    variant: bool,
    /// Index (in the walk's output) of the array holding it.
    parent: Option<usize>,
}

/// Record every item of the MessagePack value at `at`; its end.
fn walk(
    b: &[u8],
    at: usize,
    key: (bool, bool),
    parent: Option<usize>,
    depth: u32,
    out: &mut Vec<Node>,
) -> Option<usize> {
    if depth > 64 {
        return None;
    }
    let t = *b.get(at)?;
    let be = |from: usize, n: usize| -> Option<u64> {
        Some(
            b.get(from..from + n)?
                .iter()
                .fold(0u64, |a, x| a << 8 | u64::from(*x)),
        )
    };
    let idx = out.len();
    out.push(Node {
        start: at,
        end: at,
        item: Item::Other,
        key: key.0,
        variant: key.1,
        parent,
    });
    let (item, end) = match t {
        0x00..=0x7f => (Item::Int(i128::from(t)), at + 1),
        0xe0..=0xff => (Item::Int(i128::from(t as i8)), at + 1),
        0xc0 => (Item::Nil, at + 1),
        0xc2 | 0xc3 => (Item::Bool, at + 1),
        0xcc..=0xcf => {
            let n = 1usize << (t - 0xcc);
            (Item::Int(i128::from(be(at + 1, n)?)), at + 1 + n)
        }
        0xd0..=0xd3 => {
            let n = 1usize << (t - 0xd0);
            let shift = 64 - 8 * n as u32;
            let v = ((be(at + 1, n)? << shift) as i64) >> shift;
            (Item::Int(i128::from(v)), at + 1 + n)
        }
        0xca => (Item::Other, at + 5),
        0xcb => (Item::Other, at + 9),
        0xa0..=0xbf => (Item::Str, at + 1 + usize::from(t & 0x1f)),
        0xd9..=0xdb => {
            let n = 1usize << (t - 0xd9);
            (Item::Str, at + 1 + n + be(at + 1, n)? as usize)
        }
        0xc4..=0xc6 => {
            let n = 1usize << (t - 0xc4);
            (Item::Other, at + 1 + n + be(at + 1, n)? as usize)
        }
        0x80..=0x9f | 0xdc..=0xdf => {
            let (n, head) = match t {
                0x80..=0x9f => (usize::from(t & 15), 1),
                0xdc | 0xde => (be(at + 1, 2)? as usize, 3),
                _ => (be(at + 1, 4)? as usize, 5),
            };
            let map = matches!(t, 0x80..=0x8f | 0xde | 0xdf);
            let mut p = at + head;
            for i in 0..if map { 2 * n } else { n } {
                let k = (map && i % 2 == 0, map && n == 1 && i == 0);
                p = walk(b, p, k, (!map).then_some(idx), depth + 1, out)?;
            }
            (
                if map {
                    Item::Other
                } else {
                    Item::Array { n, head }
                },
                p,
            )
        }
        _ => return None,
    };
    if end > b.len() {
        return None;
    }
    out[idx].item = item;
    out[idx].end = end;
    Some(end)
}

/// The shortest MessagePack encoding of an integer (`-2^63 ..= 2^64 - 1`).
fn enc_int(v: i128) -> Vec<u8> {
    if v >= 0 {
        match v {
            0..=0x7f => vec![v as u8],
            0x80..=0xff => vec![0xcc, v as u8],
            0x100..=0xffff => [&[0xcd][..], &(v as u16).to_be_bytes()].concat(),
            0x1_0000..=0xffff_ffff => [&[0xce][..], &(v as u32).to_be_bytes()].concat(),
            _ => [&[0xcf][..], &(v as u64).to_be_bytes()].concat(),
        }
    } else {
        match v {
            -32..=-1 => vec![v as i8 as u8],
            -0x80..=-33 => vec![0xd0, v as i8 as u8],
            -0x8000..=-0x81 => [&[0xd1][..], &(v as i16).to_be_bytes()].concat(),
            -0x8000_0000..=-0x8001 => [&[0xd2][..], &(v as i32).to_be_bytes()].concat(),
            _ => [&[0xd3][..], &(v as i64).to_be_bytes()].concat(),
        }
    }
}

fn enc_str(s: &str) -> Vec<u8> {
    [&[0xa0 | s.len() as u8][..], s.as_bytes()].concat()
}

/// Variant names of the snapshot's enums (value types, frame kinds, fd kinds) and a few
/// paths: a string is replaced by another of its family.
const NAMES: &[&[&str]] = &[
    &["I32", "I64", "F32", "F64", "FuncRef", "ExternRef"],
    &["Entry", "Loop", "Call"],
    &["Stdin", "Stdout", "Stderr", "File", "Directory"],
    &[
        "",
        ".",
        "..",
        "/",
        "x",
        "../x",
        "in.txt",
        "/tmp",
        "a/../../b",
    ],
];

fn other_name(rng: &mut Rng, old: &[u8]) -> &'static str {
    let family = NAMES
        .iter()
        .find(|f| f.iter().any(|n| n.as_bytes() == old))
        .unwrap_or(&NAMES[NAMES.len() - 1]);
    family[rng.below(family.len())]
}

/// An edit of one MessagePack value of the body that keeps it well-formed: a number, a
/// variant (a value's type, a frame's or an fd's kind), a nil or bool replaced, an array
/// element removed or duplicated. `None` if the body does not parse.
fn edit_value(rng: &mut Rng, b: &mut Vec<u8>) -> Option<String> {
    let mut nodes = Vec::new();
    walk(b, 0, (false, false), None, 0, &mut nodes)?;
    // Not the map keys (field names); a memory page's LZ4 data is one node.
    let candidates: Vec<usize> = (0..nodes.len())
        .filter(|&i| !nodes[i].key || nodes[i].variant)
        .collect();
    for _ in 0..50 {
        let n = nodes[candidates[rng.below(candidates.len())]];
        let (what, new): (String, Vec<u8>) = match n.item {
            _ if n.parent.is_some() && rng.chance(25) => {
                // Remove or duplicate this array element (the count is rewritten in place).
                let a = nodes[n.parent.unwrap_or_default()];
                let Item::Array { n: count, head } = a.item else {
                    continue;
                };
                let remove = rng.chance(50);
                let count = if remove { count - 1 } else { count + 1 };
                match head {
                    1 if count < 16 => b[a.start] = 0x90 | count as u8,
                    3 if count < 0x1_0000 => {
                        b[a.start + 1..a.start + 3].copy_from_slice(&(count as u16).to_be_bytes())
                    }
                    5 => b[a.start + 1..a.start + 5].copy_from_slice(&(count as u32).to_be_bytes()),
                    _ => continue,
                }
                let elem = b[n.start..n.end].to_vec();
                if remove {
                    b.drain(n.start..n.end);
                    return Some(format!("array element at body byte {} removed", n.start));
                }
                b.splice(n.start..n.start, elem);
                return Some(format!("array element at body byte {} duplicated", n.start));
            }
            Item::Int(old) => {
                let v: i128 = match rng.below(20) {
                    0 => 0,
                    1 => 1,
                    2 | 16 => old + 1,
                    3 | 17 => (old - 1).max(0),
                    4 => old ^ (1 << rng.below(32)),
                    18 => old ^ (1 << rng.below(8)),
                    19 => old + 1 + rng.below(4) as i128,
                    5 => 0xff,
                    6 => 0x1_0000,
                    7 => 0x1_0001,
                    8 => 0x7fff_ffff,
                    9 => 0xffff_ffff,
                    10 => 0x1_0000_0000,
                    11 => i128::from(u64::MAX),
                    12 => -1,
                    13 => i128::from(rng.next() as u16),
                    14 => old * 2 + 1,
                    _ => i128::from(rng.next()),
                };
                (format!("integer {old} -> {v}"), enc_int(v))
            }
            Item::Nil => {
                let v = [0, 1, 5, 100_000][rng.below(4)];
                (format!("nil -> {v}"), enc_int(v))
            }
            Item::Bool => (
                format!("bool {:#04x} flipped", b[n.start]),
                vec![b[n.start] ^ 1],
            ),
            Item::Str if n.end - n.start <= 32 => {
                let name = other_name(rng, &b[n.start + 1..n.end]);
                let old = String::from_utf8_lossy(&b[n.start + 1..n.end]).into_owned();
                (format!("string {old:?} -> {name:?}"), enc_str(name))
            }
            _ => continue,
        };
        b.splice(n.start..n.end, new);
        return Some(format!("{what} at body byte {}", n.start));
    }
    None
}

fn mutate(rng: &mut Rng, good: &[u8]) -> Mutant {
    loop {
        let m = match rng.below(100) {
            0..=19 => {
                let cut = rng.below(good.len());
                Mutant {
                    kind: Kind::Truncated,
                    what: format!("truncated to {cut} of {} bytes", good.len()),
                    bytes: good[..cut].to_vec(),
                }
            }
            20..=39 => {
                let mut b = good.to_vec();
                let n = 1 + rng.below(4);
                let mut at = Vec::new();
                for _ in 0..n {
                    let i = rng.below(b.len());
                    let bit = rng.below(8);
                    b[i] ^= 1 << bit;
                    at.push(format!("{i}.{bit}"));
                }
                Mutant {
                    kind: Kind::Flipped,
                    what: format!("bits flipped (byte.bit): {}", at.join(" ")),
                    bytes: b,
                }
            }
            _ => {
                let mut b = body(good).to_vec();
                let mem = memory_range(&b);
                let n = if rng.chance(70) { 1 } else { 2 + rng.below(3) };
                let what: Vec<String> = (0..n)
                    .map(|_| {
                        // Mostly edits that keep the MessagePack well-formed, to get past the
                        // parser into the structure checks.
                        if rng.chance(80) {
                            if let Some(w) = edit_value(rng, &mut b) {
                                return w;
                            }
                        }
                        edit_body(rng, &mut b, &mem)
                    })
                    .collect();
                Mutant {
                    kind: Kind::Resealed,
                    what: format!("re-sealed: {}", what.join("; ")),
                    bytes: seal(good, &b),
                }
            }
        };
        if m.bytes != good {
            return m;
        }
    }
}

/// Counts of outcomes, for the summary.
#[derive(Default)]
struct Stats {
    verify: [usize; 3],
    refused: [usize; 2],
    ran: [usize; 2],
    /// Mutants verify finds no problem in that a restore refused.
    refused_but_ok: Vec<String>,
    /// What verify said, by kind (with `WANCO_CORRUPT_VERBOSE`).
    said: std::collections::BTreeMap<String, usize>,
}

fn check_verify(m: &Mutant, v: &Ran, problems: &mut Vec<String>) {
    if let Some(c) = v.crash() {
        problems.push(format!("verify crashed: {c}"));
        return;
    }
    match v.code {
        Some(0) if m.kind != Kind::Resealed => {
            problems.push("verify says ok for a damaged file".into())
        }
        Some(0) if v.stdout.trim() != "ok" => problems.push(format!("verify exit 0: {}", v.show())),
        Some(1) if !v.stdout.trim_end().ends_with("found") => problems.push(format!(
            "verify exit 1 without a problem count: {}",
            v.show()
        )),
        Some(1) if m.kind != Kind::Resealed => {
            problems.push(format!("verify read a damaged file: {}", v.show()))
        }
        Some(2) if !v.stderr.starts_with("error: ") || v.stderr.trim().lines().count() != 1 => {
            problems.push(format!(
                "verify exit 2 without a one-line error: {}",
                v.show()
            ))
        }
        Some(0..=2) => {}
        _ => problems.push(format!("verify: unexpected {}", v.show())),
    }
}

fn check_restore(m: &Mutant, engine: Engine, r: &Ran, problems: &mut Vec<String>) {
    if let Some(c) = r.crash() {
        problems.push(format!("restore on {engine:?} crashed: {c}"));
        return;
    }
    if r.stderr.contains("cannot restore") || m.kind != Kind::Resealed {
        if !r.refused() || r.stderr.trim().lines().count() != 1 || !r.stdout.is_empty() {
            problems.push(format!(
                "restore on {engine:?}: expected a refusal (exit 2, one line `error: cannot restore …`): {}",
                r.show()
            ));
        }
    } else if r
        .stderr
        .lines()
        .any(|l| l.starts_with("error: ") || l.starts_with("wanco: internal error"))
    {
        problems.push(format!(
            "restore on {engine:?} failed after it began: {}",
            r.show()
        ));
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_mutants_are_refused_or_run() {
    let t0 = Instant::now();
    let fx = fixtures();
    let total = env_usize("WANCO_CORRUPT_MUTANTS", 300);
    let seed = env_usize("WANCO_CORRUPT_SEED", 0x5eed) as u64;
    let per_base = total.div_ceil(fx.bases.len());
    // Each restore engine sees a third of the mutants.
    let every = 3;
    let work = fx.dir.join("random");
    std::fs::create_dir_all(&work).unwrap();
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    let mut restores = 0usize;
    for (bi, base) in fx.bases.iter().enumerate() {
        let mut rng = Rng::new(seed ^ (bi as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for k in 0..per_base {
            let m = mutate(&mut rng, &base.bytes);
            let file = work.join(format!("{}-{k}.wsnap", base.label.replace('/', "-")));
            std::fs::write(&file, &m.bytes).unwrap();
            let mut problems = Vec::new();
            let v = verify(base, &file);
            check_verify(&m, &v, &mut problems);
            if let Some(c) = v.code.filter(|c| (0..=2).contains(c)) {
                stats.verify[c as usize] += 1;
            }
            if m.kind == Kind::Resealed {
                // The message without the file name and numbers.
                let line = v
                    .stderr
                    .lines()
                    .next()
                    .or(v.stdout.lines().next())
                    .unwrap_or("");
                let line = line.split("`: ").last().unwrap_or(line);
                let kind: String = line
                    .chars()
                    .filter(|c| !c.is_ascii_digit())
                    .take(70)
                    .collect();
                *stats.said.entry(kind).or_default() += 1;
            }
            // Alternate the engines: mutant k goes to the interpreter when k % 3 == 0, to the
            // compiled binary when k % 3 == 1.
            let engine = match k % every {
                0 => Some(Engine::Interp),
                1 => Some(Engine::X86_64),
                _ => None,
            };
            // (A count so large that no budget fits must be refused.)
            let points = wanco_state::snapshot::decode(&m.bytes)
                .ok()
                .map(|s| s.migration_points);
            if let Some(engine) = engine {
                restores += 1;
                let stop = points
                    .and_then(|p| p.checked_add(POINT_BUDGET))
                    .map(|n| n.to_string());
                let cp = work.join("budget.wsnap");
                let opts: Vec<&str> = match &stop {
                    Some(n) => vec!["--checkpoint-after-points", n, "--checkpoint-file", s(&cp)],
                    None => Vec::new(),
                };
                let r = restore_with(base, engine, &file, &opts);
                check_restore(&m, engine, &r, &mut problems);
                let e = engine as usize;
                if r.refused() {
                    stats.refused[e] += 1;
                    if v.code == Some(0) {
                        // Possible: what only the host knows (a file or directory missing).
                        stats.refused_but_ok.push(format!(
                            "{} #{k} ({}) on {engine:?}: {}",
                            base.label,
                            m.what,
                            r.stderr.trim()
                        ));
                    }
                } else {
                    stats.ran[e] += 1;
                    if v.code == Some(2) {
                        problems.push(format!(
                            "restore on {engine:?} ran a snapshot verify cannot read: {}",
                            v.show()
                        ));
                    } else if v.code == Some(1) {
                        // What verify finds wrong, a restore must not run.
                        problems.push(format!(
                            "restore on {engine:?} ran a snapshot verify finds problems in: {}",
                            v.show()
                        ));
                    }
                }
            }
            if !problems.is_empty() {
                let keep = failures_dir().join(file.file_name().unwrap());
                std::fs::copy(&file, &keep).unwrap();
                failures.push(format!(
                    "{} mutant #{k} ({}), kept as {}:\n  {}",
                    base.label,
                    m.what,
                    keep.display(),
                    problems.join("\n  ")
                ));
            }
        }
    }
    eprintln!(
        "{} mutants of {} snapshots, {restores} restores, {:.1} s: verify ok {} / problems {} / unreadable {}; \
         interp refused {} ran {}; x86_64 refused {} ran {}",
        per_base * fx.bases.len(),
        fx.bases.len(),
        t0.elapsed().as_secs_f64(),
        stats.verify[0],
        stats.verify[1],
        stats.verify[2],
        stats.refused[0],
        stats.ran[0],
        stats.refused[1],
        stats.ran[1],
    );
    if std::env::var_os("WANCO_CORRUPT_VERBOSE").is_some() {
        for (k, n) in &stats.said {
            eprintln!("{n:5} {k}");
        }
        for r in &stats.refused_but_ok {
            eprintln!("verify ok, restore refused: {r}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} mutants failed:\n{}",
        failures.len(),
        per_base * fx.bases.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Targeted mutants.

/// An edit of the decoded JSON; `false` when it does not apply to this snapshot.
type Edit = fn(&mut Value, &Base) -> bool;

fn frames(d: &mut Value) -> &mut Vec<Value> {
    d["frames"].as_array_mut().unwrap()
}

fn last_frame(d: &mut Value) -> &mut Value {
    frames(d).last_mut().unwrap()
}

/// A value of another type than `v`.
fn other_type(v: &Value) -> Value {
    if v.get("F64").is_some() {
        json!({"I32": 1})
    } else {
        json!({"F64": 4_609_434_218_613_702_656u64})
    }
}

fn fds(d: &mut Value) -> &mut Vec<Value> {
    d["wasi"]["fds"].as_array_mut().unwrap()
}

fn file_fd(fd: u32, preopen: Option<u32>, path: &str) -> Value {
    json!({"fd": fd, "kind": "File", "preopen": preopen, "rel_path": path, "read": true,
           "write": false, "fdflags": 0, "rights_base": 2, "rights_inheriting": 0, "offset": 0,
           "is_preopen": false})
}

/// Name, what `verify` says (`None`: verify cannot know, e.g. a host directory that is
/// missing), the edit.
const EDITS: &[(&str, Option<&str>, Edit)] = &[
    (
        "function index out of range",
        Some("the module has no function 100000"),
        |d, _| {
            last_frame(d)["func"] = json!(100_000);
            true
        },
    ),
    (
        "function index one past the last",
        Some("the module has no function"),
        |d, m| {
            last_frame(d)["func"] = json!(m.nfuncs);
            true
        },
    ),
    (
        "outermost frame is not `_start`",
        Some("the outermost frame must be `_start`"),
        |d, _| {
            if frames(d).len() < 2 {
                return false;
            }
            frames(d).remove(0);
            true
        },
    ),
    (
        "frame of an imported function",
        Some("is imported, not defined"),
        |d, _| {
            last_frame(d)["func"] = json!(0);
            true
        },
    ),
    (
        "code offset not a migration point",
        Some("is not a migration point"),
        |d, _| {
            let f = last_frame(d);
            f["code_offset"] = json!(f["code_offset"].as_u64().unwrap() + 1);
            true
        },
    ),
    (
        "innermost frame at a call",
        Some("the innermost frame must stand at an entry or loop"),
        |d, _| {
            last_frame(d)["kind"] = json!("Call");
            true
        },
    ),
    (
        "outer frame at a loop",
        Some("only the innermost frame can be at an entry or loop"),
        |d, _| {
            frames(d)[0]["kind"] = json!("Loop");
            true
        },
    ),
    ("no frames", Some("the snapshot has no frames"), |d, _| {
        frames(d).clear();
        true
    }),
    ("local of the wrong type", Some("local 0 is"), |d, _| {
        let Some(f) = frames(d)
            .iter_mut()
            .find(|f| !f["locals"].as_array().unwrap().is_empty())
        else {
            return false;
        };
        let l = &mut f["locals"][0];
        *l = other_type(l);
        true
    }),
    ("local missing", Some("locals, expected"), |d, _| {
        frames(d)
            .iter_mut()
            .any(|f| f["locals"].as_array_mut().unwrap().pop().is_some())
    }),
    (
        "extra stack value",
        Some("operand-stack values in the snapshot, the module has"),
        |d, _| {
            last_frame(d)["stack"]
                .as_array_mut()
                .unwrap()
                .push(json!({"I32": 7}));
            true
        },
    ),
    (
        "stack value missing",
        Some("operand-stack values in the snapshot, the module has"),
        |d, _| {
            frames(d)
                .iter_mut()
                .any(|f| f["stack"].as_array_mut().unwrap().pop().is_some())
        },
    ),
    (
        "stack value of the wrong type",
        Some("stack slot 0 is"),
        |d, _| {
            let Some(f) = frames(d)
                .iter_mut()
                .find(|f| !f["stack"].as_array().unwrap().is_empty())
            else {
                return false;
            };
            let v = &mut f["stack"][0];
            *v = other_type(v);
            true
        },
    ),
    (
        "next frame is not the call's callee",
        Some("the next frame"),
        |d, _| {
            let fr = frames(d);
            let n = fr.len();
            if n < 2 {
                return false;
            }
            let callee = fr[n - 1]["func"].as_u64().unwrap();
            fr[n - 1]["func"] = json!(fr[n - 2]["func"].as_u64().unwrap().max(callee + 1));
            true
        },
    ),
    ("funcref out of range", Some("100000"), |d, _| {
        // In a global, else in a table.
        for key in ["globals"] {
            if let Some(v) = d[key]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|v| v.get("FuncRef").is_some())
            {
                *v = json!({"FuncRef": 100_000});
                return true;
            }
        }
        match d["tables"]
            .get_mut(0)
            .and_then(|t| t.as_array_mut())
            .and_then(|t| t.first_mut())
        {
            Some(v) => {
                *v = json!({"FuncRef": 100_000});
                true
            }
            None => false,
        }
    }),
    (
        "externref in a funcref table",
        Some("table 0: element 0 is externref"),
        |d, _| match d["tables"]
            .get_mut(0)
            .and_then(|t| t.as_array_mut())
            .and_then(|t| t.first_mut())
        {
            Some(v) => {
                *v = json!({"ExternRef": 5});
                true
            }
            None => false,
        },
    ),
    (
        "table below its minimum",
        Some("table 0: 0 elements, expected between"),
        |d, _| match d["tables"].get_mut(0).and_then(|t| t.as_array_mut()) {
            Some(t) if !t.is_empty() => {
                t.clear();
                true
            }
            _ => false,
        },
    ),
    (
        "global of the wrong type",
        Some("global 0:"),
        |d, _| match d["globals"].as_array_mut().and_then(|g| g.first_mut()) {
            Some(g) => {
                *g = other_type(g);
                true
            }
            None => false,
        },
    ),
    ("extra global", Some("globals: "), |d, _| {
        d["globals"].as_array_mut().unwrap().push(json!({"I32": 0}));
        true
    }),
    (
        "memory beyond the module's limits",
        Some("memory: "),
        |d, _| {
            let m = &mut d["memory"];
            match m["max"].as_u64() {
                // One page beyond the maximum.
                Some(max) => {
                    m["pages"] = json!(max + 1);
                    m["max"] = json!(max + 1);
                }
                // Below the minimum.
                None => {
                    m["pages"] = json!(0);
                    m["chunks"] = json!([]);
                }
            }
            true
        },
    ),
    (
        "memory maximum not the module's",
        Some("memory: maximum"),
        |d, _| {
            let m = &mut d["memory"];
            m["max"] = match m["max"].as_u64() {
                Some(max) => json!(max + 1),
                None => json!(65536),
            };
            true
        },
    ),
    ("memory missing", Some("memory: missing"), |d, _| {
        d["memory"] = Value::Null;
        true
    }),
    (
        "migration points beyond any run",
        Some("more than any run reaches"),
        |d, _| {
            d["migration_points"] = json!(u64::MAX - 3);
            true
        },
    ),
    (
        "extra data segment flag",
        Some("data segments: "),
        |d, _| {
            d["data_dropped"].as_array_mut().unwrap().push(json!(true));
            true
        },
    ),
    (
        "extra element segment flag",
        Some("element segments: "),
        |d, _| {
            d["elem_dropped"].as_array_mut().unwrap().push(json!(false));
            true
        },
    ),
    ("fd listed twice", Some("listed twice"), |d, _| {
        let first = fds(d)[0].clone();
        fds(d).push(first);
        true
    }),
    (
        "fd under a preopen that does not exist",
        Some("preopen #5"),
        |d, _| {
            fds(d).push(file_fd(77, Some(5), "in.txt"));
            true
        },
    ),
    (
        "file fd under no preopen",
        Some("belongs to no preopen"),
        |d, _| {
            fds(d).push(file_fd(78, None, "in.txt"));
            true
        },
    ),
    (
        "file path leaving its preopen",
        Some("leaves its preopen"),
        |d, _| {
            if d["wasi"]["preopens"].as_array().unwrap().is_empty() {
                return false;
            }
            fds(d).push(file_fd(79, Some(0), "../../../../../../../../etc/passwd"));
            true
        },
    ),
    (
        "stdout marked as a preopen",
        Some("a preopen must be the preopened directory itself"),
        |d, _| match fds(d).iter_mut().find(|f| f["kind"] == "Stdout") {
            Some(f) => {
                f["is_preopen"] = json!(true);
                true
            }
            None => false,
        },
    ),
    ("preopened directory missing", None, |d, _| {
        match d["wasi"]["preopens"]
            .as_array_mut()
            .and_then(|p| p.first_mut())
        {
            Some(p) => {
                p["host"] = json!("/nonexistent/wanco-corrupt-test");
                true
            }
            None => false,
        }
    }),
];

/// A byte edit of the body, re-sealed; `None` when it does not apply.
type ByteEdit = fn(&[u8]) -> Option<Vec<u8>>;

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    let i = hay.windows(from.len()).position(|w| w == from)?;
    let mut v = hay.to_vec();
    v.splice(i..i + from.len(), to.iter().copied());
    Some(v)
}

/// Name, what verify (exit 2 or 1) prints, the edit of the whole file.
const BYTE_EDITS: &[(&str, &str, ByteEdit)] = &[
    ("unknown fd kind", "unknown variant `Socket`", |f| {
        Some(seal(f, &replace(body(f), b"\xa6Stdout", b"\xa6Socket")?))
    }),
    ("unknown frame kind", "unknown variant `Lopp`", |f| {
        let b = body(f);
        let b = replace(b, b"\xa4Loop", b"\xa4Lopp")
            .or_else(|| replace(b, b"\xa5Entry", b"\xa4Lopp"))?;
        Some(seal(f, &b))
    }),
    (
        "another module's hash, re-sealed",
        "snapshot was written for module sha256",
        |f| {
            let mut h = f[..HEADER_LEN].to_vec();
            h[20] ^= 0x40;
            Some(seal(&h, body(f)))
        },
    ),
    (
        "format version 0, re-sealed",
        "snapshot format version 0 is not supported (this wanco supports 1 to 3)",
        |f| {
            let mut h = f[..HEADER_LEN].to_vec();
            h[8..12].copy_from_slice(&0u32.to_le_bytes());
            Some(seal(&h, body(f)))
        },
    ),
    (
        "format version 4, re-sealed",
        "snapshot format version 4 is newer than this wanco (supports 1 to 3)",
        |f| {
            let mut h = f[..HEADER_LEN].to_vec();
            h[8..12].copy_from_slice(&4u32.to_le_bytes());
            Some(seal(&h, body(f)))
        },
    ),
    (
        "a full snapshot's body as format version 3 (incremental), re-sealed",
        "a format version 3 (incremental) snapshot must name its parent",
        |f| {
            let mut h = f[..HEADER_LEN].to_vec();
            h[8..12].copy_from_slice(&3u32.to_le_bytes());
            Some(seal(&h, body(f)))
        },
    ),
    ("body length off by one", "truncated", |f| {
        // The whole u64 plus one: a byte-wise wrapping add would turn a length ending in 0xff
        // into one 255 bytes short, which is a different error (trailing bytes).
        let mut v = f.to_vec();
        let len = u64::from_le_bytes(v[44..52].try_into().unwrap());
        v[44..52].copy_from_slice(&(len + 1).to_le_bytes());
        Some(v)
    }),
    (
        "trailing byte, re-sealed",
        "unexpected bytes after the snapshot body",
        |f| {
            let mut b = body(f).to_vec();
            b.push(0xc0);
            Some(seal(f, &b))
        },
    ),
];

#[test]
fn semantic_mutants_are_refused() {
    let t0 = Instant::now();
    let fx = fixtures();
    let work = fx.dir.join("semantic");
    std::fs::create_dir_all(&work).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for base in &fx.bases {
        let good = work.join(format!("{}.wsnap", base.label.replace('/', "-")));
        std::fs::write(&good, &base.bytes).unwrap();
        let dec = run_limited(Command::new(SNAP).args(["decode", s(&good)]));
        ok(&dec, "decode");
        let mut doc: Value = serde_json::from_str(&dec.stdout).unwrap();
        // The native view of a compiled producer must match the frames exactly: drop it, the
        // edits are for the engines' checks.
        doc.as_object_mut().unwrap().remove("native");
        let mut mutants: Vec<(String, Option<&str>, Vec<u8>)> = Vec::new();
        for (name, expect, edit) in EDITS {
            let mut d = doc.clone();
            if !edit(&mut d, base) {
                continue;
            }
            let json = work.join(format!(
                "{}-{}.json",
                base.label.replace('/', "-"),
                name.replace(' ', "_")
            ));
            std::fs::write(&json, serde_json::to_vec(&d).unwrap()).unwrap();
            let out = json.with_extension("wsnap");
            let e = run_limited(Command::new(SNAP).args(["encode", s(&json), "-o", s(&out)]));
            if e.code != Some(0) {
                failures.push(format!(
                    "{}: {name}: encode failed: {}",
                    base.label,
                    e.show()
                ));
                continue;
            }
            mutants.push((name.to_string(), *expect, std::fs::read(&out).unwrap()));
        }
        for (name, expect, edit) in BYTE_EDITS {
            if let Some(b) = edit(&base.bytes) {
                mutants.push((name.to_string(), Some(*expect), b));
            }
        }
        for (name, expect, bytes) in mutants {
            checked += 1;
            let file = work.join(format!(
                "{}-{}.wsnap",
                base.label.replace('/', "-"),
                name.replace(' ', "_")
            ));
            std::fs::write(&file, &bytes).unwrap();
            let mut problems = Vec::new();
            let v = verify(base, &file);
            if let Some(c) = v.crash() {
                problems.push(format!("verify crashed: {c}"));
            } else if let Some(want) = expect {
                let text = format!("{}{}", v.stdout, v.stderr);
                if !matches!(v.code, Some(1 | 2)) || !text.contains(want) {
                    problems.push(format!(
                        "verify: expected exit 1 or 2 and {want:?}: {}",
                        v.show()
                    ));
                }
            }
            for engine in [Engine::Interp, Engine::X86_64] {
                let r = restore(base, engine, &file);
                if let Some(c) = r.crash() {
                    problems.push(format!("restore on {engine:?} crashed: {c}"));
                } else if !r.refused()
                    || r.stderr.trim().lines().count() != 1
                    || !r.stdout.is_empty()
                {
                    problems.push(format!(
                        "restore on {engine:?}: expected a refusal (exit 2, one line `error: cannot restore …`): {}",
                        r.show()
                    ));
                }
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{}: {name} ({}):\n  {}",
                    base.label,
                    file.display(),
                    problems.join("\n  ")
                ));
            }
        }
    }
    eprintln!(
        "{checked} targeted mutants of {} snapshots, {:.1} s",
        fx.bases.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Calls and operand stacks, on a small module made for them.

/// `_start` calls `$b` directly, then through `call_indirect` (type `$ti`), then `$count`,
/// whose loop has a parameter and a value below it; `$c` has `$b`'s type and locals, `$l`
/// returns an `i64` instead. Points: 1 `_start`, 2 `$b` (direct), 3 `$b` (indirect), 4
/// `$count`, 5-7 its loop. Exit code 115 (100 + 2 + 6 + 7).
const CALLS_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (type $ti (func (param i32) (result i32)))
  (type $tl (func (param i32) (result i64)))
  (table 2 funcref)
  (elem (i32.const 0) $b $l)
  ;; $b, $c and $l call $nop to have an entry point (a function without a
  ;; loop and a call has none, like $nop: it adds no point).
  (func $b (type $ti) (local i32) (call $nop) (i32.add (local.get 0) (i32.const 1)))
  (func $c (type $ti) (local i32) (call $nop) (i32.mul (local.get 0) (i32.const 2)))
  (func $l (type $tl) (local i32) (call $nop) (i64.extend_i32_u (local.get 0)))
  (func $count (param $n i32) (result i32)
    (i32.const 7)
    (local.get $n)
    (loop $again (param i32) (result i32)
      (i32.sub (i32.const 1))
      (local.tee $n)
      (br_if $again (local.get $n)))
    (i32.add))
  (func $main (export "_start") (local $x i32)
    (local.set $x (i32.add (i32.const 100) (call $b (i32.const 1))))
    (local.set $x (i32.add (local.get $x) (call_indirect (type $ti) (i32.const 5) (i32.const 0))))
    (local.set $x (i32.add (local.get $x) (call $count (i32.const 3))))
    (call $exit (local.get $x)))
  (func $nop))"#;

#[test]
fn call_targets_and_operand_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wasm = wanco_compiler::wasm_bytes(CALLS_WAT.as_bytes())
        .unwrap()
        .into_owned();
    let module = d.join("calls.wasm");
    std::fs::write(&module, &wasm).unwrap();
    // Body starts (the entry points) of the defined functions 1..=5 (and
    // of $nop, 6, which has none).
    let mut body_start = vec![0u64];
    for p in wasmparser::Parser::new(0).parse_all(&wasm) {
        if let wasmparser::Payload::CodeSectionEntry(b) = p.unwrap() {
            body_start.push(b.range().start);
        }
    }
    let bin = d.join("calls.x86_64");
    ok(
        &run_limited(Command::new(WANCO).args(["compile", s(&module), "-o", s(&bin)])),
        "compile",
    );
    let base = Base {
        label: "calls".into(),
        module: module.clone(),
        bin: bin.clone(),
        bytes: Vec::new(),
        nfuncs: 7,
        data: None,
    };
    let checkpoint = |engine: Engine, n: u32| -> PathBuf {
        let file = d.join(format!("{engine:?}-{n}.wsnap"));
        let mut cmd = match engine {
            Engine::Interp => {
                let mut c = Command::new(WANCO);
                c.arg("interp");
                c
            }
            Engine::X86_64 => Command::new(&bin),
        };
        cmd.args([
            "--checkpoint-after-points",
            &n.to_string(),
            "--checkpoint-file",
            s(&file),
        ]);
        if engine == Engine::Interp {
            cmd.arg(&module);
        }
        ok(
            &run_limited(&mut cmd),
            &format!("checkpoint at {n} on {engine:?}"),
        );
        file
    };
    // Every point of both producers verifies (the stacks at calls, at the loop with its
    // parameter, at entries) and restores on both engines.
    for n in 1..=7 {
        for producer in [Engine::Interp, Engine::X86_64] {
            let file = checkpoint(producer, n);
            let v = verify(&base, &file);
            assert_eq!(
                (v.code, v.stdout.trim()),
                (Some(0), "ok"),
                "point {n} of {producer:?}: {}",
                v.show()
            );
            for engine in [Engine::Interp, Engine::X86_64] {
                let r = restore(&base, engine, &file);
                assert_eq!(
                    r.code,
                    Some(115),
                    "point {n} of {producer:?} on {engine:?}: {}",
                    r.show()
                );
            }
        }
    }
    let decode = |n: u32| -> Value {
        let o = run_limited(Command::new(SNAP).args(["decode", s(&checkpoint(Engine::Interp, n))]));
        ok(&o, "decode");
        serde_json::from_str(&o.stdout).unwrap()
    };
    let encode = |doc: &Value, name: &str| -> PathBuf {
        let json = d.join(format!("{name}.json"));
        std::fs::write(&json, serde_json::to_vec(doc).unwrap()).unwrap();
        let out = d.join(format!("{name}.wsnap"));
        ok(
            &run_limited(Command::new(SNAP).args(["encode", s(&json), "-o", s(&out)])),
            "encode",
        );
        out
    };
    // The innermost frame moved to function `f` (at its entry).
    let callee = |n: u32, f: u64| -> Value {
        let mut doc = decode(n);
        let last = last_frame(&mut doc);
        assert_eq!(last["kind"], "Entry");
        last["func"] = json!(f);
        last["code_offset"] = json!(body_start[f as usize]);
        doc
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "direct call, another function of the same type",
            callee(2, 2),
            "frame 0 (function 5 `main`, Call at 0x",
        ),
        ("direct call, another function of the same type", callee(2, 2), "): the call there calls function 1 `b`, the next frame is function 2 `c`"),
        ("direct call, a function of another type", callee(2, 3), "the call there calls function 1 `b`, the next frame is function 3 `l`"),
        (
            "call_indirect, a function of another type",
            callee(3, 3),
            "the call_indirect there expects type 0 [i32] -> [i32], the next frame's function 3 `l` has type [i32] -> [i64]",
        ),
        ("a stack value of the wrong type at a call", {
            let mut doc = decode(2);
            frames(&mut doc)[0]["stack"][0] = json!({"I64": 100});
            doc
        }, "frame 0 (function 5 `main`, Call at 0x"),
        ("a stack value of the wrong type at a call", {
            let mut doc = decode(2);
            frames(&mut doc)[0]["stack"][0] = json!({"I64": 100});
            doc
        }, "): stack slot 0 is i64 in the snapshot, the module has i32 there"),
        ("the loop parameter of the wrong type", {
            let mut doc = decode(5);
            assert_eq!(last_frame(&mut doc)["stack"], json!([{"I32": 7}, {"I32": 3}]));
            last_frame(&mut doc)["stack"][1] = json!({"F64": 0});
            doc
        }, "frame 1 (function 4 `count`, Loop at 0x"),
        ("the loop parameter of the wrong type", {
            let mut doc = decode(6);
            last_frame(&mut doc)["stack"][1] = json!({"F64": 0});
            doc
        }, "): stack slot 1 is f64 in the snapshot, the module has i32 there"),
        ("the loop parameter missing", {
            let mut doc = decode(7);
            last_frame(&mut doc)["stack"].as_array_mut().unwrap().pop();
            doc
        }, "1 operand-stack values in the snapshot, the module has 2 there"),
        ("a value on the stack at an entry", {
            let mut doc = decode(4);
            last_frame(&mut doc)["stack"] = json!([{"I32": 1}]);
            doc
        }, "Entry at 0x"),
    ];
    for (k, (what, doc, want)) in cases.iter().enumerate() {
        let file = encode(doc, &format!("case{k}"));
        let v = verify(&base, &file);
        assert!(
            v.code == Some(1) && v.stdout.contains(want),
            "{what}: expected {want:?}: {}",
            v.show()
        );
        for engine in [Engine::Interp, Engine::X86_64] {
            let r = restore(&base, engine, &file);
            assert!(
                r.refused() && r.stderr.trim().lines().count() == 1 && r.stdout.is_empty(),
                "{what}: restore on {engine:?}: {}",
                r.show()
            );
        }
    }
    // `call_indirect` reaching another function of the right type is a valid state (the
    // table could hold it): it verifies and runs ($c doubles: 100 + 2 + 10 + 7).
    let file = encode(&callee(3, 2), "indirect-same-type");
    let v = verify(&base, &file);
    assert_eq!((v.code, v.stdout.trim()), (Some(0), "ok"), "{}", v.show());
    for engine in [Engine::Interp, Engine::X86_64] {
        let r = restore(&base, engine, &file);
        assert_eq!(r.code, Some(119), "on {engine:?}: {}", r.show());
    }
}
