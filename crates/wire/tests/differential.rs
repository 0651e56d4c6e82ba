//! Differential test against dhcproto 0.15: on valid messages (hlen <= 16; dhcproto panics
//! above), our view and dhcproto's decoder agree on the header fields, the message type,
//! server id, requested address, lease time, client id and the set of option codes.
//!
//! dhcproto's model differs from ours in known ways, which the comparison accounts for:
//! - it does not implement option overload (52): only the options field is compared;
//! - it concatenates only *adjacent* instances of a code (RFC 3396), and keeps the last
//!   run of a code that appears in several places (a map); we report the first instance
//!   and concatenate all instances. Values are compared where a code has a single run;
//! - it stops decoding options at the first one it cannot decode (e.g. a 3-byte server
//!   id, non-UTF-8 host name), keeping those before it;
//! - some of its decoders `debug_assert!` on lengths (80, 81, 94, 151-155): messages with
//!   such options at other lengths are not fed to it;
//! - it does not check the magic cookie and reads a plain BOOTP message's vendor area as
//!   options; for us (RFC 951) such a message has none: only the header is compared.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use cdra_wire::options::Area;
use cdra_wire::{Message, Op};
use common::corpus::{corpus_dir, seeds, Expect};
use dhcproto::v4::{self, relay, Decodable, Decoder, DhcpOption, Encodable, OptionCode};
use proptest::collection::vec;
use proptest::prelude::*;

/// A run of adjacent instances of one code in the options field (no PAD between them).
#[derive(Debug)]
struct Run {
    code: u8,
    start: usize,
    end: usize,
    lens: Vec<usize>,
}

fn runs<T: AsRef<[u8]>>(m: &Message<T>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for o in m.options().filter(|o| o.area == Area::Options) {
        match out.last_mut() {
            Some(r) if r.code == o.code && r.end == o.offset => {
                r.end = o.offset + o.encoded_len();
                r.lens.push(o.data.len());
            }
            _ => out.push(Run {
                code: o.code,
                start: o.offset,
                end: o.offset + o.encoded_len(),
                lens: vec![o.data.len()],
            }),
        }
    }
    out
}

/// Options whose dhcproto decoder would hit a `debug_assert!` or an underflow.
fn dhcproto_would_panic(r: &Run) -> bool {
    let total: usize = r.lens.iter().sum();
    match r.code {
        80 => total != 0,
        81 => total < 3,
        94 => total != 3,
        151 => total == 0,
        152..=155 => total != 4,
        _ => false,
    }
}

fn their_codes(t: &v4::Message) -> BTreeSet<u8> {
    t.opts().iter().map(|(c, _)| u8::from(*c)).collect()
}

fn addr_of(o: Option<&DhcpOption>) -> Option<Ipv4Addr> {
    match o {
        Some(DhcpOption::ServerIdentifier(a) | DhcpOption::RequestedIpAddress(a)) => Some(*a),
        _ => None,
    }
}

fn compare_header<T: AsRef<[u8]>>(ours: &Message<T>, t: &v4::Message) {
    let op = match ours.op() {
        Op::BootRequest => 1u8,
        Op::BootReply => 2,
    };
    assert_eq!(op, u8::from(t.opcode()));
    assert_eq!(ours.htype(), u8::from(t.htype()));
    assert_eq!(ours.hlen(), t.hlen());
    assert_eq!(ours.hops(), t.hops());
    assert_eq!(ours.xid(), t.xid());
    assert_eq!(ours.secs(), t.secs());
    assert_eq!(ours.flags(), u16::from(t.flags()));
    assert_eq!(ours.broadcast(), t.flags().broadcast());
    assert_eq!(ours.ciaddr(), t.ciaddr());
    assert_eq!(ours.yiaddr(), t.yiaddr());
    assert_eq!(ours.siaddr(), t.siaddr());
    assert_eq!(ours.giaddr(), t.giaddr());
    assert_eq!(ours.chaddr(), t.chaddr());
}

/// Compare one valid message. Returns false when dhcproto could not be asked (it would
/// panic on one of the options).
fn compare(bytes: &[u8]) -> bool {
    let ours = Message::new_checked(bytes).expect("valid input");
    assert!(ours.hlen() <= 16);
    if !ours.has_magic_cookie() {
        let t = v4::Message::decode(&mut Decoder::new(bytes)).expect("dhcproto decodes the header");
        compare_header(&ours, &t);
        assert_eq!(ours.options().count(), 0);
        return true;
    }
    let runs = runs(&ours);
    if runs.iter().any(dhcproto_would_panic) {
        return false;
    }
    let t = v4::Message::decode(&mut Decoder::new(bytes)).expect("dhcproto decodes any valid message");
    compare_header(&ours, &t);

    // Which runs dhcproto decodes: all up to the first it fails on.
    let mut decoded: Vec<&Run> = Vec::new();
    for r in &runs {
        if DhcpOption::decode(&mut Decoder::new(&bytes[r.start..r.end])).is_err() {
            break;
        }
        decoded.push(r);
    }
    let want: BTreeSet<u8> = decoded.iter().map(|r| r.code).collect();
    assert_eq!(their_codes(&t), want, "option codes");

    // Values, where the code is one run that dhcproto decoded and has our canonical length.
    let single = |code: u8, len: Option<usize>| -> bool {
        let all: Vec<&Run> = runs.iter().filter(|r| r.code == code).collect();
        all.len() == 1
            && decoded.iter().any(|r| r.code == code)
            && match len {
                Some(n) => all[0].lens == [n],
                None => true,
            }
            && ours.options().all(|o| o.code != code || o.area == Area::Options)
    };
    if single(53, Some(1)) {
        let theirs = t.opts().msg_type().map(u8::from);
        assert_eq!(ours.message_type().map(|m| m.to_u8()), theirs, "message type");
    }
    if single(54, Some(4)) {
        assert_eq!(ours.server_identifier(), addr_of(t.opts().get(OptionCode::ServerIdentifier)), "server id");
    }
    if single(50, Some(4)) {
        assert_eq!(ours.requested_ip(), addr_of(t.opts().get(OptionCode::RequestedIpAddress)), "requested ip");
    }
    if single(51, Some(4)) {
        let theirs = match t.opts().get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(s)) => Some(*s),
            _ => None,
        };
        assert_eq!(ours.lease_time(), theirs, "lease time");
    }
    if single(61, None) {
        let theirs = match t.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) => Some(id.clone()),
            _ => None,
        };
        let mut buf = [0u8; 2048];
        let ours_id = ours.long_option(61, &mut buf).unwrap().map(<[u8]>::to_vec);
        assert_eq!(ours_id, theirs, "client id");
        if !ours.is_split(61) {
            assert_eq!(ours.client_identifier().map(<[u8]>::to_vec), theirs);
        }
    }
    // Absent on our side means absent on theirs.
    for (code, theirs) in [
        (53, t.opts().msg_type().is_some()),
        (54, t.opts().get(OptionCode::ServerIdentifier).is_some()),
        (50, t.opts().get(OptionCode::RequestedIpAddress).is_some()),
        (51, t.opts().get(OptionCode::AddressLeaseTime).is_some()),
        (61, t.opts().get(OptionCode::ClientIdentifier).is_some()),
    ] {
        if ours.options().all(|o| o.code != code) {
            assert!(!theirs, "code {code} absent here, present in dhcproto");
        }
    }
    true
}

#[test]
fn agrees_with_dhcproto_on_the_corpus() {
    let mut compared = 0;
    let mut names = Vec::new();
    // The generated seeds and whatever else is in the corpus directory.
    let mut inputs: Vec<(String, Vec<u8>)> =
        seeds().into_iter().filter(|(_, e, _)| *e == Expect::Valid).map(|(n, _, b)| (n.to_string(), b)).collect();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    for (name, bytes) in inputs {
        let Ok(m) = Message::new_checked(&bytes[..]) else {
            continue;
        };
        if m.hlen() > 16 {
            continue;
        }
        if compare(&bytes) {
            compared += 1;
        } else {
            names.push(name);
        }
    }
    assert!(compared >= 60, "compared {compared}; skipped {names:?}");
}

#[test]
fn known_disagreement_overload_is_ours_only() {
    // dhcproto does not read options from an overloaded file field; we do.
    let bytes = common::overload_file_ack();
    let ours = Message::new_checked(&bytes[..]).unwrap();
    let t = v4::Message::decode(&mut Decoder::new(&bytes)).unwrap();
    assert!(ours.option(15).is_some());
    assert!(t.opts().get(OptionCode::DomainName).is_none());
    assert!(compare(&bytes));
}

#[test]
fn known_disagreement_vendor_area_without_cookie_is_not_options() {
    // dhcproto reads options after any four bytes at 236; without the magic cookie we do
    // not (RFC 951's vend field is opaque).
    let bytes = common::Hdr { cookie: [99, 130, 83, 98], ..common::Hdr::default() }.padded(&[53, 1, 1, 255], 300);
    let ours = Message::new_checked(&bytes[..]).unwrap();
    assert!(!ours.has_magic_cookie());
    assert_eq!(ours.message_type(), None);
    let t = v4::Message::decode(&mut Decoder::new(&bytes)).unwrap();
    assert_eq!(t.opts().msg_type(), Some(v4::MessageType::Discover));
    assert!(compare(&bytes));
}

// --- dhcproto-built messages -------------------------------------------------------------

fn ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

/// Codes dhcproto does not know, so `Unknown` round-trips as raw bytes.
fn unknown_code() -> impl Strategy<Value = u8> {
    (1u8..=254).prop_filter("unknown to dhcproto", |c| matches!(OptionCode::from(*c), OptionCode::Unknown(_)))
}

fn dp_option() -> impl Strategy<Value = DhcpOption> {
    prop_oneof![
        (1u8..=20).prop_map(|t| DhcpOption::MessageType(v4::MessageType::from(t))),
        ip().prop_map(DhcpOption::ServerIdentifier),
        ip().prop_map(DhcpOption::RequestedIpAddress),
        ip().prop_map(DhcpOption::SubnetMask),
        any::<u32>().prop_map(DhcpOption::AddressLeaseTime),
        any::<u32>().prop_map(DhcpOption::Renewal),
        any::<u32>().prop_map(DhcpOption::Rebinding),
        any::<u16>().prop_map(DhcpOption::MaxMessageSize),
        vec(any::<u8>(), 1..400).prop_map(DhcpOption::ClientIdentifier),
        vec(any::<u8>(), 1..80).prop_map(DhcpOption::ClassIdentifier),
        "[a-z0-9.-]{1,300}".prop_map(DhcpOption::Hostname),
        "[ -~]{1,80}".prop_map(DhcpOption::Message),
        vec(1u8..=254, 1..40)
            .prop_map(|c| DhcpOption::ParameterRequestList(c.into_iter().map(OptionCode::from).collect())),
        vec(ip(), 1..4).prop_map(DhcpOption::Router),
        vec(ip(), 1..80).prop_map(DhcpOption::DomainNameServer),
        (vec(any::<u8>(), 0..40), vec(any::<u8>(), 0..40), prop::option::of(ip()), prop::option::of(ip())).prop_map(
            |(circuit, remote, link, sid)| {
                let mut info = relay::RelayAgentInformation::default();
                info.insert(relay::RelayInfo::AgentCircuitId(circuit));
                info.insert(relay::RelayInfo::AgentRemoteId(remote));
                if let Some(a) = link {
                    info.insert(relay::RelayInfo::LinkSelection(a));
                }
                if let Some(a) = sid {
                    info.insert(relay::RelayInfo::ServerIdentifierOverride(a));
                }
                DhcpOption::RelayAgentInformation(info)
            }
        ),
        Just(DhcpOption::RapidCommit),
        (unknown_code(), vec(any::<u8>(), 1..300))
            .prop_map(|(c, d)| DhcpOption::Unknown(v4::UnknownOption::new(OptionCode::from(c), d))),
    ]
}

prop_compose! {
    fn dp_message()(
        reply in any::<bool>(),
        htype in any::<u8>(),
        chaddr in vec(any::<u8>(), 0..=16),
        hops in any::<u8>(),
        xid in any::<u32>(),
        secs in any::<u16>(),
        flags in any::<u16>(),
        addrs in (ip(), ip(), ip(), ip()),
        sname in prop::option::of("[a-z.]{1,63}"),
        fname in prop::option::of("[a-z/.]{1,127}"),
        opts in vec(dp_option(), 0..10),
    ) -> v4::Message {
        let mut m = v4::Message::new_with_id(xid, addrs.0, addrs.1, addrs.2, addrs.3, &chaddr);
        m.set_opcode(if reply { v4::Opcode::BootReply } else { v4::Opcode::BootRequest })
            .set_htype(v4::HType::from(htype))
            .set_hops(hops)
            .set_secs(secs)
            .set_flags(v4::Flags::new(flags));
        if let Some(s) = sname {
            m.set_sname_str(s);
        }
        if let Some(f) = fname {
            m.set_fname_str(f);
        }
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }
}

/// The RFC 3396 payload of an option as dhcproto encodes it on its own.
fn payload(o: &DhcpOption) -> Vec<u8> {
    let enc = o.to_vec().unwrap();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= enc.len() {
        let n = enc[i + 1] as usize;
        out.extend_from_slice(&enc[i + 2..i + 2 + n]);
        i += 2 + n;
    }
    out
}

proptest! {
    #[test]
    fn agrees_with_dhcproto_on_its_own_messages(msg in dp_message()) {
        let bytes = msg.to_vec().unwrap();
        let ours = Message::new_checked(&bytes[..]).expect("dhcproto's output is a valid message");
        let t = v4::Message::decode(&mut Decoder::new(&bytes)).unwrap();
        // dhcproto round-trips its own header.
        prop_assert_eq!((t.xid(), t.hlen(), t.chaddr()), (msg.xid(), msg.hlen(), msg.chaddr()));
        prop_assert!(compare(&bytes));
        // Everything dhcproto wrote, we read: same codes, same RFC 3396 payloads.
        let ours_codes: BTreeSet<u8> = ours.options().map(|o| o.code).collect();
        prop_assert_eq!(&ours_codes, &their_codes(&t));
        let mut buf = vec![0u8; 4096];
        for (code, o) in t.opts().iter() {
            let c = u8::from(*code);
            let got = ours.long_option(c, &mut buf).unwrap().map(<[u8]>::to_vec);
            prop_assert_eq!(got, Some(payload(o)), "code {}", c);
        }
        // dhcproto puts 82 last, as RFC 3046 asks.
        if ours_codes.contains(&82) {
            prop_assert_eq!(ours.options().last().map(|o| o.code), Some(82));
            let info = cdra_wire::RelayAgentInfo::new_checked(ours.relay_agent_info().unwrap()).unwrap();
            if let Some(DhcpOption::RelayAgentInformation(r)) = t.opts().get(OptionCode::RelayAgentInformation) {
                let circuit = match r.get(relay::RelayCode::AgentCircuitId) {
                    Some(relay::RelayInfo::AgentCircuitId(c)) => Some(c.as_slice()),
                    _ => None,
                };
                prop_assert_eq!(info.circuit_id(), circuit);
                let link = match r.get(relay::RelayCode::LinkSelection) {
                    Some(relay::RelayInfo::LinkSelection(a)) => Some(*a),
                    _ => None,
                };
                prop_assert_eq!(info.link_selection(), link);
                let sid = match r.get(relay::RelayCode::ServerIdentifierOverride) {
                    Some(relay::RelayInfo::ServerIdentifierOverride(a)) => Some(*a),
                    _ => None,
                };
                prop_assert_eq!(info.server_id_override(), sid);
            }
        }
        cdra_wire::fuzzing::exercise(&bytes);
    }

    /// Our builder's messages, decoded by dhcproto.
    #[test]
    fn dhcproto_reads_our_builder_output(
        mt in 1u8..=8,
        xid in any::<u32>(),
        mac in any::<[u8; 6]>(),
        sid in ip(),
        lease in any::<u32>(),
        id in vec(any::<u8>(), 1..400),
    ) {
        let mut buf = [0u8; 1024];
        let mut b = cdra_wire::MessageBuilder::new(&mut buf, Op::BootReply, Some(cdra_wire::MessageType::from_u8(mt))).unwrap();
        b.xid(xid).chaddr(1, &mac);
        b.option(54, &sid.octets()).unwrap();
        b.options().option_u32(51, lease).unwrap();
        b.option(61, &id).unwrap();
        let len = b.finish().unwrap();
        let t = v4::Message::decode(&mut Decoder::new(&buf[..len])).unwrap();
        prop_assert_eq!(t.opts().msg_type().map(u8::from), Some(mt));
        prop_assert_eq!(t.opts().get(OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(sid)));
        prop_assert_eq!(t.opts().get(OptionCode::AddressLeaseTime), Some(&DhcpOption::AddressLeaseTime(lease)));
        prop_assert_eq!(t.opts().get(OptionCode::ClientIdentifier), Some(&DhcpOption::ClientIdentifier(id)));
        prop_assert_eq!(t.chaddr(), &mac[..]);
        prop_assert!(compare(&buf[..len]));
    }
}
