//! PSRT v1 frames: constants, decoders and encoders for both directions.
//!
//! Decoders take the whole unconsumed input as a `BytesMut` and either split
//! one complete frame off its front (`Ok(Some(_))`), leave it untouched
//! because more bytes are needed (`Ok(None)`), or refuse it (`Err`). Input
//! may be split at any byte boundary. A declared length is checked against
//! its limit as soon as the length field is complete, before the body is
//! buffered, so a hostile peer cannot make us hold more than one limit's
//! worth of bytes.
//!
//! * [`request`]: what clients send (greetings, login, control operations,
//!   replication payloads, the data-socket hello).
//! * [`push`]: what servers send (greeting replies, tokens, status bytes,
//!   pushed messages and beacons).

pub mod push;
pub mod request;

/// Protocol version sent in greeting replies.
pub const PROTOCOL_VERSION: u16 = 1;
/// First two bytes of a control-socket greeting.
pub const CONTROL_MAGIC: [u8; 2] = [0xEE, 0xAA];
/// First two bytes of a data-socket greeting.
pub const DATA_MAGIC: [u8; 2] = [0xEE, 0xAB];
/// Length of a session token.
pub const TOKEN_LEN: usize = 32;
/// Priority byte clients send; the server passes it through.
pub const DEFAULT_PRIORITY: u8 = 0x7F;

/// A session token: 32 random bytes handed out at login.
pub type Token = [u8; TOKEN_LEN];

/// One-byte status codes (replies, and the first byte of pushed frames).
pub mod status {
    /// Keep-alive, both directions.
    pub const NOP: u8 = 0x00;
    /// Success; also the first byte of a pushed message.
    pub const OK: u8 = 0x01;
    /// Replication: send me the payload.
    pub const OK_WAITING: u8 = 0x02;
    /// Replication: no local subscriber wants it.
    pub const NOT_REQUIRED: u8 = 0xE0;
    /// The ACL denied the topic.
    pub const ERR_ACCESS: u8 = 0xFE;
    /// Any other error.
    pub const ERR: u8 = 0xFF;
}

/// Control-socket operation codes.
pub mod op {
    /// Keep-alive.
    pub const NOP: u8 = 0x00;
    /// Publish a message.
    pub const PUBLISH: u8 = 0x01;
    /// Subscribe to one or more filters.
    pub const SUBSCRIBE: u8 = 0x02;
    /// Unsubscribe from one or more filters.
    pub const UNSUBSCRIBE: u8 = 0x03;
    /// Replicate a message from a cluster peer.
    pub const PUBLISH_REPL: u8 = 0x11;
    /// Our extension, between our own nodes only: a self-delimited
    /// replicated message (`PRIO TIMESTAMP LEN topic 00 payload`) that can
    /// be pipelined; with `LEN` 0 a capability probe. The original server
    /// does not know it and closes the connection.
    pub const REPL_PIPELINED: u8 = 0x12;
    /// End the session.
    pub const BYE: u8 = 0xFF;
}

/// Which socket a greeting opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// Requests and replies.
    Control,
    /// Messages pushed by the server.
    Data,
}

impl SocketKind {
    /// The greeting's two magic bytes.
    pub fn magic(self) -> [u8; 2] {
        match self {
            SocketKind::Control => CONTROL_MAGIC,
            SocketKind::Data => DATA_MAGIC,
        }
    }
}

/// Why a frame was refused. Every variant is fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The first bytes are not a PSRT greeting.
    #[error("not a PSRT greeting")]
    BadGreeting,
    /// The greeting asks for a mode other than plain (00) or TLS (01).
    #[error("unknown connection mode {0:#04x}")]
    BadMode(u8),
    /// The server speaks another protocol version.
    #[error("unsupported protocol version {0}")]
    BadVersion(u16),
    /// A declared length is above its limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// A frame lacks its `00` separator.
    #[error("missing 00 separator")]
    MissingSeparator,
    /// An operation byte the protocol does not define.
    #[error("unknown operation {0:#04x}")]
    UnknownOp(u8),
    /// A status byte the protocol does not define where one was expected.
    #[error("unexpected byte {0:#04x}")]
    Unexpected(u8),
}

/// Reads a little-endian `u32` length at `at`, if the bytes are there.
fn read_len(buf: &[u8], at: usize) -> Option<usize> {
    let bytes = buf.get(at..at + 4)?;
    let mut le = [0u8; 4];
    le.copy_from_slice(bytes);
    usize::try_from(u32::from_le_bytes(le)).ok()
}

/// Checks a declared length against its limit.
fn check_len(len: usize, max: usize) -> Result<(), WireError> {
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    Ok(())
}

/// Writes a frame length; a length above `u32::MAX` cannot be framed.
fn put_len(out: &mut impl bytes::BufMut, len: usize) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.put_u32_le(len);
}

#[cfg(test)]
mod tests;
