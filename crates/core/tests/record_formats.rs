//! Record formats 1 and 2 (the whole server reply in each record) and 3 (a template of the
//! format 3 layout, per-client own bytes with the header fields) are still read, and a table
//! restored from them is written back in format 4: each shared reply template once (paper
//! 5.7, `cdra_core::templates`), each record naming its template and holding only what is
//! the client's own and not already in the record. The restored records' replies are the
//! servers' bytes (xid, secs, flags and ciaddr normalised: every use sets them itself).

mod common;

use std::net::Ipv4Addr;

use cdra_core::config::Mode;
use cdra_core::persist::{
    decode_record, decode_record_with, template_key, Change, DecodeError, Templates, RECORD_FORMAT,
};
use cdra_core::table::ClientKey;
use cdra_wire::{MessageBuilder, MessageType, Op};

use common::*;

/// A DHCPACK from the lab's server to client `i` of the subnet.
fn ack(i: u8) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut b = MessageBuilder::new(&mut buf, Op::BootReply, Some(MessageType::Ack)).expect("builder");
    b.xid(0x1000 + u32::from(i)).giaddr(DS_ADDR).yiaddr(Ipv4Addr::new(10, 77, 1, 100 + i)).chaddr(1, &mac(i));
    b.option(54, &SERVER.octets()).expect("54");
    b.option(51, &3600u32.to_be_bytes()).expect("51");
    b.option(1, &[255, 255, 255, 0]).expect("1");
    b.option(3, &DS_ADDR.octets()).expect("3");
    b.option(6, &[10, 77, 0, 53]).expect("6");
    let n = b.finish().expect("finish");
    buf.truncate(n);
    buf
}

fn mac(i: u8) -> [u8; 6] {
    [2, 0x77, 0, 0, 0, i]
}

/// `m` as a cached reply expands: xid, secs, flags and ciaddr zero.
fn normalised(mut m: Vec<u8>) -> Vec<u8> {
    m[4..16].fill(0);
    m
}

/// `ack(i)` split the format 3 way: the template (option 51 cut out) and client `i`'s own
/// bytes (header bytes 4..20, chaddr, option 51's length and payload).
fn format3_split(i: u8) -> (Vec<u8>, Vec<u8>) {
    let m = ack(i);
    let at51 = 240 + m[240..].iter().position(|b| *b == 51).expect("option 51 after 53 and 54");
    let mut own = m[4..20].to_vec();
    own.extend_from_slice(&m[28..34]);
    own.extend_from_slice(&m[at51 + 1..at51 + 6]);
    let mut head = m[..44].to_vec();
    head[4..20].fill(0);
    head[28..34].fill(0);
    let splice_at = (at51 - 236) as u16;
    let mut t = vec![1, 0];
    t.extend_from_slice(&splice_at.to_le_bytes());
    t.push(51);
    t.push(0); // neither sname nor file
    t.extend_from_slice(&head);
    t.extend_from_slice(&m[236..at51]);
    t.extend_from_slice(&m[at51 + 6..]);
    (t, own)
}

/// Client `i`'s record as cdra wrote it in format 3, naming its template by `id`.
fn format3_record(i: u8, now_ms: u64, id: u64, own: &[u8]) -> Vec<u8> {
    let mut v = old_record(2, i, now_ms);
    let reply_at = v.len() - 3 - ack(i).len() - 2;
    v.truncate(reply_at);
    v[0] = 3;
    v.push(1); // by template
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&(own.len() as u16).to_le_bytes());
    v.extend_from_slice(own);
    v.extend_from_slice(&[0, 0, 0]); // origin: a server
    v
}

/// Client `i`'s record as cdra 0.1 wrote it: format `version` (1 or 2), the reply whole.
fn old_record(version: u8, i: u8, now_ms: u64) -> Vec<u8> {
    let mut v = vec![version, 0];
    let key = ClientKey::hardware(1, &mac(i));
    let put16 = |v: &mut Vec<u8>, b: &[u8]| {
        v.extend_from_slice(&(b.len() as u16).to_le_bytes());
        v.extend_from_slice(b);
    };
    put16(&mut v, key.as_bytes());
    put16(&mut v, "rd0".as_bytes());
    v.extend_from_slice(&[10, 77, 1, 100 + i]);
    v.extend_from_slice(&SERVER.octets());
    v.extend_from_slice(&SERVER.octets());
    for secs in [3600u32, 1800, 3150] {
        v.extend_from_slice(&secs.to_le_bytes());
    }
    for ms in [now_ms, now_ms, now_ms, 0] {
        v.extend_from_slice(&ms.to_le_bytes());
    }
    put16(&mut v, &[1, 3, 6]);
    put16(&mut v, &ack(i));
    if version >= 2 {
        v.push(0); // origin: a server
        v.extend_from_slice(&0u16.to_le_bytes());
    }
    v
}

#[test]
fn records_of_formats_1_and_2_are_read_and_written_back_split() {
    assert_eq!(RECORD_FORMAT, 4);
    let mut c = config();
    c.mode = Mode::Proxy;
    let mut h = Harness::new(c);
    h.advance(5);
    let now_ms = h.now.as_millis();
    let stored: Vec<Vec<u8>> = (0..6u8).map(|i| old_record(1 + i % 2, i, now_ms)).collect();
    let decoded: Vec<_> = stored.iter().map(|b| decode_record(b).expect("an old record decodes")).collect();
    for (i, (r, iface)) in decoded.iter().enumerate() {
        assert_eq!((iface.as_str(), r.address), ("rd0", Ipv4Addr::new(10, 77, 1, 100 + i as u8)));
        assert_eq!(r.reply_message(), Some(normalised(ack(i as u8))), "the reply byte for byte");
        assert_eq!(r.param_list().codes().collect::<Vec<u8>>(), [1, 3, 6], "option 55 kept with it");
    }
    let report = h.engine.restore(h.now, decoded);
    assert_eq!(report.loaded, 6);
    // The six clients of one server and subnet share one template.
    assert_eq!(h.engine.table().templates().len(), 1);
    // Written back (a full dump): the template once, records that name it.
    let mut templates = Templates::new();
    let mut dumped_templates = 0;
    h.engine.dump_templates(|id, bytes| {
        dumped_templates += 1;
        templates.add(&template_key(id), bytes).expect("a template");
    });
    assert_eq!(dumped_templates, 1);
    let mut records = Vec::new();
    h.engine.dump(&mut Vec::new(), |_, b| records.push(b.to_vec()));
    assert_eq!(records.len(), 6);
    for (b, old) in records.iter().zip(&stored) {
        assert_eq!(b.first(), Some(&4), "format 4");
        assert!(b.len() + 150 < old.len(), "the shared part is not in the record: {} vs {}", b.len(), old.len());
        assert_eq!(decode_record(b).err(), Some(DecodeError::UnknownTemplate));
        let (r, _) = decode_record_with(b, &templates).expect("decodes with its template");
        let i = r.address.octets()[3] - 100;
        assert_eq!(r.param_list().codes().collect::<Vec<u8>>(), [1, 3, 6]);
        assert_eq!(r.reply_message(), Some(normalised(ack(i))));
        // Only what is the client's own: the record holds its address, hardware key and
        // lease, so one byte says so (and it is kept inside the record).
        assert_eq!(r.reply.as_ref().map(|c| (c.own_bytes().len(), c.own_heap_len())), Some((1, 0)));
    }
}

#[test]
fn records_of_format_3_are_read_with_their_template_which_stays_while_they_name_it() {
    let mut c = config();
    c.mode = Mode::Proxy;
    let mut h = Harness::new(c);
    h.advance(5);
    let now_ms = h.now.as_millis();
    let (template, _) = format3_split(1);
    assert!(!cdra_core::templates::Template::is_current_layout(&template));
    // The store's key for it is the hash of its bytes (FNV-1a, 64 bits).
    let id = template.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let mut templates = Templates::new();
    templates.add(&template_key(id), &template).expect("a format 3 template");
    let stored: Vec<Vec<u8>> = (1..4u8).map(|i| format3_record(i, now_ms, id, &format3_split(i).1)).collect();
    let mut decoded = Vec::new();
    for (i, b) in (1..4u8).zip(&stored) {
        assert_eq!(decode_record(b).err(), Some(DecodeError::UnknownTemplate));
        let (r, iface) = decode_record_with(b, &templates).expect("a format 3 record decodes");
        assert_eq!(r.reply_message(), Some(normalised(ack(i))), "the reply byte for byte");
        assert_eq!(r.param_list().codes().collect::<Vec<u8>>(), [1, 3, 6], "option 55 kept with it");
        decoded.push((r, iface.to_string()));
    }
    // Damaged own bytes (one short) do not fit the template.
    let short = format3_record(1, now_ms, id, &format3_split(1).1[..20]);
    assert_eq!(decode_record_with(&short, &templates).err(), Some(DecodeError::Invalid));
    // Its records still name it in the store: not to be deleted.
    assert_eq!(templates.unused().count(), 0);
    assert_eq!(h.engine.restore(h.now, decoded).loaded, 3);
    assert_eq!(h.engine.table().templates().len(), 1, "one format 4 template for the three");
    let mut records = Vec::new();
    h.engine.dump(&mut Vec::new(), |_, b| records.push(b.to_vec()));
    assert!(records.iter().all(|b| b.first() == Some(&4)));
}

#[test]
fn a_template_no_record_holds_any_more_is_deleted_from_the_store() {
    let mut c = config();
    c.mode = Mode::Proxy;
    let mut h = Harness::new(c);
    h.advance(5);
    let decoded = vec![decode_record(&old_record(2, 1, h.now.as_millis())).expect("decodes")];
    h.engine.restore(h.now, decoded);
    let mut changes = Vec::new();
    let drain = |h: &mut Harness, changes: &mut Vec<String>| {
        h.engine.drain_changes(&mut Vec::new(), |c| {
            changes.push(match c {
                Change::Upsert { key, .. } => format!("upsert {key}"),
                Change::Delete(key) => format!("delete {key}"),
                Change::Template { id, .. } => format!("template {id:016x}"),
                Change::DeleteTemplate(id) => format!("delete template {id:016x}"),
            })
        })
    };
    assert!(drain(&mut h, &mut changes));
    let id = h.engine.table().templates().iter().next().expect("one template").id();
    // The client leaves: its record, then its template (no one else holds it), go.
    assert_eq!(h.engine.flush_all(), 1);
    changes.clear();
    assert!(drain(&mut h, &mut changes));
    assert!(changes.contains(&format!("delete template {id:016x}")), "{changes:?}");
    assert!(changes.iter().any(|c| c.starts_with("delete hw:")), "{changes:?}");
}

#[test]
fn templates_no_restored_record_takes_are_named_for_deletion() {
    let mut c = config();
    c.mode = Mode::Proxy;
    let mut h = Harness::new(c);
    h.advance(5);
    let decoded: Vec<_> =
        (1..3u8).map(|i| decode_record(&old_record(2, i, h.now.as_millis())).expect("decodes")).collect();
    h.engine.restore(h.now, decoded);
    let mut templates = Templates::new();
    h.engine.dump_templates(|id, bytes| templates.add(&template_key(id), bytes).expect("a template"));
    let mut records = Vec::new();
    h.engine.dump(&mut Vec::new(), |_, b| records.push(b.to_vec()));
    // Another template, of a client whose record is gone.
    let mut other = ack(9);
    other.truncate(other.len() - 1);
    other.extend_from_slice(&[15, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 255]);
    let mut set = cdra_core::templates::TemplateSet::new(4);
    let key = ClientKey::hardware(1, &mac(9));
    let ctx = cdra_core::templates::ReplyContext {
        key: Some(&key),
        address: Ipv4Addr::new(10, 77, 1, 109),
        lease_secs: 3600,
        t1_secs: 1800,
        t2_secs: 3150,
    };
    let params = cdra_core::table::ParamList::new(&[1, 3, 6]);
    let mut gone = cdra_core::table::CachedReply::new(&other, &ctx, &params).expect("a reply");
    set.intern(&mut gone);
    templates.add(&template_key(gone.template().id()), gone.template().as_bytes()).expect("a template");
    drop((gone, set));
    // A fresh engine restores the records: one template taken, the other named unused.
    let mut c = config();
    c.mode = Mode::Proxy;
    let mut h2 = Harness::new(c);
    h2.now = h.now;
    let decoded: Vec<_> = records
        .iter()
        .map(|b| decode_record_with(b, &templates).map(|(r, i)| (r, i.to_string())).expect("decodes"))
        .collect();
    assert_eq!(h2.engine.restore(h2.now, decoded).loaded, 2);
    let unused: Vec<u64> = templates.unused().collect();
    assert_eq!(unused.len(), 1);
    assert!(h2.engine.table().templates().get(unused[0]).is_none());
}

/// `[limits] reply_templates`: beyond the bound a reply keeps its template alone (counted),
/// and is stored with it in its record; nothing is lost.
#[test]
fn beyond_the_template_bound_a_reply_is_kept_and_stored_whole() {
    let mut c = config();
    c.mode = Mode::Proxy;
    c.limits.reply_templates = 1;
    let mut h = Harness::new(c);
    h.advance(5);
    let plain = old_record(2, 1, h.now.as_millis());
    // Client 2's reply has an option of its own (another template).
    let mut special = old_record(2, 2, h.now.as_millis());
    let reply_at = special.len() - 3 - ack(2).len();
    let mut reply = ack(2);
    let end = reply.iter().rposition(|b| *b == 255).expect("END");
    reply.splice(end..end, [15, 4, b'h', b'o', b's', b't']);
    special.truncate(reply_at - 2);
    special.extend_from_slice(&(reply.len() as u16).to_le_bytes());
    special.extend_from_slice(&reply);
    special.extend_from_slice(&[0, 0, 0]);
    let decoded = vec![decode_record(&plain).expect("decodes"), decode_record(&special).expect("decodes")];
    assert_eq!(h.engine.restore(h.now, decoded).loaded, 2);
    let t = h.engine.table().templates();
    assert_eq!((t.len(), t.kept_alone()), (1, 1));
    let mut templates = Templates::new();
    h.engine.dump_templates(|id, bytes| templates.add(&template_key(id), bytes).expect("a template"));
    assert_eq!(templates.len(), 1);
    let mut records = Vec::new();
    h.engine.dump(&mut Vec::new(), |_, b| records.push(b.to_vec()));
    let replies: Vec<Vec<u8>> = records
        .iter()
        .map(|b| decode_record_with(b, &templates).expect("decodes").0.reply_message().expect("a reply"))
        .collect();
    assert!(replies.contains(&normalised(ack(1))) && replies.contains(&normalised(reply)), "both, byte for byte");
    // The one kept alone needs no template from the store: it is in its record.
    assert_eq!(records.iter().filter(|b| decode_record(b).is_ok()).count(), 1);
}

/// A client's record as `cache_reply` makes it for `reply` (key `key`, lease times as the
/// server gave them), its reply interned in `set` when given.
fn record_of(
    key: ClientKey,
    reply: &[u8],
    set: Option<&mut cdra_core::templates::TemplateSet>,
) -> cdra_core::table::ClientRecord {
    use cdra_core::lease::ServerLeaseTimes;
    let m = cdra_wire::Message::new_checked(reply).expect("a reply");
    let mut r = cdra_core::table::ClientRecord::new(key, cdra_core::table::ClientKind::Dhcp, 0, SOME_TIME);
    r.address = m.yiaddr();
    let t = ServerLeaseTimes::of(&m).expect("a lease");
    (r.lease_secs, r.t1_secs, r.t2_secs) = (t.lease, t.t1, t.t2);
    let params = cdra_core::table::ParamList::new(&[1, 3, 6, 15]);
    let mut c = cdra_core::table::CachedReply::new(reply, &r.reply_context(), &params).expect("kept");
    if let Some(set) = set {
        set.intern(&mut c);
    }
    r.reply = Some(c);
    r
}

const SOME_TIME: cdra_core::Timestamp = cdra_core::Timestamp::from_millis(5_000);

/// `ack(i)` with `extra` options before END.
fn ack_with(i: u8, extra: &[(u8, &[u8])]) -> Vec<u8> {
    let mut m = ack(i);
    let end = m.iter().rposition(|b| *b == 255).expect("END");
    m.truncate(end);
    for (code, data) in extra {
        m.push(*code);
        m.push(data.len() as u8);
        m.extend_from_slice(data);
    }
    m.push(255);
    m
}

#[test]
fn format_4_records_round_trip_with_only_their_own_bytes_inline_or_spilled() {
    let mut set = cdra_core::templates::TemplateSet::new(16);
    let id = [1u8, 2, 0x77, 0, 0, 0, 7];
    let fqdn = [&[0u8, 0, 0][..], b"a-rather-long-host-name.campus.example.org"].concat();
    let infinite = |i| {
        let mut m = ack_with(i, &[(58, &[0, 0, 0, 9]), (59, &[0, 0, 0, 0, 1])]);
        let at = m.windows(2).position(|w| w == [51, 4]).expect("51");
        m[at + 2..at + 6].copy_from_slice(&u32::MAX.to_be_bytes());
        m
    };
    // (what, record, own bytes' length, inline)
    let cases = [
        ("hardware key", record_of(ClientKey::hardware(1, &mac(1)), &ack(1), Some(&mut set)), 1, true),
        ("option 61 key", record_of(ClientKey::client_id(&id), &ack_with(7, &[(61, &id)]), Some(&mut set)), 7, true),
        (
            "host name",
            record_of(ClientKey::hardware(1, &mac(2)), &ack_with(2, &[(12, b"host-2")]), Some(&mut set)),
            8,
            true,
        ),
        (
            "long FQDN",
            record_of(ClientKey::hardware(1, &mac(3)), &ack_with(3, &[(81, &fqdn)]), Some(&mut set)),
            2 + fqdn.len(),
            false,
        ),
        // T1 is the record's; a T2 of 5 bytes is not (the record counts the default).
        (
            "infinite lease, odd T2",
            record_of(ClientKey::hardware(1, &mac(4)), &infinite(4), Some(&mut set)),
            1 + 6,
            true,
        ),
        // T1 beyond the lease: the record counts the lease.
        (
            "T1 beyond the lease",
            record_of(ClientKey::hardware(1, &mac(6)), &ack_with(6, &[(58, &7200u32.to_be_bytes())]), Some(&mut set)),
            1 + 5,
            true,
        ),
        (
            "template alone",
            record_of(ClientKey::hardware(1, &mac(5)), &ack_with(5, &[(6, &[8, 8, 8, 8])]), None),
            1,
            true,
        ),
    ];
    let mut templates = Templates::new();
    for t in set.iter() {
        templates.add(&template_key(t.id()), t.as_bytes()).expect("a template");
    }
    for (what, r, own_len, inline) in &cases {
        let c = r.reply.as_ref().expect("a reply");
        assert_eq!((c.own_bytes().len(), c.own_heap_len() == 0), (*own_len, *inline), "{what}");
        let mut bytes = Vec::new();
        cdra_core::persist::encode_record(r, "rd0", &mut bytes);
        assert_eq!(bytes.first(), Some(&4), "{what}");
        let (back, _) = decode_record_with(&bytes, &templates).expect(what);
        let b = back.reply.as_ref().expect("a reply");
        assert_eq!(back.reply_message(), r.reply_message(), "{what}: the reply byte for byte");
        assert_eq!((b.own_bytes(), b.param_codes()), (c.own_bytes(), &[1u8, 3, 6, 15][..]), "{what}");
        assert_eq!(back.reply_chaddr(), r.reply_chaddr(), "{what}");
    }
    // The option 61 client's chaddr is its reply's own; its identifier is its key's.
    assert_eq!(cases[1].1.reply_chaddr(), &mac(7));
    // yiaddr is the record's address (which changes only with a new reply).
    let (_, r, _, _) = &cases[0];
    let mut moved = r.clone();
    moved.address = Ipv4Addr::new(10, 77, 1, 250);
    assert_ne!(moved.reply_message(), r.reply_message(), "yiaddr is the record's address");
}
