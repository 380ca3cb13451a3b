//! `wanco agent`: the receiving side of `wanco migrate`.
//!
//! `--stdio` serves one migration over standard input and output (what
//! `ssh` starts on the destination); `--listen ADDR` serves migrations over
//! mutual TLS (or plaintext with `--insecure`), one thread per connection.
//! The phases are those of `wanco_transport::Message`.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wanco_transport::{Conn, Hello, Message, Prepare, Stream, TlsServer, PROTOCOL_VERSION};

#[derive(Args, Debug, Clone)]
pub struct Opts {
    /// Serve one migration on standard input/output (started by `ssh`).
    #[arg(long, conflicts_with = "listen")]
    stdio: bool,
    /// Listen on ADDR (e.g. 0.0.0.0:7878) for migrations over mutual TLS.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    #[command(flatten)]
    tls: crate::tls_opts::TlsOpts,
    /// Serve one connection, then exit.
    #[arg(long)]
    once: bool,
    /// The ISA restored programs run on (default: this host's).
    #[arg(long, value_parser = ["x86_64", "aarch64"])]
    isa: Option<String>,
    /// Run restored programs under this command (e.g.
    /// "qemu-aarch64 -L /usr/aarch64-linux-gnu" with --isa aarch64);
    /// split at spaces.
    #[arg(long, value_name = "CMD")]
    runner: Option<String>,
    /// Discard a restored program whose `Go` has not come after this many
    /// seconds (a lost source or link; tls:// and plaintext only).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    go_timeout: f64,
    /// Give a migration up when the source has sent nothing for this many
    /// seconds before its snapshot is in (a link cut without a reset, a
    /// source host gone; the source keeps its program meanwhile).
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    silence_limit: f64,
    /// Where binaries, snapshots and detached output go (default:
    /// /tmp/wanco-agent-UID).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// For programs behind `wanco gateway`: the certificate (valid for the
    /// program id) a restored program attaches to its gateway with, given
    /// to it as WANCO_GATEWAY_CERT (default: the agent's own environment).
    #[arg(long, value_name = "PEM", requires_all = ["gateway_key", "gateway_ca"])]
    gateway_cert: Option<PathBuf>,
    /// Its private key (WANCO_GATEWAY_KEY).
    #[arg(long, value_name = "PEM", requires_all = ["gateway_cert", "gateway_ca"])]
    gateway_key: Option<PathBuf>,
    /// The CA of the gateway's certificate (WANCO_GATEWAY_CA).
    #[arg(long, value_name = "PEM", requires_all = ["gateway_cert", "gateway_key"])]
    gateway_ca: Option<PathBuf>,
}

#[derive(Clone)]
struct Config {
    go_timeout: f64,
    /// `--silence-limit`.
    silence_limit: Duration,
    /// WANCO_GATEWAY_* for restored programs (--gateway-cert/key/ca).
    gateway_env: Vec<(&'static str, PathBuf)>,
    isa: String,
    runner: Vec<String>,
    work: PathBuf,
}

fn host_isa() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        "x86_64"
    }
}

fn log(msg: &str) {
    // Never a panic: after a detach the agent's stderr (ssh's) may be gone.
    // One write per line: stderr is unbuffered, so `writeln!` would make three, and over
    // ssh another process's line could land between them.
    let _ = std::io::stderr().write_all(format!("wanco agent: {msg}\n").as_bytes());
}

pub fn run(o: Opts) -> Result<i32> {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let work = o.work_dir.clone().unwrap_or_else(|| PathBuf::from(format!("/tmp/wanco-agent-{uid}")));
    std::fs::create_dir_all(work.join("bin")).with_context(|| format!("cannot create the work directory {}", work.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700));
    }
    let runner: Vec<String> = o.runner.as_deref().unwrap_or("").split_whitespace().map(String::from).collect();
    let mut gateway_env = Vec::new();
    for (var, file) in [("WANCO_GATEWAY_CERT", &o.gateway_cert), ("WANCO_GATEWAY_KEY", &o.gateway_key), ("WANCO_GATEWAY_CA", &o.gateway_ca)] {
        if let Some(f) = file {
            // Absolute: the restored program runs in another directory.
            let abs = std::fs::canonicalize(f).with_context(|| format!("--gateway-*: cannot read {}", f.display()))?;
            gateway_env.push((var, abs));
        }
    }
    let silence_limit = Duration::try_from_secs_f64(o.silence_limit.max(0.001)).context("--silence-limit: not a number of seconds")?;
    let cfg = Config { go_timeout: o.go_timeout, silence_limit, gateway_env, isa: o.isa.clone().unwrap_or_else(|| host_isa().into()), runner, work };
    if o.stdio {
        // The protocol owns stdout; nothing else may write there.
        // Unbuffered (a `File` of fd 0, not `Stdin`), so that post-copy can
        // poll it for page requests between the pages it forwards.
        use std::os::fd::AsFd;
        let input = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned().context("standard input")?);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&input);
        let conn = Conn::from_pair_polled(input, fd, std::io::stdout());
        return Ok(match session(conn, &cfg) {
            Ok(()) => 0,
            Err(e) => {
                log(&format!("{e:#}"));
                1
            }
        });
    }
    let Some(addr) = &o.listen else { bail!("wanco agent needs --stdio or --listen ADDR") };
    let files = o.tls.server_files("--listen")?;
    let server = TlsServer::bind(addr, files.as_ref())?;
    log(&format!(
        "listening on {} ({}), restoring {} programs",
        server.local_addr()?,
        if files.is_some() { "mutual TLS" } else { "plaintext: --insecure" },
        cfg.isa
    ));
    loop {
        match server.accept() {
            Ok((conn, peer)) => {
                log(&format!("connection from {peer}"));
                let cfg = cfg.clone();
                let h = std::thread::spawn(move || {
                    if let Err(e) = session(conn, &cfg) {
                        log(&format!("migration from {peer} failed: {e:#}"));
                    }
                });
                if o.once {
                    let _ = h.join();
                    return Ok(0);
                }
            }
            Err(e) => log(&format!("{e}")),
        }
    }
}

/// Fault injection for the migration tests (`tests/tests/migrate.rs`):
/// `WANCO_AGENT_TEST_KILL_AT=PHASE` makes the agent kill itself with
/// `SIGKILL` at that phase (`precopy`: when the first pre-copy memory round
/// arrives; `transfer`: when the first snapshot piece arrives;
/// `restored`: once the program waits at the gate, before saying so;
/// `go`: after `Go` arrived, before the gate opens; `postcopy`: when the
/// first post-copy page arrives; `allin`: once the runtime has every page,
/// before saying so; `release`: when `Release` arrived, before the program
/// is released) — what a crash or a
/// power cut of the destination does there.
fn test_kill(phase: &str) {
    if std::env::var("WANCO_AGENT_TEST_KILL_AT").is_ok_and(|p| p == phase) {
        log(&format!("WANCO_AGENT_TEST_KILL_AT={phase}: killing myself"));
        // SAFETY: kill(2) on this process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    // `WANCO_AGENT_TEST_PAUSE_AT=PHASE`: say so and sleep 3 s there (the
    // test cuts the link meanwhile).
    if std::env::var("WANCO_AGENT_TEST_PAUSE_AT").is_ok_and(|p| p == phase) {
        log(&format!("WANCO_AGENT_TEST_PAUSE_AT={phase}: pausing"));
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// What the output readers and the child's waiter report.
enum Event {
    Out(Stream, Vec<u8>),
    Eof,
}

/// Why the restored program ended before it ran (it refused the snapshot
/// or crashed): its exit code and what it wrote to stderr.
fn restore_failure(child: &mut std::process::Child, rx: &std::sync::mpsc::Receiver<Event>) -> String {
    let status = child.wait().ok();
    let mut err = Vec::new();
    for ev in rx.iter() {
        if let Event::Out(Stream::Stderr, d) = ev {
            err.extend_from_slice(&d);
        }
    }
    let code = status.map(exit_code).unwrap_or(-1);
    let text = String::from_utf8_lossy(&err).trim().to_string();
    format!("the restore failed (exit {code}): {text}")
}

fn refuse(conn: &mut Conn, phase: &str, reason: String) -> Result<()> {
    let _ = conn.send(&Message::Refused { phase: phase.into(), reason: reason.clone() });
    bail!("refused ({phase}): {reason}")
}

fn session(mut conn: Conn, cfg: &Config) -> Result<()> {
    // Until the snapshot is in, the source sends all the time (pages,
    // rounds, files): a silence longer than `--silence-limit` is a link cut
    // without a reset or a source host gone. The source keeps its program
    // until the destination confirms, so giving up here loses nothing.
    let _ = conn.set_read_timeout(Some(cfg.silence_limit));
    // 1. Hello.
    let hello = match conn.recv()? {
        Message::Hello(h) => h,
        m => bail!("expected Hello, got {}", m.name()),
    };
    conn.send(&Message::Hello(Hello::new(&cfg.isa, wanco_state::snapshot::FORMAT_VERSION)))?;
    if hello.protocol != PROTOCOL_VERSION {
        return refuse(&mut conn, "hello", format!("the source speaks migration protocol {}, this agent {PROTOCOL_VERSION}", hello.protocol));
    }
    // 2. Prepare.
    let prep = match conn.recv()? {
        Message::Prepare(p) => p,
        Message::Abort { reason } => bail!("the source aborted: {reason}"),
        m => bail!("expected Prepare, got {}", m.name()),
    };
    if !["stop-and-copy", "precopy", "postcopy"].contains(&prep.mode.as_str()) {
        return refuse(&mut conn, "prepare", format!("mode `{}` is not supported by this agent (stop-and-copy, precopy, postcopy)", prep.mode));
    }
    let postcopy = prep.mode == "postcopy";
    if postcopy && !conn.can_wait() {
        return refuse(&mut conn, "prepare", "post-copy needs a connection this agent can poll (a socket or a pipe)".into());
    }
    let (bin, from) = match binary(&prep, cfg) {
        Ok(b) => b,
        Err(e) => return refuse(&mut conn, "prepare", format!("{e:#}")),
    };
    for (guest, dir) in &prep.dir_map {
        if prep.sync_dirs && !Path::new(dir).exists() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                return refuse(&mut conn, "prepare", format!("--sync-dirs: cannot create `{dir}` for {guest}: {e}"));
            }
        }
        if !Path::new(dir).is_dir() {
            return refuse(&mut conn, "prepare", format!("--dir-map {guest}={dir}: `{dir}` is not a directory at the destination"));
        }
    }
    let run = tempfile::Builder::new().prefix("run-").tempdir_in(&cfg.work).context("cannot make a run directory")?;
    conn.send(&Message::Prepared { binary_from: from.into() })?;
    // 3. Transfer.
    let snap = run.path().join("snapshot.wsnap");
    let mut file = std::fs::File::create(&snap).with_context(|| format!("cannot write {}", snap.display()))?;
    let mut expect = 0u64;
    // Pre-copy: the memory received in rounds while the program runs,
    // written page by page into a memory image as it comes (not held in
    // RAM): after the stop only the final snapshot is left to write, and
    // the restore maps the image (`--memory-image`).
    let image_path = run.path().join("memory.img");
    // Post-copy: the page server's socket (the runtime's end is its fd 5).
    let pages = match postcopy {
        true => Some(std::os::unix::net::UnixStream::pair().context("socketpair")?),
        false => None,
    };
    // The restoring process is started before its snapshot is in and waits
    // for it (`--await-snapshot`), so its start is not part of the
    // downtime: now, or in pre-copy with the first memory round (it needs
    // the memory image).
    let mut prestarted: Option<Prestarted> = None;
    if prep.mode != "precopy" {
        match spawn_restore(cfg, &bin, &snap, &prep, None, &image_path, pages.as_ref().map(|(_, theirs)| theirs), true) {
            Ok(c) => prestarted = Some(Prestarted(Some(c))),
            Err(e) => return refuse(&mut conn, "prepare", e),
        }
    }
    let mut image: Option<wanco_state::image::ImageWriter> = None;
    // The image's file, kept to hand to the restore (`None` while none).
    let mut image_file: Option<ImageFile> = None;
    let mut rounds = 0u32;
    // When the final snapshot's first and last pieces arrived.
    let mut t_first: Option<Instant> = None;
    // The final snapshot's format version (3: incremental, over the rounds).
    let mut final_version: Option<u32> = None;
    // Post-copy: the pages the memory holds data in (they come later).
    let mut page_map: Option<Vec<u32>> = None;
    loop {
        match conn.recv()? {
            Message::PageMap { pages } if postcopy => page_map = Some(pages),
            Message::MemoryRound { round, pages, id, parent } if prep.mode == "precopy" => {
                test_kill("precopy");
                let id32 = |b: Option<serde_bytes::ByteBuf>| -> Option<[u8; 32]> { b.and_then(|b| <[u8; 32]>::try_from(&b[..]).ok()) };
                let Some(id) = id32(id) else {
                    return refuse(&mut conn, "precopy", format!("memory round {round} has no snapshot id"));
                };
                if image.is_none() {
                    let created = ImageFile::create(&image_path).and_then(|f| Ok((f.file.try_clone()?, f)));
                    match created {
                        Ok((w, f)) => {
                            image = Some(wanco_state::image::ImageWriter::new(w, module_hash(&prep.module_hash)));
                            match spawn_restore(cfg, &bin, &snap, &prep, Some(&f), &image_path, None, true) {
                                Ok(c) => prestarted = Some(Prestarted(Some(c))),
                                Err(e) => return refuse(&mut conn, "precopy", e),
                            }
                            image_file = Some(f);
                        }
                        Err(e) => return refuse(&mut conn, "precopy", format!("cannot create the memory image {}: {e}", image_path.display())),
                    }
                }
                let img = image.as_mut().expect("created above");
                if round != rounds {
                    if let Err(e) = img.begin(id, id32(parent)) {
                        return refuse(&mut conn, "precopy", format!("memory round {round}: {e}"));
                    }
                    rounds = round;
                } else if img.last_id() != Some(id) {
                    return refuse(&mut conn, "precopy", format!("memory round {round} continues with another snapshot"));
                }
                for (page, lz4) in pages {
                    if let Err(e) = img.apply(page, &lz4) {
                        return refuse(&mut conn, "precopy", format!("memory round {round}: {e}"));
                    }
                }
            }
            Message::SnapshotChunk { offset, data, last } => {
                test_kill("transfer");
                t_first.get_or_insert_with(Instant::now);
                if offset != expect {
                    return refuse(&mut conn, "transfer", format!("snapshot piece at offset {offset}, expected {expect}"));
                }
                if offset == 0 && data.len() >= 12 {
                    final_version = Some(u32::from_le_bytes([data[8], data[9], data[10], data[11]]));
                }
                if let Err(e) = file.write_all(&data) {
                    return refuse(&mut conn, "transfer", format!("cannot write the snapshot to {}: {e}", snap.display()));
                }
                expect += data.len() as u64;
                if last {
                    break;
                }
            }
            Message::FileList { dir, files } if prep.sync_dirs => {
                if !prep.dir_map.iter().any(|(_, d)| *d == dir) {
                    return refuse(&mut conn, "sync", format!("`{dir}` is not a directory of this migration's --dir-map"));
                }
                let paths = match wanted(Path::new(&dir), &files) {
                    Ok(p) => p,
                    Err(e) => return refuse(&mut conn, "sync", format!("{e:#}")),
                };
                conn.send(&Message::FileWants { paths })?;
            }
            Message::FileChunk { dir, path, offset, data, last, mtime_ns, mode } if prep.sync_dirs => {
                if !prep.dir_map.iter().any(|(_, d)| *d == dir) {
                    return refuse(&mut conn, "sync", format!("`{dir}` is not a directory of this migration's --dir-map"));
                }
                if let Err(e) = write_piece(Path::new(&dir), &path, offset, &data, last.then_some((mtime_ns, mode))) {
                    return refuse(&mut conn, "sync", format!("{e:#}"));
                }
            }
            Message::Abort { reason } => bail!("the source aborted: {reason}"),
            m => bail!("expected SnapshotChunk, got {}", m.name()),
        }
    }
    drop(file);
    let _ = conn.set_read_timeout(None);
    let t_last = Instant::now();
    // The final snapshot names the last round as its parent: the restore
    // lays its pages over the image (and refuses an image of another
    // snapshot). Nothing here reads the heap.
    let incremental = final_version == Some(wanco_state::snapshot::INCREMENTAL_VERSION);
    if image.is_some() && !incremental {
        // A source without write tracking sends a whole final snapshot:
        // it needs no image.
        image = None;
        image_file = None;
        let _ = std::fs::remove_file(&image_path);
    }
    let image = match (image.map(|w| w.finish()), image_file.take()) {
        (None, _) | (_, None) => None,
        (Some(Ok(h)), Some(f)) => {
            test_image(&f.file, h);
            log(&format!("the memory image ({}) covers {} pages; the restore maps it", f.describe(&image_path), h.pages));
            Some(f)
        }
        (Some(Err(e)), _) => return refuse(&mut conn, "transfer", format!("the memory image {}: {e}", image_path.display())),
    };
    let image_used = image.is_some();
    if image.is_none() && !postcopy {
        // A full snapshot, kept should the source be lost after the move.
        // (Not a post-copy's: it holds no memory, and the source stays
        // until every page is in; its fsync cost tens of ms of downtime
        // on a busy disk.)
        // (Over an image there is nothing to keep it for: the image is in
        // the page cache only, and removed once the program runs.)
        let synced = std::fs::File::open(&snap).and_then(|f| f.sync_all());
        if let Err(e) = synced {
            return refuse(&mut conn, "transfer", format!("cannot write the snapshot to {}: {e}", snap.display()));
        }
    }
    if postcopy && page_map.is_none() {
        return refuse(&mut conn, "transfer", "a post-copy snapshot came without its PageMap".into());
    }
    // 4. Restore up to the gate.
    let t0 = Instant::now();
    // A pre-copy's process was started for a memory image (dropped, hence
    // killed, if the final snapshot came whole after all).
    let prestarted = prestarted.take().filter(|_| prep.mode != "precopy" || image.is_some());
    let started = if prestarted.is_some() { "started before the snapshot" } else { "started after the snapshot" };
    let spawned = match prestarted {
        // It reads the snapshot once told.
        Some(p) => p.start(),
        // A pre-copy's whole final snapshot after all (no image): start one now.
        None => spawn_restore(cfg, &bin, &snap, &prep, image.as_ref(), &image_path, pages.as_ref().map(|(_, theirs)| theirs), false),
    };
    let (mut child, gate_parent) = match spawned {
        Ok(c) => c,
        Err(e) => return refuse(&mut conn, "restore", e),
    };
    let memfd_image = image.as_ref().is_some_and(|i| i.memfd);
    // The program has the image now (a memfd lives as long as it does).
    drop(image);
    let (tx, rx) = mpsc::channel::<Event>();
    for (stream, pipe) in [
        (Stream::Stdout, Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>),
        (Stream::Stderr, Box::new(child.stderr.take().expect("piped"))),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Event::Out(stream, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = tx.send(Event::Eof);
        });
    }
    drop(tx);
    if let (Some((ours, theirs)), Some(map)) = (pages, page_map) {
        drop(theirs);
        let detach = postcopy_phase(&mut conn, &mut child, gate_parent, ours, &map, &rx, cfg, t0)?;
        return relay(conn, child, rx, run, detach, true);
    }
    let mut gate = gate_parent;
    let mut b = [0u8; 1];
    let ready = loop {
        match gate.read(&mut b) {
            Ok(1) => break b[0] == b'R',
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => break false,
        }
    };
    if !ready {
        // The restore refused the snapshot (or crashed): say why.
        return refuse(&mut conn, "restore", restore_failure(&mut child, &rx));
    }
    test_kill("restored");
    let t_ready = Instant::now();
    conn.send(&Message::Restored { restore_us: t0.elapsed().as_micros() as u64 })?;
    // 5. Go, or discard.
    let _ = conn.set_read_timeout(Some(Duration::from_secs_f64(cfg.go_timeout.max(0.001))));
    let go = conn.recv();
    let _ = conn.set_read_timeout(None);
    let detach = match go {
        Ok(Message::Go) => false,
        Ok(Message::Detach) => true,
        other => {
            // Abort, a lost connection, or nonsense: the program never ran.
            let _ = child.kill();
            let _ = child.wait();
            return match other {
                Ok(Message::Abort { reason }) => bail!("the source aborted: {reason}"),
                Ok(m) => bail!("expected Go, got {}", m.name()),
                Err(e) => Err(e).context("lost the source before Go; the restored program was discarded"),
            };
        }
    };
    test_kill("go");
    if gate.write_all(b"G").is_err() {
        let status = child.wait().ok();
        return refuse(&mut conn, "go", format!("the restored program ended before it ran (exit {})", status.map(exit_code).unwrap_or(-1)));
    }
    let pid = child.id();
    // The runtime says when its restored code resumed (and closes the gate).
    let (resumed_at_ns, used) = resumed_at(&mut gate);
    let memory = match (image_used, used) {
        (true, Some(how)) => format!("image-{how}"),
        (true, None) => "image".to_string(),
        (false, _) => "snapshot".to_string(),
    };
    let t_run = Instant::now();
    let us = |a: Instant, b: Instant| b.saturating_duration_since(a).as_micros();
    log(&format!(
        "the program runs as pid {pid} ({started}; memory: {memory}; snapshot arrival {} us, image and snapshot closed {} us, restore to the gate {} us, Go and resume {} us)",
        t_first.map_or(0, |t| us(t, t_last)),
        us(t_last, t0),
        us(t0, t_ready),
        us(t_ready, t_run)
    ));
    // The image stays mapped by the program; its name is not needed.
    if image_used && !memfd_image {
        let _ = std::fs::remove_file(&image_path);
    }
    // From here on the program runs here, whatever happens to the connection.
    let connected = conn.send(&Message::Running { pid, resumed_at_ns, memory: Some(memory) }).is_ok();
    relay(conn, child, rx, run, detach, connected)
}

/// Start the program `bin` restoring `snap` (through `cfg.runner` if any),
/// gated on the returned socket (its fd 3): the memory image as fd 4 (a
/// memfd) or by path, post-copy's page server `page_fd` as fd 5. With
/// `await_snapshot` it starts before the snapshot is complete and waits for
/// `S` on the gate before reading it (`--await-snapshot`).
#[allow(clippy::too_many_arguments)]
fn spawn_restore(
    cfg: &Config,
    bin: &Path,
    snap: &Path,
    prep: &Prepare,
    image: Option<&ImageFile>,
    image_path: &Path,
    page_fd: Option<&std::os::unix::net::UnixStream>,
    await_snapshot: bool,
) -> std::result::Result<(std::process::Child, std::os::unix::net::UnixStream), String> {
    let (gate_parent, gate_child) = std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let mut cmd = match cfg.runner.split_first() {
        Some((prog, args)) => {
            let mut c = Command::new(prog);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("--restore").arg(snap).arg("--control").arg("--gate-fd").arg("3");
    if await_snapshot {
        cmd.arg("--await-snapshot");
    }
    if let Some(img) = image {
        match img.memfd {
            // Inherited as fd 4 (below).
            true => cmd.arg("--memory-image").arg("/proc/self/fd/4"),
            false => cmd.arg("--memory-image").arg(image_path),
        };
    }
    for (guest, dir) in &prep.dir_map {
        cmd.arg("--restore-dir").arg(format!("{guest}={dir}"));
    }
    if page_fd.is_some() {
        // The memory comes through fd 5 while the program runs.
        cmd.arg("--page-server-fd").arg("5");
    } else {
        // The whole memory in place and the checksum compared before the gate opens.
        cmd.env("WANCO_LAZY_RESTORE", "0");
    }
    // A program behind a gateway attaches to it during the restore.
    cmd.envs(cfg.gateway_env.iter().map(|(k, v)| (*k, v)));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    {
        use std::os::fd::AsRawFd;
        let fd = gate_child.as_raw_fd();
        let memfd = image.filter(|i| i.memfd).map(|i| i.file.as_raw_fd());
        let page_fd = page_fd.map(|theirs| theirs.as_raw_fd());
        // SAFETY: only async-signal-safe calls (fcntl, dup2, setsid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way of 3 and 4 first, then into place.
                let high = |f: libc::c_int| libc::fcntl(f, libc::F_DUPFD_CLOEXEC, 10);
                let g = high(fd);
                let m = memfd.map(high);
                let pf = page_fd.map(high);
                if g == -1 || m == Some(-1) || pf == Some(-1) || libc::dup2(g, 3) == -1 || m.is_some_and(|m| libc::dup2(m, 4) == -1) {
                    return Err(std::io::Error::last_os_error());
                }
                if pf.is_some_and(|f| libc::dup2(f, 5) == -1) {
                    return Err(std::io::Error::last_os_error());
                }
                // Its own session: it outlives the agent's ssh session if detached.
                libc::setsid();
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()))?;
    Ok((child, gate_parent))
}

/// A program started during the pre-copy rounds (`--await-snapshot`),
/// before its snapshot is complete, and its gate: killed and reaped if the
/// migration ends before it is told to restore.
struct Prestarted(Option<(std::process::Child, std::os::unix::net::UnixStream)>);

impl Prestarted {
    /// Tell it the snapshot is complete (`S`): from here on it is the
    /// restore's child, no longer killed on drop.
    fn start(mut self) -> std::result::Result<(std::process::Child, std::os::unix::net::UnixStream), String> {
        let (child, gate) = self.0.as_mut().expect("held until started or dropped");
        if let Err(e) = gate.write_all(b"S") {
            let mut err = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut err);
            }
            let code = child.wait().map(exit_code).unwrap_or(-1);
            return Err(format!("the program started for the restore is gone ({e}; exit {code}): {}", err.trim()));
        }
        Ok(self.0.take().expect("held"))
    }
}

impl Drop for Prestarted {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Phase 6: relay the program's output to the source (or, detached or once the
/// source is gone, into files of the run directory) until it exits.
fn relay(mut conn: Conn, mut child: std::process::Child, rx: mpsc::Receiver<Event>, run: tempfile::TempDir, detach: bool, mut connected: bool) -> Result<()> {
    let pid = child.id();
    let out_path = run.path().join("stdout.log");
    let err_path = run.path().join("stderr.log");
    let mut logs: Option<(std::fs::File, std::fs::File)> = None;
    let run_dir = run.keep();
    if detach && connected {
        let _ = conn.send(&Message::Detached { stdout: out_path.display().to_string(), stderr: err_path.display().to_string() });
        connected = false;
    }
    // 6. Relay.
    let mut eofs = 0;
    for ev in rx.iter() {
        match ev {
            Event::Eof => {
                eofs += 1;
                if eofs == 2 {
                    break;
                }
            }
            Event::Out(stream, data) => {
                if connected {
                    if conn.send(&Message::Output { stream, data: data.clone() }).is_ok() {
                        continue;
                    }
                    connected = false;
                    log(&format!("the source is gone; the program's output goes to {}", run_dir.display()));
                }
                if logs.is_none() {
                    logs = Some((std::fs::File::create(&out_path)?, std::fs::File::create(&err_path)?));
                }
                let (o, e) = logs.as_mut().expect("opened");
                let _ = match stream {
                    Stream::Stdout => o.write_all(&data),
                    Stream::Stderr => e.write_all(&data),
                };
            }
        }
    }
    let code = child.wait().map(exit_code).unwrap_or(-1);
    log(&format!("the program (pid {pid}) exited with {code}"));
    if connected {
        let _ = conn.send(&Message::Exited { code });
    } else {
        let _ = std::fs::write(run_dir.join("exit-code"), format!("{code}\n"));
    }
    if connected {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    Ok(())
}

/// The runtime's `T<ns>[ image=HOW]` line on the gate after `G`: when the
/// restored code resumed (CLOCK_REALTIME) and how the memory image was
/// used. `None`s if the runtime closed the gate without it (an older
/// runtime) or took longer than 10 s.
fn resumed_at(gate: &mut std::os::unix::net::UnixStream) -> (Option<u64>, Option<String>) {
    let _ = gate.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = Vec::new();
    let mut b = [0u8; 64];
    while !line.ends_with(b"\n") && line.len() < 256 {
        match gate.read(&mut b) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&line);
    let Some(rest) = text.trim().strip_prefix('T') else { return (None, None) };
    let mut words = rest.split_whitespace();
    let at = words.next().and_then(|w| w.parse().ok());
    let how = words.find_map(|w| w.strip_prefix("image=")).map(String::from);
    (at, how)
}

/// The module hash of `Prepare` (64 hex digits, checked by [`binary`]) as bytes.
fn module_hash(hex: &str) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (i, b) in h.iter_mut().enumerate() {
        *b = hex.get(2 * i..2 * i + 2).and_then(|x| u8::from_str_radix(x, 16).ok()).unwrap_or(0);
    }
    h
}

/// Fault injection for the migration tests: `WANCO_AGENT_TEST_IMAGE=wrong`
/// rewrites the finished memory image's header to name another snapshot
/// (a well-formed image of the wrong memory), `=damaged` flips a byte of
/// the header; the restore must refuse either.
fn test_image(f: &std::fs::File, h: wanco_state::image::ImageHeader) {
    use std::os::unix::fs::FileExt;
    let how = std::env::var("WANCO_AGENT_TEST_IMAGE").unwrap_or_default();
    let bytes = match how.as_str() {
        "wrong" => wanco_state::image::ImageHeader { snapshot: [0xee; 32], ..h }.encode(),
        "damaged" => {
            let mut b = h.encode();
            b[20] ^= 0xff;
            b
        }
        _ => return,
    };
    log(&format!("WANCO_AGENT_TEST_IMAGE={how}: spoiling the memory image header"));
    let _ = f.write_all_at(&bytes, 0);
}

/// Where a memory image is built: a memfd (`memfd_create`: shared memory,
/// never written back to a disk — a file of 1 GiB written on disk made the
/// kernel throttle every writer meanwhile, the final snapshot's too, for
/// seconds of downtime) handed to the restore as its fd 4; where there is
/// no memfd, a file in the run directory.
struct ImageFile {
    file: std::fs::File,
    memfd: bool,
}

impl ImageFile {
    fn create(path: &Path) -> std::io::Result<ImageFile> {
        use std::os::fd::FromRawFd;
        // SAFETY: a system call with a constant name; the descriptor is ours.
        let fd = unsafe { libc::memfd_create(c"wanco-memory-image".as_ptr(), libc::MFD_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: `fd` is a new descriptor owned by nothing else.
            return Ok(ImageFile { file: unsafe { std::fs::File::from_raw_fd(fd) }, memfd: true });
        }
        let file = std::fs::File::options().read(true).write(true).create_new(true).open(path)?;
        Ok(ImageFile { file, memfd: false })
    }

    fn describe(&self, path: &Path) -> String {
        if self.memfd { "memfd".into() } else { path.display().to_string() }
    }
}

/// `rel` as a path under a synchronised directory: relative, no `..`.
fn under(dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
        bail!("`{rel}` is not a relative path inside the directory");
    }
    Ok(dir.join(p))
}

/// The files of `files` that `dir` lacks, or has with another size or
/// modification time.
fn wanted(dir: &Path, files: &[wanco_transport::FileEntry]) -> Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut want = Vec::new();
    for f in files {
        let same = match std::fs::symlink_metadata(under(dir, &f.path)?) {
            Ok(m) => m.is_file() && m.len() == f.size && m.mtime() * 1_000_000_000 + m.mtime_nsec() == f.mtime_ns,
            Err(_) => false,
        };
        if !same {
            want.push(f.path.clone());
        }
    }
    Ok(want)
}

/// Write one piece of a synchronised file; after the last, set its mode and time.
fn write_piece(dir: &Path, rel: &str, offset: u64, data: &[u8], done: Option<(i64, u32)>) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let path = under(dir, rel)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let file = if offset == 0 {
        std::fs::File::create(&path)
    } else {
        std::fs::OpenOptions::new().write(true).open(&path)
    }
    .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all_at(data, offset).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some((mtime_ns, mode)) = done {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
        let t = std::time::UNIX_EPOCH + Duration::from_nanos(mtime_ns.max(0) as u64);
        file.set_modified(t).with_context(|| format!("cannot set the time of {}", path.display()))?;
    }
    Ok(())
}

fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// The executable for this destination: sent along, cached, or compiled
/// from the module; checked to be of the module and ISA.
fn binary(prep: &Prepare, cfg: &Config) -> Result<(PathBuf, &'static str)> {
    if prep.module_hash.len() != 64 || !prep.module_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("bad module hash `{}`", prep.module_hash);
    }
    let cached = cfg.work.join("bin").join(format!("{}-{}", prep.module_hash, cfg.isa));
    let check = |data: Vec<u8>, what: &str| -> Result<()> {
        let b = wanco_translate::binary::Binary::read(data).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        if b.isa.name() != cfg.isa {
            bail!("{what} is for {}, this destination runs {} programs", b.isa.name(), cfg.isa);
        }
        if b.meta.module != prep.module_hash {
            bail!(
                "{what} was compiled from module sha256 {}…, the program is {}…",
                &b.meta.module[..16.min(b.meta.module.len())],
                &prep.module_hash[..16]
            );
        }
        Ok(())
    };
    let install = |data: &[u8]| -> Result<()> {
        // A temporary file of its own: migrations may run side by side.
        let mut tmp = tempfile::NamedTempFile::new_in(cfg.work.join("bin"))?;
        tmp.write_all(data).with_context(|| format!("cannot write {}", tmp.path().display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
        tmp.persist(&cached).map_err(|e| e.error)?;
        Ok(())
    };
    if let Some(data) = &prep.binary {
        check(data.clone(), "the binary sent")?;
        install(data)?;
        return Ok((cached, "sent"));
    }
    if let Ok(data) = std::fs::read(&cached) {
        if check(data, "the cached binary").is_ok() {
            return Ok((cached, "cache"));
        }
    }
    if let Some(module) = &prep.module {
        let hash = hex(&sha256(module));
        if hash != prep.module_hash {
            bail!("the module sent has sha256 {}…, the program is {}…", &hash[..16], &prep.module_hash[..16]);
        }
        let dir = tempfile::tempdir_in(&cfg.work)?;
        let wasm = dir.path().join("module.wasm");
        let out = dir.path().join("program");
        std::fs::write(&wasm, module)?;
        let me = std::env::current_exe().context("cannot find the wanco executable to compile with")?;
        let o = Command::new(me).arg("compile").arg(&wasm).arg("--target").arg(&cfg.isa).arg("-o").arg(&out).output()?;
        if !o.status.success() {
            bail!("compiling the module for {} failed: {}", cfg.isa, String::from_utf8_lossy(&o.stderr).trim());
        }
        let data = std::fs::read(&out)?;
        check(data.clone(), "the compiled binary")?;
        install(&data)?;
        return Ok((cached, "compiled"));
    }
    bail!("no binary of module {}… for {} here: send one (--dest-binary) or the module (--module)", &prep.module_hash[..16], cfg.isa)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Post-copy, from the restore's start to the release (see
/// `wanco_rt::cr::postcopy` for the page server's socket): forward the
/// pages the source pushes or answers (`PageData`) to the runtime and its
/// requests (`PageRequest`) to the source, say `Restored` at the gate,
/// open it on `Go` and say `Running`, say `AllPagesIn` once the runtime
/// has every page, and on `Release` release the program (its host calls
/// wait for that) and say `Released`. Until then anything wrong — the
/// source or the link lost, silent for `--go-timeout`, `Abort`, the
/// program ended — kills the program, which has made no host call: the
/// source goes on. Returns whether the source asked to detach.
#[allow(clippy::too_many_arguments)]
fn postcopy_phase(
    conn: &mut Conn,
    child: &mut std::process::Child,
    mut gate: std::os::unix::net::UnixStream,
    mut sock: std::os::unix::net::UnixStream,
    map: &[u32],
    rx: &mpsc::Receiver<Event>,
    cfg: &Config,
    t0: Instant,
) -> Result<bool> {
    use std::os::fd::AsRawFd;
    let discard = |child: &mut std::process::Child, why: String| -> anyhow::Error {
        let _ = child.kill();
        let _ = child.wait();
        anyhow::anyhow!("{why}; the restored program was discarded (it had made no host call)")
    };
    // The page map first (the runtime reads it while it restores).
    let mut head = b"WPM1".to_vec();
    head.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for p in map {
        head.extend_from_slice(&p.to_le_bytes());
    }
    if let Err(e) = sock.write_all(&head) {
        return Err(discard(child, format!("cannot hand the page map to the restore: {e}")));
    }
    let (mut ready, mut went, mut resumed, mut all_in, mut detach) = (false, false, false, false, false);
    let mut received = 0u32;
    let mut req: Vec<u8> = Vec::new();
    let mut last_heard = Instant::now();
    let silence = Duration::from_secs_f64(cfg.go_timeout.max(0.001));
    let pid = child.id();
    loop {
        // The runtime's side: the gate (until the resume time came) and the page socket.
        let mut p = [
            libc::pollfd { fd: if resumed { -1 } else { gate.as_raw_fd() }, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two pollfds, their count passed.
        unsafe { libc::poll(p.as_mut_ptr(), 2, 0) };
        if p[0].revents != 0 {
            if !ready {
                let mut b = [0u8; 1];
                let ok = matches!(gate.read(&mut b), Ok(1)) && b[0] == b'R';
                if !ok {
                    refuse(conn, "restore", restore_failure(child, rx))?;
                }
                ready = true;
                test_kill("restored");
                conn.send(&Message::Restored { restore_us: t0.elapsed().as_micros() as u64 }).map_err(|e| discard(child, format!("{e}")))?;
            } else if went {
                // `image=postcopy-lazy` or `image=postcopy-eager` (no userfaultfd).
                let (resumed_at_ns, how) = resumed_at(&mut gate);
                resumed = true;
                let how = how.unwrap_or_else(|| "postcopy".into());
                conn.send(&Message::Running { pid, resumed_at_ns, memory: Some(how) }).map_err(|e| discard(child, format!("{e}")))?;
            }
        }
        if p[1].revents != 0 {
            let mut b = [0u8; 4096];
            match sock.read(&mut b) {
                Ok(0) | Err(_) => {
                    let status = child.wait().ok();
                    return Err(discard(child, format!("the restored program ended while its pages came (exit {})", status.map(exit_code).unwrap_or(-1))));
                }
                Ok(n) => req.extend_from_slice(&b[..n]),
            }
            let mut used = 0;
            while req.len() - used >= 4 {
                let v = u32::from_le_bytes(req[used..used + 4].try_into().expect("4 bytes"));
                if v != u32::MAX {
                    used += 4;
                    conn.send(&Message::PageRequest { page: v }).map_err(|e| discard(child, format!("lost the source: {e}")))?;
                } else if req.len() - used >= 8 {
                    let on_demand = u32::from_le_bytes(req[used + 4..used + 8].try_into().expect("4 bytes"));
                    used += 8;
                    all_in = true;
                    test_kill("allin");
                    conn.send(&Message::AllPagesIn { on_demand, pages: received }).map_err(|e| discard(child, format!("lost the source: {e}")))?;
                } else {
                    break;
                }
            }
            req.drain(..used);
        }
        let m = match conn.try_recv(Duration::from_millis(1)) {
            Ok(Some(m)) => {
                last_heard = Instant::now();
                m
            }
            Ok(None) => {
                if last_heard.elapsed() > silence {
                    return Err(discard(child, format!("the source was silent for {:.0} s during post-copy", silence.as_secs_f64())));
                }
                continue;
            }
            Err(e) => return Err(discard(child, format!("lost the source during post-copy: {e}"))),
        };
        match m {
            Message::PageData { page, data } => {
                if received == 0 {
                    test_kill("postcopy");
                }
                received += 1;
                let mut frame = Vec::with_capacity(8 + data.len());
                frame.extend_from_slice(&page.to_le_bytes());
                frame.extend_from_slice(&(data.len() as u32).to_le_bytes());
                frame.extend_from_slice(&data);
                if sock.write_all(&frame).is_err() {
                    let status = child.wait().ok();
                    return Err(discard(child, format!("the restored program ended while its pages came (exit {})", status.map(exit_code).unwrap_or(-1))));
                }
            }
            Message::Go | Message::Detach if ready && !went => {
                detach = matches!(m, Message::Detach);
                test_kill("go");
                if gate.write_all(b"G").is_err() {
                    let status = child.wait().ok();
                    refuse(conn, "go", format!("the restored program ended before it ran (exit {})", status.map(exit_code).unwrap_or(-1)))?;
                }
                went = true;
            }
            Message::Release if all_in && resumed => {
                test_kill("release");
                let mut frame = u32::MAX.to_le_bytes().to_vec();
                frame.extend_from_slice(&0u32.to_le_bytes());
                if sock.write_all(&frame).is_err() {
                    let status = child.wait().ok();
                    refuse(conn, "release", format!("the restored program ended before its release (exit {})", status.map(exit_code).unwrap_or(-1)))?;
                }
                log(&format!("post-copy: {received} pages came, the program (pid {pid}) is released"));
                // From here on the program runs here, whatever happens to the connection.
                let _ = conn.send(&Message::Released);
                return Ok(detach);
            }
            Message::Abort { reason } => return Err(discard(child, format!("the source aborted: {reason}"))),
            m => return Err(discard(child, format!("unexpected {} from the source during post-copy", m.name()))),
        }
    }
}
