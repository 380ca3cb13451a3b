//! `wanco-snap diff`: the structural difference between two snapshots.

use super::common::{fd_kind_name, hex, kind_name, read_snapshot, short};
use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;
use wanco_state::module::ModuleInfo;
use wanco_state::snapshot::{Snapshot, PAGE_SIZE};
use wanco_state::wasi::FdEntry;
use wanco_state::Value;

/// Compare two snapshots field by field: header, frames (function, kind,
/// offset, every local and operand-stack slot), globals, tables, memory
/// pages, segment drop flags and the WASI state.
///
/// Prints one line per difference as `WHERE: A -> B`. Exit code 0: same,
/// 1: they differ, 2: one cannot be read.
///
/// With `--against-interp PROG.wasm SNAP [--binary BIN]` the second state is
/// the interpreter's at SNAP's migration point; with a binary, a difference
/// is bisected to the first diverging point (`against.rs`).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  wanco-snap diff x86.wsnap interp.wsnap\n  wanco-snap diff --against-interp app.wasm cp.wsnap\n  wanco-snap diff --against-interp app.wasm cp.wsnap --binary ./app\n\nExit codes: 0 same (no divergence), 1 they differ, 2 bad input."
)]
pub struct Opts {
    /// The first snapshot (`-` for stdin); with --against-interp, the
    /// snapshot to check.
    a: PathBuf,
    /// The second snapshot (not with --against-interp).
    #[arg(
        required_unless_present = "against_interp",
        conflicts_with = "against_interp"
    )]
    b: Option<PathBuf>,
    /// Show at most this many differences per section (memory pages, table
    /// elements, slots of one frame).
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: usize,
    /// Run PROG.wasm in the interpreter up to the snapshot's migration-point
    /// count (with the snapshot's arguments, environment and preopened
    /// directories, the directories copied to a temporary directory) and
    /// compare its state with the snapshot (producer, argv[0] and clock
    /// values are not compared).
    #[arg(long, value_name = "PROG.wasm")]
    against_interp: Option<PathBuf>,
    /// With --against-interp: when the snapshot differs, run this compiled
    /// executable (aarch64 ones under qemu-aarch64) and the interpreter to
    /// the same points, bisecting to the first point where their states
    /// differ, and report it.
    #[arg(long, value_name = "BIN")]
    binary: Option<PathBuf>,
}

pub fn run(o: Opts) -> Result<i32> {
    let limit = o.limit.max(1);
    if let Some(prog) = &o.against_interp {
        return super::against::run(prog, &o.a, o.binary.as_deref(), limit);
    }
    if o.binary.is_some() {
        anyhow::bail!("--binary needs --against-interp PROG.wasm (and one snapshot)");
    }
    let a = read_snapshot(&o.a)?;
    let b = read_snapshot(o.b.as_deref().expect("clap requires B"))?;
    let d = diff_named(&a, &b, limit, None);
    if d.is_empty() {
        println!("same");
        Ok(0)
    } else {
        for l in &d {
            println!("{l}");
        }
        Ok(1)
    }
}

/// Collects lines, at most `limit` per section, then a count of the rest.
struct Out {
    lines: Vec<String>,
    limit: usize,
}

impl Out {
    fn ne<T: PartialEq + Display>(&mut self, what: &str, a: T, b: T) {
        if a != b {
            self.lines.push(format!("{what}: {a} -> {b}"));
        }
    }

    /// Report the differing items of one section.
    fn section(&mut self, items: Vec<String>) {
        let n = items.len();
        self.lines.extend(items.into_iter().take(self.limit));
        if n > self.limit {
            self.lines.push(format!("  … and {} more", n - self.limit));
        }
    }
}

fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("none".to_string(), |v| v.to_string())
}

fn slots(prefix: &str, what: &str, a: &[Value], b: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    if a.len() != b.len() {
        out.push(format!("{prefix}: {} {what}s -> {}", a.len(), b.len()));
    }
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i), b.get(i));
        if x != y {
            out.push(format!("{prefix} {what} {i}: {} -> {}", opt(&x), opt(&y)));
        }
    }
    out
}

fn fd_line(f: &FdEntry) -> String {
    format!(
        "{} preopen {} path {:?} {}{} fdflags 0x{:x} rights 0x{:x}/0x{:x} offset {} size {}{}",
        fd_kind_name(f.kind),
        opt(&f.preopen),
        f.rel_path,
        if f.read { "r" } else { "-" },
        if f.write { "w" } else { "-" },
        f.fdflags,
        f.rights_base,
        f.rights_inheriting,
        f.offset,
        opt(&f.size),
        if f.is_preopen { " (preopen)" } else { "" }
    )
}

/// The differences between `a` and `b`, one line each (`WHERE: A -> B`).
/// With `names`, frames are labelled with their function's name (from `b`'s
/// frame): `frame 1 (fib) local 0`, else `frame 1 local 0`.
pub fn diff_named(
    a: &Snapshot,
    b: &Snapshot,
    limit: usize,
    names: Option<&ModuleInfo>,
) -> Vec<String> {
    let mut o = Out {
        lines: Vec::new(),
        limit,
    };
    o.ne("module sha256", hex(&a.module_hash), hex(&b.module_hash));
    o.ne("producer engine", &a.producer.engine, &b.producer.engine);
    o.ne("producer isa", opt(&a.producer.isa), opt(&b.producer.isa));
    o.ne("producer version", &a.producer.version, &b.producer.version);
    o.ne("migration points", a.migration_points, b.migration_points);
    o.ne("migration-point rule", a.points_rule, b.points_rule);
    if a.native != b.native {
        let view = |s: &Snapshot| {
            s.native.as_ref().map_or_else(
                || "none".to_string(),
                |n| format!("{} build {}… ({} machine frames)", n.isa, short(&n.build), n.frames.len()),
            )
        };
        let (va, vb) = (view(a), view(b));
        if va == vb {
            o.lines.push(format!("native view: {va}: return addresses, frame sizes or slots differ"));
        } else {
            o.ne("native view", va, vb);
        }
    }

    // Frames, outermost first: frame i of A against frame i of B.
    o.ne("frames", a.frames.len(), b.frames.len());
    for i in 0..a.frames.len().max(b.frames.len()) {
        match (a.frames.get(i), b.frames.get(i)) {
            (Some(fa), Some(fb)) => {
                if fa == fb {
                    continue;
                }
                let at = match names {
                    None => format!("frame {i}"),
                    Some(m) => match m.func_name(fb.func) {
                        Some(n) => format!("frame {i} ({n})"),
                        None => format!("frame {i} (func {})", fb.func),
                    },
                };
                o.ne(&format!("{at} func"), fa.func, fb.func);
                o.ne(
                    &format!("{at} kind"),
                    kind_name(fa.kind),
                    kind_name(fb.kind),
                );
                o.ne(
                    &format!("{at} offset"),
                    format!("0x{:x}", fa.code_offset),
                    format!("0x{:x}", fb.code_offset),
                );
                let mut items = slots(&at, "local", &fa.locals, &fb.locals);
                items.extend(slots(&at, "stack", &fa.stack, &fb.stack));
                o.section(items);
            }
            (Some(f), None) => o.lines.push(format!(
                "frame {i}: func {} {} at 0x{:x} -> (absent)",
                f.func,
                kind_name(f.kind),
                f.code_offset
            )),
            (None, Some(f)) => o.lines.push(format!(
                "frame {i}: (absent) -> func {} {} at 0x{:x}",
                f.func,
                kind_name(f.kind),
                f.code_offset
            )),
            (None, None) => {}
        }
    }

    let g = slots("globals", "global", &a.globals, &b.globals)
        .into_iter()
        .map(|l| l.replacen("globals global", "global", 1))
        .collect();
    o.section(g);

    o.ne("tables", a.tables.len(), b.tables.len());
    for (i, (ta, tb)) in a.tables.iter().zip(&b.tables).enumerate() {
        o.section(slots(&format!("table {i}"), "element", ta, tb));
    }

    match (&a.memory, &b.memory) {
        (None, None) => {}
        (Some(_), None) => o.lines.push("memory: present -> none".into()),
        (None, Some(_)) => o.lines.push("memory: none -> present".into()),
        (Some(ma), Some(mb)) => {
            o.ne("memory pages", ma.pages, mb.pages);
            o.ne("memory max", opt(&ma.max), opt(&mb.max));
            let pa: BTreeMap<u32, &[u8]> =
                ma.chunks.iter().map(|(i, p)| (*i, p.as_slice())).collect();
            let pb: BTreeMap<u32, &[u8]> =
                mb.chunks.iter().map(|(i, p)| (*i, p.as_slice())).collect();
            let zero = vec![0u8; PAGE_SIZE];
            let mut items = Vec::new();
            let mut pages: Vec<u32> = pa.keys().chain(pb.keys()).copied().collect();
            pages.sort_unstable();
            pages.dedup();
            for p in pages {
                let x = pa.get(&p).copied().unwrap_or(&zero);
                let y = pb.get(&p).copied().unwrap_or(&zero);
                let n = x.len().max(y.len());
                let differ: Vec<usize> = (0..n).filter(|&k| x.get(k) != y.get(k)).collect();
                if let Some(&first) = differ.first() {
                    items.push(format!(
                        "memory page {p}: {} bytes differ, first at page offset 0x{first:x} (address 0x{:x}): 0x{:02x} -> 0x{:02x}",
                        differ.len(),
                        p as usize * PAGE_SIZE + first,
                        x.get(first).copied().unwrap_or(0),
                        y.get(first).copied().unwrap_or(0),
                    ));
                }
            }
            o.section(items);
        }
    }

    let flags = |v: &[bool]| {
        v.iter()
            .map(|b| if *b { '1' } else { '0' })
            .collect::<String>()
    };
    o.ne(
        "data dropped",
        flags(&a.data_dropped),
        flags(&b.data_dropped),
    );
    o.ne(
        "elem dropped",
        flags(&a.elem_dropped),
        flags(&b.elem_dropped),
    );

    let (wa, wb) = (&a.wasi, &b.wasi);
    o.ne(
        "wasi args",
        format!("{:?}", wa.args),
        format!("{:?}", wb.args),
    );
    let env = |e: &[(String, String)]| {
        e.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    o.ne("wasi env", env(&wa.env), env(&wb.env));
    let pre = |p: &[wanco_state::wasi::Preopen]| {
        p.iter()
            .map(|p| format!("{}::{}", p.host, p.guest))
            .collect::<Vec<_>>()
            .join(" ")
    };
    o.ne("wasi preopens", pre(&wa.preopens), pre(&wb.preopens));
    let fa: BTreeMap<u32, &FdEntry> = wa.fds.iter().map(|f| (f.fd, f)).collect();
    let fb: BTreeMap<u32, &FdEntry> = wb.fds.iter().map(|f| (f.fd, f)).collect();
    let mut fds: Vec<u32> = fa.keys().chain(fb.keys()).copied().collect();
    fds.sort_unstable();
    fds.dedup();
    let mut items = Vec::new();
    for fd in fds {
        let (x, y) = (fa.get(&fd), fb.get(&fd));
        if x != y {
            let show = |f: Option<&&FdEntry>| f.map_or("(closed)".to_string(), |f| fd_line(f));
            items.push(format!("wasi fd {fd}: {} -> {}", show(x), show(y)));
        }
    }
    o.section(items);
    let list = |v: &[u32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    o.ne("wasi free fds", list(&wa.free_fds), list(&wb.free_fds));
    o.ne(
        "wasi monotonic clock (ns)",
        wa.clock.monotonic_last_ns,
        wb.clock.monotonic_last_ns,
    );
    o.lines
}
