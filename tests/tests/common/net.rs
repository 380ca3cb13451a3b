//! Two "hosts" for the migration tests: network namespaces joined by a veth pair (rate limited
//! with `tc ... tbf`), optionally a third one for `wanco gateway`; a real `sshd` in the
//! destination; certificates (rcgen) for `wanco agent --listen` and the gateway. Needs root.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The source host's address on the link between the hosts.
pub const SRC_ADDR: &str = "10.231.0.1";
/// The destination host's.
pub const DST_ADDR: &str = "10.231.0.2";
/// The gateway host's address (on its loopback device), routed to from both hosts over links
/// of their own.
pub const GW_ADDR: &str = "10.231.9.1";

/// Runs `cmd`, which must succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

/// Two network namespaces joined by a veth pair (and optionally a gateway host); removed
/// (with what runs in them that the test started) when dropped, also when the test fails.
pub struct Net {
    /// The source host's namespace.
    pub src: String,
    /// The destination host's.
    pub dst: String,
    /// The source's end of the veth pair between the hosts.
    pub src_dev: String,
    /// The destination's end of it.
    pub dst_dev: String,
    /// The gateway host's namespace, if added.
    pub gw: Option<String>,
    /// The destination's end of its link to the gateway host.
    pub dst_gw_dev: String,
    id: String,
    children: Vec<Child>,
}

impl Net {
    /// The two hosts; `tag` (a few letters) names the namespaces.
    pub fn new(tag: &str) -> Net {
        // Names unique per test process and test (veth names: at most 15 bytes).
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id() % 100_000);
        let (va, vb) = (format!("wma{id}"), format!("wmb{id}"));
        let net = Net {
            src: format!("wm-{tag}-s{id}"),
            dst: format!("wm-{tag}-d{id}"),
            src_dev: va.clone(),
            dst_dev: vb.clone(),
            gw: None,
            dst_gw_dev: String::new(),
            id,
            children: Vec::new(),
        };
        ip(&["netns", "add", &net.src]);
        ip(&["netns", "add", &net.dst]);
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", &net.src]);
        ip(&["link", "set", &vb, "netns", &net.dst]);
        for (ns, dev, addr) in [(&net.src, &va, SRC_ADDR), (&net.dst, &vb, DST_ADDR)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            run_ok(Command::new("ip").args(["netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "1gbit", "burst", "64kb", "latency", "50ms"]));
        }
        net
    }

    /// Adds a third host for `wanco gateway`: [`GW_ADDR`] on its loopback device, a veth pair
    /// to each host (10.231.1.0/30 to the source, 10.231.2.0/30 to the destination) and the
    /// hosts' routes to it. Cutting one of those links leaves the other and the link between
    /// the hosts alone.
    pub fn add_gateway_host(&mut self) -> String {
        let gw = format!("wm-gw{}", self.id);
        ip(&["netns", "add", &gw]);
        self.gw = Some(gw.clone());
        ip(&["-n", &gw, "link", "set", "lo", "up"]);
        ip(&["-n", &gw, "addr", "add", &format!("{GW_ADDR}/32"), "dev", "lo"]);
        for (k, host, net) in [("a", self.src.clone(), "10.231.1"), ("b", self.dst.clone(), "10.231.2")] {
            let (h, g) = (format!("wg{k}h{}", self.id), format!("wg{k}g{}", self.id));
            ip(&["link", "add", &h, "type", "veth", "peer", "name", &g]);
            ip(&["link", "set", &h, "netns", &host]);
            ip(&["link", "set", &g, "netns", &gw]);
            ip(&["-n", &host, "addr", "add", &format!("{net}.1/30"), "dev", &h]);
            ip(&["-n", &gw, "addr", "add", &format!("{net}.2/30"), "dev", &g]);
            ip(&["-n", &host, "link", "set", &h, "up"]);
            ip(&["-n", &gw, "link", "set", &g, "up"]);
            ip(&["-n", &host, "route", "add", &format!("{GW_ADDR}/32"), "via", &format!("{net}.2")]);
            if k == "b" {
                self.dst_gw_dev = h;
            }
        }
        gw
    }

    /// `program` run in namespace `ns`.
    pub fn exec(ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Start a daemon and wait until its stderr shows `ready`; the rest of its stderr is kept
    /// in `log`. It is killed when the `Net` is dropped.
    pub fn daemon(&mut self, mut cmd: Command, ready: &str, log: &Path) {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(l)) => {
                    let done = l.contains(ready);
                    seen.push(l);
                    if done {
                        break;
                    }
                }
                _ => panic!("{cmd:?} ended before `{ready}`: {}", seen.join("\n")),
            }
        }
        let log = log.to_path_buf();
        std::thread::spawn(move || {
            let mut all = seen.join("\n") + "\n";
            for l in lines.map_while(Result::ok) {
                all += &l;
                all.push('\n');
                let _ = std::fs::write(&log, &all);
            }
            let _ = std::fs::write(&log, &all);
        });
        self.children.push(child);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [Some(&self.src), Some(&self.dst), self.gw.as_ref()].into_iter().flatten() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Moves the calling thread (only it) into network namespace `ns`: the sockets it makes from
/// then on are that host's.
pub fn enter_netns(ns: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
    // SAFETY: setns(2) with an open namespace fd; it changes this thread's network namespace only.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// A real sshd in the destination namespace, with keys made for this test; returns the ssh
/// client options (`--ssh-arg`s) to reach it.
pub fn start_sshd(net: &mut Net, dir: &Path) -> Vec<String> {
    let keygen = |file: &Path| {
        run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(file));
    };
    let (host_key, client_key) = (dir.join("host_key"), dir.join("client_key"));
    keygen(&host_key);
    keygen(&client_key);
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let conf = dir.join("sshd_config");
    std::fs::write(
        &conf,
        format!(
            "Port 22\nListenAddress {DST_ADDR}\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\nLogLevel INFO\n\
             AcceptEnv WANCO_AGENT_TEST_KILL_AT\n",
            host_key.display(),
            dir.join("authorized_keys").display()
        ),
    )
    .unwrap();
    // sshd's privilege-separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let mut cmd = Net::exec(&net.dst, Path::new("/usr/sbin/sshd"));
    cmd.arg("-D").arg("-e").arg("-f").arg(&conf);
    net.daemon(cmd, "Server listening on", &dir.join("sshd.log"));
    [
        "-i".to_string(),
        client_key.display().to_string(),
        "-oStrictHostKeyChecking=no".into(),
        "-oUserKnownHostsFile=/dev/null".into(),
        "-oLogLevel=ERROR".into(),
    ]
    .into()
}

/// A test CA: its certificate's PEM file, and leaf certificates it signs.
pub struct Ca {
    /// The CA certificate (PEM).
    pub pem: PathBuf,
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
    dir: PathBuf,
    name: String,
}

impl Ca {
    /// A CA named `name`; its files go to `dir` as `NAME-FILE`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        let cert = p.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca { pem, key, cert, dir: dir.to_path_buf(), name: name.to_string() }
    }

    /// A certificate for `san` (a DNS name or an IP address) with one extended key usage
    /// (`server`: server authentication, else client): (certificate, key) PEM files.
    pub fn leaf(&self, san: &str, server: bool, file: &str) -> (PathBuf, PathBuf) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![san.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, format!("{} {file}", self.name));
        p.extended_key_usages = vec![if server { ExtendedKeyUsagePurpose::ServerAuth } else { ExtendedKeyUsagePurpose::ClientAuth }];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let write = |ext: &str, text: String| {
            let path = self.dir.join(format!("{}-{file}.{ext}", self.name));
            std::fs::write(&path, text).unwrap();
            path
        };
        (write("pem", cert.pem()), write("key", key.serialize_pem()))
    }
}

/// PEM files of a CA, a certificate it signed for the agent (for DST_ADDR) and one for the
/// client.
pub struct Pki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The agent's certificate and key.
    pub server: (PathBuf, PathBuf),
    /// `wanco migrate`'s.
    pub client: (PathBuf, PathBuf),
}

/// A CA named `name` and its agent and client certificates.
pub fn pki(dir: &Path, name: &str) -> Pki {
    let ca = Ca::new(dir, name);
    Pki { ca: ca.pem.clone(), server: ca.leaf(DST_ADDR, true, "agent"), client: ca.leaf("migrate-client", false, "client") }
}

/// `wanco migrate`'s TLS options for `p`.
pub fn tls_args(p: &Pki) -> Vec<String> {
    vec![
        "--cert".into(),
        p.client.0.display().to_string(),
        "--key".into(),
        p.client.1.display().to_string(),
        "--ca".into(),
        p.ca.display().to_string(),
    ]
}

/// `wanco agent --listen DST_ADDR:PORT` (mutual TLS with `pki`) in namespace `ns`, its work
/// directory `DIR/agent`, its log `DIR/LOG`; `runner` for another ISA (`--isa aarch64
/// --runner RUNNER`); `env` and `extra` arguments. Returns its tls:// address.
#[allow(clippy::too_many_arguments)]
pub fn start_agent(
    net: &mut Net,
    ns: &str,
    wanco: &Path,
    addr: &str,
    dir: &Path,
    log: &str,
    pki: &Pki,
    runner: Option<&str>,
    env: &[(&str, &str)],
    extra: &[&str],
) -> String {
    let mut cmd = Net::exec(ns, wanco);
    cmd.args(["agent", "--listen", addr])
        .arg("--cert")
        .arg(&pki.server.0)
        .arg("--key")
        .arg(&pki.server.1)
        .arg("--ca")
        .arg(&pki.ca)
        .arg("--work-dir")
        .arg(dir.join("agent"));
    if let Some(r) = runner {
        cmd.args(["--isa", "aarch64", "--runner", r]);
    }
    cmd.envs(env.iter().copied()).args(extra);
    net.daemon(cmd, "listening on", &dir.join(log));
    format!("tls://{addr}")
}
