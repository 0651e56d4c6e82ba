//! Test support, not API: the body of the `message` fuzz target, shared with the stable
//! corpus-replay test and the property tests so that all three exercise the same code.
//!
//! [`exercise`] parses arbitrary bytes and, when they are accepted, drives every accessor,
//! the option iterator, long options, option 82, every setter (on a copy), `patch_option`,
//! `blank_option`, [`crate::rewrite::rewrite`] into buffers of many sizes, a rebuild with
//! [`crate::MessageBuilder`] and [`crate::ipv4::write_ipv4_udp`], asserting the crate's
//! invariants along the way. Unlike the rest of the crate it allocates and panics: a panic
//! here is a finding.

#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic, missing_docs)]

use core::net::Ipv4Addr;

use crate::builder::{OptionsWriter, MIN_BOOTP_LEN};
use crate::ipv4::{write_ipv4_udp, Ipv4UdpHeader, IPV4_UDP_HEADER_LEN};
use crate::message::{Message, MessageType, Op, HEADER_LEN, MAGIC_COOKIE};
use crate::options::{Area, OptionCode};
use crate::relay_agent::{write_relay_agent_info, RelayAgentInfo, SubOption, SubOptionCode};
use crate::rewrite::rewrite;
use crate::{MessageBuilder, WireError};

/// An owned copy of one option instance, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedOption {
    pub code: u8,
    pub data: Vec<u8>,
    pub area: Area,
    pub offset: usize,
}

/// Every option instance of `msg`, owned.
pub fn owned_options<T: AsRef<[u8]>>(msg: &Message<T>) -> Vec<OwnedOption> {
    msg.options().map(|o| OwnedOption { code: o.code, data: o.data.to_vec(), area: o.area, offset: o.offset }).collect()
}

/// `(code, data, area)` of every instance, without offsets.
fn shape(opts: &[OwnedOption]) -> Vec<(u8, Vec<u8>, Area)> {
    opts.iter().map(|o| (o.code, o.data.clone(), o.area)).collect()
}

/// Distinct option codes in order of first appearance.
pub fn distinct_codes(opts: &[OwnedOption]) -> Vec<u8> {
    let mut seen = [false; 256];
    let mut out = Vec::new();
    for o in opts {
        if !seen[o.code as usize] {
            seen[o.code as usize] = true;
            out.push(o.code);
        }
    }
    out
}

/// RFC 3396 concatenation of every instance of `code`, in iteration order.
pub fn concat(opts: &[OwnedOption], code: u8) -> Option<Vec<u8>> {
    let mut found = false;
    let mut out = Vec::new();
    for o in opts.iter().filter(|o| o.code == code) {
        found = true;
        out.extend_from_slice(&o.data);
    }
    found.then_some(out)
}

/// Parse `data`; when accepted, exercise everything and check the invariants.
pub fn exercise(data: &[u8]) {
    let Ok(msg) = Message::new_checked(data) else {
        return;
    };
    // A checked view never changes its mind about the same bytes.
    assert!(Message::new_checked(msg.as_bytes()).is_ok());
    let opts = owned_options(&msg);
    check_view(&msg, &opts);
    check_long_options(&msg, &opts);
    check_relay_agent(&msg);
    check_setters(data, &opts);
    check_patch_and_blank(data, &msg, &opts);
    check_rewrites(&msg, &opts);
    check_rebuild(&msg, &opts);
    check_ipv4(data);
}

fn check_view<T: AsRef<[u8]>>(msg: &Message<T>, opts: &[OwnedOption]) {
    let b = msg.as_bytes();
    assert!(b.len() >= HEADER_LEN);
    if msg.has_magic_cookie() {
        assert_eq!(&b[236..240], &MAGIC_COOKIE);
    } else {
        // A plain BOOTP message (RFC 951): the whole 64-byte vend field, and no options.
        assert_ne!(&b[236..240], &MAGIC_COOKIE);
        assert!(b.len() >= MIN_BOOTP_LEN);
        assert!(opts.is_empty());
        assert_eq!((msg.overload(), msg.options_end(), msg.message_type()), (0, None, None));
    }
    assert_eq!(msg.op(), if b[0] == 2 { Op::BootReply } else { Op::BootRequest });
    assert!(b[0] == 1 || b[0] == 2);
    assert_eq!(msg.htype(), b[1]);
    assert!(msg.hlen() <= 16);
    assert_eq!(msg.hops(), b[3]);
    assert_eq!(msg.xid(), u32::from_be_bytes([b[4], b[5], b[6], b[7]]));
    assert_eq!(msg.secs(), u16::from_be_bytes([b[8], b[9]]));
    assert_eq!(msg.flags(), u16::from_be_bytes([b[10], b[11]]));
    assert_eq!(msg.broadcast(), b[10] & 0x80 != 0);
    assert_eq!(msg.ciaddr(), Ipv4Addr::new(b[12], b[13], b[14], b[15]));
    assert_eq!(msg.yiaddr(), Ipv4Addr::new(b[16], b[17], b[18], b[19]));
    assert_eq!(msg.siaddr(), Ipv4Addr::new(b[20], b[21], b[22], b[23]));
    assert_eq!(msg.giaddr(), Ipv4Addr::new(b[24], b[25], b[26], b[27]));
    assert_eq!(msg.chaddr(), &b[28..28 + msg.hlen() as usize]);
    let padded = msg.chaddr_padded();
    assert_eq!(&padded[..msg.chaddr().len()], msg.chaddr());
    assert!(padded[msg.chaddr().len()..].iter().all(|b| *b == 0));
    assert_eq!(msg.ethernet_chaddr().is_some(), msg.htype() == 1 && msg.hlen() == 6);
    assert_eq!(msg.sname(), &b[44..108]);
    assert_eq!(msg.file(), &b[108..236]);
    assert!(msg.overload() <= 3);
    if let Some(end) = msg.options_end() {
        assert!(end >= HEADER_LEN);
        assert_eq!(b[end], OptionCode::END);
    }

    // Iterator: TLVs as in the buffer, areas in RFC 2131 4.1 order, offsets increasing.
    let rank = |a: Area| match a {
        Area::Options => 0,
        Area::File => 1,
        Area::Sname => 2,
    };
    let mut last: Option<(Area, usize)> = None;
    for o in opts {
        assert!(o.code != OptionCode::PAD && o.code != OptionCode::END);
        assert_eq!(b[o.offset], o.code);
        assert_eq!(b[o.offset + 1] as usize, o.data.len());
        assert_eq!(&b[o.offset + 2..o.offset + 2 + o.data.len()], &o.data[..]);
        let end = o.offset + 2 + o.data.len();
        match o.area {
            Area::Options => {
                assert!(o.offset >= HEADER_LEN);
                if let Some(e) = msg.options_end() {
                    assert!(end <= e);
                }
            }
            Area::File => {
                assert!(msg.overload() & 1 != 0);
                assert!(o.offset >= 108 && end <= 236);
            }
            Area::Sname => {
                assert!(msg.overload() & 2 != 0);
                assert!(o.offset >= 44 && end <= 108);
            }
        }
        if let Some((la, lo)) = last {
            assert!(rank(la) < rank(o.area) || (la == o.area && lo < o.offset));
        }
        last = Some((o.area, o.offset));
    }
    // The iterator is restartable and gives the same answer.
    assert_eq!(msg.options().count(), opts.len());

    for code in 0..=255u8 {
        let first = opts.iter().find(|o| o.code == code);
        assert_eq!(msg.option(code).map(|o| o.data), first.map(|o| &o.data[..]));
        assert_eq!(msg.option_data(code), first.map(|o| &o.data[..]));
        assert_eq!(msg.is_split(code), opts.iter().filter(|o| o.code == code).count() > 1);
    }
    let first = |code: u8| opts.iter().find(|o| o.code == code).map(|o| o.data.clone());
    let as_addr = |d: Option<Vec<u8>>| match d.as_deref() {
        Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d)),
        _ => None,
    };
    let as_u32 = |d: Option<Vec<u8>>| match d.as_deref() {
        Some(&[a, b, c, d]) => Some(u32::from_be_bytes([a, b, c, d])),
        _ => None,
    };
    let mt = match first(OptionCode::MESSAGE_TYPE).as_deref() {
        Some(&[t]) => Some(MessageType::from_u8(t)),
        _ => None,
    };
    assert_eq!(msg.message_type(), mt);
    if let Some(t) = msg.message_type() {
        assert_eq!(MessageType::from_u8(t.to_u8()), t);
        assert!(!t.label().is_empty());
    }
    assert_eq!(msg.server_identifier(), as_addr(first(OptionCode::SERVER_ID)));
    assert_eq!(msg.requested_ip(), as_addr(first(OptionCode::REQUESTED_IP)));
    assert_eq!(msg.subnet_mask(), as_addr(first(OptionCode::SUBNET_MASK)));
    assert_eq!(msg.lease_time(), as_u32(first(OptionCode::LEASE_TIME)));
    assert_eq!(msg.renewal_time(), as_u32(first(OptionCode::RENEWAL_T1)));
    assert_eq!(msg.rebinding_time(), as_u32(first(OptionCode::REBINDING_T2)));
    assert_eq!(msg.client_identifier().map(<[u8]>::to_vec), first(OptionCode::CLIENT_ID));
    assert_eq!(msg.parameter_request_list().map(<[u8]>::to_vec), first(OptionCode::PARAMETER_REQUEST_LIST));
    assert_eq!(msg.relay_agent_info().map(<[u8]>::to_vec), first(OptionCode::RELAY_AGENT_INFO));
    let _ = format!("{:?} {:?}", Message::new_checked(msg.as_bytes()), msg.options());
}

fn check_long_options<T: AsRef<[u8]>>(msg: &Message<T>, opts: &[OwnedOption]) {
    let mut big = vec![0u8; msg.as_bytes().len()];
    for code in 0..=255u8 {
        let expected = concat(opts, code);
        let got = msg.long_option(code, &mut big).expect("a buffer as long as the message is enough");
        assert_eq!(got.map(<[u8]>::to_vec), expected);
        if let Some(e) = expected {
            if !e.is_empty() {
                let mut small = vec![0u8; e.len() - 1];
                assert_eq!(msg.long_option(code, &mut small), Err(WireError::NoSpace));
            }
            let mut exact = vec![0u8; e.len()];
            assert_eq!(msg.long_option(code, &mut exact).unwrap(), Some(&e[..]));
        }
    }
}

fn check_relay_agent<T: AsRef<[u8]>>(msg: &Message<T>) {
    for o in msg.options().filter(|o| o.code == OptionCode::RELAY_AGENT_INFO) {
        let Ok(info) = RelayAgentInfo::new_checked(o.data) else {
            continue;
        };
        let subs: Vec<SubOption<'_>> = info.sub_options().collect();
        // Sub-options tile the payload exactly.
        let mut re = Vec::new();
        for s in &subs {
            re.push(s.code);
            re.push(s.data.len() as u8);
            re.extend_from_slice(s.data);
        }
        assert_eq!(re, o.data);
        let _ = (info.circuit_id(), info.remote_id(), info.link_selection(), info.server_id_override());
        assert_eq!(info.circuit_id(), subs.iter().find(|s| s.code == SubOptionCode::CIRCUIT_ID).map(|s| s.data));
        // Writing the same sub-options back gives the same option.
        let mut buf = vec![0u8; 2 + o.data.len()];
        let mut w = OptionsWriter::new(&mut buf, 0);
        write_relay_agent_info(&mut w, &subs).expect("fits: it came from one option");
        assert_eq!(w.position(), 2 + o.data.len());
        assert_eq!(buf[0], OptionCode::RELAY_AGENT_INFO);
        assert_eq!(&buf[2..], o.data);
    }
}

fn check_setters(data: &[u8], opts: &[OwnedOption]) {
    let mut m = Message::new_checked(data.to_vec()).expect("a copy parses like the original");
    let op = if m.op() == Op::BootRequest { Op::BootReply } else { Op::BootRequest };
    let a = |n: u8| Ipv4Addr::new(10, n, n.wrapping_mul(3), 1);
    m.set_op(op);
    m.set_hops(m.hops().wrapping_add(1));
    m.set_xid(!m.xid());
    m.set_secs(!m.secs());
    m.set_flags(!m.flags());
    m.set_ciaddr(a(1));
    m.set_yiaddr(a(2));
    m.set_siaddr(a(3));
    m.set_giaddr(a(4));
    assert_eq!(m.op(), op);
    assert_eq!(m.hops(), data[3].wrapping_add(1));
    assert_eq!(m.xid(), !u32::from_be_bytes([data[4], data[5], data[6], data[7]]));
    assert_eq!(m.secs(), !u16::from_be_bytes([data[8], data[9]]));
    assert_eq!(m.flags(), !u16::from_be_bytes([data[10], data[11]]));
    assert_eq!((m.ciaddr(), m.yiaddr(), m.siaddr(), m.giaddr()), (a(1), a(2), a(3), a(4)));
    // Header setters touch the header only.
    assert_eq!(&m.as_bytes()[28..], &data[28..]);
    assert_eq!(m.as_bytes()[1..3], data[1..3]);
    assert_eq!(owned_options(&m), opts);
    let again = Message::new_checked(m.as_bytes()).expect("setters keep the message valid");
    assert_eq!(owned_options(&again), opts);
}

fn check_patch_and_blank<T: AsRef<[u8]>>(data: &[u8], msg: &Message<T>, opts: &[OwnedOption]) {
    for code in distinct_codes(opts) {
        // patch_option: same-length instances only, everything else untouched.
        let len = opts.iter().find(|o| o.code == code).map_or(0, |o| o.data.len());
        let value: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0xa5).collect();
        let mut m = Message::new_checked(data.to_vec()).unwrap();
        let n = m.patch_option(code, &value);
        let same_len = opts.iter().filter(|o| o.code == code && o.data.len() == len).count();
        assert_eq!(n, if code == OptionCode::OVERLOAD { 0 } else { same_len });
        let expected: Vec<OwnedOption> = opts
            .iter()
            .map(|o| {
                let mut o = o.clone();
                if n > 0 && o.code == code && o.data.len() == len {
                    o.data = value.clone();
                }
                o
            })
            .collect();
        assert_eq!(owned_options(&m), expected);
        assert_eq!(m.as_bytes().len(), data.len());
        let re = Message::new_checked(m.as_bytes()).expect("patch keeps the message valid");
        assert_eq!(owned_options(&re), expected);
        // A length that matches no instance patches nothing.
        let longest = opts.iter().filter(|o| o.code == code).map(|o| o.data.len()).max().unwrap_or(0);
        let mut m = Message::new_checked(data.to_vec()).unwrap();
        assert_eq!(m.patch_option(code, &vec![0; longest + 1]), 0);
        assert_eq!(m.as_bytes(), data);

        // blank_option: the instances become PAD, nothing else moves.
        let mut m = Message::new_checked(data.to_vec()).unwrap();
        let n = m.blank_option(code);
        assert_eq!(n, opts.iter().filter(|o| o.code == code).count());
        let expected: Vec<OwnedOption> = opts
            .iter()
            .filter(|o| o.code != code)
            .filter(|o| code != OptionCode::OVERLOAD || o.area == Area::Options)
            .cloned()
            .collect();
        assert_eq!(owned_options(&m), expected);
        assert!(m.option(code).is_none());
        assert_eq!(m.as_bytes().len(), data.len());
        for o in opts.iter().filter(|o| o.code == code) {
            assert!(m.as_bytes()[o.offset..o.offset + 2 + o.data.len()].iter().all(|&b| b == 0));
        }
        let re = Message::new_checked(m.as_bytes()).expect("blank keeps the message valid");
        assert_eq!(owned_options(&re), expected);
        assert_eq!(re.overload(), m.overload());
    }
    // Absent codes: nothing happens.
    let absent = (1..=254u8).find(|c| msg.option(*c).is_none());
    if let Some(code) = absent {
        let mut m = Message::new_checked(data.to_vec()).unwrap();
        assert_eq!(m.patch_option(code, &[1, 2, 3, 4]), 0);
        assert_eq!(m.patch_options(&[(code, &[1, 2, 3, 4]), (code, &[])]), 0);
        assert_eq!(m.blank_option(code), 0);
        assert_eq!(m.as_bytes(), data);
    }
}

/// What `rewrite` must produce for `src`: the options-area instances not removed, then the
/// appended ones, then the file/sname instances not removed (those areas keep being read
/// only while option 52 survives).
fn expected_after_rewrite(opts: &[OwnedOption], remove: &[u8], appended: &[(u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>, Area)> {
    let keep = |o: &&OwnedOption| !remove.contains(&o.code);
    let mut out: Vec<(u8, Vec<u8>, Area)> = opts
        .iter()
        .filter(|o| o.area == Area::Options)
        .filter(keep)
        .map(|o| (o.code, o.data.clone(), o.area))
        .collect();
    for (code, data) in appended {
        if data.is_empty() {
            out.push((*code, Vec::new(), Area::Options));
        }
        for chunk in data.chunks(255) {
            out.push((*code, chunk.to_vec(), Area::Options));
        }
    }
    if !remove.contains(&OptionCode::OVERLOAD) {
        out.extend(
            opts.iter().filter(|o| o.area != Area::Options).filter(keep).map(|o| (o.code, o.data.clone(), o.area)),
        );
    }
    out
}

/// Options a rewrite appends: `(code, data)`, data split per RFC 3396 when long.
type Appended = Vec<(u8, Vec<u8>)>;

fn appended_len(appended: &[(u8, Vec<u8>)]) -> usize {
    appended.iter().map(|(_, d)| if d.is_empty() { 2 } else { d.len() + 2 * d.len().div_ceil(255) }).sum()
}

fn check_rewrites<T: AsRef<[u8]>>(msg: &Message<T>, opts: &[OwnedOption]) {
    if !msg.has_magic_cookie() {
        // No options field to edit: refused whatever the room, and nothing written.
        for size in [0, HEADER_LEN, MIN_BOOTP_LEN, msg.as_bytes().len() + 100] {
            let mut dst = vec![0xeeu8; size];
            let res = rewrite(msg, &mut dst, &[OptionCode::RELAY_AGENT_INFO], |w| {
                w.option(OptionCode::RELAY_AGENT_INFO, &[1, 1, b'x'])
            });
            assert_eq!(res, Err(WireError::BadMagicCookie));
            assert!(dst.iter().all(|&b| b == 0xee));
        }
        return;
    }
    let circuit = b"eth0:vlan42".to_vec();
    let remote = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
    let mut agent = vec![SubOptionCode::CIRCUIT_ID, circuit.len() as u8];
    agent.extend_from_slice(&circuit);
    agent.extend_from_slice(&[SubOptionCode::REMOTE_ID, remote.len() as u8]);
    agent.extend_from_slice(&remote);
    let long: Vec<u8> = (0..300u16).map(|i| i as u8).collect();

    let present = distinct_codes(opts);
    let cases: Vec<(Vec<u8>, Appended)> = vec![
        // The relay's own edit: drop any option 82, append ours last.
        (vec![OptionCode::RELAY_AGENT_INFO], vec![(OptionCode::RELAY_AGENT_INFO, agent.clone())]),
        // A plain copy.
        (vec![], vec![]),
        // Remove everything present (52 included), append a split long option and an empty one.
        (present.clone(), vec![(OptionCode::CLIENT_ID, long.clone()), (OptionCode::RAPID_COMMIT, vec![])]),
        // Remove the first code present only.
        (present.iter().take(1).copied().collect(), vec![(OptionCode::SUBNET_SELECTION, vec![192, 0, 2, 0])]),
    ];
    for (remove, appended) in &cases {
        let kept: usize = opts
            .iter()
            .filter(|o| o.area == Area::Options && !remove.contains(&o.code))
            .map(|o| 2 + o.data.len())
            .sum();
        let required = (HEADER_LEN + kept + appended_len(appended) + 1).max(MIN_BOOTP_LEN);
        let expected = expected_after_rewrite(opts, remove, appended);
        let mut sizes = vec![0, 100, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 1, MIN_BOOTP_LEN - 1, MIN_BOOTP_LEN];
        sizes.extend([required - 1, required, required + 37]);
        for size in sizes {
            let mut dst = vec![0xeeu8; size];
            let res = rewrite(msg, &mut dst, remove, |w| {
                for (code, data) in appended {
                    if *code == OptionCode::RELAY_AGENT_INFO {
                        let info = RelayAgentInfo::new_checked(data).unwrap();
                        let subs: Vec<SubOption<'_>> = info.sub_options().collect();
                        write_relay_agent_info(w, &subs)?;
                    } else {
                        w.option(*code, data)?;
                    }
                }
                Ok(())
            });
            if size < required {
                assert_eq!(res, Err(WireError::NoSpace), "size {size} < required {required}");
                continue;
            }
            let len = res.expect("fits");
            assert_eq!(len, required);
            let out = &dst[..len];
            let re = Message::new_checked(out).expect("rewrite output parses");
            assert_eq!(shape(&owned_options(&re)), expected);
            // Header and the fixed fields are copied; removed file/sname options are PAD.
            assert_eq!(&out[..44], &msg.as_bytes()[..44]);
            assert_eq!(&out[236..240], &MAGIC_COOKIE);
            let mut fixed = msg.as_bytes()[44..236].to_vec();
            for o in opts.iter().filter(|o| o.area != Area::Options && remove.contains(&o.code)) {
                fixed[o.offset - 44..o.offset - 44 + 2 + o.data.len()].fill(0);
            }
            assert_eq!(&out[44..236], &fixed[..]);
            // END right after the last option of the options field, zeros after it.
            let end = re.options_end().expect("rewrite writes END");
            assert_eq!(end, HEADER_LEN + kept + appended_len(appended));
            assert!(out[end + 1..].iter().all(|&b| b == 0));
            // The appended options are the last ones of the options field.
            let in_options: Vec<_> = owned_options(&re).into_iter().filter(|o| o.area == Area::Options).collect();
            let n_app: usize = appended.iter().map(|(_, d)| d.len().div_ceil(255).max(1)).sum();
            let tail = &in_options[in_options.len() - n_app..];
            let mut i = 0;
            for (code, _) in appended {
                while i < tail.len() && tail[i].code == *code {
                    i += 1;
                }
            }
            assert_eq!(i, tail.len());
        }
    }
}

fn check_rebuild<T: AsRef<[u8]>>(msg: &Message<T>, opts: &[OwnedOption]) {
    let mut buf = vec![0u8; msg.as_bytes().len() * 2 + 1024];
    let mt53 = concat(opts, OptionCode::MESSAGE_TYPE);
    let first_type = match mt53.as_deref() {
        Some(&[t]) => Some(MessageType::from_u8(t)),
        _ => None,
    };
    let mut b = MessageBuilder::new(&mut buf, msg.op(), first_type).unwrap();
    b.xid(msg.xid())
        .flags(msg.flags())
        .secs(msg.secs())
        .ciaddr(msg.ciaddr())
        .yiaddr(msg.yiaddr())
        .siaddr(msg.siaddr())
        .giaddr(msg.giaddr())
        .hops(msg.hops())
        .chaddr(msg.htype(), msg.chaddr());
    let codes: Vec<u8> = distinct_codes(opts)
        .into_iter()
        .filter(|&c| c != OptionCode::OVERLOAD && !(c == OptionCode::MESSAGE_TYPE && first_type.is_some()))
        .collect();
    for &code in &codes {
        b.option(code, &concat(opts, code).unwrap()).unwrap();
    }
    let len = b.finish().unwrap();
    assert!(len >= MIN_BOOTP_LEN);
    let built = Message::new_checked(&buf[..len]).expect("builder output parses");
    assert_eq!(
        (built.op(), built.htype(), built.hlen(), built.hops(), built.xid(), built.secs(), built.flags()),
        (msg.op(), msg.htype(), msg.hlen(), msg.hops(), msg.xid(), msg.secs(), msg.flags())
    );
    assert_eq!(
        (built.ciaddr(), built.yiaddr(), built.siaddr(), built.giaddr(), built.chaddr()),
        (msg.ciaddr(), msg.yiaddr(), msg.siaddr(), msg.giaddr(), msg.chaddr())
    );
    assert_eq!(built.overload(), 0);
    if let Some(t) = first_type {
        let first = built.options().next().unwrap();
        assert_eq!((first.code, first.data), (OptionCode::MESSAGE_TYPE, &[t.to_u8()][..]));
        assert_eq!(built.message_type(), Some(t));
    }
    let built_opts = owned_options(&built);
    for &code in &codes {
        assert_eq!(concat(&built_opts, code), concat(opts, code), "code {code}");
        // RFC 3396 splitting: adjacent instances, all full (255) but the last.
        let idx: Vec<usize> = built_opts.iter().enumerate().filter(|(_, o)| o.code == code).map(|(i, _)| i).collect();
        assert!(idx.windows(2).all(|w| w[1] == w[0] + 1));
        let n = idx.len();
        assert!(idx.iter().take(n - 1).all(|&i| built_opts[i].data.len() == 255));
    }
    assert!(built_opts.iter().all(|o| o.code != OptionCode::OVERLOAD));
}

fn check_ipv4(data: &[u8]) {
    let mut buf = vec![0u8; IPV4_UDP_HEADER_LEN + data.len()];
    buf[IPV4_UDP_HEADER_LEN..].copy_from_slice(data);
    let h = Ipv4UdpHeader {
        src: Ipv4Addr::new(192, 0, 2, 1),
        dst: Ipv4Addr::BROADCAST,
        src_port: 67,
        dst_port: 68,
        ttl: 64,
    };
    match write_ipv4_udp(&mut buf, h, data.len()) {
        Ok(n) => {
            assert_eq!(n, buf.len());
            assert_eq!(internet_checksum(&[&buf[..20]]), 0);
            let mut pseudo = [0u8; 12];
            pseudo[..4].copy_from_slice(&buf[12..16]);
            pseudo[4..8].copy_from_slice(&buf[16..20]);
            pseudo[9] = 17;
            pseudo[10..12].copy_from_slice(&buf[24..26]);
            assert_eq!(internet_checksum(&[&pseudo, &buf[20..]]), 0);
            assert_eq!(&buf[IPV4_UDP_HEADER_LEN..], data);
        }
        Err(e) => {
            assert_eq!(e, WireError::NoSpace);
            assert!(IPV4_UDP_HEADER_LEN + data.len() > usize::from(u16::MAX));
        }
    }
}

/// RFC 1071 checksum over the concatenation of `parts` (each of even length except the
/// last), computed bytewise and independently of [`crate::ipv4`].
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut high = true;
    for part in parts {
        for &byte in part.iter() {
            sum += if high { u64::from(byte) << 8 } else { u64::from(byte) };
            high = !high;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
