//! The control channel of a running program (`--control`): a Unix socket on
//! which `wanco migrate` (or anything else) asks for checkpoints without
//! ending the program.
//!
//! The program listens on `--control=PATH`, or with a bare `--control` on
//! [`default_path`] (`$XDG_RUNTIME_DIR/wanco/PID.sock`, or
//! `/tmp/wanco-UID/PID.sock` without `XDG_RUNTIME_DIR`; the directory is made
//! mode 0700). A thread of the runtime accepts one connection at a time and
//! reads requests, one text line each; every reply is one line:
//!
//! * `info` → `info isa=ISA hash=HEX pid=PID points=N preopens=G:H,…`: what
//!   the program is; each preopened directory as its guest path and host
//!   path, both hex-encoded bytes.
//! * `checkpoint PATH` → `ok points=N bytes=B` once a snapshot of the next
//!   migration point is in `PATH`; the program goes on (CRIU's
//!   `--leave-running`). `error MESSAGE` if it could not be written.
//!   The reply goes on with `id=HEX parent=HEX|none pages=P`: the
//!   snapshot's id (its SHA-256 checksum, what an incremental snapshot
//!   names as its parent), its parent's, and how many memory pages it
//!   stores, and `at_ns=T`: when the program stopped at the migration point
//!   (`CLOCK_REALTIME`, nanoseconds). From a `checkpoint` (or `stop`) on, writes to linear memory
//!   are tracked (`super::dirty`) where the kernel can.
//! * `checkpoint-incremental PATH` → as `checkpoint`, but an incremental
//!   snapshot (format version 3): only the pages written since this
//!   process's last snapshot, which it names as `parent=`. Without a
//!   parent or without tracking it is a full one (`parent=none`).
//! * `stop-postcopy PATH` → as `stop`, but the snapshot stores no memory
//!   page (only the memory's size) and the reply goes on with
//!   `memory=ADDR:LEN` (hex: where the linear memory is in this process,
//!   for `wanco migrate` to read the pages from `/proc/PID/mem` while the
//!   program is stopped) and `touched=RANGES` (`FIRST-LAST,…` of the Wasm
//!   pages ever touched, `-` for none, `all` if unknown: the others are
//!   zero). Kept after a lost connection past `hold`, the snapshot is
//!   rewritten as a full one first.
//! * `stop PATH` (or `stop-incremental PATH`) → `stopped points=N bytes=B …`: the program stopped at its next
//!   migration point and wrote the snapshot to `PATH`; it stays stopped, the
//!   Wasm thread waiting in the slow path, until the same connection says:
//!   * `abort` → `resumed`: it goes on from where it stopped;
//!   * `commit` → `committed`: the process exits 0 (the program now runs
//!     elsewhere);
//!   * `hold` → `held`: the point of no return of a migration (the
//!     destination may be told to run). From then on a lost connection ends
//!     the process with exit 3 and the snapshot kept in `PATH`, instead of
//!     resuming: never two running copies.
//!   * the connection closing without `hold` resumes the program (the
//!     migrating side is gone; the destination never runs without being
//!     told to).
//!
//! Requests are served at migration points, like `SIGUSR1`: within one batch
//! of points, or at the first point after a host call returns. A request
//! while the program is in the start function waits for `_start`; if the
//! program ends first, the connection closes without a reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;

/// What the Wasm thread is asked to do at its next migration point.
pub(crate) struct Request {
    /// Where to write the snapshot.
    pub path: PathBuf,
    /// Stop and wait for a decision (`stop`), or go on (`checkpoint`).
    pub stop: bool,
    /// Only what changed since the last snapshot.
    pub incremental: bool,
    /// The state without memory pages (`stop-postcopy`).
    pub postcopy: bool,
    /// The checkpoint's outcome or an error.
    pub done: mpsc::Sender<Result<Done, String>>,
    /// For `stop`: what to do next.
    pub decision: mpsc::Receiver<Decision>,
}

/// What a checkpoint wrote, for the reply.
pub(crate) struct Done {
    /// Migration points crossed.
    pub points: u64,
    /// Size of the snapshot file.
    pub bytes: u64,
    /// The snapshot's id.
    pub id: [u8; 32],
    /// Its parent's id if it is incremental.
    pub parent: Option<[u8; 32]>,
    /// Memory pages stored.
    pub pages: usize,
    /// When the program stopped at the migration point (`CLOCK_REALTIME`,
    /// nanoseconds since the Unix epoch).
    pub at_ns: u64,
    /// `stop-postcopy`: the linear memory's address and length, and the
    /// ranges of Wasm pages that were ever touched.
    pub memory_at: Option<(usize, usize, Option<Vec<bool>>)>,
}

impl Done {
    fn fields(&self) -> String {
        let hex = |h: &[u8; 32]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut f = format!(
            "points={} bytes={} id={} parent={} pages={} at_ns={}",
            self.points,
            self.bytes,
            hex(&self.id),
            self.parent.as_ref().map_or_else(|| "none".to_string(), hex),
            self.pages,
            self.at_ns
        );
        if let Some((addr, len, touched)) = &self.memory_at {
            f.push_str(&format!(" memory={addr:x}:{len:x} touched="));
            match touched {
                None => f.push_str("all"),
                Some(t) => {
                    // Ranges FIRST-LAST of touched Wasm pages, `-` for none.
                    let mut runs = Vec::new();
                    let mut p = 0;
                    while p < t.len() {
                        if t[p] {
                            let q = (p..t.len()).find(|&q| !t[q]).unwrap_or(t.len());
                            runs.push(format!("{p}-{}", q - 1));
                            p = q;
                        } else {
                            p += 1;
                        }
                    }
                    f.push_str(if runs.is_empty() { "-" } else { "" });
                    f.push_str(&runs.join(","));
                }
            }
        }
        f
    }
}

/// What a stopped program does next.
pub(crate) enum Decision {
    /// Go on from the migration point.
    Resume,
    /// End the process with this code and message on stderr.
    Exit(i32, String),
}

static PENDING: Mutex<Option<Request>> = Mutex::new(None);
/// `info`'s preopens (`GUEST:HOST,…`, hex), fixed for the run: read when
/// the channel starts, not from the WASI state, whose lock a host call
/// holds while it waits (a blocked read must not block `info`).
static PREOPENS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static SOCKET: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The socket path a bare `--control` uses for process `pid`.
pub fn default_path(pid: u32) -> PathBuf {
    default_dir().join(format!("{pid}.sock"))
}

/// The directory of [`default_path`].
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("wanco"),
        // SAFETY: getuid cannot fail.
        _ => PathBuf::from(format!("/tmp/wanco-{}", unsafe { libc::getuid() })),
    }
}

/// The request waiting for the next migration point, if any.
pub(crate) fn take() -> Option<Request> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner()).take()
}

extern "C" fn remove_socket() {
    if let Ok(g) = SOCKET.try_lock() {
        if let Some(p) = g.as_ref() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Listen on `path` (or [`default_path`]) and serve requests on a thread of
/// their own. The socket is removed when the process exits.
pub fn start(path: Option<PathBuf>) -> Result<PathBuf, String> {
    let path = match path {
        Some(p) => p,
        None => {
            let dir = default_dir();
            std::fs::create_dir_all(&dir).map_err(|e| format!("--control: cannot create {}: {e}", dir.display()))?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            default_path(std::process::id())
        }
    };
    // A socket left by a process that ended (or this PID's predecessor).
    if std::fs::symlink_metadata(&path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        let _ = std::fs::remove_file(&path);
    }
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let preopens = crate::wasi_host::WASI
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|w| w.state().preopens.iter().map(|p| format!("{}:{}", hex(&p.guest), hex(&p.host))).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let _ = PREOPENS.set(preopens);
    let listener = UnixListener::bind(&path).map_err(|e| format!("--control: cannot listen on {}: {e}", path.display()))?;
    *SOCKET.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.clone());
    // SAFETY: registering a plain function with atexit.
    unsafe { libc::atexit(remove_socket) };
    std::thread::Builder::new()
        .name("wanco-control".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = serve(conn);
            }
        })
        .map_err(|e| format!("--control: cannot start its thread: {e}"))?;
    Ok(path)
}

/// Serve one connection until it closes.
fn serve(conn: UnixStream) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut lines = BufReader::new(conn).lines();
    while let Some(line) = lines.next() {
        let line = line?;
        let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match cmd {
            "info" => {
                let (isa, hash) = super::points::identity();
                let preopens = PREOPENS.get().map(String::as_str).unwrap_or_default();
                writeln!(
                    out,
                    "info isa={isa} hash={hash} pid={} points={} preopens={preopens}",
                    std::process::id(),
                    super::points::points()
                )?;
            }
            "checkpoint" | "stop" | "checkpoint-incremental" | "stop-incremental" | "stop-postcopy" if !arg.is_empty() => {
                let stop = cmd.starts_with("stop");
                let incremental = cmd.ends_with("-incremental");
                let postcopy = cmd == "stop-postcopy";
                let (done_tx, done_rx) = mpsc::channel();
                let (dec_tx, dec_rx) = mpsc::channel();
                {
                    let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
                    if p.is_some() {
                        writeln!(out, "error another request is being served")?;
                        continue;
                    }
                    *p = Some(Request { path: PathBuf::from(arg), stop, incremental, postcopy, done: done_tx, decision: dec_rx });
                }
                super::points::request_checkpoint();
                // Closed without a reply if the program ends first; dropped
                // if the asking side goes away before the program reached a
                // migration point (it waits in a host call): nothing happens.
                let result = loop {
                    match done_rx.recv_timeout(std::time::Duration::from_millis(100)) {
                        Ok(r) => break r,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                        Err(mpsc::RecvTimeoutError::Timeout) if peer_gone(&out) => {
                            // Still pending (not taken by the program yet): withdrawn.
                            if PENDING.lock().unwrap_or_else(|e| e.into_inner()).take().is_some() {
                                super::points::withdraw_request();
                                return Ok(());
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                    }
                };
                match result {
                    Err(m) => {
                        writeln!(out, "error {}", m.replace('\n', " "))?;
                        continue;
                    }
                    Ok(done) if !stop => writeln!(out, "ok {}", done.fields())?,
                    Ok(done) => {
                        // A failed reply is a lost connection: resume.
                        let _ = writeln!(out, "stopped {}", done.fields());
                        let decision = decide(&mut lines, &mut out, arg);
                        let _ = dec_tx.send(decision);
                    }
                }
            }
            _ => writeln!(out, "error unknown request `{line}` (expected: info, checkpoint PATH, checkpoint-incremental PATH, stop PATH, stop-incremental PATH, stop-postcopy PATH)")?,
        }
    }
    Ok(())
}

/// Whether the other side of `conn` closed it (nothing more to read, ever).
/// Unread requests are left in place.
fn peer_gone(conn: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 1];
    // SAFETY: a non-blocking peek of at most one byte into a local buffer.
    let n = unsafe { libc::recv(conn.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n == 0
}

/// The decision for a stopped program, read from its connection.
fn decide(lines: &mut std::io::Lines<BufReader<UnixStream>>, out: &mut UnixStream, path: &str) -> Decision {
    let mut held = false;
    loop {
        let line = match lines.next() {
            Some(Ok(l)) => l,
            _ if held => {
                return Decision::Exit(
                    3,
                    format!(
                        "error: the migration's control connection was lost after its point of no return; this process stops here, its state is kept in {path} (continue it with `BIN --restore {path}` if the program does not run at the destination)"
                    ),
                )
            }
            _ => return Decision::Resume,
        };
        match line.trim() {
            "abort" => {
                let _ = writeln!(out, "resumed");
                return Decision::Resume;
            }
            "commit" => {
                let _ = writeln!(out, "committed");
                return Decision::Exit(0, "note: the program moved to another host (wanco migrate); this process ends".into());
            }
            "hold" => {
                held = true;
                let _ = writeln!(out, "held");
            }
            other => {
                let _ = writeln!(out, "error unknown decision `{other}` (expected: abort, commit, hold)");
            }
        }
    }
}
