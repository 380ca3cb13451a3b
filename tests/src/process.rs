//! Running a child process with stdin, captured output and a time limit.

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Killed by us after the time limit.
    TimedOut(Duration),
    /// Could not be started.
    SpawnFailed(String),
}

impl Status {
    /// The exit code, if the process exited normally.
    pub fn code(&self) -> Option<i32> {
        match self {
            Status::Exited(c) => Some(*c),
            _ => None,
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => "?",
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Exited(c) => write!(f, "exit code {c}"),
            Status::Signaled(s) => write!(f, "killed by signal {s} ({})", signal_name(*s)),
            Status::TimedOut(d) => write!(f, "timed out after {} s (killed)", d.as_secs()),
            Status::SpawnFailed(e) => write!(f, "could not start: {e}"),
        }
    }
}

/// A command to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Executable.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<OsString>,
    /// Bytes written to stdin (then stdin is closed).
    pub stdin: Vec<u8>,
    /// Time limit.
    pub timeout: Duration,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// The child's argv[0], when it should differ from `program`.
    pub arg0: Option<OsString>,
}

impl Invocation {
    /// A command with no arguments, empty stdin and a time limit.
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Invocation {
        Invocation {
            program: program.into(),
            args: Vec::new(),
            stdin: Vec::new(),
            timeout,
            cwd: None,
            arg0: None,
        }
    }

    /// Append one argument.
    pub fn arg(&mut self, a: impl Into<OsString>) -> &mut Self {
        self.args.push(a.into());
        self
    }

    /// The command line, shell-quoted, for reproducing a run by hand (bash syntax; a subshell
    /// when there is a working directory or an argv[0]).
    pub fn command_line(&self) -> String {
        let mut s = String::new();
        let subshell = self.cwd.is_some() || self.arg0.is_some();
        if subshell {
            s.push('(');
        }
        if let Some(cwd) = &self.cwd {
            s.push_str(&format!("cd {} && ", shell_quote(&cwd.to_string_lossy())));
        }
        if let Some(a0) = &self.arg0 {
            s.push_str(&format!("exec -a {} ", shell_quote(&a0.to_string_lossy())));
        }
        s.push_str(&shell_quote(&self.program.to_string_lossy()));
        for a in &self.args {
            s.push(' ');
            s.push_str(&shell_quote(&a.to_string_lossy()));
        }
        if !self.stdin.is_empty() {
            s.push_str(&format!(" < <{} bytes of stdin>", self.stdin.len()));
        }
        if subshell {
            s.push(')');
        }
        s
    }
}

/// Quote a word for a POSIX shell when needed.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// The command for `inv`: its program, arguments, cwd and argv\[0\], a clean environment
/// (only `PATH`), piped output, and its own process group, so that a timeout also ends whatever
/// the child started (which would otherwise keep the output pipes open).
pub(crate) fn command(inv: &Invocation, stdin: Stdio) -> Command {
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = &inv.cwd {
        cmd.current_dir(cwd);
    }
    if let Some(a0) = &inv.arg0 {
        cmd.arg0(a0);
    }
    cmd
}

/// One look at a running child: its status once it has ended, or after killing its process
/// group when `timeout` has passed since `start`; `None` while it runs.
pub(crate) fn poll_status(child: &mut std::process::Child, start: Instant, timeout: Duration) -> Option<Status> {
    match child.try_wait() {
        Ok(Some(st)) => Some(match (st.code(), st.signal()) {
            (Some(c), _) => Status::Exited(c),
            (None, Some(s)) => Status::Signaled(s),
            (None, None) => Status::SpawnFailed("unknown exit status".into()),
        }),
        Ok(None) if start.elapsed() >= timeout => {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
            Some(Status::TimedOut(timeout))
        }
        Ok(None) => None,
        Err(e) => Some(Status::SpawnFailed(format!("wait failed: {e}"))),
    }
}

/// Run a command with a clean environment (only `PATH`), feeding stdin and capturing output.
pub fn run(inv: &Invocation) -> Outcome {
    let start = Instant::now();
    let mut cmd = command(inv, Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                status: Status::SpawnFailed(format!("{}: {e}", inv.program.display())),
                stdout: Vec::new(),
                stderr: Vec::new(),
                elapsed: start.elapsed(),
            }
        }
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = inv.stdin.clone();
    // A guest that never reads stdin closes the pipe early: ignore the write error.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        match poll_status(&mut child, start, inv.timeout) {
            Some(st) => break st,
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Outcome {
        status,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Find an executable: `$ENV_VAR` if set, else `name` on `PATH`.
pub fn find_executable(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// Whether `p` is an executable regular file.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_with_stdin_timeout_and_status() {
        let mut inv = Invocation::new("/bin/sh", Duration::from_secs(10));
        inv.arg("-c").arg("cat; echo err >&2; exit 3");
        inv.stdin = b"hello".to_vec();
        let o = run(&inv);
        assert_eq!(o.status, Status::Exited(3));
        assert_eq!(o.stdout, b"hello");
        assert_eq!(o.stderr, b"err\n");

        let mut inv = Invocation::new("/bin/sh", Duration::from_millis(200));
        inv.arg("-c").arg("sleep 5");
        assert!(matches!(run(&inv).status, Status::TimedOut(_)));

        let mut inv = Invocation::new("/bin/sh", Duration::from_secs(10));
        inv.arg("-c").arg("kill -SEGV $$");
        assert_eq!(run(&inv).status, Status::Signaled(11));

        assert!(matches!(
            run(&Invocation::new("/nonexistent/x", Duration::from_secs(1))).status,
            Status::SpawnFailed(_)
        ));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b.c"), "a/b.c");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let mut inv = Invocation::new("/bin/x", Duration::from_secs(1));
        inv.arg("a b");
        assert_eq!(inv.command_line(), "/bin/x 'a b'");
        inv.cwd = Some("/tmp".into());
        inv.arg0 = Some("x.wasm".into());
        assert_eq!(
            inv.command_line(),
            "(cd /tmp && exec -a x.wasm /bin/x 'a b')"
        );
    }
}
