//! The runtime's side of the gateway link: a listener whose connections
//! come from the gateway.
//!
//! Each gateway connection is handed to the guest as one end of a local
//! socket pair (so reads, writes, `poll_oneoff`, non-blocking mode and
//! shutdown work as on a TCP connection); the other end is pumped to and
//! from the link by two threads. A byte pending at the listener's notify
//! socket stands for each connection waiting to be accepted.

use crate::link::{Reader, Tls, Writer};
use crate::proto::{ConnPos, Msg, PROTOCOL_VERSION};
use crate::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wanco_transport::{rustls, TlsFiles};

/// Where a program's gateway is and which program this is:
/// `tls://HOST:PORT/PROGRAM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayAddr {
    /// The gateway's host (its certificate must be valid for it).
    pub host: String,
    /// Its link port.
    pub port: u16,
    /// The program id.
    pub program: String,
}

impl GatewayAddr {
    /// Parses `tls://HOST:PORT/PROGRAM`.
    pub fn parse(s: &str) -> Result<GatewayAddr> {
        let bad = |m: &str| Error::Config(format!("bad gateway address `{s}`: {m} (expected tls://HOST:PORT/PROGRAM)"));
        let rest = s.strip_prefix("tls://").ok_or_else(|| bad("it does not start with tls://"))?;
        let (hp, program) = rest.split_once('/').ok_or_else(|| bad("no /PROGRAM after the port"))?;
        let (host, port) = hp.rsplit_once(':').ok_or_else(|| bad("no :PORT"))?;
        let port = port.parse().map_err(|_| bad("the port is not a number 0-65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || program.is_empty() || program.contains('/') {
            return Err(bad("empty host or program"));
        }
        Ok(GatewayAddr { host: host.to_string(), port, program: program.to_string() })
    }
}

impl std::fmt::Display for GatewayAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "tls://[{}]:{}/{}", self.host, self.port, self.program)
        } else {
            write!(f, "tls://{}:{}/{}", self.host, self.port, self.program)
        }
    }
}

/// The runtime's credentials, from the environment: `WANCO_GATEWAY_CERT`
/// (its certificate, valid for the program id), `WANCO_GATEWAY_KEY`,
/// `WANCO_GATEWAY_CA` (the CA of the gateway's certificate).
pub fn credentials_from_env() -> Result<TlsFiles> {
    let var = |k: &str| {
        std::env::var_os(k).map(std::path::PathBuf::from).ok_or_else(|| {
            Error::Config(format!("a gateway listener needs the runtime's credentials: set {k} (and WANCO_GATEWAY_CERT, WANCO_GATEWAY_KEY, WANCO_GATEWAY_CA)"))
        })
    };
    Ok(TlsFiles { cert: var("WANCO_GATEWAY_CERT")?, key: var("WANCO_GATEWAY_KEY")?, ca: var("WANCO_GATEWAY_CA")? })
}

/// Guest bytes read but not acknowledged beyond which an `Ack` is sent.
const ACK_EVERY: u64 = 8 << 10;

struct Conn {
    /// To the thread writing client bytes into the pair (`None`: end of stream).
    tx: mpsc::Sender<Option<Vec<u8>>>,
    pump: TcpStream,
    /// Guest bytes sent on the link.
    forwarded: Arc<AtomicU64>,
    /// The guest's end of stream (`Fin`) is on the link.
    fin_sent: Arc<std::sync::atomic::AtomicBool>,
    /// Client bytes taken from the link for the pair (queued or written):
    /// where a reconnected link continues.
    queued: u64,
    acked: u64,
}

struct Inner {
    addr: GatewayAddr,
    files: TlsFiles,
    out: Mutex<Option<(Writer, Arc<Tls>)>>,
    link_up: Condvar,
    conns: Mutex<HashMap<u64, Conn>>,
    pending: Mutex<VecDeque<(u64, String, TcpStream)>>,
    pending_cv: Condvar,
    notify_r: UnixStream,
    notify_w: UnixStream,
    synced: Mutex<u64>,
    synced_cv: Condvar,
    token: AtomicU64,
    /// Set by [`Client::detach`]: nothing more goes to the gateway.
    frozen: std::sync::atomic::AtomicBool,
    /// Set by [`Client::park`]: a lost link is not opened again until
    /// unparked (another runtime may hold the program's connections).
    parked: Mutex<bool>,
    parked_cv: Condvar,
    /// Connections the gateway closed because their client reset them (or
    /// it could not continue them): the guest sees `CONNRESET`, not an end.
    reset: Mutex<std::collections::HashSet<u64>>,
}

/// A program's link to its gateway (cheap to clone).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gateway::Client({})", self.inner.addr)
    }
}

/// A local socket pair as two `TcpStream`s. Both ends are Unix-domain
/// sockets; `TcpStream` is only the handle type (its reads, writes,
/// `peek`, `shutdown` and non-blocking mode are the plain socket calls,
/// and its writes never raise `SIGPIPE`), so that a gateway connection is
/// the same kind of host socket as a direct one for the WASI host.
fn pair() -> Result<(TcpStream, TcpStream)> {
    let (a, b) = UnixStream::pair().map_err(Error::io("socketpair"))?;
    Ok((TcpStream::from(OwnedFd::from(a)), TcpStream::from(OwnedFd::from(b))))
}

fn open_link(addr: &GatewayAddr, files: &TlsFiles, resume: bool, conns: Vec<ConnPos>) -> Result<(Arc<Tls>, Reader)> {
    let (conn, tcp) = wanco_transport::tls_client(&addr.host, addr.port, files)?;
    let tls = Tls::new(rustls::Connection::Client(conn), tcp)?;
    let hello = Msg::Hello { version: PROTOCOL_VERSION, program: addr.program.clone(), resume, conns };
    tls.write(&hello.frame()).map_err(Error::io(format!("sending Hello to {addr}")))?;
    let mut reader = Reader::new(tls.clone());
    tls.set_read_timeout(Some(Duration::from_secs(10)));
    match reader.recv()? {
        Some(Msg::Welcome { .. }) => {}
        Some(Msg::Refused { reason }) => return Err(Error::Refused(reason)),
        Some(m) => return Err(Error::Protocol { offset: 0, message: format!("expected Welcome, got {}", m.name()) }),
        None => return Err(Error::Refused(format!("{addr} closed the link without an answer"))),
    }
    tls.set_read_timeout(None);
    Ok((tls, reader))
}

impl Client {
    /// Attaches to the gateway at `addr` with `files`. `resume`: the
    /// connections of a restored program, each with the client bytes its
    /// guest has read and the guest bytes it sent (from the snapshot); the
    /// guest ends of those connections are returned, in that order.
    pub fn connect(addr: &GatewayAddr, files: &TlsFiles, resume: Option<&[ConnPos]>) -> Result<(Client, Vec<TcpStream>)> {
        let (tls, reader) = open_link(addr, files, resume.is_some(), resume.unwrap_or(&[]).to_vec())?;
        let (notify_r, notify_w) = UnixStream::pair().map_err(Error::io("socketpair"))?;
        notify_r.set_nonblocking(true).map_err(Error::io("socketpair"))?;
        let inner = Arc::new(Inner {
            addr: addr.clone(),
            files: files.clone(),
            out: Mutex::new(Some((Writer::start(tls.clone()), tls))),
            link_up: Condvar::new(),
            conns: Mutex::new(HashMap::new()),
            pending: Mutex::new(VecDeque::new()),
            pending_cv: Condvar::new(),
            notify_r,
            notify_w,
            synced: Mutex::new(0),
            synced_cv: Condvar::new(),
            token: AtomicU64::new(1),
            frozen: false.into(),
            parked: Mutex::new(false),
            parked_cv: Condvar::new(),
            reset: Mutex::new(std::collections::HashSet::new()),
        });
        let mut guest = Vec::new();
        for p in resume.unwrap_or(&[]) {
            guest.push(inner.add_conn(p.id, p.accepted, p.delivered)?);
        }
        let i = inner.clone();
        std::thread::spawn(move || i.read_loop(reader));
        Ok((Client { inner }, guest))
    }

    /// The gateway address (`tls://HOST:PORT/PROGRAM`).
    pub fn addr(&self) -> &GatewayAddr {
        &self.inner.addr
    }

    /// Readable while a connection waits to be accepted (for `poll`).
    pub fn notify_fd(&self) -> BorrowedFd<'_> {
        self.inner.notify_r.as_fd()
    }

    /// The next connection waiting: its id, the client's address and the
    /// guest's end. Without `block`, `WouldBlock` if there is none.
    pub fn accept(&self, block: bool) -> std::io::Result<(u64, String, TcpStream)> {
        let mut q = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(c) = q.pop_front() {
                let mut b = [0u8; 1];
                let _ = (&self.inner.notify_r).read(&mut b);
                return Ok(c);
            }
            if !block {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            q = self.inner.pending_cv.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The guest has read `n` bytes of connection `id` (acknowledged to the
    /// gateway now and then, so that it can forget them).
    pub fn delivered(&self, id: u64, n: u64) {
        let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = conns.get_mut(&id) {
            if n >= c.acked + ACK_EVERY {
                c.acked = n;
                self.inner.send(Msg::Ack { id, delivered: n });
            }
        }
    }

    /// The checkpoint barrier: waits until every guest byte of each
    /// `(id, sent, read)` (bytes the guest sent, bytes it read) has been
    /// passed to the gateway and the gateway confirms it holds them; then
    /// the snapshot's counts are where the streams continue. An error
    /// (gateway unreachable within `limit`) means the snapshot must not be
    /// taken: bytes would be lost.
    pub fn sync(&self, conns: &[(u64, u64, u64)], limit: Duration) -> Result<()> {
        let until = Instant::now() + limit;
        let timeout = |what: String| Error::Io { during: what, error: std::io::ErrorKind::TimedOut.into() };
        for &(id, sent, _) in conns {
            let fwd = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner()).get(&id).map(|c| c.forwarded.clone());
            let Some(fwd) = fwd else { continue };
            while fwd.load(Ordering::Acquire) < sent {
                if Instant::now() > until {
                    return Err(timeout(format!(
                        "passing connection {id}'s bytes to the gateway {} ({} of {sent} sent)",
                        self.inner.addr,
                        fwd.load(Ordering::Acquire)
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for &(id, _, read) in conns {
            self.inner.send(Msg::Ack { id, delivered: read });
        }
        self.barrier(until)
    }

    /// `Sync` and its `Synced`: every message sent before is at the gateway.
    fn barrier(&self, until: Instant) -> Result<()> {
        let timeout = |what: String| Error::Io { during: what, error: std::io::ErrorKind::TimedOut.into() };
        let token = self.inner.token.fetch_add(1, Ordering::Relaxed);
        if !self.inner.send(Msg::Sync { token }) {
            return Err(Error::Io { during: format!("checkpoint barrier with the gateway {}", self.inner.addr), error: std::io::ErrorKind::NotConnected.into() });
        }
        let mut s = self.inner.synced.lock().unwrap_or_else(|e| e.into_inner());
        while *s < token {
            let now = Instant::now();
            if now > until {
                return Err(timeout(format!("waiting for the gateway {} to confirm the checkpoint barrier", self.inner.addr)));
            }
            s = self.inner.synced_cv.wait_timeout(s, until - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        Ok(())
    }
}

impl Client {
    /// The program ends (it exits; not a checkpoint). The guest's ends of
    /// `ids` have been shut down for writing: waits (at most `limit`) until
    /// the guest's last bytes and its end of stream of each are on the link
    /// and the gateway confirms it has them, then leaves. The gateway passes
    /// the end on at once, so those clients read the last answer and then
    /// end of stream promptly, as from a server that exits, instead of
    /// waiting for the gateway's timeout. Clients the guest never accepted
    /// stay at the gateway for the next runtime.
    pub fn program_exited(&self, ids: &[u64], limit: Duration) -> Result<()> {
        let until = Instant::now() + limit;
        let r = (|| {
            for id in ids {
                let fin = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner()).get(id).map(|c| c.fin_sent.clone());
                let Some(fin) = fin else { continue };
                while !fin.load(Ordering::Acquire) {
                    if Instant::now() > until {
                        return Err(Error::Io {
                            during: format!("passing connection {id}'s end to the gateway {}", self.inner.addr),
                            error: std::io::ErrorKind::TimedOut.into(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            self.barrier(until)
        })();
        self.detach();
        r
    }

    /// Whether the gateway reset connection `id` (its client reset it, or
    /// it could not be continued): the guest's end then reads as ended and
    /// writes fail, which the WASI layer reports as `CONNRESET`, as for a
    /// TCP reset.
    pub fn was_reset(&self, id: u64) -> bool {
        self.inner.reset.lock().unwrap_or_else(|e| e.into_inner()).contains(&id)
    }

    /// Parks (`true`) or unparks the link. A parked client whose link is
    /// lost — typically because a restored copy of the program attached in
    /// its place during a migration, which makes the gateway drop this
    /// link — does not open it again: two runtimes taking the link from
    /// each other would each tell the gateway where the streams stand, and
    /// the stale one would cost connections. A migrating program is parked
    /// while it is stopped (the source) and while it waits at the gate
    /// (the destination). Unparked, a lost link is opened again at once,
    /// with where each connection stands here; the gateway still holds
    /// every client byte this side has not taken, so the streams go on.
    pub fn park(&self, parked: bool) {
        *self.inner.parked.lock().unwrap_or_else(|e| e.into_inner()) = parked;
        self.inner.parked_cv.notify_all();
    }

    /// Leaves the gateway without a word about the connections: called when
    /// the program's host state goes away (the process ends, e.g. after a
    /// checkpoint), so that closing the guest's ends is not taken for the
    /// guest closing its connections. The gateway keeps them for the next
    /// runtime (or resets them after its timeout).
    pub fn detach(&self) {
        self.inner.frozen.store(true, Ordering::Release);
        if let Some((_, tls)) = self.inner.out.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tls.shutdown();
        }
    }
}

impl Inner {
    /// Before opening the link again: waits 200 ms the first time (a
    /// restarted gateway needs a moment), and while parked. `false`: the
    /// client was detached meanwhile (give up).
    fn wait_unparked(&self, first: bool) -> bool {
        if first {
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut p = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        let mut said = false;
        while *p && !self.frozen.load(Ordering::Acquire) {
            if !said {
                let _ = writeln!(
                    std::io::stderr(),
                    "wanco: the program is stopped for a move; the link to the gateway {} is opened again only if it resumes here",
                    self.addr
                );
                said = true;
            }
            p = self.parked_cv.wait_timeout(p, Duration::from_millis(500)).unwrap_or_else(|e| e.into_inner()).0;
        }
        !self.frozen.load(Ordering::Acquire)
    }

    fn send(&self, m: Msg) -> bool {
        if self.frozen.load(Ordering::Acquire) {
            return false;
        }
        match &*self.out.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((w, _)) => w.send(m),
            None => false,
        }
    }

    /// Registers connection `id` (at these offsets) and starts its pumps;
    /// returns the guest's end.
    fn add_conn(self: &Arc<Self>, id: u64, forwarded: u64, written: u64) -> Result<TcpStream> {
        let (guest, pump) = pair()?;
        let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
        let forwarded = Arc::new(AtomicU64::new(forwarded));
        let fin_sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = Conn { tx, pump: pump.try_clone().map_err(Error::io("socket"))?, forwarded: forwarded.clone(), fin_sent: fin_sent.clone(), queued: written, acked: 0 };
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).insert(id, c);
        // Client bytes into the pair.
        let mut w = pump.try_clone().map_err(Error::io("socket"))?;
        let me = self.clone();
        std::thread::spawn(move || {
            while let Ok(m) = rx.recv() {
                match m {
                    Some(d) => {
                        if w.write_all(&d).is_err() {
                            // The guest closed its end.
                            me.send(Msg::Close { id });
                            me.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                            return;
                        }
                    }
                    None => {
                        let _ = w.shutdown(Shutdown::Write);
                    }
                }
            }
        });
        // Guest bytes onto the link.
        let mut r = pump;
        let me = self.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match r.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                    Ok(n) => n,
                };
                let m = if n == 0 { Msg::Fin { id } } else { Msg::Data { id, data: buf[..n].to_vec() } };
                // While the link is down, wait for it (the guest's bytes stay here).
                let mut out = me.out.lock().unwrap_or_else(|e| e.into_inner());
                while out.is_none() {
                    out = me.link_up.wait(out).unwrap_or_else(|e| e.into_inner());
                }
                if me.frozen.load(Ordering::Acquire) {
                    return;
                }
                if let Some((w, _)) = &*out {
                    w.send(m);
                }
                forwarded.fetch_add(n as u64, Ordering::Release);
                if n == 0 {
                    fin_sent.store(true, Ordering::Release);
                    return;
                }
            }
        });
        Ok(guest)
    }

    fn read_loop(self: Arc<Self>, mut reader: Reader) {
        loop {
            let r = self.serve(&mut reader);
            // The link is gone (gateway restarted, network cut): reconnect,
            // giving where each connection stands; the gateway resumes the
            // ones it still has and closes the others.
            if let Some((_, tls)) = self.out.lock().unwrap_or_else(|e| e.into_inner()).take() {
                tls.shutdown();
            }
            if self.frozen.load(Ordering::Acquire) {
                return;
            }
            let _ = writeln!(
                std::io::stderr(),
                "wanco: the link to the gateway {} is down ({}); reconnecting",
                self.addr,
                match r {
                    Ok(()) => "closed by the gateway".to_string(),
                    Err(e) => e.to_string(),
                }
            );
            let mut first = true;
            loop {
                if !self.wait_unparked(first) {
                    return;
                }
                first = false;
                let conns: Vec<ConnPos> = self
                    .conns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(&id, c)| ConnPos { id, delivered: c.queued, accepted: c.forwarded.load(Ordering::Acquire) })
                    .collect();
                match open_link(&self.addr, &self.files, true, conns) {
                    Ok((tls, r)) => {
                        reader = r;
                        *self.out.lock().unwrap_or_else(|e| e.into_inner()) = Some((Writer::start(tls.clone()), tls));
                        self.link_up.notify_all();
                        break;
                    }
                    Err(Error::Refused(reason)) => {
                        let _ = writeln!(std::io::stderr(), "wanco: the gateway {} refused this program: {reason}", self.addr);
                        return;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
    }

    fn serve(self: &Arc<Self>, reader: &mut Reader) -> Result<()> {
        while let Some(m) = reader.recv()? {
            match m {
                Msg::Open { id, peer } => {
                    let guest = self.add_conn(id, 0, 0)?;
                    self.pending.lock().unwrap_or_else(|e| e.into_inner()).push_back((id, peer, guest));
                    let _ = (&self.notify_w).write_all(&[1]);
                    self.pending_cv.notify_all();
                }
                Msg::Data { id, data } => {
                    if let Some(c) = self.conns.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&id) {
                        c.queued += data.len() as u64;
                        let _ = c.tx.send(Some(data));
                    }
                }
                Msg::Fin { id } => {
                    if let Some(c) = self.conns.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
                        let _ = c.tx.send(None);
                    }
                }
                Msg::Close { id } => {
                    // Before the guest can see its end of the pair close.
                    self.reset.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
                    if let Some(c) = self.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                        let _ = c.pump.shutdown(Shutdown::Both);
                    }
                }
                Msg::Synced { token } => {
                    let mut s = self.synced.lock().unwrap_or_else(|e| e.into_inner());
                    *s = (*s).max(token);
                    self.synced_cv.notify_all();
                }
                m => return Err(Error::Protocol { offset: 0, message: format!("a gateway does not send {}", m.name()) }),
            }
        }
        Ok(())
    }
}
