//! The checked message view: [`Message`] over any `AsRef<[u8]>`, with in-place setters
//! when the buffer is also `AsMut<[u8]>`.
//!
//! Layout (RFC 2131 section 2, figure 1): op(1) htype(1) hlen(1) hops(1) xid(4) secs(2)
//! flags(2) ciaddr(4) yiaddr(4) siaddr(4) giaddr(4) chaddr(16) sname(64) file(128)
//! cookie(4) options(variable).
//!
//! Without the magic cookie at offset 236 the message is a plain BOOTP one (RFC 951): the
//! same header, then the 64-byte `vend` field, "optional vendor-specific area, e.g. could
//! be hardware type/serial on request, or 'capability' / remote file system handle on
//! reply" (RFC 951 section 3). Only a vendor area that starts with the cookie holds
//! options (RFC 1497, RFC 2132 section 2); any other is opaque and has no options here.
//! A relay agent handles a BOOTREQUEST by its fixed header alone (RFC 1542 section 4.1),
//! so such a message is accepted ([`Message::has_magic_cookie`] tells it apart) as long as
//! it holds the whole RFC 951 message: RFC 1542 section 2.1, "The IP Total Length and UDP Length must be
//! large enough to contain the minimal BOOTP header of 300 octets (in the UDP data field)
//! specified in \[1\]."

use core::net::Ipv4Addr;

use crate::builder::MIN_BOOTP_LEN;
use crate::error::WireError;
use crate::options::{
    check_area, index_slot, Area, Cursor, OptionCode, OptionIndex, OptionIter, RawOption, FILE, INDEXED, OPTIONS_START,
    OVERLOAD_FILE, OVERLOAD_SNAME, SNAME,
};

/// The magic cookie that starts the options field (RFC 2131 section 3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Bytes before the options field: the BOOTP header plus the magic cookie.
pub const HEADER_LEN: usize = 240;
/// The broadcast bit of `flags` (RFC 2131 section 2, figure 2).
pub const BROADCAST_FLAG: u16 = 0x8000;

mod field {
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: usize = 4;
    pub const SECS: usize = 8;
    pub const FLAGS: usize = 10;
    pub const CIADDR: usize = 12;
    pub const YIADDR: usize = 16;
    pub const SIADDR: usize = 20;
    pub const GIADDR: usize = 24;
    pub const CHADDR: usize = 28;
    pub const COOKIE: usize = 236;
}

/// BOOTP `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// 1: client (or relay) to server.
    BootRequest,
    /// 2: server to client.
    BootReply,
}

/// DHCP message type, option 53 (RFC 2132 9.6, RFC 4388 for the lease-query types, which
/// a relay only forwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    /// Any other value (forwarded unchanged by a relay).
    Other(u8),
}

impl MessageType {
    /// Decode option 53's value.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            other => MessageType::Other(other),
        }
    }

    /// Encode as option 53's value.
    pub const fn to_u8(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Other(v) => v,
        }
    }

    /// A stable lowercase label for logs and metrics.
    pub const fn label(self) -> &'static str {
        match self {
            MessageType::Discover => "discover",
            MessageType::Offer => "offer",
            MessageType::Request => "request",
            MessageType::Decline => "decline",
            MessageType::Ack => "ack",
            MessageType::Nak => "nak",
            MessageType::Release => "release",
            MessageType::Inform => "inform",
            MessageType::Other(_) => "other",
        }
    }
}

/// A checked DHCPv4/BOOTP message. Construct with [`Message::new_checked`]; afterwards
/// every accessor and setter is infallible and panic-free.
#[derive(Debug, Clone)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
    /// The vendor area starts with the magic cookie: the message has an options field.
    cookie: bool,
    /// Option 52's value (0 when absent): which of file/sname carry options.
    overload: u8,
    /// Offset of the END option in the options field, if there is one.
    options_end: Option<usize>,
    /// Where the first instance of each frequently read option is (see `INDEXED`).
    index: OptionIndex,
}

fn read_u16(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at + 2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    match buf.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn write_bytes(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Set `giaddr` and `hops` of the message in `buf`, one this program built or copied from
/// a checked one, without a view: a relay's forwarding sets only these header fields, and
/// [`Message::new_unchecked`] would walk the options to index them for nothing. As with the
/// view's setters, a field the buffer is too short to hold is not written.
pub fn set_giaddr_and_hops(buf: &mut [u8], giaddr: Ipv4Addr, hops: u8) {
    write_bytes(buf, field::GIADDR, &giaddr.octets());
    write_bytes(buf, field::HOPS, &[hops]);
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Validate `buffer` as a DHCPv4/BOOTP message.
    ///
    /// Checks: at least 240 bytes (header and the four bytes where the magic cookie goes),
    /// `op` 1 or 2, `hlen` <= 16 and then:
    /// - with the cookie: every option TLV in bounds in the options field and, where
    ///   option 52 says so, in `file` and `sname` (RFC 2132 9.3). Option 52 found in an
    ///   overloaded area is ignored, as RFC 2132 requires it in the options field.
    /// - without it: a plain BOOTP message (RFC 951), accepted with no options when it is
    ///   at least 300 bytes long (the header and the whole 64-byte `vend` field, RFC 1542
    ///   section 2.1); shorter, it is neither a DHCP message nor a complete BOOTP one
    ///   ([`WireError::BadMagicCookie`]). Its vendor area is not looked at.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let buf = buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let cookie = buf.get(field::COOKIE..HEADER_LEN) == Some(&MAGIC_COOKIE[..]);
        if !cookie && buf.len() < MIN_BOOTP_LEN {
            return Err(WireError::BadMagicCookie);
        }
        match buf.get(field::OP) {
            Some(1) | Some(2) => {}
            _ => return Err(WireError::BadOp),
        }
        if buf.get(field::HLEN).copied().unwrap_or(u8::MAX) > 16 {
            return Err(WireError::BadHardwareLength);
        }
        if !cookie {
            // RFC 951: the vendor area is the client's or the server's, not options.
            return Ok(Message { buffer, cookie, overload: 0, options_end: None, index: [0; INDEXED.len()] });
        }
        // Options are read in RFC 2131 4.1 order (options, file, sname); the index keeps the
        // first instance in that order, as a walk would find it. A message larger than
        // 64 KiB cannot be indexed by u16 offsets and is simply not indexed.
        let mut index: OptionIndex = [0; INDEXED.len()];
        let main = check_area(buf, OPTIONS_START..buf.len(), true, &mut index)?;
        let overload = main.overload.unwrap_or(0);
        if overload & OVERLOAD_FILE != 0 {
            check_area(buf, FILE, false, &mut index)?;
        }
        if overload & OVERLOAD_SNAME != 0 {
            check_area(buf, SNAME, false, &mut index)?;
        }
        if buf.len() > usize::from(u16::MAX) {
            index = [u16::MAX; INDEXED.len()];
        }
        Ok(Message { buffer, cookie, overload, options_end: main.end, index })
    }

    /// True when the vendor area starts with the magic cookie 99.130.83.99 (RFC 2131
    /// section 3, RFC 1497): a DHCP message, or a BOOTP one with RFC 1497 vendor
    /// extensions. False for a plain RFC 951 BOOTP message, which has no options: the
    /// option accessors find nothing, setters of options change nothing and
    /// [`crate::rewrite::rewrite`] refuses it (there is no options field to edit).
    pub fn has_magic_cookie(&self) -> bool {
        self.cookie
    }

    /// The walk over this message's options (none without the cookie).
    fn cursor(&self) -> Cursor {
        if self.cookie {
            Cursor::new(self.as_bytes().len(), self.overload)
        } else {
            Cursor::empty()
        }
    }

    /// The underlying buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Rebuild the option index by walking the options.
    fn reindex(&mut self) {
        if self.as_bytes().len() > usize::from(u16::MAX) {
            return;
        }
        let mut index: OptionIndex = [0; INDEXED.len()];
        for o in self.options() {
            if let Some(slot) = index_slot(o.code).and_then(|i| index.get_mut(i)) {
                if *slot == 0 {
                    *slot = o.offset as u16;
                }
            }
        }
        self.index = index;
    }

    /// Give the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// View a message this program built or has already checked (a cached reply, an outbox
    /// datagram) without validating it again: smoltcp's wire contract, checking is for
    /// input. Nothing is assumed: every accessor stays bounds-checked, so a buffer that is
    /// not a message gives meaningless values, never a panic. The option index is rebuilt
    /// by one walk of the options field. Without the magic cookie the message is a plain
    /// BOOTP one, with no options, as for [`Message::new_checked`].
    pub fn new_unchecked(buffer: T) -> Self {
        let buf = buffer.as_ref();
        let cookie = buf.get(field::COOKIE..HEADER_LEN) == Some(&MAGIC_COOKIE[..]);
        if !cookie {
            return Message { buffer, cookie, overload: 0, options_end: None, index: [0; INDEXED.len()] };
        }
        let mut index: OptionIndex = [0; INDEXED.len()];
        let area = OPTIONS_START..buf.len().max(OPTIONS_START);
        let (end, overload) = match check_area(buf, area, true, &mut index) {
            Ok(main) => (main.end, main.overload.unwrap_or(0)),
            Err(_) => (None, 0),
        };
        if overload & OVERLOAD_FILE != 0 {
            let _ = check_area(buf, FILE, false, &mut index);
        }
        if overload & OVERLOAD_SNAME != 0 {
            let _ = check_area(buf, SNAME, false, &mut index);
        }
        if buf.len() > usize::from(u16::MAX) {
            index = [u16::MAX; INDEXED.len()];
        }
        Message { buffer, cookie, overload, options_end: end, index }
    }

    fn byte(&self, at: usize) -> u8 {
        self.as_bytes().get(at).copied().unwrap_or(0)
    }

    fn addr(&self, at: usize) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.as_bytes(), at))
    }

    /// `op`: BOOTREQUEST or BOOTREPLY.
    pub fn op(&self) -> Op {
        if self.byte(field::OP) == 2 {
            Op::BootReply
        } else {
            Op::BootRequest
        }
    }
    /// Hardware address type (1 = Ethernet).
    pub fn htype(&self) -> u8 {
        self.byte(field::HTYPE)
    }
    /// Hardware address length (checked <= 16).
    pub fn hlen(&self) -> u8 {
        self.byte(field::HLEN)
    }
    /// Relay hop count.
    pub fn hops(&self) -> u8 {
        self.byte(field::HOPS)
    }
    /// Transaction id.
    pub fn xid(&self) -> u32 {
        read_u32(self.as_bytes(), field::XID)
    }
    /// Seconds since the client began acquisition.
    pub fn secs(&self) -> u16 {
        read_u16(self.as_bytes(), field::SECS)
    }
    /// The flags field.
    pub fn flags(&self) -> u16 {
        read_u16(self.as_bytes(), field::FLAGS)
    }
    /// The broadcast bit (RFC 2131 section 2).
    pub fn broadcast(&self) -> bool {
        self.flags() & BROADCAST_FLAG != 0
    }
    /// Client address (set by a client that has one: BOUND, RENEWING, REBINDING).
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.addr(field::CIADDR)
    }
    /// "Your" address: the address offered or assigned.
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.addr(field::YIADDR)
    }
    /// Next server address.
    pub fn siaddr(&self) -> Ipv4Addr {
        self.addr(field::SIADDR)
    }
    /// Relay agent address.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.addr(field::GIADDR)
    }
    /// The first `hlen` bytes of `chaddr`.
    pub fn chaddr(&self) -> &[u8] {
        let hlen = (self.hlen() as usize).min(16);
        self.as_bytes().get(field::CHADDR..field::CHADDR + hlen).unwrap_or(&[])
    }
    /// [`Message::chaddr`] zero-padded to the field's 16 bytes (the bytes past `hlen`,
    /// which are not part of the address, read as zero): one fixed-size copy, for keys
    /// made of it.
    pub fn chaddr_padded(&self) -> [u8; 16] {
        let hlen = u32::from(self.hlen()).min(16);
        let field = self.as_bytes().get(field::CHADDR..field::CHADDR + 16).and_then(|b| b.try_into().ok());
        let mask = u128::MAX.checked_shr(128 - 8 * hlen).unwrap_or(0);
        (u128::from_le_bytes(field.unwrap_or([0; 16])) & mask).to_le_bytes()
    }
    /// The Ethernet address in `chaddr` when `htype` is 1 and `hlen` is 6.
    pub fn ethernet_chaddr(&self) -> Option<[u8; 6]> {
        if self.htype() != 1 || self.hlen() != 6 {
            return None;
        }
        match self.chaddr() {
            &[a, b, c, d, e, f] => Some([a, b, c, d, e, f]),
            _ => None,
        }
    }
    /// The raw `sname` field (meaningless when overloaded).
    pub fn sname(&self) -> &[u8] {
        self.as_bytes().get(SNAME).unwrap_or(&[])
    }
    /// The raw `file` field (meaningless when overloaded).
    pub fn file(&self) -> &[u8] {
        self.as_bytes().get(FILE).unwrap_or(&[])
    }
    /// Option 52's value, 0 when absent.
    pub fn overload(&self) -> u8 {
        self.overload
    }
    /// Offset of END in the options field, if present.
    pub fn options_end(&self) -> Option<usize> {
        self.options_end
    }

    /// Every option instance, in RFC 2131 4.1 order (none without the magic cookie).
    pub fn options(&self) -> OptionIter<'_> {
        OptionIter::new(self.as_bytes(), self.cursor())
    }

    /// The first instance of option `code`.
    pub fn option(&self, code: u8) -> Option<RawOption<'_>> {
        match index_slot(code).and_then(|i| self.index.get(i)) {
            Some(0) => None,
            Some(&at) if at != u16::MAX => {
                let at = usize::from(at);
                let buf = self.as_bytes();
                let len = usize::from(*buf.get(at + 1)?);
                let data = buf.get(at + 2..at + 2 + len)?;
                let area = if at >= OPTIONS_START {
                    Area::Options
                } else if FILE.contains(&at) {
                    Area::File
                } else {
                    Area::Sname
                };
                Some(RawOption { code, data, area, offset: at })
            }
            _ => self.options().find(|o| o.code == code),
        }
    }

    /// The payload of the first instance of option `code`.
    pub fn option_data(&self, code: u8) -> Option<&[u8]> {
        self.option(code).map(|o| o.data)
    }

    /// True if option `code` appears more than once (RFC 3396 split option).
    pub fn is_split(&self, code: u8) -> bool {
        self.options().filter(|o| o.code == code).nth(1).is_some()
    }

    /// RFC 3396: "the contents of all instances of the option are concatenated" in the order
    /// they appear. Writes into `out` and returns the concatenated payload, or `None` when the
    /// option is absent; `Err(NoSpace)` when `out` is too small.
    pub fn long_option<'b>(&self, code: u8, out: &'b mut [u8]) -> Result<Option<&'b [u8]>, WireError> {
        let mut len = 0usize;
        let mut seen = false;
        for o in self.options().filter(|o| o.code == code) {
            seen = true;
            let dst = out.get_mut(len..len + o.data.len()).ok_or(WireError::NoSpace)?;
            dst.copy_from_slice(o.data);
            len += o.data.len();
        }
        if !seen {
            return Ok(None);
        }
        Ok(out.get(..len))
    }

    /// Option 53, the DHCP message type; `None` for a plain BOOTP message.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.option_data(OptionCode::MESSAGE_TYPE) {
            Some(&[t]) => Some(MessageType::from_u8(t)),
            _ => None,
        }
    }

    fn option_addr(&self, code: u8) -> Option<Ipv4Addr> {
        match self.option_data(code) {
            Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d)),
            _ => None,
        }
    }

    fn option_u32(&self, code: u8) -> Option<u32> {
        match self.option_data(code) {
            Some(&[a, b, c, d]) => Some(u32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }

    /// Option 54, server identifier.
    pub fn server_identifier(&self) -> Option<Ipv4Addr> {
        self.option_addr(OptionCode::SERVER_ID)
    }
    /// Option 50, requested IP address.
    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.option_addr(OptionCode::REQUESTED_IP)
    }
    /// Option 1, subnet mask.
    pub fn subnet_mask(&self) -> Option<Ipv4Addr> {
        self.option_addr(OptionCode::SUBNET_MASK)
    }
    /// Option 51, lease time in seconds.
    pub fn lease_time(&self) -> Option<u32> {
        self.option_u32(OptionCode::LEASE_TIME)
    }
    /// Option 58, renewal (T1) time in seconds.
    pub fn renewal_time(&self) -> Option<u32> {
        self.option_u32(OptionCode::RENEWAL_T1)
    }
    /// Option 59, rebinding (T2) time in seconds.
    pub fn rebinding_time(&self) -> Option<u32> {
        self.option_u32(OptionCode::REBINDING_T2)
    }
    /// Option 61, client identifier (first instance).
    pub fn client_identifier(&self) -> Option<&[u8]> {
        self.option_data(OptionCode::CLIENT_ID)
    }
    /// Option 55, parameter request list (first instance).
    pub fn parameter_request_list(&self) -> Option<&[u8]> {
        self.option_data(OptionCode::PARAMETER_REQUEST_LIST)
    }
    /// Option 82, relay agent information (first instance).
    pub fn relay_agent_info(&self) -> Option<&[u8]> {
        self.option_data(OptionCode::RELAY_AGENT_INFO)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set `op`.
    pub fn set_op(&mut self, op: Op) {
        let v = match op {
            Op::BootRequest => 1,
            Op::BootReply => 2,
        };
        write_bytes(self.bytes_mut(), field::OP, &[v]);
    }
    /// Set the hop count.
    pub fn set_hops(&mut self, hops: u8) {
        write_bytes(self.bytes_mut(), field::HOPS, &[hops]);
    }
    /// Set the transaction id.
    pub fn set_xid(&mut self, xid: u32) {
        write_bytes(self.bytes_mut(), field::XID, &xid.to_be_bytes());
    }
    /// Set `secs`.
    pub fn set_secs(&mut self, secs: u16) {
        write_bytes(self.bytes_mut(), field::SECS, &secs.to_be_bytes());
    }
    /// Set the flags field.
    pub fn set_flags(&mut self, flags: u16) {
        write_bytes(self.bytes_mut(), field::FLAGS, &flags.to_be_bytes());
    }
    /// Set `ciaddr`.
    pub fn set_ciaddr(&mut self, a: Ipv4Addr) {
        write_bytes(self.bytes_mut(), field::CIADDR, &a.octets());
    }
    /// Set `yiaddr`.
    pub fn set_yiaddr(&mut self, a: Ipv4Addr) {
        write_bytes(self.bytes_mut(), field::YIADDR, &a.octets());
    }
    /// Set `siaddr`.
    pub fn set_siaddr(&mut self, a: Ipv4Addr) {
        write_bytes(self.bytes_mut(), field::SIADDR, &a.octets());
    }
    /// Set `giaddr`.
    pub fn set_giaddr(&mut self, a: Ipv4Addr) {
        write_bytes(self.bytes_mut(), field::GIADDR, &a.octets());
    }
    /// Set `htype`, `hlen` and `chaddr` (at most 16 bytes are used; the rest of the
    /// 16-byte field is zeroed).
    pub fn set_hardware(&mut self, htype: u8, chaddr: &[u8]) {
        let chaddr = chaddr.get(..chaddr.len().min(16)).unwrap_or(&[]);
        let buf = self.bytes_mut();
        write_bytes(buf, field::HTYPE, &[htype, chaddr.len() as u8]);
        write_bytes(buf, field::CHADDR, &[0; 16]);
        write_bytes(buf, field::CHADDR, chaddr);
    }

    /// Overwrite the payload of every instance of option `code` whose length equals
    /// `value.len()`. Returns how many instances were patched (0 when absent or when the
    /// lengths differ: a length-changing edit needs [`crate::rewrite`]).
    ///
    /// Option 52 (overload) is never patched (returns 0): its value decides whether `file`
    /// and `sname` hold options, so changing it could turn a checked message into one that
    /// [`Message::new_checked`] rejects.
    pub fn patch_option(&mut self, code: u8, value: &[u8]) -> usize {
        if code == OptionCode::OVERLOAD {
            return 0;
        }
        let mut cursor = self.cursor();
        let mut n = 0;
        while let Some(f) = cursor.next(self.buffer.as_ref()) {
            if f.code == code && f.len == value.len() {
                write_bytes(self.bytes_mut(), f.offset + 2, value);
                n += 1;
            }
        }
        n
    }

    /// Several [`Self::patch_option`]s in one walk over the options: each `(code, value)`
    /// overwrites every instance of `code` whose length equals `value.len()`. Returns how
    /// many instances were patched in all. (A local answer patches five options; one walk
    /// instead of five keeps it well under 100 ns.)
    pub fn patch_options(&mut self, patches: &[(u8, &[u8])]) -> usize {
        let mut cursor = self.cursor();
        let mut n = 0;
        while let Some(f) = cursor.next(self.buffer.as_ref()) {
            if f.code == OptionCode::OVERLOAD {
                continue;
            }
            if let Some((_, value)) = patches.iter().find(|(code, value)| *code == f.code && value.len() == f.len) {
                write_bytes(self.bytes_mut(), f.offset + 2, value);
                n += 1;
            }
        }
        n
    }

    /// Patch a 4-byte option holding an address (e.g. option 54). See [`Self::patch_option`].
    pub fn patch_option_addr(&mut self, code: u8, a: Ipv4Addr) -> usize {
        self.patch_option(code, &a.octets())
    }

    /// Patch a 4-byte option holding a number of seconds (options 51, 58, 59).
    pub fn patch_option_u32(&mut self, code: u8, v: u32) -> usize {
        self.patch_option(code, &v.to_be_bytes())
    }

    /// Turn every instance of option `code` into PAD bytes, in place; the message keeps its
    /// length. Returns how many instances were blanked.
    ///
    /// Blanking option 52 (overload) also stops the view from reading options in `file` and
    /// `sname`, as a fresh [`Message::new_checked`] of the bytes would.
    pub fn blank_option(&mut self, code: u8) -> usize {
        let mut cursor = self.cursor();
        let mut n = 0;
        while let Some(f) = cursor.next(self.buffer.as_ref()) {
            if f.code == code {
                if let Some(dst) = self.bytes_mut().get_mut(f.offset..f.offset + 2 + f.len) {
                    dst.fill(OptionCode::PAD);
                }
                n += 1;
            }
        }
        if code == OptionCode::OVERLOAD && n > 0 {
            self.overload = 0;
            // Options in file/sname no longer count: forget where they were, and find
            // their first instances again in what remains.
            self.reindex();
        }
        if let Some(slot) = index_slot(code).and_then(|i| self.index.get_mut(i)) {
            if *slot != u16::MAX {
                *slot = 0;
            }
        }
        n
    }
}
