//! The format language of option 82's circuit-id and remote-id (`[[downstream]]
//! circuit_id` / `remote_id`, `[relay.option82] remote_id`).
//!
//! A value is text with placeholders in braces, expanded for each downstream interface
//! whenever cdra reads the interfaces (at start-up, on every interface change, on a
//! reload), or raw bytes written in hex:
//!
//! | in the value | becomes |
//! |---|---|
//! | `{ifname}` (also `{interface}`) | the downstream interface's name |
//! | `{vlan}` | its 802.1Q VLAN id in decimal when it is a VLAN device, else `0` |
//! | `{hostname}` | this host's name (`/proc/sys/kernel/hostname`, cdra's UTS namespace) |
//! | `{ifmac}` | the interface's MAC address, `aa:bb:cc:dd:ee:ff` |
//! | `{address}` | its address (giaddr unless a source interface is set), dotted |
//! | `{hex:0a0b}` | the bytes 0x0a 0x0b |
//! | `{{`, `}}` | a brace |
//! | anything else | itself (its UTF-8 bytes) |
//!
//! A value that starts with `hex:` is all hex (`hex:0a0b0c`, optional `:` or `-` between
//! bytes). The choice follows what operators know: osvbng's `{interface}:{svlan}:{cvlan}`,
//! SONiC's circuit-id `hostname:interface:vlan`, Cumulus' and ISC dhcrelay's interface
//! name by default. Checked when the file is read: an unknown placeholder, an unclosed
//! brace, bad hex, or a value that cannot be 1 to 255 bytes is an error naming the key.

use std::fmt::Write as _;

/// One piece of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Bytes(Vec<u8>),
    IfName,
    Vlan,
    Hostname,
    IfMac,
    Address,
}

/// A parsed circuit-id or remote-id value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdFormat {
    pieces: Vec<Piece>,
}

/// What a value is expanded with: one downstream interface as found now.
#[derive(Debug, Clone)]
pub struct LinkFacts<'a> {
    /// Interface name.
    pub ifname: &'a str,
    /// 802.1Q id, for a VLAN device.
    pub vlan: Option<u16>,
    /// This host's name.
    pub hostname: &'a str,
    /// Its MAC address.
    pub mac: Option<[u8; 6]>,
    /// Its address (0.0.0.0 while it has none).
    pub address: std::net::Ipv4Addr,
}

/// Most bytes of a sub-option (RFC 3046 2.0: one length byte).
pub const MAX_LEN: usize = 255;

fn hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !matches!(c, ':' | '-')).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{text:?} is not hex bytes like \"0a0b0c\""));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(digits.get(i..i + 2).unwrap_or("zz"), 16).map_err(|e| e.to_string()))
        .collect()
}

impl AgentIdFormat {
    /// Parse `text` (see the module docs).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        if let Some(hex) = text.strip_prefix("hex:") {
            pieces.push(Piece::Bytes(hex_bytes(hex)?));
        } else {
            let mut literal = Vec::new();
            let mut chars = text.char_indices().peekable();
            while let Some((at, c)) = chars.next() {
                match c {
                    '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                        chars.next();
                        literal.push(b'{');
                    }
                    '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                        chars.next();
                        literal.push(b'}');
                    }
                    '}' => return Err(format!("a lone '}}' at byte {at} (write '}}}}' for a brace)")),
                    '{' => {
                        let rest = text.get(at + 1..).unwrap_or("");
                        let Some(end) = rest.find('}') else {
                            return Err(format!("the '{{' at byte {at} is not closed"));
                        };
                        let name = rest.get(..end).unwrap_or("");
                        for _ in 0..name.chars().count() + 1 {
                            chars.next();
                        }
                        let piece = match name {
                            "ifname" | "interface" => Piece::IfName,
                            "vlan" => Piece::Vlan,
                            "hostname" => Piece::Hostname,
                            "ifmac" => Piece::IfMac,
                            "address" => Piece::Address,
                            h if h.starts_with("hex:") => Piece::Bytes(hex_bytes(h.get(4..).unwrap_or(""))?),
                            other => {
                                return Err(format!(
                                    "unknown placeholder {{{other}}} (known: {{ifname}}, {{vlan}}, {{hostname}}, {{ifmac}}, {{address}}, {{hex:..}})"
                                ))
                            }
                        };
                        if !literal.is_empty() {
                            pieces.push(Piece::Bytes(std::mem::take(&mut literal)));
                        }
                        pieces.push(piece);
                    }
                    c => {
                        let mut b = [0u8; 4];
                        literal.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                }
            }
            if !literal.is_empty() {
                pieces.push(Piece::Bytes(literal));
            }
        }
        let f = AgentIdFormat { pieces };
        let fixed: usize = f.pieces.iter().map(|p| if let Piece::Bytes(b) = p { b.len() } else { 0 }).sum();
        if f.pieces.is_empty() {
            return Err("must not be empty".into());
        }
        if fixed > MAX_LEN {
            return Err(format!("is {fixed} bytes long, more than a sub-option holds ({MAX_LEN})"));
        }
        Ok(f)
    }

    /// Does it depend on anything but itself?
    #[cfg(test)]
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Bytes(_)))
    }

    /// The bytes for one interface: at most [`MAX_LEN`] (cut there), and never empty (an
    /// expansion to nothing gives the interface name, as the default circuit-id is).
    pub fn expand(&self, facts: &LinkFacts<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::IfName => out.extend_from_slice(facts.ifname.as_bytes()),
                Piece::Vlan => out.extend_from_slice(facts.vlan.unwrap_or(0).to_string().as_bytes()),
                Piece::Hostname => out.extend_from_slice(facts.hostname.as_bytes()),
                Piece::IfMac => {
                    let mut s = String::new();
                    for (i, b) in facts.mac.unwrap_or([0; 6]).iter().enumerate() {
                        let _ = write!(s, "{}{b:02x}", if i > 0 { ":" } else { "" });
                    }
                    out.extend_from_slice(s.as_bytes());
                }
                Piece::Address => out.extend_from_slice(facts.address.to_string().as_bytes()),
            }
        }
        out.truncate(MAX_LEN);
        if out.is_empty() {
            out.extend_from_slice(facts.ifname.as_bytes());
        }
        out
    }
}

/// This host's name, as the kernel has it for cdra's UTS namespace ("" if unreadable).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn facts() -> LinkFacts<'static> {
        LinkFacts {
            ifname: "eth0.100",
            vlan: Some(100),
            hostname: "r1",
            mac: Some([2, 0x77, 0, 0xab, 0xcd, 0xef]),
            address: Ipv4Addr::new(10, 77, 1, 1),
        }
    }

    fn expand(text: &str) -> Vec<u8> {
        AgentIdFormat::parse(text).expect(text).expand(&facts())
    }

    #[test]
    fn placeholders_expand() {
        assert_eq!(expand("{hostname}:{ifname}:{vlan}"), b"r1:eth0.100:100");
        assert_eq!(expand("{interface}"), b"eth0.100");
        assert_eq!(expand("{ifmac}"), b"02:77:00:ab:cd:ef");
        assert_eq!(expand("gi {address}"), b"gi 10.77.1.1");
        assert_eq!(expand("port-7"), b"port-7");
        assert_eq!(expand("{{x}}"), b"{x}");
        assert_eq!(expand("a{hex:00ff}b"), b"a\x00\xffb");
        assert_eq!(expand("hex:0a0b0c"), [0x0a, 0x0b, 0x0c]);
        assert_eq!(expand("hex:0a:0b-0c"), [0x0a, 0x0b, 0x0c]);
        assert_eq!(expand("ünï"), "ünï".as_bytes());
        let no_vlan = LinkFacts { vlan: None, ..facts() };
        assert_eq!(AgentIdFormat::parse("{vlan}").expect("ok").expand(&no_vlan), b"0");
    }

    #[test]
    fn literal_values_keep_their_meaning() {
        // What the file said before the format language: plain text, unchanged.
        let f = AgentIdFormat::parse("port-7").expect("ok");
        assert!(f.is_literal());
        assert!(!AgentIdFormat::parse("{ifname}").expect("ok").is_literal());
    }

    #[test]
    fn expansions_are_bounded_and_never_empty() {
        let long = LinkFacts { hostname: &"h".repeat(300), ..facts() };
        assert_eq!(AgentIdFormat::parse("{hostname}").expect("ok").expand(&long).len(), MAX_LEN);
        let nameless = LinkFacts { hostname: "", ..facts() };
        assert_eq!(AgentIdFormat::parse("{hostname}").expect("ok").expand(&nameless), b"eth0.100");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for (text, want) in [
            ("{ifnam}", "unknown placeholder {ifnam}"),
            ("{ifname", "is not closed"),
            ("a}b", "a lone '}'"),
            ("hex:0a0", "is not hex bytes"),
            ("hex:zz", "is not hex bytes"),
            ("hex:", "is not hex bytes"),
            ("{hex:1}", "is not hex bytes"),
            ("", "must not be empty"),
        ] {
            let e = AgentIdFormat::parse(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e:?} should contain {want:?}");
        }
        let e = AgentIdFormat::parse(&"x".repeat(256)).expect_err("too long");
        assert!(e.contains("256 bytes"), "{e}");
        assert!(AgentIdFormat::parse(&format!("hex:{}", "ab".repeat(255))).is_ok());
        assert!(AgentIdFormat::parse(&format!("hex:{}", "ab".repeat(256))).is_err());
    }
}
