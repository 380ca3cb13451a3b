//! Sockets on real loopback connections: a pre-opened listener, accept,
//! receive, send, shutdown, poll, fdstat, and a snapshot round trip.
//!
//! The expected values are those of wasmtime 36's preview1 host
//! (`wasmtime run -S preview2=n -S tcplisten=...`); the end-to-end test
//! `tests/tests/sockets.rs` compares whole programs with it.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SUBS: u32 = 0x4000;
const EVENTS: u32 = 0x5000;

fn guest_with_listener(dir: &Path) -> (Guest, u32, String) {
    let mut g = Guest::new(dir);
    let fd = g.ctx.preopen_listener("127.0.0.1:0").unwrap();
    let addr = g.ctx.listener_addr(fd).unwrap();
    (g, fd, addr)
}

impl Guest {
    /// `fd_fdstat_get`: (filetype, flags, base, inheriting).
    fn fdstat(&mut self, fd: u32) -> (u8, u16, u64, u64) {
        assert_eq!(self.call(F::FdFdstatGet, &[fd.into(), OUT.into()]), 0);
        let b = self.get(OUT, 24);
        (
            b[0],
            u16::from_le_bytes([b[2], b[3]]),
            self.u64(OUT + 8),
            self.u64(OUT + 16),
        )
    }

    fn accept(&mut self, fd: u32, flags: u64) -> Result<u32, u32> {
        match self.call(F::SockAccept, &[fd.into(), flags, OUT.into()]) {
            0 => Ok(self.u32(OUT)),
            e => Err(e),
        }
    }

    /// `sock_recv` into one buffer of `len` bytes.
    fn recv(&mut self, fd: u32, len: u32, flags: u64) -> Result<Vec<u8>, u32> {
        self.put(IOV, &DATA.to_le_bytes());
        self.put(IOV + 4, &len.to_le_bytes());
        match self.call(
            F::SockRecv,
            &[fd.into(), IOV.into(), 1, flags, OUT.into(), (OUT + 8).into()],
        ) {
            0 => Ok(self.get(DATA, self.u32(OUT) as usize).to_vec()),
            e => Err(e),
        }
    }

    /// `fd_read` into one buffer of `len` bytes.
    fn sread(&mut self, fd: u32, len: u32) -> Result<Vec<u8>, u32> {
        self.put(IOV, &DATA.to_le_bytes());
        self.put(IOV + 4, &len.to_le_bytes());
        match self.call(F::FdRead, &[fd.into(), IOV.into(), 1, OUT.into()]) {
            0 => Ok(self.get(DATA, self.u32(OUT) as usize).to_vec()),
            e => Err(e),
        }
    }

    /// `sock_send` (or `fd_write`) of several buffers.
    fn send(&mut self, f: WasiFunc, fd: u32, parts: &[&[u8]]) -> Result<u32, u32> {
        let mut at = DATA;
        for (i, p) in parts.iter().enumerate() {
            self.put(at, p);
            self.put(IOV + 8 * i as u32, &at.to_le_bytes());
            self.put(IOV + 8 * i as u32 + 4, &(p.len() as u32).to_le_bytes());
            at += p.len() as u32;
        }
        let args: Vec<u64> = if f == F::SockSend {
            vec![fd.into(), IOV.into(), parts.len() as u64, 0, OUT.into()]
        } else {
            vec![fd.into(), IOV.into(), parts.len() as u64, OUT.into()]
        };
        match self.call(f, &args) {
            0 => Ok(self.u32(OUT)),
            e => Err(e),
        }
    }

    /// `poll_oneoff` over `(userdata, tag, fd-or-clock, timeout_ns)`;
    /// returns the events as `(userdata, error, type, nbytes, flags)`.
    fn poll(&mut self, subs: &[(u64, u8, u32, u64)]) -> Vec<(u64, u16, u8, u64, u16)> {
        for (i, &(ud, tag, x, timeout)) in subs.iter().enumerate() {
            let s = SUBS + 48 * i as u32;
            self.put(s, &[0; 48]);
            self.put(s, &ud.to_le_bytes());
            self.put(s + 8, &[tag]);
            self.put(s + 16, &x.to_le_bytes());
            self.put(s + 24, &timeout.to_le_bytes());
        }
        let r = self.call(
            F::PollOneoff,
            &[SUBS.into(), EVENTS.into(), subs.len() as u64, OUT.into()],
        );
        assert_eq!(r, 0);
        (0..self.u32(OUT))
            .map(|i| {
                let ev = EVENTS + 32 * i;
                let b = self.get(ev, 32).to_vec();
                (
                    self.u64(ev),
                    u16::from_le_bytes([b[8], b[9]]),
                    b[10],
                    self.u64(ev + 16),
                    u16::from_le_bytes([b[24], b[25]]),
                )
            })
            .collect()
    }
}

fn socket_of(st: &WasiState, fd: u32) -> (FdKind, wanco_state::wasi::SocketState) {
    let e = st.fds.iter().find(|e| e.fd == fd).expect("fd in the state");
    (e.kind, e.socket.clone().expect("socket state"))
}

#[test]
fn listener_comes_after_the_preopens_and_looks_like_wasmtimes() {
    let d = tempfile::tempdir().unwrap();
    let (mut g, fd, addr) = guest_with_listener(d.path());
    assert_eq!(fd, 4, "stdio 0-2, the preopened directory 3, then the listener");
    assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"), "{addr}");
    // SOCKET_STREAM, NONBLOCK, FD_READ|FD_WRITE, no inheriting rights.
    assert_eq!(g.fdstat(fd), (6, 4, 0x42, 0));
    // Not a preopened directory.
    assert_eq!(g.call(F::FdPrestatGet, &[fd.into(), OUT.into()]), e(Errno::BADF));
    // Nobody is connecting: a non-blocking accept is AGAIN.
    assert_eq!(g.accept(fd, 0), Err(e(Errno::AGAIN)));
    // What only a connection does.
    assert_eq!(g.sread(fd, 4), Err(e(Errno::BADF)));
    assert_eq!(g.recv(fd, 4, 0), Err(e(Errno::BADF)));
    assert_eq!(g.call(F::SockShutdown, &[fd.into(), 3]), e(Errno::BADF));
    // Only NONBLOCK or nothing.
    assert_eq!(g.call(F::FdFdstatSetFlags, &[fd.into(), 1]), e(Errno::INVAL));
    assert_eq!(g.call(F::FdFdstatSetFlags, &[fd.into(), 0]), 0);
    assert_eq!(g.fdstat(fd).1, 0);
    // fd_filestat_get: the filetype and zeros.
    assert_eq!(g.call(F::FdFilestatGet, &[fd.into(), OUT.into()]), 0);
    assert_eq!(g.get(OUT + 16, 1), &[6]);
    assert_eq!(g.u64(OUT + 32), 0);
}

#[test]
fn accept_receive_send_shutdown_on_a_real_connection() {
    let d = tempfile::tempdir().unwrap();
    let (mut g, l, addr) = guest_with_listener(d.path());
    let mut client = TcpStream::connect(&addr).unwrap();
    // The listener becomes readable once the client is queued.
    let ev = g.poll(&[(7, 1, l, 0), (8, 0, 1, 5_000_000_000)]);
    assert_eq!(ev, vec![(7, 0, 1, 1, 0)]);
    let c = g.accept(l, 0).unwrap();
    assert_eq!(c, 5);
    assert_eq!(g.fdstat(c), (6, 0, 0x42, 0), "accepted blocking");
    // Bad flags are checked before anything is received.
    assert_eq!(g.recv(c, 8, 4), Err(e(Errno::NOTSUP)));
    client.write_all(b"hello").unwrap();
    let ev = g.poll(&[(1, 1, c, 0)]);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].0, ev[0].1, ev[0].2), (1, 0, 1));
    assert!(ev[0].3 >= 1);
    assert_eq!(g.recv(c, 16, 1).unwrap(), b"hello", "a peek");
    assert_eq!(g.sread(c, 3).unwrap(), b"hel");
    assert_eq!(g.recv(c, 16, 0).unwrap(), b"lo");
    // Every buffer goes out in one call.
    assert_eq!(g.send(F::SockSend, c, &[b"ab", b"", b"cd"]), Ok(4));
    assert_eq!(g.send(F::FdWrite, c, &[b"ef"]), Ok(2));
    let mut got = [0u8; 6];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abcdef");
    // What a socket is not.
    assert_eq!(g.call(F::FdSeek, &[c.into(), 0, 0, OUT.into()]), e(Errno::BADF));
    assert_eq!(g.call(F::FdTell, &[c.into(), OUT.into()]), e(Errno::BADF));
    assert_eq!(g.call(F::FdPread, &[c.into(), IOV.into(), 1, 0, OUT.into()]), e(Errno::BADF));
    assert_eq!(g.call(F::FdSync, &[c.into()]), 0);
    assert_eq!(g.call(F::FdDatasync, &[c.into()]), 0);
    assert_eq!(g.call(F::FdAllocate, &[c.into(), 0, 1]), e(Errno::NOTSUP));
    assert_eq!(g.call(F::FdAdvise, &[c.into(), 0, 1, 1]), e(Errno::BADF));
    assert_eq!(g.accept(c, 0), Err(e(Errno::BADF)));
    // The counts a snapshot records.
    let (kind, s) = socket_of(&g.ctx.state(), c);
    assert_eq!(kind, FdKind::TcpStream);
    assert_eq!((s.bytes_in, s.bytes_out, s.seq), (5, 6, 1));
    assert_eq!(s.listener, addr);
    assert_eq!(s.peer_addr, client.local_addr().unwrap().to_string());
    assert_eq!(socket_of(&g.ctx.state(), l).1.seq, 1, "the listener counts its connections");
    // Shutdown: a direction is required; WR ends the client's stream.
    assert_eq!(g.call(F::SockShutdown, &[c.into(), 0]), e(Errno::INVAL));
    assert_eq!(g.call(F::SockShutdown, &[c.into(), 2]), 0);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(socket_of(&g.ctx.state(), c).1.shut_wr);
    // The client closes: end of stream, then the fd closes.
    drop(client);
    assert_eq!(g.sread(c, 8).unwrap(), b"");
    assert!(socket_of(&g.ctx.state(), c).1.peer_eof);
    assert_eq!(g.call(F::FdClose, &[c.into()]), 0);
    assert_eq!(g.sread(c, 8), Err(e(Errno::BADF)));
}

#[test]
fn a_non_blocking_connection_says_again() {
    let d = tempfile::tempdir().unwrap();
    let (mut g, l, addr) = guest_with_listener(d.path());
    let _client = TcpStream::connect(&addr).unwrap();
    g.poll(&[(1, 1, l, 0)]);
    let c = g.accept(l, 4).unwrap();
    assert_eq!(g.fdstat(c).1, 4);
    assert_eq!(g.recv(c, 8, 0), Err(e(Errno::AGAIN)));
    assert_eq!(g.sread(c, 8), Err(e(Errno::AGAIN)));
    // A write subscription is ready at once, with nbytes 0.
    assert_eq!(g.poll(&[(3, 2, c, 0)]), vec![(3, 0, 2, 0, 0)]);
}

#[test]
fn poll_waits_for_the_timer_when_no_socket_is_ready() {
    let d = tempfile::tempdir().unwrap();
    let (mut g, l, _) = guest_with_listener(d.path());
    let t = Instant::now();
    let ev = g.poll(&[(1, 1, l, 0), (2, 0, 1, 30_000_000)]);
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(ev, vec![(2, 0, 0, 0, 0)]);
}

#[test]
fn restore_listens_again_and_resets_connections() {
    let d = tempfile::tempdir().unwrap();
    let (mut g, l, addr) = guest_with_listener(d.path());
    let mut client = TcpStream::connect(&addr).unwrap();
    g.poll(&[(1, 1, l, 0)]);
    let c = g.accept(l, 0).unwrap();
    client.write_all(b"xyz").unwrap();
    assert_eq!(g.sread(c, 3).unwrap(), b"xyz");
    let st = g.ctx.state();
    drop(g); // the checkpointed process ends: its sockets close
    let mut r = Guest::restored(&st);
    assert_eq!(r.ctx.listener_addr(l).as_deref(), Some(addr.as_str()));
    // The connection is gone: the guest is told so at once, never left waiting.
    assert_eq!(r.sread(c, 8), Err(e(Errno::CONNRESET)));
    assert_eq!(r.recv(c, 8, 0), Err(e(Errno::CONNRESET)));
    assert_eq!(r.send(F::SockSend, c, &[b"a"]), Err(e(Errno::CONNRESET)));
    assert_eq!(r.call(F::SockShutdown, &[c.into(), 3]), e(Errno::NOTCONN));
    assert_eq!(r.poll(&[(5, 1, c, 0)]), vec![(5, 0, 1, 1, 1)]);
    let s = socket_of(&r.ctx.state(), c).1;
    assert!(s.reset);
    assert_eq!((s.bytes_in, s.seq), (3, 1));
    assert_eq!(r.call(F::FdClose, &[c.into()]), 0);
    // The listener takes new clients on the same address; the next
    // connection is the listener's second.
    let mut again = TcpStream::connect(&addr).unwrap();
    assert_eq!(r.poll(&[(1, 1, l, 0)]).len(), 1);
    let c2 = r.accept(l, 0).unwrap();
    again.write_all(b"ok").unwrap();
    assert_eq!(r.sread(c2, 2).unwrap(), b"ok");
    assert_eq!(socket_of(&r.ctx.state(), c2).1.seq, 2);
}

#[test]
fn a_bad_listen_address_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let mut g = Guest::new(d.path());
    let err = g.ctx.preopen_listener("not-an-address").unwrap_err();
    assert!(err.message().contains("cannot listen on `not-an-address`"), "{err}");
}

#[test]
fn restore_refuses_an_address_someone_else_listens_on() {
    let d = tempfile::tempdir().unwrap();
    let (mut g, l, addr) = guest_with_listener(d.path());
    // The guest made its listener blocking: a restore keeps that.
    assert_eq!(g.call(F::FdFdstatSetFlags, &[l.into(), 0]), 0);
    let st = g.ctx.state();
    drop(g);
    let squatter = std::net::TcpListener::bind(&addr).unwrap();
    let err = WasiCtx::from_state(&st).unwrap_err();
    assert!(
        err.message().contains(&format!("cannot listen on `{addr}` again for fd {l}")),
        "{err}"
    );
    drop(squatter);
    let mut r = Guest::restored(&st);
    assert_eq!(r.fdstat(l).1, 0, "still blocking");
    // A socket without its address is damage, named as such.
    let mut bad = st.clone();
    bad.fds.iter_mut().find(|e| e.fd == l).unwrap().socket = None;
    let err = WasiCtx::from_state(&bad).unwrap_err();
    assert!(err.message().contains("gives no address"), "{err}");
}
