//! Differential test of the shared reply store (paper 5.7, [`crate::templates`]): the local
//! answers built from a reply kept as a shared template plus the client's own bytes are
//! byte for byte the answers built the way cdra built them before (the reply kept whole,
//! `OldCachedReply` below, verbatim from before the split), over real ACKs and BOOTREPLYs
//! captured from Kea, ISC dhcpd and dnsmasq (`tests/data/acks-*.hex`, written by
//! `tests/e2e/capture_acks.py`: clients with and without option 61, 12, 81, host
//! reservations with options of their own, RENEW and INIT-REBOOT answers, BOOTP) and over
//! generated ones (proptest). Both sides go through the same patch code
//! ([`super::answer`]): only the representation differs. The new side keeps only what is the
//! client's own (issue 14 part 3): its record's address, key and lease times are left out
//! of the own bytes and given back when the reply is expanded; the answers are the same
//! whether they are (the record as a server reply makes it) or not (another address and
//! lease). Also through the store: a record encoded in format 4 and decoded with its
//! template answers the same.

use core::net::Ipv4Addr;

use cdra_wire::{Message, MessageBuilder, MessageType, Op};
use proptest::prelude::*;

use super::answer::{echo_client_identifier, patch_answer, Patch};
use super::LocalAnswer;
use crate::lease::{ServerLeaseTimes, INFINITE};
use crate::outbox::{Outbox, OUT_BUFFER_SIZE};
use crate::persist::{decode_record_with, encode_record, template_key, Templates};
use crate::table::{CachedReply, ClientKey, ClientKind, ClientRecord, ParamList, ServerBinding};
use crate::templates::TemplateSet;
use crate::time::Timestamp;

/// The reply representation before the split (table.rs before issue 14 part 3), kept only
/// as this test's reference.
/// A server's reply as the table keeps it: the BOOTP header without the 192-byte
/// `sname` and `file` fields when they are all zeros (as they are in most replies), then
/// the magic cookie and the options up to END. [`OldCachedReply::expand_into`] gives back the
/// message byte for byte. A million clients' replies then take ~110 MB rather than ~300.
pub struct OldCachedReply(Box<[u8]>);

/// Layout of [`OldCachedReply`]: a flags byte, then header bytes 0..44, then sname (64) if
/// flag 1, file (128) if flag 2, then bytes 236.. of the message.
const HAS_SNAME: u8 = 1;
const HAS_FILE: u8 = 2;
const SNAME_AT: usize = 44;
const FILE_AT: usize = 108;
const COOKIE_AT: usize = 236;

impl OldCachedReply {
    /// Keep `message` (a whole DHCP/BOOTP message, at least 240 bytes).
    pub fn new(message: &[u8]) -> Option<Self> {
        let head = message.get(..SNAME_AT)?;
        let sname = message.get(SNAME_AT..FILE_AT)?;
        let file = message.get(FILE_AT..COOKIE_AT)?;
        let rest = message.get(COOKIE_AT..)?;
        let keep_sname = sname.iter().any(|b| *b != 0);
        let keep_file = file.iter().any(|b| *b != 0);
        let mut v = Vec::with_capacity(1 + message.len());
        v.push((u8::from(keep_sname) * HAS_SNAME) | (u8::from(keep_file) * HAS_FILE));
        v.extend_from_slice(head);
        if keep_sname {
            v.extend_from_slice(sname);
        }
        if keep_file {
            v.extend_from_slice(file);
        }
        v.extend_from_slice(rest);
        Some(OldCachedReply(v.into_boxed_slice()))
    }

    /// Write the whole message into `out`; returns its length, or `None` if `out` is too
    /// small.
    pub fn expand_into(&self, out: &mut [u8]) -> Option<usize> {
        let (&flags, mut rest) = self.0.split_first()?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (a, b) = (rest.get(..n)?, rest.get(n..)?);
            rest = b;
            Some(a)
        };
        out.get_mut(..SNAME_AT)?.copy_from_slice(take(SNAME_AT)?);
        let sname = out.get_mut(SNAME_AT..FILE_AT)?;
        match flags & HAS_SNAME {
            0 => sname.fill(0),
            _ => sname.copy_from_slice(take(FILE_AT - SNAME_AT)?),
        }
        let file = out.get_mut(FILE_AT..COOKIE_AT)?;
        match flags & HAS_FILE {
            0 => file.fill(0),
            _ => file.copy_from_slice(take(COOKIE_AT - FILE_AT)?),
        }
        let tail = rest;
        out.get_mut(COOKIE_AT..COOKIE_AT + tail.len())?.copy_from_slice(tail);
        Some(COOKIE_AT + tail.len())
    }
}

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const OURS: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);

fn captured(text: &str) -> Vec<Vec<u8>> {
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    };
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| hex(l.trim())).collect()
}

fn real_replies() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("kea", captured(include_str!("../../tests/data/acks-kea.hex"))),
        ("dhcpd", captured(include_str!("../../tests/data/acks-dhcpd.hex"))),
        ("dnsmasq", captured(include_str!("../../tests/data/acks-dnsmasq.hex"))),
    ]
}

/// A client request as the engine would answer it from the cache.
fn request(
    kind: Option<MessageType>,
    mac: &[u8],
    ciaddr: Ipv4Addr,
    flags: u16,
    id: Option<&[u8]>,
    prl: &[u8],
) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut b = MessageBuilder::new(&mut buf, Op::BootRequest, kind).expect("builder");
    b.xid(0x1234_5678).flags(flags).ciaddr(ciaddr).chaddr(1, mac);
    if let Some(id) = id {
        b.option(61, id).expect("61");
    }
    if kind.is_some() {
        b.option(55, prl).expect("55");
    }
    let n = b.finish().expect("finish");
    buf.truncate(n);
    buf
}

/// The requests each reply is made to answer: OFFER to DISCOVER (two option 55 lists, an
/// expired record's offer), ACK to INIT-REBOOT, RENEW (held) and REBIND, each with the
/// reply's client identifier, another one and none, and from another MAC; BOOTREPLY to a
/// BOOTREQUEST.
fn requests(reply: &[u8]) -> Vec<(LocalAnswer, Vec<u8>)> {
    let m = Message::new_checked(reply).expect("a reply");
    let (mac, yiaddr) = (m.chaddr().to_vec(), m.yiaddr());
    if m.message_type().is_none() {
        return vec![(LocalAnswer::BootReply, request(None, &mac, Ipv4Addr::UNSPECIFIED, 0, None, &[]))];
    }
    let own_id = m.client_identifier().map(<[u8]>::to_vec);
    let ids: Vec<Option<Vec<u8>>> = vec![own_id, Some(b"\x01other-id".to_vec()), None];
    let other_mac = [2u8, 0x99, 0, 0, 0, 7];
    let mut out = Vec::new();
    for id in &ids {
        let id = id.as_deref();
        for (answer, kind, ciaddr, flags, prl) in [
            (LocalAnswer::Offer, MessageType::Discover, Ipv4Addr::UNSPECIFIED, 0, &[1u8, 3, 6, 15, 51, 54][..]),
            (
                LocalAnswer::Offer,
                MessageType::Discover,
                Ipv4Addr::UNSPECIFIED,
                0x8000,
                &[1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42][..],
            ),
            (LocalAnswer::OfferOfExpired, MessageType::Discover, Ipv4Addr::UNSPECIFIED, 0, &[1, 3, 6][..]),
            (LocalAnswer::Ack { hold: false }, MessageType::Request, Ipv4Addr::UNSPECIFIED, 0, &[1, 3, 6, 15][..]),
            (LocalAnswer::Ack { hold: true }, MessageType::Request, yiaddr, 0, &[1, 3, 6, 15][..]),
            (
                LocalAnswer::Ack { hold: false },
                MessageType::Request,
                yiaddr,
                0x8000,
                &[1, 3, 6, 12, 15, 28, 42, 66, 67, 119, 121][..],
            ),
        ] {
            out.push((answer, request(Some(kind), &mac, ciaddr, flags, id, prl)));
        }
        out.push((
            LocalAnswer::Ack { hold: false },
            request(Some(MessageType::Request), &other_mac, yiaddr, 0, id, &[1, 3]),
        ));
    }
    out
}

/// The answer to `req` from a reply that `expand` writes out, through the engine's patch
/// code (answer.rs) with lease `lease` and siaddr rewriting `rewrite_siaddr`.
fn answer(
    expand: impl FnOnce(&mut [u8]) -> Option<usize>,
    req: &[u8],
    kind: LocalAnswer,
    lease: u32,
    rewrite_siaddr: bool,
) -> Option<Vec<u8>> {
    let request = Message::new_checked(req).expect("a request");
    let mut outbox = Outbox::new(1);
    let (_, out) = outbox.emit()?;
    let n = expand(out.buffer_mut())?;
    out.set_len(n);
    let mut scratch = vec![0u8; OUT_BUFFER_SIZE];
    if !echo_client_identifier(out, &request, &mut scratch) {
        return None;
    }
    let mut m = Message::new_unchecked(out.payload_mut());
    let server = Some(ServerBinding { addr: SERVER, id: SERVER });
    let yiaddr = m.yiaddr();
    patch_answer(&mut m, &request, kind, Patch { address: yiaddr, lease, identity: OURS, rewrite_siaddr, server });
    Some(out.payload().to_vec())
}

/// Every answer to every request, the old way and from the record `new`'s cached reply
/// (expanded with what the record holds), equal.
fn assert_same_answers(reply: &[u8], new: &ClientRecord, what: &str) {
    let old = OldCachedReply::new(reply).expect("the old form");
    for (kind, req) in requests(reply) {
        for lease in [3600, 60, INFINITE] {
            for rewrite in [false, true] {
                let a = answer(|b| old.expand_into(b), &req, kind, lease, rewrite);
                let b = answer(|b| new.expand_reply(b), &req, kind, lease, rewrite);
                assert!(a.is_some(), "{what}: the old form answers {kind:?}");
                assert_eq!(a, b, "{what}: {kind:?}, lease {lease}, siaddr rewritten {rewrite}");
            }
        }
    }
}

/// The option 55 list the replies answer.
const PARAMS: &[u8] = &[1, 3, 6, 15, 28, 42, 119];

/// The record a table keeps for `reply`: keyed as the engine keys its client (option 61,
/// else the hardware address), its address and lease times as `cache_reply` sets them
/// (`odd`: another address and lease than the reply's, so that nothing is derived). Its
/// reply is interned in `set`.
fn record_for(reply: &[u8], odd: bool, set: &mut TemplateSet) -> ClientRecord {
    let checked = Message::new_checked(reply).ok();
    let hardware = || ClientKey::hardware(reply[1], &reply[28..28 + usize::from(reply[2]).min(16)]);
    let key = checked.as_ref().map_or_else(hardware, ClientKey::of);
    let mut r = ClientRecord::new(key, ClientKind::Dhcp, 0, Timestamp::from_secs(1));
    let yiaddr = Ipv4Addr::new(reply[16], reply[17], reply[18], reply[19]);
    r.address = if yiaddr.is_unspecified() || odd { Ipv4Addr::new(10, 77, 1, 100) } else { yiaddr };
    let times = checked.as_ref().and_then(ServerLeaseTimes::of).unwrap_or(ServerLeaseTimes::BOOTP);
    let skew = u32::from(odd);
    (r.lease_secs, r.t1_secs, r.t2_secs) = (times.lease ^ skew, times.t1 ^ skew, times.t2 ^ skew);
    r.reply = CachedReply::new(reply, &r.reply_context(), &ParamList::new(PARAMS));
    if let Some(c) = r.reply.as_mut() {
        set.intern(c);
    }
    r
}

/// `reply` as a cached reply expands it: xid, secs, flags and ciaddr zero.
fn normalised(reply: &[u8]) -> Vec<u8> {
    let mut m = reply.to_vec();
    m[4..16].fill(0);
    m
}

/// The record `r` through the store (format 4: its template stored apart) and back.
fn through_the_store(r: &ClientRecord, set: &mut TemplateSet) -> ClientRecord {
    let mut bytes = Vec::new();
    encode_record(r, "rd0", &mut bytes);
    let mut templates = Templates::new();
    let t = r.reply.as_ref().expect("a reply").template();
    templates.add(&template_key(t.id()), t.as_bytes()).expect("a stored template");
    let (mut back, _) = decode_record_with(&bytes, &templates).expect("decodes");
    if let Some(c) = back.reply.as_mut() {
        set.intern(c);
    }
    back
}

#[test]
fn real_server_replies_give_the_same_answers_shared_as_whole() {
    for (server, replies) in real_replies() {
        assert!(replies.len() >= 40, "{server}: {} replies captured", replies.len());
        let mut set = TemplateSet::new(1024);
        let mut kept = Vec::new();
        let mut inline = 0;
        for (i, reply) in replies.iter().enumerate() {
            let new = record_for(reply, false, &mut set);
            let c = new.reply.as_ref().expect("a reply");
            assert!(c.template().is_shared());
            assert_eq!(new.reply_message(), Some(normalised(reply)), "{server} #{i}: kept byte for byte");
            inline += usize::from(c.own_heap_len() == 0);
            assert_same_answers(reply, &new, &format!("{server} #{i}"));
            let back = through_the_store(&new, &mut set);
            let same = back.reply.as_ref().is_some_and(|b| std::sync::Arc::ptr_eq(b.template(), c.template()));
            assert!(same, "{server} #{i}: one template");
            assert_same_answers(reply, &back, &format!("{server} #{i} restored"));
            // Nothing derived: the same answers.
            let odd = record_for(reply, true, &mut set);
            assert_same_answers(reply, &odd, &format!("{server} #{i}, another address and lease"));
            kept.push(new);
        }
        // Paper 5.7: the clients of one server and subnet share; per-host options do not.
        assert!(set.len() * 3 <= replies.len(), "{server}: {} templates for {} replies", set.len(), replies.len());
        assert!(set.len() >= 3, "{server}: reserved hosts with options of their own have templates of their own");
        // The "only what is its own": most clients' own bytes are kept inline.
        assert!(inline * 4 >= replies.len() * 3, "{server}: {inline} of {} inline", replies.len());
        drop(kept);
    }
}

/// A generated server reply: any header, sname and file empty or not, options of the usual
/// and per-client codes in any order (some repeated, some empty, pads between).
fn generated_reply() -> impl Strategy<Value = Vec<u8>> {
    let option = (
        prop::sample::select(vec![0u8, 1, 3, 6, 12, 15, 28, 43, 50, 51, 54, 58, 59, 61, 81, 119, 121, 252]),
        prop::collection::vec(any::<u8>(), 0..24),
    );
    (
        prop::collection::vec(any::<u8>(), 44),
        prop::option::of(prop::collection::vec(1u8..=255, 1..64)),
        prop::option::of(prop::collection::vec(1u8..=255, 1..128)),
        any::<u8>(),
        prop::collection::vec(option, 0..16),
    )
        .prop_map(|(mut head, sname, file, msg_type, options)| {
            head[0] = 2;
            head[2] %= 17;
            let mut m = head;
            let mut field = |v: Option<Vec<u8>>, n: usize| {
                let mut f = v.unwrap_or_default();
                f.resize(n, 0);
                m.extend_from_slice(&f);
            };
            field(sname, 64);
            field(file, 128);
            m.extend_from_slice(&[99, 130, 83, 99]);
            if msg_type % 4 != 0 {
                m.extend_from_slice(&[53, 1, [2, 5, 5][usize::from(msg_type % 3)]]);
            }
            for (code, data) in options {
                if code == 0 {
                    m.push(0);
                    continue;
                }
                m.push(code);
                m.push(data.len() as u8);
                m.extend_from_slice(&data);
            }
            m.push(255);
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_replies_are_kept_byte_for_byte_and_answer_the_same(
        reply in generated_reply(),
        other_mac in any::<u8>(),
        odd in any::<bool>(),
    ) {
        let mut set = TemplateSet::new(16);
        let new = record_for(&reply, odd, &mut set);
        let c = new.reply.as_ref().expect("a whole message");
        prop_assert_eq!(new.reply_message(), Some(normalised(&reply)));
        prop_assert_eq!(c.len(&new.reply_context()), reply.len());
        // A second client of the same server and subnet: same template, its own bytes.
        let mut second = reply.clone();
        second[28 + 5] ^= other_mac | 1;
        second[4] ^= 0x5a;
        let new2 = record_for(&second, odd, &mut set);
        let c2 = new2.reply.as_ref().expect("a whole message");
        prop_assert!(std::sync::Arc::ptr_eq(c.template(), c2.template()) || second[2] < 6);
        prop_assert_eq!(new2.reply_message(), Some(normalised(&second)));
        if Message::new_checked(&reply[..]).is_ok() {
            assert_same_answers(&reply, &new, "generated");
            let back = through_the_store(&new, &mut set);
            assert_same_answers(&reply, &back, "generated, restored");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Restore checks a template once (`persist::Templates::add`) and each record's own bytes
    /// only for fitting it: any own bytes that fit a well-formed reply's template make a
    /// well-formed reply (what the client owns only lengthens well-formed options or fills
    /// header fields; what it leaves to the record is a whole option).
    #[test]
    fn own_bytes_that_fit_a_good_template_make_a_good_reply(
        reply in generated_reply(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in any::<usize>(),
    ) {
        prop_assume!(Message::new_checked(&reply[..]).is_ok());
        let r = record_for(&reply, false, &mut TemplateSet::new(1));
        let c = r.reply.as_ref().expect("a whole message");
        let mut own = c.own_bytes().to_vec();
        for (at, x) in flips {
            let n = own.len();
            if n > 0 {
                own[at % n] ^= x;
            }
        }
        if cut % 3 == 0 && !own.is_empty() {
            own.truncate(cut % own.len());
        }
        let ctx = r.reply_context();
        if let Some(other) = CachedReply::from_parts(c.template().clone(), &own, &ctx) {
            prop_assert!(Message::new_checked(other.to_vec(&ctx)).is_ok());
        }
    }
}
