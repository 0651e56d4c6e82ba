//! Option codes, the option iterator and RFC 3396 long options.
//!
//! Options live in up to three areas: the `options` field, and, when option 52
//! (overload, RFC 2132 9.3) says so, the `file` and `sname` fields. RFC 2131 section 4.1:
//! "the client interprets the 'options' field first, then the 'file' field, then the
//! 'sname' field" — the iterator walks them in that order. RFC 3396: an option may appear
//! more than once; its instances are concatenated in that order ([`crate::Message::long_option`]).

use crate::error::WireError;

/// Well-known option codes (RFC 2132 and later).
#[allow(missing_docs)]
pub struct OptionCode;

#[allow(missing_docs)]
impl OptionCode {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_T1: u8 = 58;
    pub const REBINDING_T2: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const RAPID_COMMIT: u8 = 80;
    pub const RELAY_AGENT_INFO: u8 = 82;
    pub const SUBNET_SELECTION: u8 = 118;
    pub const END: u8 = 255;
}

/// Where an option was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// The variable-length `options` field after the magic cookie.
    Options,
    /// The 128-byte `file` field, overloaded (option 52 value 1 or 3).
    File,
    /// The 64-byte `sname` field, overloaded (option 52 value 2 or 3).
    Sname,
}

/// One option instance: its code, its payload and where it sits in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    /// Option code (never PAD or END).
    pub code: u8,
    /// Payload, without code and length bytes.
    pub data: &'a [u8],
    /// The area the option was found in.
    pub area: Area,
    /// Offset of the code byte from the start of the message.
    pub offset: usize,
}

impl RawOption<'_> {
    /// Total encoded size: code + length + payload.
    pub fn encoded_len(&self) -> usize {
        2 + self.data.len()
    }
}

/// Byte ranges of the three option areas.
pub(crate) const SNAME: core::ops::Range<usize> = 44..108;
pub(crate) const FILE: core::ops::Range<usize> = 108..236;
pub(crate) const OPTIONS_START: usize = 240;

/// Overload bits as decoded from option 52.
pub(crate) const OVERLOAD_FILE: u8 = 1;
pub(crate) const OVERLOAD_SNAME: u8 = 2;

/// Result of checking one area: where END is (if present) and the overload value seen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AreaCheck {
    /// Offset of the END option, or `None` when the area ran out without one.
    pub end: Option<usize>,
    /// Value of option 52 if it appeared in this area.
    pub overload: Option<u8>,
}

/// Check that every TLV in `buf[range]` is in bounds. Tolerates a missing END (many
/// BOOTP implementations omit it) and trailing bytes after END (padding).
///
/// `main` is true for the options field: only there is option 52 validated and reported
/// (RFC 2132 9.3 allows it only in the options field); in `file`/`sname` it is an
/// ordinary option whose length alone is checked.
/// The options whose first instance [`crate::Message`] remembers while checking, so that
/// reading them costs no walk: message type, server identifier, requested address, client
/// identifier, parameter request list, relay agent information, lease time, subnet mask.
pub(crate) const INDEXED: [u8; 8] = [53, 54, 50, 61, 55, 82, 51, 1];

/// Slot of `code` in [`INDEXED`].
pub(crate) const fn index_slot(code: u8) -> Option<usize> {
    match code {
        53 => Some(0),
        54 => Some(1),
        50 => Some(2),
        61 => Some(3),
        55 => Some(4),
        82 => Some(5),
        51 => Some(6),
        1 => Some(7),
        _ => None,
    }
}

/// Offsets of the first instance of each [`INDEXED`] option (0: absent; no option can sit
/// at offset 0).
pub(crate) type OptionIndex = [u16; INDEXED.len()];

pub(crate) fn check_area(
    buf: &[u8],
    range: core::ops::Range<usize>,
    main: bool,
    index: &mut OptionIndex,
) -> Result<AreaCheck, WireError> {
    let mut pos = range.start;
    let mut overload = None;
    while pos < range.end {
        let code = *buf.get(pos).ok_or(WireError::Truncated)?;
        match code {
            OptionCode::PAD => pos += 1,
            OptionCode::END => return Ok(AreaCheck { end: Some(pos), overload }),
            _ => {
                let len = *buf.get(pos + 1).ok_or(WireError::OptionOverrun)? as usize;
                let next = pos + 2 + len;
                if next > range.end {
                    return Err(WireError::OptionOverrun);
                }
                if let Some(slot) = index_slot(code).and_then(|i| index.get_mut(i)) {
                    if *slot == 0 {
                        *slot = pos as u16;
                    }
                }
                if main && code == OptionCode::OVERLOAD {
                    let value = match buf.get(pos + 2..next) {
                        Some([v @ 1..=3]) => *v,
                        _ => return Err(WireError::BadOverload),
                    };
                    overload = Some(value);
                }
                pos = next;
            }
        }
    }
    Ok(AreaCheck { end: None, overload })
}

/// One option instance found by a [`Cursor`]: positions only, no borrow of the buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub code: u8,
    /// Offset of the code byte.
    pub offset: usize,
    /// Payload length.
    pub len: usize,
    pub area: Area,
}

/// The walk behind [`OptionIter`], holding positions only so that callers that patch the
/// buffer in place (same-length edits, PAD blanking) can walk it without borrowing it.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    pos: usize,
    end: usize,
    area: Area,
    overload: u8,
}

impl Cursor {
    pub(crate) fn new(buf_len: usize, overload: u8) -> Self {
        Cursor { pos: OPTIONS_START, end: buf_len, area: Area::Options, overload }
    }

    /// A walk that finds nothing: a BOOTP message without the magic cookie has no
    /// options (its vendor area is not ours to read).
    pub(crate) fn empty() -> Self {
        Cursor { pos: 0, end: 0, area: Area::Sname, overload: 0 }
    }

    /// Move to the next overloaded area; false when there is none.
    fn next_area(&mut self) -> bool {
        let next = match self.area {
            Area::Options if self.overload & OVERLOAD_FILE != 0 => Some((Area::File, FILE)),
            Area::Options | Area::File if self.overload & OVERLOAD_SNAME != 0 => Some((Area::Sname, SNAME)),
            _ => None,
        };
        match next {
            Some((area, range)) => {
                self.area = area;
                self.pos = range.start;
                self.end = range.end;
                true
            }
            None => {
                self.pos = self.end;
                false
            }
        }
    }

    /// The next option instance in `buf` (the same buffer, or one whose TLV structure is
    /// unchanged, on every call).
    pub(crate) fn next(&mut self, buf: &[u8]) -> Option<Found> {
        loop {
            if self.pos >= self.end {
                if !self.next_area() {
                    return None;
                }
                continue;
            }
            let code = *buf.get(self.pos)?;
            match code {
                OptionCode::PAD => self.pos += 1,
                OptionCode::END => self.pos = self.end,
                _ => {
                    let len = *buf.get(self.pos + 1)? as usize;
                    let offset = self.pos;
                    let next = offset + 2 + len;
                    if next > self.end || next > buf.len() {
                        // Cannot happen on a checked message; stop rather than misread.
                        self.pos = self.end;
                        continue;
                    }
                    self.pos = next;
                    return Some(Found { code, offset, len, area: self.area });
                }
            }
        }
    }
}

/// Iterator over every option instance in a checked message, in RFC 2131 4.1 order
/// (options, then file, then sname), skipping PAD and stopping each area at END. Empty for
/// a BOOTP message without the magic cookie.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    buf: &'a [u8],
    cursor: Cursor,
}

impl<'a> OptionIter<'a> {
    pub(crate) fn new(buf: &'a [u8], cursor: Cursor) -> Self {
        OptionIter { buf, cursor }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = RawOption<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let f = self.cursor.next(self.buf)?;
        let data = self.buf.get(f.offset + 2..f.offset + 2 + f.len)?;
        Some(RawOption { code: f.code, data, area: f.area, offset: f.offset })
    }
}
