//! Frames over any byte stream.

use crate::{Error, Message, Result};
use std::io::{Read, Write};

/// The largest frame accepted (a snapshot travels in chunks well below it).
pub const MAX_FRAME: u32 = 64 << 20;

/// Bytes sent and received on a connection (frame headers included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes written.
    pub sent: u64,
    /// Bytes read.
    pub received: u64,
}

/// Anything a connection runs over.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A connection carrying [`Message`]s, one frame each: a 4-byte big-endian
/// length, then the MessagePack value.
pub struct Conn {
    stream: Box<dyn Stream>,
    counters: Counters,
    /// The socket under the stream, for read time limits (TCP and TLS).
    socket: Option<std::net::TcpStream>,
    /// Runs when the connection is dropped (e.g. waits for `ssh`).
    on_drop: Option<Box<dyn FnOnce() + Send>>,
    /// The bytes of a frame [`Conn::try_recv`] began to read.
    partial: Vec<u8>,
    /// The read time limit set by [`Conn::set_read_timeout`].
    read_timeout: Option<std::time::Duration>,
    /// A descriptor to `poll` for input, where reads are not buffered above
    /// it (pipes): lets [`Conn::try_recv`] wait on them.
    poll_fd: Option<std::os::fd::RawFd>,
}

impl Conn {
    /// A connection over `stream`.
    pub fn new(stream: Box<dyn Stream>) -> Conn {
        Conn { stream, counters: Counters::default(), socket: None, on_drop: None, partial: Vec::new(), read_timeout: None, poll_fd: None }
    }

    /// A connection over `stream` that runs over `socket` (a clone of the
    /// TCP socket), so that [`Conn::set_read_timeout`] works.
    pub fn with_socket(stream: Box<dyn Stream>, socket: std::net::TcpStream) -> Conn {
        Conn { stream, counters: Counters::default(), socket: Some(socket), on_drop: None, partial: Vec::new(), read_timeout: None, poll_fd: None }
    }

    /// Fail a receive that gets no data for `limit` ([`Error::Timeout`]);
    /// `None`: wait forever. Returns false where the transport cannot (pipes:
    /// ssh has its own keep-alive).
    pub fn set_read_timeout(&mut self, limit: Option<std::time::Duration>) -> Result<bool> {
        self.read_timeout = limit;
        match &self.socket {
            Some(s) => s.set_read_timeout(limit).map(|()| true).map_err(Error::io("setting a time limit")),
            None => Ok(false),
        }
    }

    /// Fail a send that makes no progress for `limit` (the peer or the
    /// link gone while the send buffer is full); `None`: wait forever.
    /// Returns false where the transport cannot (pipes).
    pub fn set_write_timeout(&self, limit: Option<std::time::Duration>) -> Result<bool> {
        match &self.socket {
            Some(s) => s.set_write_timeout(limit).map(|()| true).map_err(Error::io("setting a time limit")),
            None => Ok(false),
        }
    }

    /// A connection over a reader and a writer (pipes, standard input and
    /// output).
    pub fn from_pair<R: Read + Send + 'static, W: Write + Send + 'static>(r: R, w: W) -> Conn {
        Conn::new(Box::new(Pair { r, w }))
    }

    /// A connection over a reader and a writer whose reads are not buffered
    /// (a pipe's `File`, `ChildStdout`): `fd` is the reader's descriptor,
    /// polled by [`Conn::try_recv`].
    pub fn from_pair_polled<R: Read + Send + 'static, W: Write + Send + 'static>(r: R, fd: std::os::fd::RawFd, w: W) -> Conn {
        let mut c = Conn::new(Box::new(Pair { r, w }));
        c.poll_fd = Some(fd);
        c
    }

    /// Whether [`Conn::try_recv`] can wait for a time (over a socket, or a
    /// polled pipe) instead of blocking until a message comes.
    pub fn can_wait(&self) -> bool {
        self.socket.is_some() || self.poll_fd.is_some()
    }

    /// Receive one message if one comes within `wait`: `Ok(None)` if none
    /// did (a frame begun is kept and finished by the next receive). Where
    /// the connection cannot wait ([`Conn::can_wait`]) this blocks as
    /// [`Conn::recv`]. Post-copy uses it to answer page requests between
    /// pages it pushes.
    pub fn try_recv(&mut self, wait: std::time::Duration) -> Result<Option<Message>> {
        // Over a socket: a read that would block returns at once (the TLS
        // layer may hold data the socket no longer shows), then the socket
        // is polled for `wait`. (A socket time limit is no good here: the
        // kernel rounds it up to a clock tick, milliseconds per page.)
        let mut waited = false;
        loop {
            let need = self.frame_need()?;
            if self.partial.len() == need {
                let at = self.counters.received - need as u64;
                let body = std::mem::take(&mut self.partial);
                let m = rmp_serde::from_slice(&body[4..])
                    .map_err(|e| Error::Frame { offset: at, message: format!("not a message of protocol {}: {e}", crate::PROTOCOL_VERSION) })?;
                return Ok(Some(m));
            }
            let fd = match (&self.socket, self.poll_fd) {
                (Some(s), _) => {
                    s.set_nonblocking(true).map_err(Error::io("setting a socket non-blocking"))?;
                    None
                }
                (None, Some(fd)) => Some(fd),
                (None, None) => None,
            };
            if let Some(fd) = fd {
                if !poll_in(fd, wait)? {
                    return Ok(None);
                }
            }
            let have = self.partial.len();
            self.partial.resize(need, 0);
            let r = self.stream.read(&mut self.partial[have..]);
            if let Some(s) = &self.socket {
                s.set_nonblocking(false).map_err(Error::io("setting a socket blocking"))?;
            }
            match r {
                Ok(0) => {
                    self.partial.truncate(have);
                    if have == 0 {
                        return Err(Error::Closed { offset: self.counters.received });
                    }
                    let at = self.counters.received - have as u64;
                    return Err(Error::Frame { offset: at, message: format!("the connection closed in the middle of a frame ({have} of {need} bytes)") });
                }
                Ok(k) => {
                    self.partial.truncate(have + k);
                    self.counters.received += k as u64;
                }
                Err(e) => {
                    self.partial.truncate(have);
                    match e.kind() {
                        std::io::ErrorKind::Interrupted => {}
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                            let Some(s) = &self.socket else { return Ok(None) };
                            if waited || !poll_in(std::os::fd::AsRawFd::as_raw_fd(s), wait)? {
                                return Ok(None);
                            }
                            waited = true;
                        }
                        std::io::ErrorKind::UnexpectedEof if have == 0 => return Err(Error::Closed { offset: self.counters.received }),
                        _ => return Err(Error::Io { during: "receiving".into(), error: e }),
                    }
                }
            }
        }
    }

    /// How many bytes the frame being read by [`Conn::try_recv`] has, header
    /// included (4 while its length is not read yet).
    fn frame_need(&self) -> Result<usize> {
        if self.partial.len() < 4 {
            return Ok(4);
        }
        let n = u32::from_be_bytes([self.partial[0], self.partial[1], self.partial[2], self.partial[3]]);
        if n > MAX_FRAME {
            let at = self.counters.received - self.partial.len() as u64;
            return Err(Error::Frame { offset: at, message: format!("a frame of {n} bytes is larger than {MAX_FRAME} (not a wanco agent?)") });
        }
        Ok(4 + n as usize)
    }

    pub(crate) fn set_on_drop(&mut self, f: Box<dyn FnOnce() + Send>) {
        self.on_drop = Some(f);
    }

    /// Bytes so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Send one message (written and flushed).
    pub fn send(&mut self, m: &Message) -> Result<()> {
        let body = rmp_serde::to_vec_named(m).map_err(|e| Error::Protocol(format!("cannot encode {}: {e}", m.name())))?;
        if body.len() > MAX_FRAME as usize {
            return Err(Error::Protocol(format!("{} of {} bytes is larger than a frame may be ({MAX_FRAME})", m.name(), body.len())));
        }
        let name = m.name();
        let what = |e: std::io::Error| {
            let stalled = matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
            let during = if stalled {
                format!("sending {name}: the peer took no data within the time limit (link down or peer stuck)")
            } else {
                format!("sending {name}")
            };
            Error::io(during)(e)
        };
        self.stream.write_all(&(body.len() as u32).to_be_bytes()).map_err(what)?;
        self.stream.write_all(&body).map_err(what)?;
        self.stream.flush().map_err(what)?;
        self.counters.sent += 4 + body.len() as u64;
        Ok(())
    }

    /// Receive one message.
    pub fn recv(&mut self) -> Result<Message> {
        if !self.partial.is_empty() {
            // A frame `try_recv` began: finish it, within the usual limit.
            if let Some(s) = &self.socket {
                s.set_read_timeout(self.read_timeout).map_err(Error::io("setting a time limit"))?;
            }
            loop {
                let wait = self.read_timeout.unwrap_or(std::time::Duration::from_secs(86400 * 365));
                match self.try_recv(wait)? {
                    Some(m) => return Ok(m),
                    None if self.read_timeout.is_some() => return Err(Error::Timeout { offset: self.counters.received }),
                    None => {}
                }
            }
        }
        if let Some(s) = &self.socket {
            // `try_recv` may have left another limit.
            s.set_read_timeout(self.read_timeout).map_err(Error::io("setting a time limit"))?;
        }
        let at = self.counters.received;
        let mut len = [0u8; 4];
        self.read_exact(&mut len, at, true)?;
        let n = u32::from_be_bytes(len);
        if n > MAX_FRAME {
            return Err(Error::Frame { offset: at, message: format!("a frame of {n} bytes is larger than {MAX_FRAME} (not a wanco agent?)") });
        }
        let mut body = vec![0u8; n as usize];
        self.read_exact(&mut body, at, false)?;
        rmp_serde::from_slice(&body).map_err(|e| Error::Frame { offset: at, message: format!("not a message of protocol {}: {e}", crate::PROTOCOL_VERSION) })
    }

    fn read_exact(&mut self, buf: &mut [u8], frame_at: u64, first: bool) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) if first && got == 0 => return Err(Error::Closed { offset: self.counters.received }),
                Ok(0) => {
                    return Err(Error::Frame { offset: frame_at, message: format!("the connection closed in the middle of a frame ({got} of {} bytes)", buf.len()) })
                }
                Ok(k) => {
                    got += k;
                    self.counters.received += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Err(Error::Timeout { offset: self.counters.received })
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && got == 0 && first => {
                    return Err(Error::Closed { offset: self.counters.received })
                }
                Err(e) => return Err(Error::Io { during: "receiving".into(), error: e }),
            }
        }
        Ok(())
    }
}

/// Whether `fd` has input within `wait`.
fn poll_in(fd: std::os::fd::RawFd, wait: std::time::Duration) -> Result<bool> {
    let ms = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one pollfd, its count passed.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::Io { during: "waiting for data".into(), error: e });
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f()
        }
    }
}

struct Pair<R, W> {
    r: R,
    w: W,
}

impl<R: Read, W> Read for Pair<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.r.read(buf)
    }
}

impl<R, W: Write> Write for Pair<R, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hello, Prepare};

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn encode(msgs: &[Message]) -> Vec<u8> {
        let out = Shared::default();
        let mut c = Conn::from_pair(std::io::empty(), out.clone());
        for m in msgs {
            c.send(m).unwrap();
        }
        let v = out.0.lock().unwrap().clone();
        v
    }

    #[test]
    fn messages_round_trip_and_count_bytes() {
        let msgs = vec![
            Message::Hello(Hello::new("x86_64", 1)),
            Message::Prepare(Prepare {
                module_hash: "ab".repeat(32),
                mode: "stop-and-copy".into(),
                binary: Some(vec![1, 2, 3]),
                module: None,
                dir_map: vec![("/data".into(), "/srv/data".into())],
                sync_dirs: true,
            }),
            Message::SnapshotChunk { offset: 7, data: vec![200; 1000], last: true },
            Message::Go,
            Message::Exited { code: 3 },
        ];
        let bytes = encode(&msgs);
        let mut c = Conn::from_pair(std::io::Cursor::new(bytes.clone()), std::io::sink());
        for m in &msgs {
            assert_eq!(&c.recv().unwrap(), m);
        }
        assert_eq!(c.counters().received, bytes.len() as u64);
        // The bytes of a chunk travel as a MessagePack bin, not an array of integers.
        assert!(bytes.len() < 1400, "{}", bytes.len());
        match c.recv() {
            Err(Error::Closed { offset }) => assert_eq!(offset, bytes.len() as u64),
            other => panic!("{other:?}"),
        }
    }

    /// `try_recv` over a polled pipe: nothing yet, then half a frame (kept),
    /// then the rest; a plain `recv` finishes a frame begun.
    #[test]
    fn try_recv_waits_and_keeps_a_frame_begun() {
        use std::os::fd::AsRawFd;
        let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = r.as_raw_fd();
        let mut c = Conn::from_pair_polled(r, fd, std::io::sink());
        assert!(c.can_wait());
        let t = std::time::Instant::now();
        assert_eq!(c.try_recv(std::time::Duration::from_millis(30)).unwrap(), None);
        assert!(t.elapsed() >= std::time::Duration::from_millis(25), "it waited");
        let bytes = encode(&[Message::PageRequest { page: 7 }, Message::PageData { page: 9, data: vec![1; 300] }]);
        let first = bytes.len() - encode(&[Message::PageData { page: 9, data: vec![1; 300] }]).len();
        w.write_all(&bytes[..first - 2]).unwrap();
        assert_eq!(c.try_recv(std::time::Duration::ZERO).unwrap(), None);
        w.write_all(&bytes[first - 2..first + 10]).unwrap();
        assert_eq!(c.try_recv(std::time::Duration::ZERO).unwrap(), Some(Message::PageRequest { page: 7 }));
        assert_eq!(c.try_recv(std::time::Duration::ZERO).unwrap(), None);
        w.write_all(&bytes[first + 10..]).unwrap();
        assert_eq!(c.recv().unwrap(), Message::PageData { page: 9, data: vec![1; 300] });
        assert_eq!(c.counters().received, bytes.len() as u64);
        drop(w);
        assert!(matches!(c.try_recv(std::time::Duration::from_millis(10)), Err(Error::Closed { .. })));
    }

    #[test]
    fn bad_frames_are_refused_with_their_offset() {
        let mut bytes = encode(&[Message::Go]);
        let good = bytes.len() as u64;
        // A frame that claims to be huge (e.g. an ssh banner instead of an agent).
        bytes.extend_from_slice(b"SSH-2.0-OpenSSH");
        let mut c = Conn::from_pair(std::io::Cursor::new(bytes), std::io::sink());
        assert_eq!(c.recv().unwrap(), Message::Go);
        match c.recv() {
            Err(Error::Frame { offset, message }) => {
                assert_eq!(offset, good);
                assert!(message.contains("larger than"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // A frame cut short.
        let mut bytes = encode(&[Message::Exited { code: 1 }]);
        bytes.truncate(bytes.len() - 1);
        let mut c = Conn::from_pair(std::io::Cursor::new(bytes), std::io::sink());
        match c.recv() {
            Err(Error::Frame { offset: 0, message }) => assert!(message.contains("middle of a frame"), "{message}"),
            other => panic!("{other:?}"),
        }
        // A frame holding something else.
        let mut bytes = 3u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x93, 1, 2]);
        let mut c = Conn::from_pair(std::io::Cursor::new(bytes), std::io::sink());
        match c.recv() {
            Err(Error::Frame { offset: 0, message }) => assert!(message.contains("not a message"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
