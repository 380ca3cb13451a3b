//! One TLS connection read by one thread and written by another: the TLS
//! state behind a lock, the socket read without it (so a blocked read
//! never stops a write), and writes through a queue drained by a thread of
//! their own (so a sender never blocks on the network while holding its
//! own locks).

use crate::proto::{take_frame, Msg};
use crate::{Error, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use wanco_transport::rustls;

pub(crate) struct Tls {
    conn: Mutex<rustls::Connection>,
    wsock: Mutex<TcpStream>,
    rsock: TcpStream,
}

impl Tls {
    pub(crate) fn new(conn: rustls::Connection, sock: TcpStream) -> Result<Arc<Tls>> {
        let rsock = sock.try_clone().map_err(Error::io("socket"))?;
        Ok(Arc::new(Tls { conn: Mutex::new(conn), wsock: Mutex::new(sock), rsock }))
    }

    /// Writes `data` (plaintext) and whatever TLS records are due.
    pub(crate) fn write(&self, data: &[u8]) -> std::io::Result<()> {
        let mut w = self.wsock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        {
            let mut c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            // rustls takes at most its buffer limit (64 KiB) of records at a
            // time: encrypt piece by piece, draining the records each time (a
            // frame of a full 64 KiB `Data` is larger than that).
            let mut rest = data;
            while !rest.is_empty() {
                let n = c.writer().write(rest)?;
                let mut drained = false;
                while c.wants_write() {
                    c.write_tls(&mut out)?;
                    drained = true;
                }
                if n == 0 && !drained {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                rest = &rest[n..];
            }
        }
        w.write_all(&out)
    }

    /// Closes the socket (both directions): the reader and writer fail.
    pub(crate) fn shutdown(&self) {
        let _ = self.rsock.shutdown(Shutdown::Both);
    }

    pub(crate) fn set_read_timeout(&self, t: Option<std::time::Duration>) {
        let _ = self.rsock.set_read_timeout(t);
    }
}

/// The reading half: frames in, one message at a time.
pub(crate) struct Reader {
    tls: Arc<Tls>,
    plain: Vec<u8>,
    offset: u64,
    closed: bool,
}

impl Reader {
    pub(crate) fn new(tls: Arc<Tls>) -> Reader {
        Reader { tls, plain: Vec::new(), offset: 0, closed: false }
    }

    /// The next message; `None` when the peer closed the link cleanly.
    pub(crate) fn recv(&mut self) -> Result<Option<Msg>> {
        loop {
            if let Some(m) = take_frame(&mut self.plain, &mut self.offset)? {
                return Ok(Some(m));
            }
            if self.closed {
                if self.plain.is_empty() {
                    return Ok(None);
                }
                return Err(Error::Protocol { offset: self.offset, message: format!("the link closed in the middle of a frame ({} bytes of it)", self.plain.len()) });
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<()> {
        let mut tmp = [0u8; 32 << 10];
        let n = loop {
            match (&self.tls.rsock).read(&mut tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.map_err(Error::io("reading the gateway link"))?,
            }
        };
        if n == 0 {
            return Err(Error::Io {
                during: "reading the gateway link".into(),
                error: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the other side closed the connection without ending TLS"),
            });
        }
        let wants_write = {
            let mut c = self.tls.conn.lock().unwrap_or_else(|e| e.into_inner());
            let mut rd = &tmp[..n];
            while !rd.is_empty() {
                c.read_tls(&mut rd).map_err(Error::io("TLS"))?;
                c.process_new_packets().map_err(|e| Error::Io { during: "TLS".into(), error: std::io::Error::new(std::io::ErrorKind::InvalidData, e) })?;
                let mut chunk = [0u8; 16 << 10];
                loop {
                    match c.reader().read(&mut chunk) {
                        Ok(0) => {
                            self.closed = true;
                            break;
                        }
                        Ok(k) => self.plain.extend_from_slice(&chunk[..k]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(Error::io("TLS")(e)),
                    }
                }
            }
            c.wants_write()
        };
        if wants_write {
            self.tls.write(&[]).map_err(Error::io("writing the gateway link"))?;
        }
        Ok(())
    }
}

/// The writing half: a queue and the thread that drains it.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
}

impl Writer {
    pub(crate) fn start(tls: Arc<Tls>) -> Writer {
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::spawn(move || {
            while let Ok(m) = rx.recv() {
                let mut frame = m.frame();
                // Batch what is already queued into one TLS write.
                while frame.len() < (256 << 10) {
                    match rx.try_recv() {
                        Ok(m) => frame.extend_from_slice(&m.frame()),
                        Err(_) => break,
                    }
                }
                if tls.write(&frame).is_err() {
                    tls.shutdown();
                    return;
                }
            }
        });
        Writer { tx }
    }

    /// Queues `m`; false if the link is gone.
    pub(crate) fn send(&self, m: Msg) -> bool {
        self.tx.send(m).is_ok()
    }
}
