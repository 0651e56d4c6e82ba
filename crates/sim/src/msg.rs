//! Small helpers over `cdra_wire` messages: the kind of a message, the identity a server
//! keys it by, and a one-line summary for traces.

use core::fmt;
use core::net::Ipv4Addr;

use cdra_wire::{Message, MessageBuilder, MessageType, Op, WireError};

/// What a datagram is, for counters and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    /// Any other option 53 value.
    Other,
    /// BOOTREQUEST without option 53.
    BootRequest,
    /// BOOTREPLY without option 53.
    BootReply,
}

impl Kind {
    /// Number of kinds (counter array size).
    pub const COUNT: usize = 11;
    /// Every kind, in index order.
    pub const ALL: [Kind; Kind::COUNT] = [
        Kind::Discover,
        Kind::Offer,
        Kind::Request,
        Kind::Decline,
        Kind::Ack,
        Kind::Nak,
        Kind::Release,
        Kind::Inform,
        Kind::Other,
        Kind::BootRequest,
        Kind::BootReply,
    ];

    /// Dense index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind of a checked message.
    pub fn of<T: AsRef<[u8]>>(m: &Message<T>) -> Kind {
        match (m.message_type(), m.op()) {
            (Some(MessageType::Discover), _) => Kind::Discover,
            (Some(MessageType::Offer), _) => Kind::Offer,
            (Some(MessageType::Request), _) => Kind::Request,
            (Some(MessageType::Decline), _) => Kind::Decline,
            (Some(MessageType::Ack), _) => Kind::Ack,
            (Some(MessageType::Nak), _) => Kind::Nak,
            (Some(MessageType::Release), _) => Kind::Release,
            (Some(MessageType::Inform), _) => Kind::Inform,
            (Some(MessageType::Other(_)), _) => Kind::Other,
            (None, Op::BootRequest) => Kind::BootRequest,
            (None, Op::BootReply) => Kind::BootReply,
        }
    }

    /// Lowercase label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Discover => "discover",
            Kind::Offer => "offer",
            Kind::Request => "request",
            Kind::Decline => "decline",
            Kind::Ack => "ack",
            Kind::Nak => "nak",
            Kind::Release => "release",
            Kind::Inform => "inform",
            Kind::Other => "other",
            Kind::BootRequest => "bootrequest",
            Kind::BootReply => "bootreply",
        }
    }
}

/// Counts per [`Kind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts(pub [u64; Kind::COUNT]);

impl KindCounts {
    /// Add one.
    pub fn bump(&mut self, k: Kind) {
        self.0[k.index()] += 1;
    }
    /// The count for `k`.
    pub fn get(&self, k: Kind) -> u64 {
        self.0[k.index()]
    }
    /// Sum over every kind.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl fmt::Display for KindCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for k in Kind::ALL {
            let n = self.get(k);
            if n > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                first = false;
                write!(f, "{}={}", k.label(), n)?;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// The identity a server keys a client by (RFC 2131 4.2: client identifier, else chaddr).
/// Tagged so an identifier can never equal a hardware address.
pub fn client_key<T: AsRef<[u8]>>(m: &Message<T>) -> Vec<u8> {
    match m.client_identifier() {
        Some(id) if !id.is_empty() => {
            let mut k = vec![1u8];
            k.extend_from_slice(id);
            k
        }
        _ => {
            let mut k = vec![0u8, m.htype()];
            k.extend_from_slice(m.chaddr());
            k
        }
    }
}

/// A one-line description of a message, cheap to keep in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Message kind.
    pub kind: Kind,
    /// Transaction id.
    pub xid: u32,
    /// The client's MAC (first 6 bytes of chaddr).
    pub mac: [u8; 6],
    /// `ciaddr`.
    pub ciaddr: Ipv4Addr,
    /// `yiaddr`.
    pub yiaddr: Ipv4Addr,
    /// `giaddr`.
    pub giaddr: Ipv4Addr,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 50.
    pub requested: Option<Ipv4Addr>,
    /// Option 51.
    pub lease: Option<u32>,
    /// Broadcast flag.
    pub broadcast: bool,
}

impl Summary {
    /// Summarize a checked message.
    pub fn of<T: AsRef<[u8]>>(m: &Message<T>) -> Summary {
        let mut mac = [0u8; 6];
        for (d, s) in mac.iter_mut().zip(m.chaddr()) {
            *d = *s;
        }
        Summary {
            kind: Kind::of(m),
            xid: m.xid(),
            mac,
            ciaddr: m.ciaddr(),
            yiaddr: m.yiaddr(),
            giaddr: m.giaddr(),
            server_id: m.server_identifier(),
            requested: m.requested_ip(),
            lease: m.lease_time(),
            broadcast: m.broadcast(),
        }
    }

    /// Summarize raw bytes (`None` if they do not parse).
    pub fn parse(data: &[u8]) -> Option<Summary> {
        Message::new_checked(data).ok().map(|m| Summary::of(&m))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} xid={:08x} mac=..{:02x}{:02x}", self.kind.label(), self.xid, self.mac[4], self.mac[5])?;
        let z = Ipv4Addr::UNSPECIFIED;
        if self.ciaddr != z {
            write!(f, " ciaddr={}", self.ciaddr)?;
        }
        if self.yiaddr != z {
            write!(f, " yiaddr={}", self.yiaddr)?;
        }
        if self.giaddr != z {
            write!(f, " giaddr={}", self.giaddr)?;
        }
        if let Some(a) = self.requested {
            write!(f, " req={a}")?;
        }
        if let Some(a) = self.server_id {
            write!(f, " sid={a}")?;
        }
        if let Some(l) = self.lease {
            write!(f, " lease={l}s")?;
        }
        if self.broadcast {
            f.write_str(" B")?;
        }
        Ok(())
    }
}

/// Build a message with `MessageBuilder`: `fill` sets header fields and options.
pub fn build(
    op: Op,
    kind: Option<MessageType>,
    fill: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), WireError>,
) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let len = (|| {
        let mut b = MessageBuilder::new(&mut buf, op, kind)?;
        fill(&mut b)?;
        b.finish()
    })()
    .expect("simulation messages fit in 1500 bytes");
    buf.truncate(len);
    buf
}

/// Format a MAC address.
pub fn mac_str(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
