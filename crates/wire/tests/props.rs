//! Property tests: nothing panics on any input, and the structural guarantees hold on
//! generated messages (valid header + random TLVs, with and without overload).
//!
//! Every accepted input goes through `cdra_wire::fuzzing::exercise`, the fuzz target's
//! body, which checks accessors, the iterator, long options, option 82, every setter,
//! patch/blank, rewrite into buffers of many sizes, a rebuild and the IPv4/UDP writer.

mod common;

use core::net::Ipv4Addr;

use cdra_wire::builder::OptionsWriter;
use cdra_wire::fuzzing::{exercise, internet_checksum};
use cdra_wire::ipv4::{write_ipv4_udp, Ipv4UdpHeader};
use cdra_wire::options::Area;
use cdra_wire::relay_agent::write_relay_agent_info;
use cdra_wire::rewrite::rewrite;
use cdra_wire::{Message, MessageBuilder, MessageType, Op, RelayAgentInfo, SubOption, WireError};
use common::{Hdr, COOKIE};
use proptest::collection::vec;
use proptest::prelude::*;

/// An option code other than PAD, END and 52, biased towards a few common ones so that
/// duplicates (RFC 3396 splits) are frequent.
fn code() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(vec![1u8, 3, 6, 12, 43, 50, 51, 53, 54, 55, 61, 82, 121]),
        2 => (1u8..=254).prop_filter("not 52", |c| *c != 52),
    ]
}

/// Option 82 payload: valid sub-options most of the time, random bytes otherwise.
fn agent_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec((any::<u8>(), vec(any::<u8>(), 0..12)), 0..4).prop_map(|subs| {
            let mut v = Vec::new();
            for (c, d) in subs {
                v.push(c);
                v.push(d.len() as u8);
                v.extend_from_slice(&d);
            }
            v
        }),
        1 => vec(any::<u8>(), 0..20),
    ]
}

fn tlv() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![
        6 => (code(), vec(any::<u8>(), 0..24)),
        1 => (Just(82u8), agent_payload()),
        1 => (Just(53u8), (1u8..=18).prop_map(|t| vec![t])),
        1 => (code(), vec(any::<u8>(), 200..=255)),
    ]
}

#[derive(Debug, Clone)]
enum Item {
    Tlv(u8, Vec<u8>),
    Pad(usize),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![8 => tlv().prop_map(|(c, d)| Item::Tlv(c, d)), 1 => (1usize..4).prop_map(Item::Pad)]
}

/// In `file`/`sname`, option 52 is an ordinary option (RFC 2132 9.3): any length, any value.
fn area_item() -> impl Strategy<Value = Item> {
    prop_oneof![8 => item(), 1 => vec(any::<u8>(), 0..3).prop_map(|d| Item::Tlv(52, d))]
}

fn encode(items: &[Item]) -> Vec<u8> {
    let mut v = Vec::new();
    for it in items {
        match it {
            Item::Tlv(c, d) => {
                v.push(*c);
                v.push(d.len() as u8);
                v.extend_from_slice(d);
            }
            Item::Pad(n) => v.extend_from_slice(&vec![0u8; *n]),
        }
    }
    v
}

/// Fill an overloaded area (64 or 128 bytes) with as many of `items` as fit, then END if
/// there is room (or no END when `end` is false and the options fill it exactly).
fn fill_area(items: &[Item], len: usize, end: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for it in items {
        let e = encode(std::slice::from_ref(it));
        if v.len() + e.len() + usize::from(end) > len {
            break;
        }
        v.extend_from_slice(&e);
    }
    if end {
        v.push(255);
    }
    v.resize(len, 0);
    v
}

#[derive(Debug, Clone)]
struct Spec {
    hdr: Hdr,
    items: Vec<Item>,
    /// Option 52's value and the index in `items` where it goes.
    overload: Option<(u8, usize)>,
    file_items: Vec<Item>,
    sname_items: Vec<Item>,
    file_end: bool,
    sname_end: bool,
    end: bool,
    tail: Vec<u8>,
}

impl Spec {
    fn bytes(&self) -> Vec<u8> {
        let mut hdr = self.hdr.clone();
        let mut items = self.items.clone();
        if let Some((v, at)) = self.overload {
            items.insert(at.min(items.len()), Item::Tlv(52, vec![v]));
            if v & 1 != 0 {
                hdr.file.copy_from_slice(&fill_area(&self.file_items, 128, self.file_end));
            }
            if v & 2 != 0 {
                hdr.sname.copy_from_slice(&fill_area(&self.sname_items, 64, self.sname_end));
            }
        }
        let mut v = hdr.with(&encode(&items));
        if self.end {
            v.push(255);
        }
        v.extend_from_slice(&self.tail);
        v
    }
}

fn header() -> impl Strategy<Value = Hdr> {
    (
        (1u8..=2, any::<u8>(), 0u8..=16, any::<u8>(), any::<u32>(), any::<u16>(), any::<u16>()),
        (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<[u8; 4]>(), any::<[u8; 4]>(), any::<[u8; 16]>()),
        (vec(any::<u8>(), 64), vec(any::<u8>(), 128)),
    )
        .prop_map(|((op, htype, hlen, hops, xid, secs, flags), (ci, yi, si, gi, ch), (sname, file))| {
            let mut h = Hdr {
                op,
                htype,
                hlen,
                hops,
                xid,
                secs,
                flags,
                ciaddr: ci,
                yiaddr: yi,
                siaddr: si,
                giaddr: gi,
                chaddr: ch,
                ..Hdr::default()
            };
            h.sname.copy_from_slice(&sname);
            h.file.copy_from_slice(&file);
            h
        })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        header(),
        vec(item(), 0..16),
        prop::option::weighted(0.4, (1u8..=3, 0usize..16)),
        vec(area_item(), 0..8),
        vec(area_item(), 0..5),
        (any::<bool>(), any::<bool>(), prop::bool::weighted(0.85)),
        prop_oneof![3 => (0usize..80).prop_map(|n| vec![0; n]), 1 => vec(any::<u8>(), 0..40)],
    )
        .prop_map(|(hdr, items, overload, file_items, sname_items, (file_end, sname_end, end), tail)| {
            // Without END, trailing bytes would be read as options: keep them zero (PAD).
            let tail = if end { tail } else { vec![0; tail.len()] };
            Spec { hdr, items, overload, file_items, sname_items, file_end, sname_end, end, tail }
        })
}

/// A generated message, and the instances the options iterator must yield.
fn expected_options(s: &Spec) -> Vec<(u8, Vec<u8>, Area)> {
    let tlvs = |items: &[Item], area: Area| -> Vec<(u8, Vec<u8>, Area)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Tlv(c, d) => Some((*c, d.clone(), area)),
                Item::Pad(_) => None,
            })
            .collect()
    };
    let fitting = |items: &[Item], len: usize, end: bool| -> Vec<Item> {
        let mut used = 0;
        let mut out = Vec::new();
        for it in items {
            let n = encode(std::slice::from_ref(it)).len();
            if used + n + usize::from(end) > len {
                break;
            }
            used += n;
            out.push(it.clone());
        }
        out
    };
    let mut items = s.items.clone();
    let mut v = Vec::new();
    if let Some((o, at)) = s.overload {
        items.insert(at.min(items.len()), Item::Tlv(52, vec![o]));
        v.extend(tlvs(&items, Area::Options));
        if o & 1 != 0 {
            v.extend(tlvs(&fitting(&s.file_items, 128, s.file_end), Area::File));
        }
        if o & 2 != 0 {
            v.extend(tlvs(&fitting(&s.sname_items, 64, s.sname_end), Area::Sname));
        }
    } else {
        v.extend(tlvs(&items, Area::Options));
    }
    v
}

fn listing<T: AsRef<[u8]>>(m: &Message<T>) -> Vec<(u8, Vec<u8>, Area)> {
    m.options().map(|o| (o.code, o.data.to_vec(), o.area)).collect()
}

proptest! {
    /// Arbitrary bytes: never a panic, whatever the outcome.
    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..700)) {
        exercise(&data);
    }

    /// A valid header and cookie followed by arbitrary bytes: reaches the option checks.
    #[test]
    fn valid_header_then_arbitrary_bytes(h in header(), tail in vec(any::<u8>(), 0..400)) {
        let mut v = h.bytes();
        v.extend_from_slice(&tail);
        exercise(&v);
    }

    /// No magic cookie, anything in the vendor area: a plain BOOTP message (RFC 951) with
    /// no options when it is at least 300 bytes long, `BadMagicCookie` when shorter.
    #[test]
    fn plain_bootp_with_any_vendor_area(
        h in header(),
        cookie in any::<[u8; 4]>().prop_filter("not the cookie", |c| *c != COOKIE),
        vend in vec(any::<u8>(), 0..400),
    ) {
        let bytes = Hdr { cookie, ..h }.with(&vend);
        match Message::new_checked(&bytes[..]) {
            Ok(m) => {
                prop_assert!(bytes.len() >= 300);
                prop_assert!(!m.has_magic_cookie());
                prop_assert_eq!(m.options().count(), 0);
            }
            Err(e) => {
                prop_assert!(bytes.len() < 300);
                prop_assert_eq!(e, WireError::BadMagicCookie);
            }
        }
        exercise(&bytes);
    }

    /// Generated messages are accepted, iterate exactly as built, and pass `exercise`.
    #[test]
    fn structured_messages(s in spec()) {
        let bytes = s.bytes();
        let m = Message::new_checked(&bytes[..]).expect("a generated message is valid");
        prop_assert_eq!(listing(&m), expected_options(&s));
        prop_assert_eq!(m.overload(), s.overload.map_or(0, |(v, _)| v));
        exercise(&bytes);
    }

    /// One corrupted byte anywhere: no panic, and anything still accepted still holds up.
    #[test]
    fn structured_messages_with_one_byte_changed(s in spec(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = s.bytes();
        let i = at.index(bytes.len());
        bytes[i] = b;
        exercise(&bytes);
    }

    /// Truncated anywhere: no panic; shorter than 240 is always `Truncated`.
    #[test]
    fn structured_messages_truncated(s in spec(), at in any::<prop::sample::Index>()) {
        let bytes = s.bytes();
        let cut = &bytes[..at.index(bytes.len() + 1)];
        if cut.len() < 240 {
            prop_assert_eq!(Message::new_checked(cut).map(|_| ()), Err(WireError::Truncated));
        }
        exercise(cut);
    }

    /// `rewrite` with random removals and appends: the output parses and holds exactly the
    /// kept options-field instances, then the appended ones, then kept file/sname instances.
    #[test]
    fn rewrite_keeps_order_and_appends_last(
        s in spec(),
        remove in vec(code(), 0..4),
        remove_present in vec(any::<prop::sample::Index>(), 0..3),
        appended in vec((code(), vec(any::<u8>(), 0..300)), 0..3),
        size in 0usize..1800,
    ) {
        let bytes = s.bytes();
        let m = Message::new_checked(&bytes[..]).unwrap();
        let before = listing(&m);
        let mut remove = remove;
        for i in remove_present {
            if !before.is_empty() {
                remove.push(before[i.index(before.len())].0);
            }
        }
        let kept = |o: &&(u8, Vec<u8>, Area)| !remove.contains(&o.0);
        let mut want: Vec<(u8, Vec<u8>, Area)> = before.iter().filter(|o| o.2 == Area::Options).filter(kept).cloned().collect();
        let mut app_len = 0;
        for (c, d) in &appended {
            if d.is_empty() {
                want.push((*c, vec![], Area::Options));
                app_len += 2;
            }
            for chunk in d.chunks(255) {
                want.push((*c, chunk.to_vec(), Area::Options));
                app_len += 2 + chunk.len();
            }
        }
        if !remove.contains(&52) {
            want.extend(before.iter().filter(|o| o.2 != Area::Options).filter(kept).cloned());
        }
        let kept_len: usize = before.iter().filter(|o| o.2 == Area::Options).filter(kept).map(|o| 2 + o.1.len()).sum();
        let required = (240 + kept_len + app_len + 1).max(300);

        for size in [size, required, 240, 300] {
            let mut dst = vec![0x5a; size];
            let r = rewrite(&m, &mut dst, &remove, |w: &mut OptionsWriter<'_>| {
                for (c, d) in &appended {
                    w.option(*c, d)?;
                }
                Ok(())
            });
            if size < required {
                prop_assert_eq!(r, Err(WireError::NoSpace));
                continue;
            }
            let len = r.unwrap();
            prop_assert_eq!(len, required);
            let out = Message::new_checked(&dst[..len]).expect("rewrite output parses");
            prop_assert_eq!(listing(&out), want.clone());
            prop_assert_eq!(&dst[..44], &bytes[..44]);
        }
    }

    /// Builder output always parses, has 53 first, and round-trips every option written.
    #[test]
    fn builder_round_trips(
        h in header(),
        mt in prop::option::of(1u8..=18),
        opts in vec(((1u8..=254).prop_filter("no 52/53", |c| *c != 52 && *c != 53), vec(any::<u8>(), 0..600)), 0..8),
    ) {
        let mut buf = vec![0u8; 8192];
        let t = mt.map(MessageType::from_u8);
        let op = if h.op == 2 { Op::BootReply } else { Op::BootRequest };
        let mut b = MessageBuilder::new(&mut buf, op, t).unwrap();
        b.xid(h.xid).secs(h.secs).flags(h.flags).hops(h.hops)
            .ciaddr(Ipv4Addr::from(h.ciaddr)).yiaddr(Ipv4Addr::from(h.yiaddr))
            .siaddr(Ipv4Addr::from(h.siaddr)).giaddr(Ipv4Addr::from(h.giaddr))
            .chaddr(h.htype, &h.chaddr[..h.hlen as usize]);
        for (c, d) in &opts {
            b.option(*c, d).unwrap();
        }
        let len = b.finish().unwrap();
        prop_assert!(len >= 300);
        let m = Message::new_checked(&buf[..len]).expect("builder output parses");
        prop_assert_eq!((m.op(), m.xid(), m.secs(), m.flags(), m.hops()), (op, h.xid, h.secs, h.flags, h.hops));
        prop_assert_eq!((m.htype(), m.chaddr()), (h.htype, &h.chaddr[..h.hlen as usize]));
        prop_assert_eq!((m.ciaddr(), m.giaddr()), (Ipv4Addr::from(h.ciaddr), Ipv4Addr::from(h.giaddr)));
        prop_assert_eq!(m.message_type(), t);
        if t.is_some() {
            prop_assert_eq!(m.options().next().map(|o| o.code), Some(53));
        }
        let mut out = vec![0u8; 8192];
        for (c, _) in &opts {
            let want: Vec<u8> = opts.iter().filter(|(c2, _)| c2 == c).flat_map(|(_, d)| d.iter().copied()).collect();
            prop_assert_eq!(m.long_option(*c, &mut out).unwrap(), Some(&want[..]));
        }
        // Codes appear in the order written.
        let mut seen: Vec<u8> = m.options().map(|o| o.code).filter(|&c| c != 53).collect();
        seen.dedup();
        let mut written: Vec<u8> = opts.iter().map(|(c, _)| *c).collect();
        written.dedup();
        prop_assert_eq!(seen, written);
        exercise(&buf[..len]);
    }

    /// Option 82: write then parse gives the same sub-options; more than 255 bytes fails.
    #[test]
    fn relay_agent_round_trip(subs in vec((any::<u8>(), vec(any::<u8>(), 0..140)), 0..5)) {
        let subs: Vec<SubOption<'_>> = subs.iter().map(|(c, d)| SubOption { code: *c, data: d }).collect();
        let total: usize = subs.iter().map(|s| 2 + s.data.len()).sum();
        let mut buf = vec![0u8; 1024];
        let mut w = OptionsWriter::new(&mut buf, 0);
        let r = write_relay_agent_info(&mut w, &subs);
        if total > 255 {
            prop_assert_eq!(r, Err(WireError::NoSpace));
        } else {
            prop_assert_eq!(r, Ok(()));
            prop_assert_eq!(w.position(), total + 2);
            let info = RelayAgentInfo::new_checked(&buf[2..2 + total]).unwrap();
            prop_assert_eq!(info.sub_options().collect::<Vec<_>>(), subs);
        }
    }

    /// Arbitrary option 82 payloads: parse never panics and accepts exactly the tilings.
    #[test]
    fn relay_agent_arbitrary(data in vec(any::<u8>(), 0..64)) {
        let mut pos = 0;
        while pos + 2 <= data.len() {
            pos += 2 + data[pos + 1] as usize;
        }
        let tiles = pos == data.len();
        let r = RelayAgentInfo::new_checked(&data);
        prop_assert_eq!(r.is_ok(), tiles);
        if let Ok(info) = r {
            let n: usize = info.sub_options().map(|s| 2 + s.data.len()).sum();
            prop_assert_eq!(n, data.len());
            let _ = (info.circuit_id(), info.remote_id(), info.link_selection(), info.server_id_override());
        }
    }

    /// IPv4/UDP headers: both checksums verify for any payload and addresses.
    #[test]
    fn ipv4_udp_checksums(payload in vec(any::<u8>(), 0..1500), src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
                          sp in any::<u16>(), dp in any::<u16>(), ttl in any::<u8>()) {
        let mut buf = vec![0u8; 28 + payload.len()];
        buf[28..].copy_from_slice(&payload);
        let h = Ipv4UdpHeader { src: Ipv4Addr::from(src), dst: Ipv4Addr::from(dst), src_port: sp, dst_port: dp, ttl };
        prop_assert_eq!(write_ipv4_udp(&mut buf, h, payload.len()), Ok(buf.len()));
        prop_assert_eq!(internet_checksum(&[&buf[..20]]), 0);
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&buf[12..20]);
        pseudo[9] = 17;
        pseudo[10..12].copy_from_slice(&buf[24..26]);
        prop_assert_eq!(internet_checksum(&[&pseudo, &buf[20..]]), 0);
        prop_assert_ne!([buf[26], buf[27]], [0, 0]);
    }
}

#[test]
fn header_strategy_sanity() {
    // The hand assembler and the cookie constant agree with the crate.
    assert_eq!(COOKIE, cdra_wire::message::MAGIC_COOKIE);
}
