//! The gateway: client listeners (one per program), the TLS listener the
//! programs' runtimes attach to, and the bookkeeping that lets a stream
//! continue at the exact byte after the program moved.
//!
//! Every client connection is accepted at once and kept, whether or not
//! its program is attached: while it is not (moving, or not started yet),
//! client bytes wait in the gateway. A program detached for longer than the
//! timeout loses its clients: each is closed with a reset, and the log says
//! so. Client sockets are set to close with a reset, so a gateway that
//! dies (or is restarted) resets its clients too: a gateway keeps no state
//! on disk, and a restarted one knows no connection.

use crate::link::{Reader, Tls, Writer};
use crate::proto::{ConnPos, Msg, PROTOCOL_VERSION};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wanco_transport::{rustls, TlsFiles, TlsServer};

/// How a gateway is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where runtimes attach (mutual TLS), `HOST:PORT`.
    pub link_addr: String,
    /// For each program: its id (the DNS name its runtime's certificate
    /// must be valid for) and the address its clients connect to.
    pub programs: Vec<(String, String)>,
    /// The gateway's certificate and key, and the CA the runtimes'
    /// certificates must be signed by.
    pub tls: TlsFiles,
    /// How long a detached program's clients wait before they are reset.
    pub timeout: Duration,
    /// Program bytes waiting to be written to one client beyond which the
    /// client (which does not read) is reset ([`DEFAULT_MAX_QUEUED`]).
    pub max_queued: u64,
}

/// Client bytes held back (not yet read by the guest) beyond which the
/// gateway stops reading from that client.
const MAX_HELD: usize = 8 << 20;
/// The largest `Data` message sent.
const CHUNK: usize = 64 << 10;
/// Program bytes waiting to be written to one client beyond which the
/// client (which does not read) is reset by default, so that one stalled
/// client neither holds up the program's other connections nor grows the
/// gateway's memory without bound.
pub const DEFAULT_MAX_QUEUED: u64 = 16 << 20;

fn log(msg: &str) {
    let _ = writeln!(std::io::stderr(), "wanco gateway: {msg}");
}

/// Sets `SO_LINGER`: `Some(0)` makes the last close send a reset.
fn set_linger(s: &TcpStream, secs: Option<i32>) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: secs.is_some() as i32, l_linger: secs.unwrap_or(0) };
    // SAFETY: `s` is an open socket for the duration of the call; the option
    // value is a valid `linger` of the length given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

enum ToClient {
    Data(Vec<u8>),
    Fin,
}

struct Client {
    peer: String,
    sock: TcpStream,
    tx: mpsc::Sender<ToClient>,
    /// Program bytes queued for the client and not yet written to it.
    queued: Arc<std::sync::atomic::AtomicU64>,
    /// Client bytes from offset `held_from` that the guest may not have read.
    held: Vec<u8>,
    held_from: u64,
    /// Client bytes received.
    received: u64,
    client_eof: bool,
    /// Guest bytes passed on to the client.
    from_prog: u64,
    /// Guest bytes to drop (sent again by a restored guest).
    skip: u64,
    prog_fin: bool,
    /// When it connected: a client waits at most the timeout for a program
    /// from then (or from the program's detach, whichever is later).
    since: Instant,
}

impl Client {
    fn reset(self) {
        // Linger 0 is set: the last close of the socket sends a reset.
        set_linger(&self.sock, Some(0));
        let _ = self.sock.shutdown(Shutdown::Read);
    }

    /// Sends the held bytes from `from` (and the end of stream, if any) on `out`.
    fn replay(&self, id: u64, from: u64, out: &Writer) {
        let start = (from - self.held_from) as usize;
        for c in self.held[start..].chunks(CHUNK) {
            out.send(Msg::Data { id, data: c.to_vec() });
        }
        if self.client_eof {
            out.send(Msg::Fin { id });
        }
    }
}

struct Attached {
    generation: u64,
    out: Writer,
    tls: Arc<Tls>,
}

struct Program {
    clients: BTreeMap<u64, Client>,
    link: Option<Attached>,
    next_id: u64,
    detached_since: Instant,
}

struct Shared {
    programs: Mutex<HashMap<String, Program>>,
    timeout: Duration,
    max_queued: u64,
    next_generation: std::sync::atomic::AtomicU64,
}

/// A gateway, bound and ready to run.
pub struct Gateway {
    shared: Arc<Shared>,
    links: TlsServer,
    clients: Vec<(String, TcpListener)>,
}

impl Gateway {
    /// Binds the link listener and every program's client listener.
    pub fn bind(cfg: &Config) -> Result<Gateway> {
        if cfg.programs.is_empty() {
            return Err(Error::Config("a gateway needs at least one program (--program ID=HOST:PORT)".into()));
        }
        let links = TlsServer::bind(&cfg.link_addr, Some(&cfg.tls))?;
        let mut programs = HashMap::new();
        let mut clients = Vec::new();
        for (id, addr) in &cfg.programs {
            if rustls::pki_types::ServerName::try_from(id.as_str()).is_err() || id.parse::<std::net::IpAddr>().is_ok() {
                return Err(Error::Config(format!("program id `{id}` is not a DNS name (the name its runtime's certificate must be valid for)")));
            }
            if programs.contains_key(id) {
                return Err(Error::Config(format!("program `{id}` is given twice")));
            }
            let l = TcpListener::bind(addr).map_err(Error::io(format!("cannot listen on {addr} for the clients of `{id}`")))?;
            // Connection ids differ from those of an earlier gateway (a
            // restarted one), so that a runtime's old connection is never
            // taken for a new one: they start at the time in nanoseconds.
            let first = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
            programs.insert(id.clone(), Program { clients: BTreeMap::new(), link: None, next_id: first, detached_since: Instant::now() });
            clients.push((id.clone(), l));
        }
        Ok(Gateway {
            shared: Arc::new(Shared { programs: Mutex::new(programs), timeout: cfg.timeout, max_queued: cfg.max_queued, next_generation: 1.into() }),
            links,
            clients,
        })
    }

    /// Where runtimes attach.
    pub fn link_addr(&self) -> Result<std::net::SocketAddr> {
        Ok(self.links.local_addr()?)
    }

    /// Where the clients of `program` connect.
    pub fn client_addr(&self, program: &str) -> Option<std::net::SocketAddr> {
        self.clients.iter().find(|(p, _)| p == program).and_then(|(_, l)| l.local_addr().ok())
    }

    /// Serves forever.
    pub fn run(self) -> Result<()> {
        for (program, l) in self.clients {
            let shared = self.shared.clone();
            std::thread::spawn(move || accept_clients(shared, program, l));
        }
        let shared = self.shared.clone();
        std::thread::spawn(move || watch_timeouts(shared));
        let links = Arc::new(self.links);
        loop {
            let (tcp, peer) = match links.accept_tcp() {
                Ok(x) => x,
                Err(e) => {
                    log(&format!("accepting a link: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let shared = self.shared.clone();
            let links = links.clone();
            std::thread::spawn(move || {
                if let Err(e) = serve_link(&shared, &links, tcp, peer) {
                    log(&format!("link from {peer}: {e}"));
                }
            });
        }
    }
}

fn accept_clients(shared: Arc<Shared>, program: String, l: TcpListener) {
    loop {
        let (sock, peer) = match l.accept() {
            Ok(x) => x,
            Err(e) => {
                log(&format!("accepting a client of `{program}`: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let _ = sock.set_write_timeout(Some(Duration::from_secs(60)));
        // A gateway that dies resets its clients (its state is gone).
        set_linger(&sock, Some(0));
        let (Ok(rsock), Ok(wsock)) = (sock.try_clone(), sock.try_clone()) else { continue };
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let id = {
            let mut g = shared.programs.lock().unwrap_or_else(|e| e.into_inner());
            let p = g.get_mut(&program).expect("listeners are of known programs");
            let id = p.next_id;
            p.next_id += 1;
            if let Some(a) = &p.link {
                a.out.send(Msg::Open { id, peer: peer.to_string() });
            }
            p.clients.insert(
                id,
                Client { peer: peer.to_string(), sock, tx, queued: queued.clone(), held: Vec::new(), held_from: 0, received: 0, client_eof: false, from_prog: 0, skip: 0, prog_fin: false, since: Instant::now() },
            );
            id
        };
        std::thread::spawn(move || write_client(wsock, rx, queued));
        let shared = shared.clone();
        let program = program.clone();
        std::thread::spawn(move || read_client(shared, program, id, rsock));
    }
}

fn write_client(mut sock: TcpStream, rx: mpsc::Receiver<ToClient>, queued: Arc<std::sync::atomic::AtomicU64>) {
    while let Ok(m) = rx.recv() {
        match m {
            ToClient::Data(d) => {
                let r = sock.write_all(&d);
                queued.fetch_sub(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if r.is_err() {
                    return;
                }
            }
            ToClient::Fin => {
                // A graceful end: no reset on the last close from here on.
                set_linger(&sock, None);
                let _ = sock.shutdown(Shutdown::Write);
            }
        }
    }
}

fn read_client(shared: Arc<Shared>, program: String, id: u64, mut sock: TcpStream) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let r = sock.read(&mut buf);
        let mut g = shared.programs.lock().unwrap_or_else(|e| e.into_inner());
        let p = g.get_mut(&program).expect("known program");
        let link = p.link.as_ref().map(|a| a.out.clone());
        let Some(c) = p.clients.get_mut(&id) else { return };
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) => {
                c.client_eof = true;
                if let Some(out) = &link {
                    out.send(Msg::Fin { id });
                }
                if c.prog_fin {
                    p.clients.remove(&id);
                }
                return;
            }
            Err(_) => {
                // The client reset the connection: the guest's end is gone too.
                if let Some(out) = &link {
                    out.send(Msg::Close { id });
                }
                p.clients.remove(&id);
                return;
            }
            Ok(n) => {
                c.held.extend_from_slice(&buf[..n]);
                c.received += n as u64;
                if let Some(out) = &link {
                    out.send(Msg::Data { id, data: buf[..n].to_vec() });
                }
                let full = c.held.len() > MAX_HELD;
                drop(g);
                if full {
                    // Hold the client back until the guest reads.
                    loop {
                        std::thread::sleep(Duration::from_millis(5));
                        let g = shared.programs.lock().unwrap_or_else(|e| e.into_inner());
                        match g.get(&program).and_then(|p| p.clients.get(&id)) {
                            Some(c) if c.held.len() > MAX_HELD => {}
                            Some(_) => break,
                            None => return,
                        }
                    }
                }
            }
        }
    }
}

fn watch_timeouts(shared: Arc<Shared>) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let mut g = shared.programs.lock().unwrap_or_else(|e| e.into_inner());
        for (name, p) in g.iter_mut() {
            if p.link.is_some() {
                continue;
            }
            let waited = |c: &Client| p.detached_since.max(c.since).elapsed();
            let late: Vec<u64> = p.clients.iter().filter(|(_, c)| waited(c) > shared.timeout).map(|(&id, _)| id).collect();
            if late.is_empty() {
                continue;
            }
            log(&format!(
                "program `{name}` has not attached for {:.1} s (--timeout): resetting its {} client connection(s) that waited that long",
                shared.timeout.as_secs_f64(),
                late.len()
            ));
            for id in late {
                if let Some(c) = p.clients.remove(&id) {
                    c.reset();
                }
            }
        }
    }
}

/// Whether `cert` is valid for the DNS name `program`.
fn cert_names(cert: &rustls::pki_types::CertificateDer<'_>, program: &str) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else { return false };
    let Ok(name) = rustls::pki_types::ServerName::try_from(program) else { return false };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}

fn serve_link(shared: &Arc<Shared>, links: &TlsServer, tcp: TcpStream, peer: std::net::SocketAddr) -> Result<()> {
    let (conn, tcp) = links.handshake(tcp, peer)?;
    let cert = conn.peer_certificates().and_then(|c| c.first()).cloned();
    let tls = Tls::new(rustls::Connection::Server(conn), tcp)?;
    let mut reader = Reader::new(tls.clone());
    tls.set_read_timeout(Some(Duration::from_secs(10)));
    let hello = reader.recv()?;
    tls.set_read_timeout(None);
    let refuse = |reason: String| -> Result<()> {
        let _ = tls.write(&Msg::Refused { reason: reason.clone() }.frame());
        tls.shutdown();
        Err(Error::Refused(reason))
    };
    let (program, resume, conns) = match hello {
        Some(Msg::Hello { version, program, resume, conns }) => {
            if version != PROTOCOL_VERSION {
                return refuse(format!("gateway protocol {version} is not spoken here (this gateway speaks {PROTOCOL_VERSION})"));
            }
            (program, resume, conns)
        }
        Some(m) => return refuse(format!("expected Hello first, got {}", m.name())),
        None => return Ok(()),
    };
    if !shared.programs.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&program) {
        return refuse(format!("no program `{program}` here (see --program)"));
    }
    if !cert.as_ref().is_some_and(|c| cert_names(c, &program)) {
        return refuse(format!("the certificate presented is not valid for program `{program}` (it must name it as a DNS subject alternative name)"));
    }
    let generation = shared.next_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = Writer::start(tls.clone());
    attach(shared, &program, generation, resume, &conns, out.clone(), tls.clone());
    log(&format!("program `{program}` attached from {peer} ({} connection(s) resumed)", conns.len()));
    let r = read_link(shared, &program, &mut reader, &out);
    // Detach, unless a newer link has taken over.
    let mut g = shared.programs.lock().unwrap_or_else(|e| e.into_inner());
    let p = g.get_mut(&program).expect("known program");
    if p.link.as_ref().is_some_and(|a| a.generation == generation) {
        p.link = None;
        p.detached_since = Instant::now();
        log(&format!(
            "program `{program}` detached ({}); holding {} client connection(s) for it",
            match &r {
                Ok(()) => "link closed".to_string(),
                Err(e) => e.to_string(),
            },
            p.clients.len()
        ));
    }
    tls.shutdown();
    Ok(())
}

fn attach(shared: &Shared, program: &str, generation: u64, resume: bool, conns: &[ConnPos], out: Writer, tls: Arc<Tls>) {
    let mut g = shared.programs.lock().unwrap_or_else(|e| e.into_inner());
    let p = g.get_mut(program).expect("known program");
    if let Some(old) = p.link.take() {
        log(&format!("program `{program}` attached again: the previous link is dropped"));
        old.tls.shutdown();
    }
    out.send(Msg::Welcome { version: PROTOCOL_VERSION });
    let mut gone = Vec::new();
    for pos in conns {
        let id = pos.id;
        let Some(c) = p.clients.get_mut(&id) else {
            out.send(Msg::Close { id });
            continue;
        };
        if pos.accepted > c.from_prog || pos.delivered < c.held_from || pos.delivered > c.received {
            log(&format!(
                "program `{program}`: connection {id} ({}) cannot continue (the runtime has client bytes up to {}, sent {}; the gateway holds client bytes {}..{} and passed on {}): resetting it",
                c.peer, pos.delivered, pos.accepted, c.held_from, c.received, c.from_prog
            ));
            out.send(Msg::Close { id });
            gone.push(id);
            continue;
        }
        c.skip = c.from_prog - pos.accepted;
        c.held.drain(..(pos.delivered - c.held_from) as usize);
        c.held_from = pos.delivered;
        c.replay(id, pos.delivered, &out);
    }
    // Connections the runtime does not have: offered anew if nothing of
    // them reached a guest, else reset.
    for (&id, c) in p.clients.iter() {
        if conns.iter().any(|x| x.id == id) {
            continue;
        }
        if c.held_from == 0 && c.from_prog == 0 && !c.prog_fin {
            out.send(Msg::Open { id, peer: c.peer.clone() });
            c.replay(id, 0, &out);
        } else {
            log(&format!(
                "program `{program}`: connection {id} ({}) is not among those the {} runtime has: resetting it",
                c.peer,
                if resume { "restored" } else { "newly started" }
            ));
            gone.push(id);
        }
    }
    for id in gone {
        if let Some(c) = p.clients.remove(&id) {
            c.reset();
        }
    }
    p.link = Some(Attached { generation, out, tls });
}

fn read_link(shared: &Shared, program: &str, reader: &mut Reader, out: &Writer) -> Result<()> {
    while let Some(m) = reader.recv()? {
        let mut g = shared.programs.lock().unwrap_or_else(|e| e.into_inner());
        let p = g.get_mut(program).expect("known program");
        match m {
            Msg::Data { id, data } => {
                let Some(c) = p.clients.get_mut(&id) else { continue };
                let k = (c.skip as usize).min(data.len());
                c.skip -= k as u64;
                if k < data.len() {
                    c.from_prog += (data.len() - k) as u64;
                    let q = c.queued.fetch_add((data.len() - k) as u64, std::sync::atomic::Ordering::Relaxed) + (data.len() - k) as u64;
                    let _ = c.tx.send(ToClient::Data(data[k..].to_vec()));
                    if q > shared.max_queued {
                        log(&format!(
                            "program `{program}`: client {} of connection {id} does not read ({q} bytes of answers wait for it): resetting it",
                            c.peer
                        ));
                        out.send(Msg::Close { id });
                        if let Some(c) = p.clients.remove(&id) {
                            // Also wakes the writer blocked on the client, so
                            // that the last close (linger 0) resets it now.
                            let _ = c.sock.shutdown(Shutdown::Write);
                            c.reset();
                        }
                    }
                }
            }
            Msg::Fin { id } => {
                let Some(c) = p.clients.get_mut(&id) else { continue };
                c.prog_fin = true;
                let _ = c.tx.send(ToClient::Fin);
                if c.client_eof {
                    p.clients.remove(&id);
                }
            }
            Msg::Close { id } => {
                if let Some(c) = p.clients.remove(&id) {
                    let _ = c.tx.send(ToClient::Fin);
                }
            }
            Msg::Ack { id, delivered } => {
                let Some(c) = p.clients.get_mut(&id) else { continue };
                if delivered > c.held_from && delivered <= c.received {
                    c.held.drain(..(delivered - c.held_from) as usize);
                    c.held_from = delivered;
                }
            }
            Msg::Sync { token } => {
                out.send(Msg::Synced { token });
            }
            m => return Err(Error::Protocol { offset: 0, message: format!("a runtime does not send {}", m.name()) }),
        }
    }
    Ok(())
}
