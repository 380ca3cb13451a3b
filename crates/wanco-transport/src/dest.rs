//! Destinations and the ssh transport.

use crate::{Conn, Error, Result};
use std::process::{Command, Stdio};

/// Where a program migrates to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// `ssh://[user@]host[:port]`.
    Ssh {
        /// Login name (`None`: ssh's default).
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// Port (`None`: ssh's default).
        port: Option<u16>,
    },
    /// `tls://host:port`: mutual TLS to a `wanco agent --listen`.
    Tls {
        /// Host name or address (checked against the agent's certificate).
        host: String,
        /// Port.
        port: u16,
    },
    /// `tcp://host:port`: the same as `tls://` in plaintext (explicitly
    /// insecure).
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
}

impl std::str::FromStr for Dest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Dest> {
        let bad = |m: &str| Error::Dest { dest: s.into(), message: m.into() };
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(bad("a destination has no path"));
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
            Some(_) => return Err(bad("empty user name")),
            None => (None, rest),
        };
        // `[v6addr]:port`, `host:port` or `host`.
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad(&format!("bad port `{p}`")))?),
        };
        match scheme {
            "ssh" => Ok(Dest::Ssh { user, host, port }),
            "tls" | "tcp" if user.is_some() => Err(bad("a user name only goes with ssh://")),
            "tls" => Ok(Dest::Tls { host, port: port.ok_or_else(|| bad("tls:// needs a port"))? }),
            "tcp" => Ok(Dest::Tcp { host, port: port.ok_or_else(|| bad("tcp:// needs a port"))? }),
            other => Err(bad(&format!("unknown scheme `{other}`"))),
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hp = |h: &str| if h.contains(':') { format!("[{h}]") } else { h.to_string() };
        match self {
            Dest::Ssh { user, host, port } => {
                write!(f, "ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                write!(f, "{}", hp(host))?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                Ok(())
            }
            Dest::Tls { host, port } => write!(f, "tls://{}:{port}", hp(host)),
            Dest::Tcp { host, port } => write!(f, "tcp://{}:{port}", hp(host)),
        }
    }
}

/// How to run `ssh`.
#[derive(Clone, Debug, Default)]
pub struct SshOptions {
    /// Extra options for the `ssh` client (`-i KEY`, `-o Option=value`,
    /// `-F CONFIG`…), before the host.
    pub ssh_args: Vec<String>,
}

/// Quote `s` for a POSIX shell (ssh hands the remote command to the login
/// shell as one string).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Run `ssh [options] [user@]host remote_command…` (in batch mode: no
/// password prompts) and talk over its standard input and output. The
/// remote command should be a `wanco agent --stdio`. `ssh`'s own messages
/// (and the agent's) go to this process's stderr, whole lines at a time.
pub fn connect_ssh(dest: &Dest, opts: &SshOptions, remote_command: &[String]) -> Result<Conn> {
    let Dest::Ssh { user, host, port } = dest else {
        return Err(Error::Dest { dest: dest.to_string(), message: "not an ssh:// destination".into() });
    };
    let mut cmd = Command::new("ssh");
    // The user's options first: for each option ssh keeps the first value it is given, so
    // theirs override the defaults below.
    cmd.args(&opts.ssh_args);
    // An unreachable host is reported within 20 s instead of after the kernel's SYN retries
    // (about two minutes); keep-alives: a dead link or host ends ssh within ~15 s.
    cmd.args(["-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-e", "none"]);
    if let Some(p) = port {
        cmd.args(["-p", &p.to_string()]);
    }
    if let Some(u) = user {
        cmd.args(["-l", u]);
    }
    cmd.arg("--").arg(host);
    cmd.arg(remote_command.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "));
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(Error::io("cannot run `ssh` (is the OpenSSH client installed?)"))?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let relayed = relay_stderr(child.stderr.take().expect("piped"));
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stdout);
    let mut conn = Conn::from_pair_polled(stdout, fd, stdin);
    conn.set_on_drop(Box::new(move || {
        // The pipes are closed by now (dropped with the stream): ssh ends.
        let _ = child.kill();
        let _ = child.wait();
        // ssh's last words (why it could not connect) come out before the caller's own
        // error message. Bounded: a `ProxyCommand` that outlives ssh may hold the pipe.
        let _ = relayed.recv_timeout(std::time::Duration::from_secs(2));
    }));
    Ok(conn)
}

/// Copies what `ssh` (and the remote agent, through it) writes on its stderr to this
/// process's stderr, one whole line at a time under the stderr lock. Inherited, the
/// agent's lines arrived in pieces and could land in the middle of this process's own
/// lines (a `--json` summary cut in two). The receiver hears when the pipe has closed.
fn relay_stderr(from: std::process::ChildStderr) -> std::sync::mpsc::Receiver<()> {
    use std::io::Write;
    let (done, relayed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Never a panic: our stderr may be closed.
        relay_lines(from, |line| drop(std::io::stderr().lock().write_all(line)));
        let _ = done.send(());
    });
    relayed
}

/// Hands `out` each whole line read from `from` (a last line without its newline gets one),
/// until the end or an error.
fn relay_lines(from: impl std::io::Read, mut out: impl FnMut(&[u8])) {
    use std::io::BufRead;
    let mut r = std::io::BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                out(&line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        let d: Dest = "ssh://alice@10.0.0.2:2222".parse().unwrap();
        assert_eq!(d, Dest::Ssh { user: Some("alice".into()), host: "10.0.0.2".into(), port: Some(2222) });
        assert_eq!(d.to_string(), "ssh://alice@10.0.0.2:2222");
        assert_eq!("ssh://host".parse::<Dest>().unwrap(), Dest::Ssh { user: None, host: "host".into(), port: None });
        assert_eq!("tls://[::1]:7000".parse::<Dest>().unwrap(), Dest::Tls { host: "::1".into(), port: 7000 });
        assert_eq!("tcp://h:1".parse::<Dest>().unwrap(), Dest::Tcp { host: "h".into(), port: 1 });
        for (bad, why) in [
            ("host:22", "no scheme"),
            ("tls://host", "needs a port"),
            ("tls://u@host:1", "only goes with ssh"),
            ("ssh://host:0", "bad port `0`"),
            ("ssh://host:99999", "bad port"),
            ("ftp://host:21", "unknown scheme `ftp`"),
            ("ssh://host/path", "no path"),
            ("ssh://@host", "empty user"),
        ] {
            let e = bad.parse::<Dest>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn a_line_written_in_pieces_is_relayed_whole() {
        // What the agent did over ssh: a line in three writes, apart in time.
        let mut child = Command::new("sh")
            .args(["-c", "printf 'wanco agent: '; sleep 0.2; printf 'the program runs'; sleep 0.2; printf '\\nlast'"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut got = Vec::new();
        relay_lines(child.stdout.take().unwrap(), |l| got.push(String::from_utf8_lossy(l).into_owned()));
        child.wait().unwrap();
        assert_eq!(got, ["wanco agent: the program runs\n", "last\n"]);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/usr/bin/wanco"), "/usr/bin/wanco");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
