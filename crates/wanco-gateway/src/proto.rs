//! The messages of the gateway link: each one MessagePack value (named
//! fields) in a frame of a 4-byte big-endian length, inside mutual TLS.
//!
//! The runtime opens the link and sends [`Msg::Hello`]; the gateway answers
//! [`Msg::Welcome`] (or [`Msg::Refused`] and closes). Then, in both
//! directions, data and end-of-stream of each connection, named by the id
//! the gateway gave it in [`Msg::Open`]. Each direction of a connection is a
//! byte stream whose offsets both sides count from 0:
//!
//! * gateway → runtime: client bytes. After a (re)attach the gateway sends
//!   each resumed connection's bytes from the `delivered` offset the
//!   runtime gave in its `Hello` (so the guest gets what it had not read);
//!   the runtime acknowledges what the guest has read ([`Msg::Ack`]) and
//!   the gateway forgets bytes below that.
//! * runtime → gateway: guest bytes. After a reattach whose `accepted`
//!   offset is below what the gateway already passed on to the client, the
//!   gateway drops that many bytes of what comes (they are the restored
//!   guest sending again what the client has); above it (bytes lost), the
//!   gateway closes that client with a reset and logs it.
//!
//! [`Msg::Sync`] / [`Msg::Synced`] is the checkpoint barrier: when the
//! runtime has the answer, the gateway has every guest byte sent before it.

use serde::{Deserialize, Serialize};

/// The version in `Hello`/`Welcome`; a peer speaking another is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Where a connection's streams stand at a (re)attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnPos {
    /// The gateway's id of the connection.
    pub id: u64,
    /// Client bytes the runtime has (resend from here).
    pub delivered: u64,
    /// Guest bytes the runtime has sent (the snapshot's count).
    pub accepted: u64,
}

/// One message of the link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Runtime → gateway, first: who it is and where its connections stand
    /// (`resume`: a restored or reconnecting runtime; `conns` lists every
    /// connection it still has).
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// The program id (its certificate must be valid for it).
        program: String,
        /// Restored from a snapshot, or reconnecting.
        resume: bool,
        /// The connections the runtime has.
        conns: Vec<ConnPos>,
    },
    /// Gateway → runtime: attached.
    Welcome {
        /// [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// Gateway → runtime: not attached, and why.
    Refused {
        /// Why.
        reason: String,
    },
    /// Gateway → runtime: a client connection for the guest to accept.
    Open {
        /// Its id.
        id: u64,
        /// The client's address.
        peer: String,
    },
    /// Bytes of connection `id`, next in its stream (either direction).
    Data {
        /// The connection.
        id: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// End of stream: the client (gateway → runtime) or the guest (runtime
    /// → gateway) will send nothing more on `id`.
    Fin {
        /// The connection.
        id: u64,
    },
    /// Connection `id` is gone (the client reset it, the gateway cannot
    /// resume it, or the guest closed it).
    Close {
        /// The connection.
        id: u64,
    },
    /// Runtime → gateway: the guest has read `delivered` bytes of `id`.
    Ack {
        /// The connection.
        id: u64,
        /// Bytes the guest has read.
        delivered: u64,
    },
    /// Runtime → gateway: the checkpoint barrier.
    Sync {
        /// Echoed in [`Msg::Synced`].
        token: u64,
    },
    /// Gateway → runtime: every message before the `Sync` is processed.
    Synced {
        /// The `Sync`'s token.
        token: u64,
    },
}

impl Msg {
    /// The message's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Msg::Hello { .. } => "Hello",
            Msg::Welcome { .. } => "Welcome",
            Msg::Refused { .. } => "Refused",
            Msg::Open { .. } => "Open",
            Msg::Data { .. } => "Data",
            Msg::Fin { .. } => "Fin",
            Msg::Close { .. } => "Close",
            Msg::Ack { .. } => "Ack",
            Msg::Sync { .. } => "Sync",
            Msg::Synced { .. } => "Synced",
        }
    }

    /// The frame of this message.
    pub fn frame(&self) -> Vec<u8> {
        let body = rmp_serde::to_vec_named(self).expect("gateway messages always encode");
        let mut f = Vec::with_capacity(4 + body.len());
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(&body);
        f
    }
}

/// The largest frame accepted.
pub const MAX_FRAME: usize = 16 << 20;

/// Takes the first whole frame off `buf` (whose first byte is at stream
/// offset `offset`), if there is one.
pub fn take_frame(buf: &mut Vec<u8>, offset: &mut u64) -> crate::Result<Option<Msg>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let n = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if n > MAX_FRAME {
        return Err(crate::Error::Protocol { offset: *offset, message: format!("a frame of {n} bytes is larger than {MAX_FRAME} (not a wanco gateway link?)") });
    }
    if buf.len() < 4 + n {
        return Ok(None);
    }
    let m = rmp_serde::from_slice(&buf[4..4 + n])
        .map_err(|e| crate::Error::Protocol { offset: *offset, message: format!("not a message of gateway protocol {PROTOCOL_VERSION}: {e}") })?;
    buf.drain(..4 + n);
    *offset += 4 + n as u64;
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused_with_their_offset() {
        let msgs = vec![
            Msg::Hello { version: PROTOCOL_VERSION, program: "kv".into(), resume: true, conns: vec![ConnPos { id: 3, delivered: 10, accepted: 20 }] },
            Msg::Data { id: 3, data: vec![200; 300] },
            Msg::Synced { token: 9 },
        ];
        let mut buf: Vec<u8> = msgs.iter().flat_map(|m| m.frame()).collect();
        // Data travels as a MessagePack bin, not an array of integers.
        assert!(buf.len() < 450, "{}", buf.len());
        let total = buf.len() as u64;
        buf.extend_from_slice(&[0, 0, 0]); // an incomplete header
        let mut off = 0;
        for m in &msgs {
            assert_eq!(take_frame(&mut buf, &mut off).unwrap().as_ref(), Some(m));
        }
        assert_eq!(off, total);
        assert_eq!(take_frame(&mut buf, &mut off).unwrap(), None);
        let mut bad = b"SSH-2.0-OpenSSH".to_vec();
        match take_frame(&mut bad, &mut off) {
            Err(crate::Error::Protocol { offset, message }) => {
                assert_eq!(offset, total);
                assert!(message.contains("larger than"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let mut bad = vec![0, 0, 0, 2, 0x91, 1];
        assert!(matches!(take_frame(&mut bad, &mut 0), Err(crate::Error::Protocol { offset: 0, .. })));
    }
}
