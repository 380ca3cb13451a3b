//! A line echo server in Rust std on the pre-opened listener (fd 3, `--tcplisten` /
//! `-S tcplisten=`): `TcpListener::from_raw_fd(3)` made blocking, connections served one after
//! the other. Each line comes back numbered within its connection and upper-cased; "QUIT" is
//! answered "BYE", then the server shuts down its sending side and takes the next client.
//!
//! Usage: sock_rust_echo [N]: exit after N connections, printing how many lines were served.
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener};
use std::os::fd::FromRawFd;

fn main() {
    let limit: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(usize::MAX);
    // SAFETY: fd 3 is the listening socket the runtime pre-opened; nothing else owns it.
    let listener = unsafe { TcpListener::from_raw_fd(3) };
    // Pre-opened listeners start non-blocking; this server waits in accept.
    listener.set_nonblocking(false).expect("make the listener blocking");
    println!("ready");
    let (mut served, mut lines) = (0usize, 0usize);
    while served < limit {
        let (stream, _) = listener.accept().expect("accept");
        let mut n = 0;
        for line in BufReader::new(&stream).lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    println!("connection error: {}", e.kind());
                    break;
                }
            };
            n += 1;
            if line == "QUIT" {
                (&stream).write_all(b"BYE\n").expect("send");
                stream.shutdown(Shutdown::Write).expect("shutdown");
                break;
            }
            (&stream).write_all(format!("{n} {}\n", line.to_uppercase()).as_bytes()).expect("send");
        }
        lines += n;
        served += 1;
    }
    println!("served {served} connections, {lines} lines");
}
