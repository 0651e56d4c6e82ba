//! Writing options and new messages into a caller's buffer (no allocation).
//!
//! [`MessageBuilder`] writes option 53 first: RFC 2131 does not require it, but some
//! clients and servers reject messages where it is not, so every message built here has it
//! first.

use core::net::Ipv4Addr;

use crate::error::WireError;
use crate::message::{MessageType, Op, HEADER_LEN, MAGIC_COOKIE};
use crate::options::OptionCode;

/// RFC 1542 section 2.1: "The IP Total Length and UDP Length must be large enough to
/// contain the minimal BOOTP header of 300 octets (in the UDP data field) specified in
/// \[1\]" (RFC 951: the header and its 64-byte `vend` field); replies are padded to that
/// size for old clients, and a message without the magic cookie must be that long.
pub const MIN_BOOTP_LEN: usize = 300;

/// Appends options to a buffer from a starting position.
#[derive(Debug)]
pub struct OptionsWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> OptionsWriter<'a> {
    /// A writer that appends to `buf` from `pos`.
    pub fn new(buf: &'a mut [u8], pos: usize) -> Self {
        OptionsWriter { buf, pos }
    }

    /// Current write position (= length written so far, counting from the buffer start).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Append raw bytes.
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let end = self.pos.checked_add(bytes.len()).ok_or(WireError::NoSpace)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(WireError::NoSpace)?;
        dst.copy_from_slice(bytes);
        self.pos += bytes.len();
        Ok(())
    }

    /// Append option `code` with `data`; data longer than 255 bytes is split into several
    /// instances (RFC 3396 section 5: "split ... into multiple instances").
    /// `code` must not be PAD (0) or END (255), which have no length byte.
    pub fn option(&mut self, code: u8, data: &[u8]) -> Result<(), WireError> {
        if data.is_empty() {
            return self.raw(&[code, 0]);
        }
        for chunk in data.chunks(255) {
            self.raw(&[code, chunk.len() as u8])?;
            self.raw(chunk)?;
        }
        Ok(())
    }

    /// Append a 4-byte address option.
    pub fn option_addr(&mut self, code: u8, a: Ipv4Addr) -> Result<(), WireError> {
        self.option(code, &a.octets())
    }

    /// Append a 4-byte number option.
    pub fn option_u32(&mut self, code: u8, v: u32) -> Result<(), WireError> {
        self.option(code, &v.to_be_bytes())
    }

    /// Write END and zero-pad to at least `min_len`; returns the total length.
    pub fn finish(mut self, min_len: usize) -> Result<usize, WireError> {
        self.raw(&[OptionCode::END])?;
        if self.pos < min_len {
            let pad = self.buf.get_mut(self.pos..min_len).ok_or(WireError::NoSpace)?;
            pad.fill(0);
            self.pos = min_len;
        }
        Ok(self.pos)
    }
}

/// Builds a new message: a zeroed header, the magic cookie and option 53 first.
#[derive(Debug)]
pub struct MessageBuilder<'a> {
    writer: OptionsWriter<'a>,
}

impl<'a> MessageBuilder<'a> {
    /// Start a message in `buf` (at least 240 bytes plus options).
    pub fn new(buf: &'a mut [u8], op: Op, message_type: Option<MessageType>) -> Result<Self, WireError> {
        let header = buf.get_mut(..HEADER_LEN).ok_or(WireError::NoSpace)?;
        header.fill(0);
        if let Some(b) = header.first_mut() {
            *b = match op {
                Op::BootRequest => 1,
                Op::BootReply => 2,
            };
        }
        if let Some(cookie) = header.get_mut(236..240) {
            cookie.copy_from_slice(&MAGIC_COOKIE);
        }
        let mut writer = OptionsWriter::new(buf, HEADER_LEN);
        if let Some(t) = message_type {
            writer.option(OptionCode::MESSAGE_TYPE, &[t.to_u8()])?;
        }
        Ok(MessageBuilder { writer })
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.writer.buf.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    /// Set `xid`.
    pub fn xid(&mut self, xid: u32) -> &mut Self {
        self.put(4, &xid.to_be_bytes());
        self
    }
    /// Set `secs`.
    pub fn secs(&mut self, secs: u16) -> &mut Self {
        self.put(8, &secs.to_be_bytes());
        self
    }
    /// Set `flags`.
    pub fn flags(&mut self, flags: u16) -> &mut Self {
        self.put(10, &flags.to_be_bytes());
        self
    }
    /// Set `ciaddr`.
    pub fn ciaddr(&mut self, a: Ipv4Addr) -> &mut Self {
        self.put(12, &a.octets());
        self
    }
    /// Set `yiaddr`.
    pub fn yiaddr(&mut self, a: Ipv4Addr) -> &mut Self {
        self.put(16, &a.octets());
        self
    }
    /// Set `siaddr`.
    pub fn siaddr(&mut self, a: Ipv4Addr) -> &mut Self {
        self.put(20, &a.octets());
        self
    }
    /// Set `giaddr`.
    pub fn giaddr(&mut self, a: Ipv4Addr) -> &mut Self {
        self.put(24, &a.octets());
        self
    }
    /// Set `hops`.
    pub fn hops(&mut self, hops: u8) -> &mut Self {
        self.put(3, &[hops]);
        self
    }
    /// Set `htype`, `hlen` and `chaddr` (at most 16 bytes are used; the rest of the
    /// 16-byte field is zeroed).
    pub fn chaddr(&mut self, htype: u8, addr: &[u8]) -> &mut Self {
        let addr = addr.get(..addr.len().min(16)).unwrap_or(&[]);
        self.put(1, &[htype, addr.len() as u8]);
        self.put(28, &[0; 16]);
        self.put(28, addr);
        self
    }
    /// The option writer, to append options.
    pub fn options(&mut self) -> &mut OptionsWriter<'a> {
        &mut self.writer
    }
    /// Append option `code` (split per RFC 3396 when longer than 255 bytes).
    pub fn option(&mut self, code: u8, data: &[u8]) -> Result<&mut Self, WireError> {
        self.writer.option(code, data)?;
        Ok(self)
    }
    /// Write END, pad to 300 bytes (RFC 1542 2.1) and return the message length.
    pub fn finish(self) -> Result<usize, WireError> {
        self.writer.finish(MIN_BOOTP_LEN)
    }
}
