//! Helpers shared by the end-to-end tests (`mod common;` in each): not every test uses every
//! helper.
#![allow(dead_code)]

pub mod net;
pub mod sock;

use std::path::{Path, PathBuf};

/// The workspace root (`tests/` is inside it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

/// An empty directory `GROUP/NAME` in the test target's temporary directory (what a
/// previous run left there is removed).
pub fn fresh_dir(group: &str, name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create work dir");
    d
}

/// Waits (30 s at most) until `log` (an agent's) says `pausing` — the agent's test hook
/// `WANCO_AGENT_TEST_PAUSE_AT` holds it at a chosen step — then runs `then`, on a thread of its
/// own.
pub fn when_paused(log: PathBuf, then: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("pausing") {
            assert!(std::time::Instant::now() < deadline, "the agent never paused ({})", log.display());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        then();
    })
}

/// `cmd`'s output, like `Command::output`, but killed and reported as a failure (with what
/// it printed so far) if it has not ended after `limit`: a test waits, never hangs.
pub fn output_within(cmd: &mut std::process::Command, limit: std::time::Duration) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            // Its own children may keep the pipes open: what was read so far is not waited for.
            std::thread::sleep(std::time::Duration::from_millis(200));
            let e = if err.is_finished() { String::from_utf8_lossy(&err.join().unwrap()).into_owned() } else { "(stderr still open)".into() };
            panic!("{cmd:?} did not end within {limit:?}; stderr:\n{e}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}
