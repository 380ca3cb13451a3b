//! `wanco-snap dump`: show what is in a snapshot, as tables (people) or JSON
//! (machines).

use super::common::{fd_kind_name, func_label, hex, kind_name, read_module, read_snapshot_versioned, Module};
use anyhow::Result;
use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use wanco_state::snapshot::{FrameKind, NativeStack, Producer, Snapshot, PAGE_SIZE};
use wanco_state::wasi::WasiState;
use clap::builder::TypedValueParser as _;
use wanco_state::{LaneShape, Value};

/// Show a snapshot: header, frames (with locals and operand stacks), globals,
/// tables, memory, segment drop flags and the WASI state.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  wanco-snap dump cp.wsnap\n  wanco-snap dump --module app.wasm cp.wsnap   # with function names\n  wanco-snap dump --json cp.wsnap | jq '.frames[].func'\n  cat cp.wsnap | wanco-snap dump -"
)]
pub struct Opts {
    /// The snapshot (`-` for stdin).
    snap: PathBuf,
    /// Print the summary as JSON instead of tables (memory summarised, not
    /// its bytes: use `wanco-snap decode` for the complete snapshot).
    #[arg(long)]
    json: bool,
    /// The module the snapshot was taken from: adds function names from its
    /// name section (a module with another hash is refused).
    #[arg(long, value_name = "PROG.wasm")]
    module: Option<PathBuf>,
    /// The compiled binary the native frames belong to: adds symbols (and
    /// is needed for --disasm). Refused if it is another build.
    #[arg(long, value_name = "BIN")]
    binary: Option<PathBuf>,
    /// Show the instructions around each native frame's return address
    /// (needs --binary).
    #[arg(long, requires = "binary")]
    disasm: bool,
    /// Show v128 values as lanes of this shape (lane 0 first) instead of
    /// their 16 bytes in hex (memory order).
    #[arg(long, value_name = "SHAPE", value_parser = clap::builder::PossibleValuesParser::new(LaneShape::ALL.map(LaneShape::name))
        .try_map(|s| s.parse::<LaneShape>()))]
    lanes: Option<LaneShape>,
}

/// `v` as text: a v128 as lanes of `shape` if given, else as `Value` shows it.
pub fn show(v: &Value, shape: Option<LaneShape>) -> String {
    match (v, shape) {
        (Value::V128(x), Some(shape)) => shape.format(*x),
        _ => v.to_string(),
    }
}

/// The JSON printed by `dump --json`.
#[derive(Serialize)]
struct DumpJson<'a> {
    format_version: u32,
    module_hash: String,
    producer: &'a Producer,
    migration_points: u64,
    points_rule: u32,
    frames: Vec<FrameJson<'a>>,
    globals: &'a [Value],
    tables: Vec<TableJson>,
    memory: Option<MemoryJson>,
    data_dropped: &'a [bool],
    elem_dropped: &'a [bool],
    wasi: &'a WasiState,
    #[serde(skip_serializing_if = "Option::is_none")]
    native: Option<&'a NativeStack>,
}

#[derive(Serialize)]
struct FrameJson<'a> {
    index: usize,
    func: u32,
    name: Option<&'a str>,
    kind: FrameKind,
    code_offset: u32,
    locals: &'a [Value],
    stack: &'a [Value],
}

#[derive(Serialize)]
struct TableJson {
    size: usize,
    non_null: usize,
}

#[derive(Serialize)]
struct MemoryJson {
    pages: u32,
    max: Option<u32>,
    stored_pages: usize,
    stored_bytes: usize,
}

pub fn run(o: Opts) -> Result<i32> {
    let (s, version) = read_snapshot_versioned(&o.snap)?;
    let module = match &o.module {
        Some(p) => {
            let m = read_module(p)?;
            s.check_module(&m.info.hash).map_err(|e| {
                anyhow::anyhow!(
                    "`{}` is not the snapshot's module: {}",
                    p.display(),
                    e.message
                )
            })?;
            Some(m)
        }
        None => None,
    };
    let binary = match &o.binary {
        Some(p) => {
            let b = super::translate::read_binary(p)?;
            let Some(n) = &s.native else {
                anyhow::bail!("--binary: the snapshot has no native frames (it was written by the interpreter or translated --to neutral)");
            };
            super::native_view::check_binary(n, &b).map_err(|e| anyhow::anyhow!("`{}`: {e}", p.display()))?;
            Some(b)
        }
        None => None,
    };
    let mut out = if o.json {
        let mut t = serde_json::to_string_pretty(&to_json(&s, version, module.as_ref()))?;
        t.push('\n');
        t
    } else {
        let mut t = render(&s, version, module.as_ref(), o.lanes);
        if let Some(n) = &s.native {
            t.push('\n');
            t.push_str(&super::native_view::render(n, &s.frames, module.as_ref(), binary.as_ref(), o.disasm)?);
        }
        t
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(0)
}

fn non_null(t: &[Value]) -> usize {
    t.iter()
        .filter(|v| !matches!(v, Value::FuncRef(None) | Value::ExternRef(None)))
        .count()
}

fn to_json<'a>(s: &'a Snapshot, version: u32, module: Option<&'a Module>) -> DumpJson<'a> {
    DumpJson {
        format_version: version,
        module_hash: hex(&s.module_hash),
        producer: &s.producer,
        migration_points: s.migration_points,
        points_rule: s.points_rule,
        frames: s
            .frames
            .iter()
            .enumerate()
            .map(|(index, f)| FrameJson {
                index,
                func: f.func,
                name: module.and_then(|m| m.info.func_name(f.func)),
                kind: f.kind,
                code_offset: f.code_offset,
                locals: &f.locals,
                stack: &f.stack,
            })
            .collect(),
        globals: &s.globals,
        tables: s
            .tables
            .iter()
            .map(|t| TableJson {
                size: t.len(),
                non_null: non_null(t),
            })
            .collect(),
        memory: s.memory.as_ref().map(|m| MemoryJson {
            pages: m.pages,
            max: m.max,
            stored_pages: m.chunks.len(),
            stored_bytes: m.chunks.len() * PAGE_SIZE,
        }),
        data_dropped: &s.data_dropped,
        elem_dropped: &s.elem_dropped,
        wasi: &s.wasi,
        native: s.native.as_ref(),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::ASCII_FULL_CONDENSED);
    t.set_content_arrangement(ContentArrangement::Disabled);
    if !header.is_empty() {
        t.set_header(header.iter().copied());
    }
    t
}

/// `0: i32:5` per line.
fn values(vs: &[Value], lanes: Option<LaneShape>) -> String {
    if vs.is_empty() {
        return "-".into();
    }
    let mut s = String::new();
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let _ = write!(s, "{i}: {}", show(v, lanes));
    }
    s
}

fn dropped(flags: &[bool]) -> String {
    let d: Vec<String> = flags
        .iter()
        .enumerate()
        .filter(|(_, b)| **b)
        .map(|(i, _)| i.to_string())
        .collect();
    if d.is_empty() {
        format!("none of {}", flags.len())
    } else {
        format!("{} of {} ({})", d.len(), flags.len(), d.join(", "))
    }
}

/// The tables for people.
fn render(s: &Snapshot, version: u32, module: Option<&Module>, lanes: Option<LaneShape>) -> String {
    let mut out = String::new();
    let p = &s.producer;

    let mut t = table(&[]);
    t.add_row(vec![
        "format version".to_string(),
        version.to_string(),
    ]);
    t.add_row(vec!["module sha256".to_string(), hex(&s.module_hash)]);
    let isa = p.isa.as_deref().unwrap_or("-");
    t.add_row(vec![
        "producer".to_string(),
        format!("engine {}, isa {isa}, wanco {}", p.engine, p.version),
    ]);
    t.add_row(vec![
        "migration points".to_string(),
        format!("{} (rule {})", s.migration_points, s.points_rule),
    ]);
    let _ = writeln!(out, "snapshot\n{t}\n");

    let mut t = table(&["#", "func", "name", "kind", "offset", "locals", "stack"]);
    for (i, f) in s.frames.iter().enumerate() {
        t.add_row(vec![
            i.to_string(),
            f.func.to_string(),
            func_label(module, f.func),
            kind_name(f.kind).to_string(),
            format!("0x{:x}", f.code_offset),
            values(&f.locals, lanes),
            values(&f.stack, lanes),
        ]);
    }
    right_align(&mut t, &[0, 1]);
    let _ = writeln!(out, "frames ({}, outermost first)\n{t}\n", s.frames.len());

    if s.globals.is_empty() {
        let _ = writeln!(out, "globals: none\n");
    } else {
        let mut t = table(&["#", "value"]);
        for (i, g) in s.globals.iter().enumerate() {
            t.add_row(vec![i.to_string(), show(g, lanes)]);
        }
        right_align(&mut t, &[0]);
        let _ = writeln!(out, "globals ({})\n{t}\n", s.globals.len());
    }

    if s.tables.is_empty() {
        let _ = writeln!(out, "tables: none\n");
    } else {
        let mut t = table(&["#", "size", "non-null"]);
        for (i, tb) in s.tables.iter().enumerate() {
            t.add_row(vec![
                i.to_string(),
                tb.len().to_string(),
                non_null(tb).to_string(),
            ]);
        }
        right_align(&mut t, &[0, 1, 2]);
        let _ = writeln!(out, "tables ({})\n{t}\n", s.tables.len());
    }

    match &s.memory {
        None => {
            let _ = writeln!(out, "memory: none\n");
        }
        Some(m) => {
            let mut t = table(&[]);
            t.add_row(vec![
                "pages".to_string(),
                format!("{} ({} bytes)", m.pages, m.pages as u64 * PAGE_SIZE as u64),
            ]);
            t.add_row(vec![
                "max".to_string(),
                m.max.map_or("none".to_string(), |x| x.to_string()),
            ]);
            let idx: Vec<String> = m.chunks.iter().map(|(i, _)| i.to_string()).collect();
            let list = if idx.len() > 16 {
                format!("{}, … ({} more)", idx[..16].join(", "), idx.len() - 16)
            } else {
                idx.join(", ")
            };
            t.add_row(vec![
                "non-zero pages stored".to_string(),
                format!("{} [{list}]", m.chunks.len()),
            ]);
            t.add_row(vec![
                "stored bytes".to_string(),
                (m.chunks.len() * PAGE_SIZE).to_string(),
            ]);
            let _ = writeln!(out, "memory\n{t}\n");
        }
    }

    let _ = writeln!(
        out,
        "segments\n  data dropped: {}\n  elem dropped: {}\n",
        dropped(&s.data_dropped),
        dropped(&s.elem_dropped)
    );

    let w = &s.wasi;
    let mut t = table(&[]);
    let args: Vec<String> = w.args.iter().map(|a| format!("{a:?}")).collect();
    t.add_row(vec![
        "args".to_string(),
        if args.is_empty() {
            "-".into()
        } else {
            args.join(" ")
        },
    ]);
    let env: Vec<String> = w.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    t.add_row(vec![
        "env".to_string(),
        if env.is_empty() {
            "-".into()
        } else {
            env.join("\n")
        },
    ]);
    let pre: Vec<String> = w
        .preopens
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{i}: {} -> {}", p.host, p.guest))
        .collect();
    t.add_row(vec![
        "preopens".to_string(),
        if pre.is_empty() {
            "-".into()
        } else {
            pre.join("\n")
        },
    ]);
    t.add_row(vec![
        "monotonic clock".to_string(),
        format!("{} ns", w.clock.monotonic_last_ns),
    ]);
    let free: Vec<String> = w.free_fds.iter().map(|f| f.to_string()).collect();
    t.add_row(vec![
        "free fds".to_string(),
        if free.is_empty() {
            "-".into()
        } else {
            free.join(", ")
        },
    ]);
    let _ = writeln!(out, "wasi\n{t}\n");

    let mut t = table(&["fd", "kind", "preopen", "path", "mode", "fdflags", "offset", "size"]);
    for f in &w.fds {
        let path = match f.preopen.and_then(|i| w.preopens.get(i as usize)) {
            _ if f.socket.is_some() => f.socket.as_ref().map(|s| s.local_addr.clone()).unwrap_or_default(),
            Some(p) if f.rel_path.is_empty() => p.guest.clone(),
            Some(p) => format!("{}/{}", p.guest.trim_end_matches('/'), f.rel_path),
            None => f.rel_path.clone(),
        };
        let mode = format!(
            "{}{}",
            if f.read { "r" } else { "-" },
            if f.write { "w" } else { "-" }
        );
        let kind = if f.is_preopen {
            format!("{} (preopen)", fd_kind_name(f.kind))
        } else {
            fd_kind_name(f.kind).to_string()
        };
        t.add_row(vec![
            f.fd.to_string(),
            kind,
            f.preopen.map_or("-".to_string(), |i| i.to_string()),
            path,
            mode,
            format!("0x{:x}", f.fdflags),
            f.offset.to_string(),
            f.size.map_or("-".to_string(), |n| n.to_string()),
        ]);
    }
    right_align(&mut t, &[0, 6, 7]);
    let _ = write!(out, "wasi fds ({})\n{t}\n", w.fds.len());
    socket_rows(w, &mut out);
    out
}

/// The sockets of the fd table (shown only when there are any): addresses,
/// the connection's identity (listener, accept number), the bytes delivered
/// to the guest and taken from it, and the shutdown state.
fn socket_rows(w: &wanco_state::wasi::WasiState, out: &mut String) {
    let socks: Vec<_> = w.fds.iter().filter_map(|f| f.socket.as_ref().map(|s| (f, s))).collect();
    if socks.is_empty() {
        return;
    }
    let mut t = table(&["fd", "kind", "local", "peer", "connection", "bytes in", "bytes out", "state"]);
    for (f, s) in &socks {
        let conn = if f.kind == wanco_state::wasi::FdKind::TcpListener {
            format!("{} accepted", s.seq)
        } else {
            format!("#{} of {}", s.seq, s.listener)
        };
        let mut state: Vec<&str> = Vec::new();
        if s.reset {
            state.push("reset");
        }
        if s.shut_rd {
            state.push("shut rd");
        }
        if s.shut_wr {
            state.push("shut wr");
        }
        if s.peer_eof {
            state.push("peer eof");
        }
        let is_conn = f.kind == wanco_state::wasi::FdKind::TcpStream;
        t.add_row(vec![
            f.fd.to_string(),
            fd_kind_name(f.kind).to_string(),
            s.local_addr.clone(),
            if s.peer_addr.is_empty() { "-".into() } else { s.peer_addr.clone() },
            conn,
            if is_conn { s.bytes_in.to_string() } else { "-".into() },
            if is_conn { s.bytes_out.to_string() } else { "-".into() },
            if state.is_empty() { (if is_conn { "open" } else { "listening" }).into() } else { state.join(", ") },
        ]);
    }
    right_align(&mut t, &[0, 5, 6]);
    let _ = write!(out, "\nwasi sockets ({})\n{t}\n", socks.len());
}

fn right_align(t: &mut Table, cols: &[usize]) {
    for c in cols {
        if let Some(col) = t.column_mut(*c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}
