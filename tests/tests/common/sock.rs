//! The socket servers of `tests/programs/sock/` compiled by `wanco compile`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `tests/programs/sock/wasm/NAME.wasm`.
pub fn module(workspace: &Path, name: &str) -> PathBuf {
    workspace.join("tests/programs/sock/wasm").join(format!("{name}.wasm"))
}

/// `NAME.wasm` compiled by `wanco` for `isa` into the test target's temporary directory; rebuilt
/// when the module, the compiler or the runtime library is newer than the binary.
pub fn compiled(workspace: &Path, wanco: &Path, name: &str, isa: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wanco-sock-bin");
    std::fs::create_dir_all(&dir).expect("bin dir");
    let out = dir.join(format!("{name}.{isa}"));
    let src = module(workspace, name);
    let triple = if isa == "x86_64" { "x86_64-unknown-linux-gnu" } else { "aarch64-unknown-linux-gnu" };
    let rt = workspace.join("target").join(triple).join("release/libwanco_rt.a");
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = m(&out).is_some_and(|o| [m(&src), m(wanco), m(&rt)].iter().all(|t| t.is_none_or(|t| o > t)));
    if !fresh {
        // Written under another name first: a test running alongside never sees half a binary.
        let tmp = dir.join(format!("{name}.{isa}.{}.tmp", std::process::id()));
        let st = Command::new(wanco).arg("compile").arg(&src).args(["--target", isa, "-o"]).arg(&tmp).status().expect("run wanco compile");
        assert!(st.success(), "wanco compile {} --target {isa} failed", src.display());
        std::fs::rename(&tmp, &out).expect("install the compiled binary");
    }
    out
}

/// What the clients did: requests answered, and the longest wait for an answer.
#[derive(Default)]
pub struct Stats {
    /// Requests answered.
    pub answered: AtomicU64,
    /// The longest wait for an answer, µs.
    pub longest_us: AtomicU64,
}

/// Client `id`: connects to `addr`, then sends sequence-numbered requests one after the other
/// until `stop`, checking each answer (a lost, repeated, reordered or wrong answer is an
/// error), then QUIT; the stream must then end cleanly. Returns the number of requests sent.
pub fn client(addr: &str, id: usize, stop: &AtomicBool, stats: &Stats) -> Result<u64, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("client {id}: connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut seq = 0u64;
    let mut ask = |s: &mut TcpStream, q: String, want: String| -> Result<(), String> {
        seq += 1;
        let t = Instant::now();
        s.write_all(format!("{seq} {q}\n").as_bytes()).map_err(|e| format!("client {id}: sending request {seq}: {e}"))?;
        let mut l = String::new();
        r.read_line(&mut l).map_err(|e| format!("client {id}: answer to request {seq} `{q}`: {e}"))?;
        let want = format!("{seq} {want}\n");
        if l != want {
            return Err(format!("client {id}: request {seq} `{q}` answered {l:?}, expected {want:?}"));
        }
        stats.answered.fetch_add(1, Ordering::Relaxed);
        stats.longest_us.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    };
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("c{id}k{}", k % 8);
        let v = format!("v{id}-{k}-{}", "x".repeat((k % 5) as usize * 40));
        ask(&mut s, format!("SET {key} {v}"), "OK".into())?;
        ask(&mut s, format!("GET {key}"), format!("VALUE {v}"))?;
        ask(&mut s, format!("ECHO {id} says {k}"), format!("{id} says {k}"))?;
        k += 1;
    }
    ask(&mut s, "QUIT".into(), "BYE".into())?;
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).map_err(|e| format!("client {id}: after BYE: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("client {id}: bytes after BYE: {:?}", String::from_utf8_lossy(&rest)));
    }
    s.shutdown(Shutdown::Both).ok();
    Ok(seq)
}

pub const CLIENTS: usize = 16;

/// Sets `stop` when dropped, so that the clients stop however the code that holds it ends: a
/// failed assertion inside `std::thread::scope` would otherwise wait forever for clients that
/// a working server keeps answering, turning the failure into a hang.
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits until the clients have had `n` more answers (at most `limit`).
pub fn wait_answers(stats: &Stats, n: u64, limit: Duration, what: &str) {
    let from = stats.answered.load(Ordering::Relaxed);
    let t = Instant::now();
    while stats.answered.load(Ordering::Relaxed) < from + n {
        assert!(t.elapsed() < limit, "{what}: only {} answers in {limit:?}", stats.answered.load(Ordering::Relaxed) - from);
        std::thread::sleep(Duration::from_millis(10));
    }
}

