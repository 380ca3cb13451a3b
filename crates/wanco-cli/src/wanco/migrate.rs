//! `wanco migrate PID --to DEST`: move a running compiled program (started
//! with `--control`) to another host: pre-copy (the default: memory sent in
//! rounds while the program runs), post-copy (the state first, the program
//! runs at the destination at once and its pages follow, read from the
//! stopped process; see [`postcopy_serve`]) or stop-and-copy.
//!
//! The sequence (see `wanco_transport::Message` for the messages and
//! `docs/architecture.md`, "Live migration"): hello; prepare the
//! destination's binary while the program runs; pre-copy: rounds of memory
//! pages (control channel `checkpoint`, then `checkpoint-incremental`: the
//! pages written since the round before) while the program runs, until a
//! round is small or stops shrinking; stop the program at a
//! migration point (control channel `stop`); send the snapshot; the
//! destination restores up to the first instruction and says `Restored`;
//! `hold` the source (point of no return), `Go`; on `Running` end the
//! source (`commit`). Any failure before `hold` resumes the source.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wanco_transport::{Conn, Dest, Hello, Message, Prepare, SshOptions, Stream, PROTOCOL_VERSION};

#[derive(Args, Debug)]
pub struct Opts {
    /// The process id of a compiled program started with `--control`.
    pid: u32,
    /// Where to: ssh://[user@]host[:port], tls://host:port, or tcp://host:port (with --insecure).
    #[arg(long, value_name = "DEST")]
    to: String,
    /// The program's control socket (default: the one `--control` makes for PID).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// The executable for the destination's ISA (default: the program's own
    /// binary if the destination has the same ISA).
    #[arg(long, value_name = "PATH")]
    dest_binary: Option<PathBuf>,
    /// The program's Wasm module, compiled at the destination (before the
    /// program stops) if the destination has no binary for it.
    #[arg(long, value_name = "PATH")]
    module: Option<PathBuf>,
    /// The guest directory GUEST is DEST_PATH at the destination (same data).
    #[arg(long = "dir-map", value_name = "GUEST=DEST_PATH")]
    dir_map: Vec<String>,
    /// The `wanco` to run on an ssh destination (default: `wanco` on its PATH).
    #[arg(long, value_name = "PATH", default_value = "wanco")]
    remote_wanco: String,
    /// An extra argument for the remote `wanco agent --stdio` (e.g.
    /// `--runner=qemu-aarch64 -L /usr/aarch64-linux-gnu`); repeatable.
    #[arg(long = "agent-arg", value_name = "ARG", allow_hyphen_values = true)]
    agent_args: Vec<String>,
    /// An extra option for the `ssh` client (e.g. `-i`, `KEY`, `-oPort=22`); repeatable.
    #[arg(long = "ssh-arg", value_name = "ARG", allow_hyphen_values = true)]
    ssh_args: Vec<String>,
    /// TLS (tls://): --cert/--key/--ca; --insecure allows tcp://.
    #[command(flatten)]
    tls: crate::tls_opts::TlsOpts,
    /// Copy the preopened directories to the destination (to their
    /// --dir-map path, else the same path): what it lacks or has with another
    /// size or time, once while the program runs and once after it stopped.
    #[arg(long)]
    sync_dirs: bool,
    /// While the program is stopped, give up on a destination (tls://,
    /// tcp://) silent for this many seconds (ssh:// relies on ssh's
    /// keep-alives, ~15 s).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
    /// Do not relay the program's output after the move: exit once it runs.
    #[arg(long)]
    detach: bool,
    /// Print the summary as JSON (one line on stderr).
    #[arg(long)]
    json: bool,
    /// Pre-copy (the default): send the memory in rounds while the program
    /// runs, then stop it and send only what changed since the last round.
    #[arg(long, conflicts_with_all = ["stop_and_copy", "postcopy"])]
    precopy: bool,
    /// Post-copy: stop the program at once, send its state without the
    /// memory; it runs at the destination at once and its pages follow
    /// (asked for as it touches them, the rest pushed meanwhile). The source
    /// stays until every page is in.
    #[arg(long, conflicts_with = "stop_and_copy")]
    postcopy: bool,
    /// Stop the program first and send its whole state (the baseline).
    #[arg(long)]
    stop_and_copy: bool,
    /// Pre-copy: stop once a round has at most this many 64 KiB pages.
    #[arg(long, value_name = "PAGES", default_value_t = 16)]
    precopy_pages: usize,
    /// Pre-copy: at most this many rounds before the stop.
    #[arg(long, value_name = "N", default_value_t = 8)]
    precopy_rounds: u32,
    /// Give up (the program goes on here, nothing moved) if the program
    /// has not reached a migration point this many seconds after a
    /// checkpoint or stop was asked: it waits in a host call (a sleep, a
    /// read of its input or a socket wait without a timeout).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    stop_timeout: f64,
}

/// The source's control channel (see `wanco_rt::control`).
struct Control {
    out: UnixStream,
    lines: std::io::Lines<BufReader<UnixStream>>,
}

impl Control {
    fn connect(path: &std::path::Path, pid: u32) -> Result<Control> {
        let s = UnixStream::connect(path).map_err(|e| {
            anyhow!(
                "cannot reach process {pid}'s control channel {}: {e} (start the program with --control, or give --control PATH)",
                path.display()
            )
        })?;
        Ok(Control { out: s.try_clone()?, lines: BufReader::new(s).lines() })
    }

    /// A checkpoint or stop request, served at the program's next
    /// migration point: given up after `limit` (the runtime drops a request
    /// whose connection closed before it was served).
    fn ask_at_point(&mut self, req: &str, limit: f64) -> Result<String> {
        // `out` and the reader of `lines` are one socket: its read time limit is theirs.
        let _ = self.out.set_read_timeout(Some(Duration::from_secs_f64(limit.max(0.001))));
        let r = self.ask(req);
        let _ = self.out.set_read_timeout(None);
        match r {
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)) =>
            {
                bail!(
                    "the program has not reached a migration point within {limit} s (--stop-timeout): it waits in a host call (a sleep, a read of its input or a socket wait without a timeout), where it cannot be checkpointed; try again when it is busy, or give the wait a timeout"
                )
            }
            r => r,
        }
    }

    fn ask(&mut self, req: &str) -> Result<String> {
        if let Err(e) = writeln!(self.out, "{req}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                bail!("the program ended (its control channel closed)");
            }
            return Err(e).context("the program's control channel");
        }
        match self.lines.next() {
            Some(Ok(l)) => Ok(l),
            Some(Err(e)) => Err(e).context("the program's control channel"),
            None => bail!("the program ended (its control channel closed)"),
        }
    }
}

/// Where a bare `--control` listens (`wanco_rt::control::default_path`).
fn default_control_path(pid: u32) -> PathBuf {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("wanco"),
        // SAFETY: getuid cannot fail.
        _ => PathBuf::from(format!("/tmp/wanco-{}", unsafe { libc::getuid() })),
    };
    dir.join(format!("{pid}.sock"))
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[derive(serde::Serialize)]
struct Summary {
    migrated: bool,
    pid: u32,
    dest: String,
    source_isa: String,
    dest_isa: String,
    dest_pid: Option<u32>,
    binary_from: String,
    migration_points: u64,
    snapshot_bytes: u64,
    mode: String,
    rounds: u32,
    round_pages: Vec<usize>,
    bytes_sent: u64,
    bytes_received: u64,
    total_ms: f64,
    downtime_ms: f64,
    /// From the source runtime's stop at the migration point to the
    /// destination runtime's first instruction of the restored code, on the
    /// two runtimes' clocks (CLOCK_REALTIME): comparable on one machine,
    /// off by the clocks' difference between two.
    downtime_runtime_ms: Option<f64>,
    /// How the destination got the memory: `image-mapped`, `image-copied`,
    /// `snapshot`.
    memory: String,
    restore_ms: f64,
    sync_files_before_stop: u64,
    sync_bytes_before_stop: u64,
    sync_files_after_stop: u64,
    sync_bytes_after_stop: u64,
    /// Post-copy: the pages that hold data (all sent after the stop).
    pages: usize,
    /// Post-copy: pages sent because the destination asked (its program
    /// touched them first).
    pages_on_demand: usize,
    /// Post-copy: pages pushed in the background.
    pages_pushed: usize,
    /// Post-copy: from the program's resume at the destination until every
    /// page was in and the program released.
    postcopy_ms: f64,
}

/// Pre-copy: rounds of memory pages while the program runs — a full
/// snapshot first, then the pages written since the round before — until a
/// round has at most `--precopy-pages` pages, stops shrinking, or
/// `--precopy-rounds` were sent. Returns the pages of each round. The
/// snapshots are written to `dir` and removed once sent.
fn precopy_rounds(ctl: &mut Control, conn: &mut Conn, dir: &std::path::Path, o: &Opts, t0: Instant) -> Result<Vec<usize>> {
    let mut sizes: Vec<usize> = Vec::new();
    for round in 1..=o.precopy_rounds.max(1) {
        let path = dir.join(format!("round-{round}.wsnap"));
        let req = if round == 1 { "checkpoint" } else { "checkpoint-incremental" };
        let reply = ctl.ask_at_point(&format!("{req} {}", path.display()), o.stop_timeout)?;
        if !reply.starts_with("ok ") {
            bail!("pre-copy round {round}: the program could not write its snapshot: {reply}");
        }
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let _ = std::fs::remove_file(&path);
        let (_, memory, parent) = wanco_state::snapshot::decode_link(&bytes).map_err(|e| anyhow!("pre-copy round {round}: {e}"))?;
        let id = wanco_state::snapshot::snapshot_id(&bytes).unwrap_or_default();
        let n = memory.as_ref().map_or(0, |m| m.stored_count());
        progress(t0, &format!("pre-copy round {round}: {n} pages ({} bytes) while the program runs", bytes.len()));
        // Pieces of at most ~16 MiB (a frame holds 64 MiB).
        let mut piece: Vec<(u32, serde_bytes::ByteBuf)> = Vec::new();
        let mut piece_bytes = 0usize;
        let mut flush = |piece: &mut Vec<(u32, serde_bytes::ByteBuf)>| -> Result<()> {
            conn.send(&Message::MemoryRound {
                round,
                pages: std::mem::take(piece),
                id: Some(serde_bytes::ByteBuf::from(id.to_vec())),
                parent: parent.map(|p| serde_bytes::ByteBuf::from(p.to_vec())),
            })?;
            Ok(())
        };
        if let Some(m) = &memory {
            for k in 0..m.stored_count() {
                let Some((page, lz4)) = m.stored_lz4(k) else { continue };
                piece_bytes += lz4.len();
                piece.push((page, serde_bytes::ByteBuf::from(lz4.to_vec())));
                if piece_bytes >= 16 << 20 {
                    flush(&mut piece)?;
                    piece_bytes = 0;
                }
            }
        }
        flush(&mut piece)?;
        test_kill("precopy");
        sizes.push(n);
        // Without tracking (parent=none after the first round) every round
        // is whole: one is enough.
        let untracked = round > 1 && parent.is_none();
        let shrinking = sizes.len() < 2 || n < sizes[sizes.len() - 2];
        if n <= o.precopy_pages || !shrinking || untracked {
            break;
        }
    }
    Ok(sizes)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Fault injection for the migration tests: `WANCO_MIGRATE_TEST_KILL_AT=PHASE`
/// makes `wanco migrate` kill itself with `SIGKILL` there: `precopy` after
/// the first pre-copy round went, `restored` once the destination restored
/// the program (before the point of no return), `postcopy` after the first
/// post-copy page went, `release` once the source is held in post-copy,
/// before `Release` is sent.
fn test_kill(phase: &str) {
    if std::env::var("WANCO_MIGRATE_TEST_KILL_AT").is_ok_and(|p| p == phase) {
        // SAFETY: kill(2) on this process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    // `WANCO_MIGRATE_TEST_PAUSE_AT=PHASE`: say so and sleep 3 s there (the
    // test kills the program or cuts the link meanwhile).
    if std::env::var("WANCO_MIGRATE_TEST_PAUSE_AT").is_ok_and(|p| p == phase) {
        say(&format!("WANCO_MIGRATE_TEST_PAUSE_AT={phase}: pausing"));
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// A phase begins: shown when stderr is a terminal.
fn progress(t0: Instant, msg: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        say(&format!("[{:>7.1} ms] {msg}", ms(t0.elapsed())));
    }
}

fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "wanco migrate: {msg}");
}

/// Exit codes: the program's own after a move (0 with `--detach`); 1 the
/// migration failed and the program goes on at the source; 3 the connection
/// failed after the point of no return (see the message); 4 the relay of
/// the output was cut after the move.
pub fn run(o: Opts) -> Result<i32> {
    let pid = o.pid;
    match migrate(o) {
        Ok(code) => Ok(code),
        Err(e) => {
            say(&format!("error: {e:#}"));
            if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok() {
                say(&format!("nothing was moved: the program goes on here (process {pid})"));
            } else {
                say(&format!("nothing was moved: process {pid} has ended"));
            }
            Ok(1)
        }
    }
}

fn migrate(o: Opts) -> Result<i32> {
    let t0 = Instant::now();
    let dest: Dest = o.to.parse()?;
    let dir_map = o
        .dir_map
        .iter()
        .map(|m| m.split_once('=').map(|(g, d)| (g.to_string(), d.to_string())).ok_or_else(|| anyhow!("--dir-map needs GUEST=DEST_PATH, got `{m}`")))
        .collect::<Result<Vec<_>>>()?;
    let control_path = o.control.clone().unwrap_or_else(|| default_control_path(o.pid));
    let mut ctl = Control::connect(&control_path, o.pid)?;
    let info = ctl.ask("info")?;
    let (Some(src_isa), Some(hash)) = (field(&info, "isa"), field(&info, "hash")) else {
        bail!("unexpected answer from the program's control channel: `{info}`")
    };
    let (src_isa, hash) = (src_isa.to_string(), hash.to_string());
    let preopens = parse_preopens(field(&info, "preopens").unwrap_or(""))?;
    let mut dir_map = dir_map;
    for (guest, _) in &dir_map {
        if !preopens.iter().any(|(g, _)| g == guest) {
            bail!("--dir-map {guest}=…: the program has no preopened directory `{guest}`");
        }
    }
    // What --sync-dirs copies: (source directory, destination directory).
    let mut sync: Vec<(PathBuf, String)> = Vec::new();
    if o.sync_dirs {
        for (guest, host) in &preopens {
            let dest_dir = match dir_map.iter().find(|(g, _)| g == guest) {
                Some((_, d)) => d.clone(),
                None => {
                    let abs = std::fs::canonicalize(format!("/proc/{}/cwd", o.pid)).map(|cwd| cwd.join(host)).unwrap_or_else(|_| PathBuf::from(host));
                    let d = abs.display().to_string();
                    dir_map.push((guest.clone(), d.clone()));
                    d
                }
            };
            let src_dir = std::fs::canonicalize(format!("/proc/{}/cwd", o.pid)).map(|cwd| cwd.join(host)).unwrap_or_else(|_| PathBuf::from(host));
            sync.push((src_dir, dest_dir));
        }
    }
    if hash.is_empty() {
        bail!("process {} has not finished starting; try again", o.pid);
    }
    // The program's own binary, read now (it may be sent along below).
    let own_exe = format!("/proc/{}/exe", o.pid);
    let own_binary = if o.dest_binary.is_none() { std::fs::read(&own_exe).ok() } else { None };
    // Phase 1: connect and hello.
    let mut conn = connect(&dest, &o).with_context(|| format!("cannot connect to {dest}"))?;
    // A destination (or link) gone while the send buffer is full must not
    // block a send forever, pre-copy rounds included.
    let _ = conn.set_write_timeout(Some(Duration::from_secs_f64(o.timeout.max(0.001))));
    if let Err(e) = conn.send(&Message::Hello(Hello::new(&src_isa, wanco_state::snapshot::FORMAT_VERSION))) {
        // A TLS peer that refused this side's certificate has said why in an alert.
        let why = match conn.recv() {
            Err(r) => format!(" ({r})"),
            Ok(_) => String::new(),
        };
        bail!("cannot talk to {dest}: {e}{why}");
    }
    let hello = match conn.recv().with_context(|| {
        if matches!(dest, Dest::Ssh { .. }) {
            // ssh says why on stderr before it exits: the host unreachable or silent, the
            // login refused, `wanco` not on the remote PATH.
            format!("no answer from the agent at {dest} (ssh's own message above says why)")
        } else {
            format!("no answer from the agent at {dest}")
        }
    })? {
        Message::Hello(h) => h,
        Message::Refused { phase, reason } => bail!("the destination refused ({phase}): {reason}"),
        m => bail!("the destination answered {} instead of Hello", m.name()),
    };
    if hello.protocol != PROTOCOL_VERSION {
        bail!("the destination speaks migration protocol {} (wanco {}), this wanco {PROTOCOL_VERSION}", hello.protocol, hello.wanco_version);
    }
    if hello.snapshot_format < wanco_state::snapshot::FORMAT_VERSION {
        bail!("the destination reads snapshot format {}, this wanco writes {}", hello.snapshot_format, wanco_state::snapshot::FORMAT_VERSION);
    }
    let dest_isa = hello.isa.clone();
    say(&format!("process {} ({src_isa}) -> {dest} ({dest_isa}, wanco {})", o.pid, hello.wanco_version));
    // Phase 2: the destination's binary, while the program still runs.
    let binary = match &o.dest_binary {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read --dest-binary {}", p.display()))?),
        None if dest_isa == src_isa && o.module.is_none() => {
            Some(own_binary.ok_or_else(|| anyhow!("cannot read the program's binary {own_exe}"))?)
        }
        None => None,
    };
    let module = match &o.module {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read --module {}", p.display()))?),
        None => None,
    };
    let postcopy = o.postcopy;
    if postcopy && !hello.modes.iter().any(|m| m == "postcopy") {
        bail!("the destination's wanco agent {} does not support post-copy (it offers {})", hello.wanco_version, hello.modes.join(", "));
    }
    let host_isa = if cfg!(target_arch = "aarch64") { "aarch64" } else { "x86_64" };
    if postcopy && src_isa != host_isa {
        // Its memory is read from /proc/PID/mem at the runtime's addresses:
        // under an emulator (qemu-user) those are the guest's, not the
        // process's — the pages read would be wrong.
        bail!("post-copy reads the program's memory from its process: a {src_isa} program on this {host_isa} host runs under an emulator, whose memory is not at the program's addresses (use --precopy or --stop-and-copy)");
    }
    if postcopy && !conn.can_wait() {
        bail!("post-copy needs a connection that can be polled (ssh://, tls://, tcp://)");
    }
    let precopy = !o.stop_and_copy && !postcopy && hello.modes.iter().any(|m| m == "precopy");
    if !o.stop_and_copy && !postcopy && !precopy {
        say("the destination does not support pre-copy: stop-and-copy");
    }
    let mode = if postcopy {
        "postcopy"
    } else if precopy {
        "precopy"
    } else {
        "stop-and-copy"
    };
    progress(t0, "prepare: the destination gets the binary ready (the program runs)");
    conn.send(&Message::Prepare(Prepare {
        module_hash: hash.clone(),
        mode: mode.into(),
        binary,
        module,
        dir_map,
        sync_dirs: o.sync_dirs,
    }))?;
    let binary_from = match conn.recv().context("the destination did not answer Prepare")? {
        Message::Prepared { binary_from } => binary_from,
        Message::Refused { phase, reason } => bail!("the destination refused ({phase}): {reason}"),
        m => bail!("the destination answered {} instead of Prepared", m.name()),
    };
    // The directories, while the program runs.
    if !sync.is_empty() {
        progress(t0, "sync: copying the preopened directories (the program runs)");
    }
    let synced_before = sync_dirs(&mut conn, &sync)?;
    // Phase 3: stop at a migration point and send the snapshot.
    let dir = tempfile::Builder::new().prefix("wanco-migrate-").tempdir().context("cannot make a temporary directory")?;
    let snap_path = dir.path().join(format!("{}.wsnap", o.pid));
    {
        use std::os::unix::fs::PermissionsExt;
        // The program (the same user) writes its snapshot there.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    }
    // Pre-copy rounds, while the program runs. A failure here leaves it
    // running (it was never stopped); the destination discards what it got.
    let round_pages = if precopy { precopy_rounds(&mut ctl, &mut conn, dir.path(), &o, t0)? } else { Vec::new() };
    progress(t0, "stop: waiting for the program's next migration point");
    let t_stop = Instant::now();
    let stop = if postcopy {
        "stop-postcopy"
    } else if precopy {
        "stop-incremental"
    } else {
        "stop"
    };
    let reply = ctl.ask_at_point(&format!("{stop} {}", snap_path.display()), o.stop_timeout).map_err(|e| {
        let _ = conn.send(&Message::Abort { reason: format!("{e:#}") });
        anyhow!("{e:#}")
    })?;
    if !reply.starts_with("stopped") {
        let _ = conn.send(&Message::Abort { reason: reply.clone() });
        bail!("the program could not be stopped: {reply}");
    }
    let t_stopped = Instant::now();
    // A silent destination must not keep the program stopped for long.
    let _ = conn.set_read_timeout(Some(Duration::from_secs_f64(o.timeout.max(0.001))));
    let points: u64 = field(&reply, "points").and_then(|p| p.parse().ok()).unwrap_or(0);
    let stopped_at_ns: Option<u64> = field(&reply, "at_ns").and_then(|p| p.parse().ok());
    let mut phase = "transfer";
    let mut synced_after = (0, 0);
    // Post-copy: the stopped program's memory, served page by page after the transfer.
    let mut packed: Option<SourceMemory> = None;
    let transfer = (|| -> Result<(u64, Duration)> {
        phase = "transfer (files)";
        synced_after = sync_dirs(&mut conn, &sync)?;
        phase = "transfer";
        let bytes = std::fs::read(&snap_path).with_context(|| format!("cannot read the snapshot {}", snap_path.display()))?;
        if postcopy {
            // The snapshot holds the state without pages; the map of the
            // pages that may hold data goes first, the pages are read from
            // the stopped process.
            let m = SourceMemory::open(o.pid, &reply)?;
            progress(t0, &format!("transfer: state of {} bytes; {} pages follow while the program runs there", bytes.len(), m.pages.len()));
            conn.send(&Message::PageMap { pages: m.pages.clone() })?;
            packed = Some(m);
        }
        progress(t0, &format!("transfer: snapshot of {} bytes", bytes.len()));
        const CHUNK: usize = 1 << 20;
        let mut off = 0;
        loop {
            let end = (off + CHUNK).min(bytes.len());
            conn.send(&Message::SnapshotChunk { offset: off as u64, data: bytes[off..end].to_vec(), last: end == bytes.len() })?;
            off = end;
            if off == bytes.len() {
                break;
            }
        }
        phase = "restore";
        if postcopy {
            // `Restored` comes while the pages go (below).
            return Ok((bytes.len() as u64, Duration::ZERO));
        }
        match conn.recv().context("waiting for the destination's restore")? {
            Message::Restored { restore_us } => Ok((bytes.len() as u64, Duration::from_micros(restore_us))),
            Message::Refused { phase, reason } => bail!("the destination refused ({phase}): {reason}"),
            m => bail!("the destination answered {} instead of Restored", m.name()),
        }
    })();
    let mut pc = Postcopied::default();
    let transfer = match transfer {
        Ok((b, _)) if postcopy => {
            phase = "post-copy";
            match postcopy_serve(&mut conn, &mut ctl, packed.as_mut(), &o, t0) {
                Ok(Served::Released(p)) => {
                    pc = p;
                    Ok((b, pc.restore))
                }
                Ok(Served::Lost(e)) => {
                    // After the hold: `Release` may have come through.
                    say(&format!("the connection failed after the destination was told to release the program: {e:#}"));
                    let kept = dir.keep().join(format!("{}.wsnap", o.pid));
                    drop(ctl);
                    say(&format!(
                        "the program may be running at {dest} or nowhere: the source process stopped, its state is kept in {} (if the program does not run at the destination, continue it here with `BIN --restore {}`)",
                        kept.display(),
                        kept.display()
                    ));
                    return Ok(3);
                }
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    let (snapshot_bytes, restore) = match transfer {
        Ok(x) => x,
        Err(e) => {
            let _ = conn.send(&Message::Abort { reason: format!("{e:#}") });
            drop(conn);
            let resumed = ctl.ask("abort");
            return match resumed {
                Ok(r) if r == "resumed" => {
                    say(&format!("migration failed during the {phase}: {e:#}"));
                    say(&format!("the program goes on here (process {})", o.pid));
                    Ok(1)
                }
                other => {
                    say(&format!("migration failed during the {phase}: {e:#}"));
                    let why = match other {
                        Ok(r) => format!("it answered `{r}`"),
                        Err(e) => format!("{e:#}"),
                    };
                    if std::fs::read_link(format!("/proc/{}/exe", o.pid)).is_err() {
                        say(&format!("process {} has ended ({why}); the destination was told to discard what it got: the program runs nowhere", o.pid));
                    } else {
                        say(&format!("resuming the program failed too ({why}): check process {}", o.pid));
                    }
                    Ok(1)
                }
            };
        }
    };
    let (dest_pid, resumed_at_ns, memory) = if postcopy {
        (pc.dest_pid, pc.resumed_at_ns, pc.memory.clone())
    } else {
    test_kill("restored");
    // Phase 5: the point of no return.
    progress(t0, &format!("restored at the destination in {:.1} ms; go", ms(restore)));
    match ctl.ask("hold") {
        Ok(r) if r == "held" => {}
        other => {
            let other = match other {
                Ok(r) => format!("it answered `{r}`"),
                Err(e) => format!("{e:#}"),
            };
            let _ = conn.send(&Message::Abort { reason: "the source could not be held".into() });
            let _ = ctl.ask("abort");
            if std::fs::read_link(format!("/proc/{}/exe", o.pid)).is_err() {
                say(&format!(
                    "the program ended at the source before the point of no return ({other}); the destination was told to discard its copy: it runs nowhere"
                ));
            } else {
                say(&format!("the program's control channel failed before the move ({other}); resuming it"));
            }
            return Ok(1);
        }
    }
    let go = if o.detach { Message::Detach } else { Message::Go };
    let running = conn.send(&go).map_err(anyhow::Error::from).and_then(|()| match conn.recv()? {
        Message::Running { pid, resumed_at_ns, memory } => Ok((pid, resumed_at_ns, memory)),
        Message::Refused { phase, reason } => Err(anyhow!("the destination refused ({phase}): {reason}")),
        m => Err(anyhow!("the destination answered {} instead of Running", m.name())),
    });
    let (dest_pid, resumed_at_ns, memory) = match running {
        Ok(p) => p,
        Err(e) => {
            // Did the destination get `Go`? Unknown: never risk two copies.
            say(&format!("the connection failed after the destination was told to run the program: {e:#}"));
            let kept = dir.keep().join(format!("{}.wsnap", o.pid));
            drop(ctl); // the source ends (exit 3), keeping its state
            say(&format!(
                "the program may be running at {dest} or nowhere: the source process stopped, its state is kept in {} (if the program does not run at the destination, continue it here with `BIN --restore {}`)",
                kept.display(),
                kept.display()
            ));
            return Ok(3);
        }
    };
    (dest_pid, resumed_at_ns, memory)
    };
    let t_running = pc.t_running.unwrap_or_else(Instant::now);
    let t_end = Instant::now();
    let committed = ctl.ask("commit");
    if !matches!(&committed, Ok(r) if r == "committed") {
        say(&format!("the source did not confirm its end ({committed:?}); check process {}", o.pid));
    }
    let c = conn.counters();
    let s = Summary {
        migrated: true,
        pid: o.pid,
        dest: dest.to_string(),
        source_isa: src_isa.clone(),
        dest_isa: dest_isa.clone(),
        dest_pid: Some(dest_pid),
        binary_from,
        migration_points: points,
        snapshot_bytes,
        mode: mode.into(),
        rounds: round_pages.len() as u32,
        round_pages: round_pages.clone(),
        bytes_sent: c.sent,
        bytes_received: c.received,
        total_ms: ms(t_end - t0),
        downtime_ms: ms(t_running - t_stop),
        downtime_runtime_ms: match (stopped_at_ns, resumed_at_ns) {
            (Some(a), Some(b)) => Some(((b as f64 - a as f64) / 1e3).round() / 1e3),
            _ => None,
        },
        memory: memory.unwrap_or_else(|| "unknown".into()),
        restore_ms: ms(restore),
        sync_files_before_stop: synced_before.0,
        sync_bytes_before_stop: synced_before.1,
        sync_files_after_stop: synced_after.0,
        sync_bytes_after_stop: synced_after.1,
        pages: pc.pages,
        pages_on_demand: pc.on_demand,
        pages_pushed: pc.pushed,
        postcopy_ms: if postcopy { ms(t_end - t_running) } else { 0.0 },
    };
    if o.json {
        say(&serde_json::to_string(&s)?);
    } else {
        say(&format!(
            "moved to {} as pid {dest_pid} ({src_isa} -> {dest_isa}, binary {}, {}{}, memory {}): total {:.1} ms, downtime {:.1} ms{} (stop {:.1}, restore {:.1}), snapshot {} bytes, {} bytes sent, {} received",
            s.dest,
            s.binary_from,
            s.mode,
            if precopy {
                format!(", {} rounds of {:?} pages", s.rounds, s.round_pages)
            } else if postcopy {
                format!(", {} pages after the resume: {} on demand, {} pushed, all in {:.1} ms after it", s.pages, s.pages_on_demand, s.pages_pushed, s.postcopy_ms)
            } else {
                String::new()
            },
            s.memory,
            s.total_ms,
            s.downtime_ms,
            s.downtime_runtime_ms.map(|d| format!(" ({d:.2} ms stop to first instruction on the runtimes' clocks)")).unwrap_or_default(),
            ms(t_stopped - t_stop),
            s.restore_ms,
            s.snapshot_bytes,
            s.bytes_sent,
            s.bytes_received
        ));
        if o.sync_dirs {
            say(&format!(
                "directories: {} files ({} bytes) copied while the program ran, {} ({} bytes) after it stopped",
                s.sync_files_before_stop, s.sync_bytes_before_stop, s.sync_files_after_stop, s.sync_bytes_after_stop
            ));
        }
    }
    if o.detach {
        return match conn.recv() {
            Ok(Message::Detached { stdout, stderr }) => {
                say(&format!("detached: the program's output goes to {stdout} and {stderr} at the destination"));
                Ok(0)
            }
            _ => Ok(0),
        };
    }
    // Phase 6: relay (the program may be silent for as long as it likes).
    let _ = conn.set_read_timeout(None);
    let mut out = std::io::stdout().lock();
    loop {
        match conn.recv() {
            Ok(Message::Output { stream: Stream::Stdout, data }) => {
                let _ = out.write_all(&data);
                let _ = out.flush();
            }
            Ok(Message::Output { stream: Stream::Stderr, data }) => {
                let _ = std::io::stderr().write_all(&data);
            }
            Ok(Message::Exited { code }) => return Ok(code),
            Ok(m) => bail!("the destination sent {} while relaying", m.name()),
            Err(e) => {
                say(&format!("lost the connection to {dest} while relaying the program's output: {e}"));
                say("the program goes on there; its output is kept in the agent's work directory");
                return Ok(4);
            }
        }
    }
}

/// Post-copy: the stopped source program's linear memory, read from
/// `/proc/PID/mem` (the same user's process, stopped at its migration
/// point: nothing changes it) as the destination needs it.
struct SourceMemory {
    mem: std::fs::File,
    /// Its address in the process.
    addr: u64,
    /// The Wasm pages that may hold data (ever touched), ascending.
    pages: Vec<u32>,
    scratch: Vec<u8>,
}

impl SourceMemory {
    /// From the `memory=ADDR:LEN touched=RANGES` of the `stop-postcopy` reply.
    fn open(pid: u32, reply: &str) -> Result<SourceMemory> {
        const PAGE: u64 = 65536;
        let (addr, len) = match field(reply, "memory") {
            Some(v) => {
                let (a, l) = v.split_once(':').ok_or_else(|| anyhow!("bad memory={v} from the program's control channel"))?;
                let hex = |x: &str| u64::from_str_radix(x, 16).map_err(|_| anyhow!("bad memory={v} from the program's control channel"));
                (hex(a)?, hex(l)?)
            }
            None => (0, 0), // no linear memory
        };
        let total = (len / PAGE) as u32;
        let pages: Vec<u32> = match field(reply, "touched") {
            None | Some("all") => (0..total).collect(),
            Some("-") => Vec::new(),
            Some(r) => {
                let mut v = Vec::new();
                for run in r.split(',') {
                    let (a, b) = run.split_once('-').ok_or_else(|| anyhow!("bad touched={r} from the program's control channel"))?;
                    let (a, b): (u32, u32) = (a.parse()?, b.parse()?);
                    if a > b || b >= total || v.last().is_some_and(|l| *l >= a) {
                        bail!("bad touched={r} from the program's control channel (memory of {total} pages)");
                    }
                    v.extend(a..=b);
                }
                v
            }
        };
        let path = format!("/proc/{pid}/mem");
        let mem = std::fs::File::open(&path).with_context(|| format!("post-copy reads the stopped program's memory from {path}"))?;
        let mut m = SourceMemory { mem, addr, pages, scratch: vec![0u8; PAGE as usize] };
        if let Some(&p) = m.pages.first() {
            // Readable now, before the state goes (else the program resumes here).
            m.read(p)?;
        }
        Ok(m)
    }

    /// Wasm page `page`, compressed with LZ4.
    fn read(&mut self, page: u32) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let at = self.addr + page as u64 * 65536;
        self.mem.read_exact_at(&mut self.scratch, at).with_context(|| format!("cannot read memory page {page} of the stopped program"))?;
        Ok(wanco_state::snapshot::pack_lz4_page(&self.scratch))
    }
}

/// What a post-copy move ended with.
#[derive(Default)]
struct Postcopied {
    dest_pid: u32,
    resumed_at_ns: Option<u64>,
    memory: Option<String>,
    restore: Duration,
    /// When `Running` came.
    t_running: Option<Instant>,
    pages: usize,
    on_demand: usize,
    pushed: usize,
}

/// How [`postcopy_serve`] ended (its `Err`: before the point of no return,
/// the source may resume).
enum Served {
    /// Released at the destination: the program runs there.
    Released(Postcopied),
    /// The connection failed after the source was held and `Release` sent:
    /// the destination may run it or not.
    Lost(anyhow::Error),
}

/// Post-copy after the state went: push the pages of `memory` and answer
/// the destination's `PageRequest`s first; on `Restored` say `Go` (no hold:
/// the destination's program makes no host call before `Release`); once
/// `Running` and `AllPagesIn` came, `hold` the source (the point of no
/// return), `Release`, and wait for `Released`.
fn postcopy_serve(conn: &mut Conn, ctl: &mut Control, mut memory: Option<&mut SourceMemory>, o: &Opts, t0: Instant) -> Result<Served> {
    let n = memory.as_ref().map_or(0, |m| m.pages.len());
    let mut sent = vec![false; n];
    let mut asked: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut next = 0usize;
    let mut r = Postcopied { pages: n, ..Default::default() };
    let (mut restored, mut running, mut all_in) = (false, false, false);
    let silence = Duration::from_secs_f64(o.timeout.max(0.001));
    let mut last_heard = Instant::now();
    let mut out = std::io::stdout();
    loop {
        // Pages are pushed once the program runs there (before, they would
        // hold up `Restored`/`Go`/`Running` behind them); asked-for ones
        // at any time (the eager fallback asks for all before the gate).
        if running && all_in {
            break;
        }
        let left = !asked.is_empty() || (running && next < n);
        let wait = if left { Duration::ZERO } else { Duration::from_millis(100) };
        if let Some(m) = conn.try_recv(wait)? {
            last_heard = Instant::now();
            match m {
                Message::PageRequest { page } => {
                    let Some(k) = memory.as_ref().and_then(|m| m.pages.binary_search(&page).ok()) else {
                        bail!("the destination asked for memory page {page}, which holds no data");
                    };
                    if !sent[k] {
                        asked.push_back(k);
                    }
                }
                Message::Restored { restore_us } => {
                    r.restore = Duration::from_micros(restore_us);
                    restored = true;
                    progress(t0, &format!("restored at the destination in {:.1} ms; go (its pages follow)", ms(r.restore)));
                    test_kill("restored");
                    conn.send(&if o.detach { Message::Detach } else { Message::Go })?;
                }
                Message::Running { pid, resumed_at_ns, memory } if restored => {
                    r.dest_pid = pid;
                    r.resumed_at_ns = resumed_at_ns;
                    r.memory = memory;
                    r.t_running = Some(Instant::now());
                    running = true;
                }
                Message::AllPagesIn { on_demand, pages } => {
                    if pages as usize != n {
                        bail!("the destination has {pages} pages, {n} were sent");
                    }
                    let _ = on_demand;
                    all_in = true;
                }
                Message::Output { stream, data } => {
                    // Only the runtime's own notes can come before the release.
                    let _ = match stream {
                        Stream::Stdout => out.write_all(&data),
                        Stream::Stderr => std::io::stderr().write_all(&data),
                    };
                }
                Message::Refused { phase, reason } => bail!("the destination refused ({phase}): {reason}"),
                m => bail!("the destination sent {} during post-copy", m.name()),
            }
            continue;
        }
        if last_heard.elapsed() > silence && !left {
            bail!("the destination was silent for {:.0} s during post-copy", silence.as_secs_f64());
        }
        // One page: an asked-for one first, else the next not sent.
        let k = loop {
            match asked.pop_front() {
                Some(k) if sent[k] => continue,
                Some(k) => {
                    r.on_demand += 1;
                    break Some(k);
                }
                None if !running => break None,
                None => {
                    while next < n && sent[next] {
                        next += 1;
                    }
                    if next < n {
                        r.pushed += 1;
                        break Some(next);
                    }
                    break None;
                }
            }
        };
        if let (Some(k), Some(m)) = (k, memory.as_deref_mut()) {
            let page = m.pages[k];
            let data = m.read(page)?;
            conn.send(&Message::PageData { page, data })?;
            sent[k] = true;
            if r.pushed + r.on_demand == 1 {
                test_kill("postcopy");
            }
        }
    }
    progress(t0, &format!("post-copy: all {n} pages in at the destination ({} on demand); releasing it", r.on_demand));
    // The point of no return.
    match ctl.ask("hold") {
        Ok(h) if h == "held" => {}
        Ok(r) => bail!("the source could not be held: it answered `{r}`"),
        Err(e) => bail!("the source could not be held: {e:#}"),
    }
    test_kill("release");
    if let Err(e) = conn.send(&Message::Release) {
        return Ok(Served::Lost(e.into()));
    }
    let _ = conn.set_read_timeout(Some(silence));
    loop {
        match conn.recv() {
            Ok(Message::Released) => return Ok(Served::Released(r)),
            Ok(Message::Output { stream, data }) => {
                let _ = match stream {
                    Stream::Stdout => out.write_all(&data),
                    Stream::Stderr => std::io::stderr().write_all(&data),
                };
            }
            Ok(m) => return Ok(Served::Lost(anyhow!("the destination answered {} instead of Released", m.name()))),
            Err(e) => return Ok(Served::Lost(e.into())),
        }
    }
}

/// `preopens=G:H,…` of the control channel's `info` (hex-encoded paths).
fn parse_preopens(v: &str) -> Result<Vec<(String, String)>> {
    let unhex = |h: &str| -> Result<String> {
        let bytes = (0..h.len())
            .step_by(2)
            .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| anyhow!("bad preopen `{h}` from the program's control channel"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    v.split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (g, h) = e.split_once(':').ok_or_else(|| anyhow!("bad preopen `{e}` from the program's control channel"))?;
            Ok((unhex(g)?, unhex(h)?))
        })
        .collect()
}

/// The regular files under `dir` (symbolic links and special files are not
/// copied), relative paths.
fn list_files(dir: &std::path::Path) -> Result<Vec<(PathBuf, wanco_transport::FileEntry)>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let here = dir.join(&rel);
        for e in std::fs::read_dir(&here).with_context(|| format!("cannot list {}", here.display()))? {
            let e = e?;
            let r = rel.join(e.file_name());
            let m = e.path().symlink_metadata()?;
            if m.is_dir() {
                todo.push(r);
            } else if m.is_file() {
                let Some(path) = r.to_str() else { bail!("{} is not UTF-8: cannot be copied", e.path().display()) };
                out.push((
                    e.path(),
                    wanco_transport::FileEntry {
                        path: path.to_string(),
                        size: m.len(),
                        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                        mode: m.mode(),
                    },
                ));
            }
        }
    }
    Ok(out)
}

/// One round of `--sync-dirs`: (files sent, bytes sent).
fn sync_dirs(conn: &mut Conn, dirs: &[(PathBuf, String)]) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for (src, dest) in dirs {
        let list = list_files(src)?;
        conn.send(&Message::FileList { dir: dest.clone(), files: list.iter().map(|(_, f)| f.clone()).collect() })?;
        let want = match conn.recv()? {
            Message::FileWants { paths } => paths,
            Message::Refused { phase, reason } => bail!("the destination refused ({phase}): {reason}"),
            m => bail!("the destination answered {} instead of FileWants", m.name()),
        };
        for path in want {
            let Some((local, entry)) = list.iter().find(|(_, f)| f.path == path) else {
                bail!("the destination asked for `{path}`, which was not listed");
            };
            let data = std::fs::read(local).with_context(|| format!("cannot read {}", local.display()))?;
            const CHUNK: usize = 1 << 20;
            let mut off = 0;
            loop {
                let end = (off + CHUNK).min(data.len());
                conn.send(&Message::FileChunk {
                    dir: dest.clone(),
                    path: path.clone(),
                    offset: off as u64,
                    data: data[off..end].to_vec(),
                    last: end == data.len(),
                    mtime_ns: entry.mtime_ns,
                    mode: entry.mode,
                })?;
                off = end;
                if off == data.len() {
                    break;
                }
            }
            files += 1;
            bytes += data.len() as u64;
        }
    }
    Ok((files, bytes))
}

fn connect(dest: &Dest, o: &Opts) -> Result<Conn> {
    Ok(match dest {
        Dest::Ssh { .. } => {
            let mut cmd = vec![o.remote_wanco.clone(), "agent".into(), "--stdio".into()];
            cmd.extend(o.agent_args.iter().cloned());
            wanco_transport::connect_ssh(dest, &SshOptions { ssh_args: o.ssh_args.clone() }, &cmd)?
        }
        Dest::Tls { host, port } => {
            wanco_transport::connect_tls(host, *port, &o.tls.required("tls://")?)?
        }
        Dest::Tcp { host, port } => {
            if !o.tls.insecure {
                bail!("tcp:// sends the program in plaintext: add --insecure if the link is trusted, or use tls://");
            }
            let tcp = wanco_transport::connect_tcp(host, *port)?;
            let socket = tcp.try_clone()?;
            Conn::with_socket(Box::new(tcp), socket)
        }
    })
}
