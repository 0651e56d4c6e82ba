//! Byte-level mutations of DHCP messages and of persisted records, each named so a failure
//! report says what was done.

use cdra_sim::SimRng;
use cdra_wire::options::OptionCode;
use cdra_wire::Message;

/// Values that tend to sit on boundaries.
const INTERESTING: [u8; 10] = [0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, 52, 53, 255];
/// Option codes the engine reads.
const CODES: [u8; 14] = [
    OptionCode::PAD,
    OptionCode::SUBNET_MASK,
    OptionCode::REQUESTED_IP,
    OptionCode::LEASE_TIME,
    OptionCode::OVERLOAD,
    OptionCode::MESSAGE_TYPE,
    OptionCode::SERVER_ID,
    OptionCode::PARAMETER_REQUEST_LIST,
    OptionCode::RENEWAL_T1,
    OptionCode::REBINDING_T2,
    OptionCode::CLIENT_ID,
    OptionCode::RAPID_COMMIT,
    OptionCode::RELAY_AGENT_INFO,
    OptionCode::END,
];
/// Where the options start (after the magic cookie).
const OPTIONS_AT: usize = 240;
/// Header fields: (name, offset, length).
const FIELDS: [(&str, usize, usize); 11] = [
    ("op", 0, 1),
    ("htype", 1, 1),
    ("hlen", 2, 1),
    ("hops", 3, 1),
    ("xid", 4, 4),
    ("flags", 10, 2),
    ("ciaddr", 12, 4),
    ("yiaddr", 16, 4),
    ("siaddr", 20, 4),
    ("giaddr", 24, 4),
    ("chaddr", 28, 6),
];

fn pick<T: Copy>(r: &mut SimRng, xs: &[T]) -> T {
    xs[r.below(xs.len() as u64) as usize]
}

/// Option TLVs of a message (for splicing into another).
pub fn option_tlvs(data: &[u8]) -> Vec<Vec<u8>> {
    let Ok(m) = Message::new_checked(data) else { return Vec::new() };
    m.options()
        .filter(|o| o.code != OptionCode::PAD && o.code != OptionCode::END)
        .map(|o| {
            let mut v = vec![o.code, o.data.len() as u8];
            v.extend_from_slice(o.data);
            v
        })
        .collect()
}

/// Apply 1 to 3 mutations to a DHCP message; `donors` are option TLVs that may be spliced
/// in. Returns what was done.
pub fn mutate_message(r: &mut SimRng, data: &mut Vec<u8>, donors: &[Vec<u8>]) -> String {
    let n = 1 + r.below(3);
    let mut done = Vec::new();
    for _ in 0..n {
        done.push(mutate_once(r, data, donors));
    }
    done.join("+")
}

fn mutate_once(r: &mut SimRng, data: &mut Vec<u8>, donors: &[Vec<u8>]) -> String {
    let len = data.len();
    match r.below(10) {
        0 | 1 => {
            // A few bit flips, half the time in the header.
            let flips = 1 + r.below(6);
            for _ in 0..flips {
                if len == 0 {
                    break;
                }
                let at = if r.chance(0.5) { r.below(len.min(OPTIONS_AT) as u64) } else { r.below(len as u64) } as usize;
                data[at] ^= 1 << r.below(8);
            }
            format!("flip{flips}")
        }
        2 => {
            if len == 0 {
                return "byte(empty)".into();
            }
            let at = r.below(len as u64) as usize;
            data[at] = pick(r, &INTERESTING);
            format!("byte@{at}")
        }
        3 => {
            // Truncate, mostly inside the options.
            let to = if r.chance(0.7) && len > OPTIONS_AT {
                r.range(OPTIONS_AT as u64 - 4, len as u64 - 1) as usize
            } else {
                r.below(len as u64 + 1) as usize
            };
            data.truncate(to);
            format!("trunc{to}")
        }
        4 => {
            let n = 1 + r.below(64) as usize;
            for _ in 0..n {
                data.push(r.next_u32() as u8);
            }
            format!("grow{n}")
        }
        5 | 6 => {
            // Splice an option TLV (from another message, or made up) into the options.
            let tlv = if !donors.is_empty() && r.chance(0.6) {
                donors[r.below(donors.len() as u64) as usize].clone()
            } else {
                let code = pick(r, &CODES);
                let n = pick(r, &[0u8, 1, 2, 4, 6, 7, 16, 255]);
                let mut v = vec![code, n];
                for _ in 0..n {
                    v.push(pick(r, &INTERESTING));
                }
                v
            };
            let at = if len > OPTIONS_AT { r.range(OPTIONS_AT as u64, len as u64) as usize } else { len };
            let code = tlv.first().copied().unwrap_or(0);
            data.splice(at..at, tlv);
            format!("splice{code}@{at}")
        }
        7 => {
            // Another message type.
            let mut changed = false;
            if let Ok(m) = Message::new_checked(&data[..]) {
                if let Some(o) = m.option(OptionCode::MESSAGE_TYPE) {
                    let at = o.offset;
                    if let Some(b) = data.get_mut(at) {
                        *b = pick(r, &[0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 18, 255]);
                        changed = true;
                    }
                }
            }
            if changed {
                "type".into()
            } else {
                "type(none)".into()
            }
        }
        8 => {
            let (name, at, n) = pick(r, &FIELDS);
            let v: [u8; 6] = match r.below(4) {
                0 => [0; 6],
                1 => [0xff; 6],
                2 => [10, 77, 1 + r.below(2) as u8, 1, 0, 0],
                _ => [r.next_u32() as u8, r.next_u32() as u8, r.next_u32() as u8, r.next_u32() as u8, 0, 0],
            };
            if let Some(f) = data.get_mut(at..at + n) {
                f.copy_from_slice(&v[..n]);
            }
            format!("field:{name}")
        }
        _ => {
            // END removed, or put early.
            if let Some(pos) = data.iter().rposition(|b| *b == OptionCode::END).filter(|_| r.chance(0.5)) {
                data[pos] = OptionCode::PAD;
                "no-end".into()
            } else if len > OPTIONS_AT {
                let at = r.range(OPTIONS_AT as u64, len as u64 - 1) as usize;
                data[at] = OptionCode::END;
                format!("end@{at}")
            } else {
                "end(short)".into()
            }
        }
    }
}

/// Offsets of a persisted record's fixed fields (see `cdra_core::persist::encode_record`):
/// after version, kind, key and interface name come address, server, server id, lease, T1,
/// T2 (4 bytes each), then lease start, last contact, last update, short lease end (8
/// each).
fn record_fields(rec: &[u8]) -> Option<usize> {
    let klen = usize::from(u16::from_le_bytes([*rec.get(2)?, *rec.get(3)?]));
    let at = 4 + klen;
    let ilen = usize::from(u16::from_le_bytes([*rec.get(at)?, *rec.get(at + 1)?]));
    Some(at + 2 + ilen)
}

/// Field names and sizes after [`record_fields`]' offset.
const RECORD_FIELDS: [(&str, usize, usize); 10] = [
    ("address", 0, 4),
    ("server", 4, 4),
    ("server_id", 8, 4),
    ("lease", 12, 4),
    ("t1", 16, 4),
    ("t2", 20, 4),
    ("lease_start", 24, 8),
    ("last_contact", 32, 8),
    ("last_update", 40, 8),
    ("short_lease_end", 48, 8),
];

/// Mutate one persisted record; `now` is the engine's clock (for plausible times) and
/// `addresses` the addresses worth colliding with. Returns what was done.
pub fn mutate_record(r: &mut SimRng, rec: &mut Vec<u8>, now: u64, addresses: &[[u8; 4]]) -> String {
    let fixed = record_fields(rec);
    match (r.below(5), fixed) {
        (0, _) | (_, None) => {
            let flips = 1 + r.below(4);
            for _ in 0..flips {
                if rec.is_empty() {
                    break;
                }
                let at = r.below(rec.len() as u64) as usize;
                rec[at] ^= 1 << r.below(8);
            }
            format!("flip{flips}")
        }
        (1, _) => {
            let to = r.below(rec.len() as u64 + 1) as usize;
            rec.truncate(to);
            format!("trunc{to}")
        }
        (2, Some(_)) => {
            // The interface name: another link, or none we know.
            let name: &[u8] = pick(r, &[b"ds0".as_slice(), b"ds1", b"eth9", b""]);
            let klen = usize::from(u16::from_le_bytes([rec[2], rec[3]]));
            let at = 4 + klen;
            let ilen = usize::from(u16::from_le_bytes([rec[at], rec[at + 1]]));
            let rest = rec.get(at + 2 + ilen..).unwrap_or(&[]).to_vec();
            rec.truncate(at);
            rec.extend_from_slice(&(name.len() as u16).to_le_bytes());
            rec.extend_from_slice(name);
            rec.extend_from_slice(&rest);
            format!("iface={}", String::from_utf8_lossy(name))
        }
        (_, Some(base)) => {
            let (name, off, n) = pick(r, &RECORD_FIELDS);
            let at = base + off;
            let mut bytes = [0u8; 8];
            match n {
                4 if name == "address" || name.starts_with("server") => {
                    let a = if !addresses.is_empty() && r.chance(0.6) {
                        addresses[r.below(addresses.len() as u64) as usize]
                    } else {
                        pick(r, &[[0, 0, 0, 0], [255, 255, 255, 255], [10, 77, 1, 150], [10, 77, 2, 1], [10, 77, 0, 1]])
                    };
                    bytes[..4].copy_from_slice(&a);
                }
                4 => {
                    let v: u32 = pick(r, &[0, 1, 9, 10, 60, 3600, u32::MAX - 1, u32::MAX]);
                    bytes[..4].copy_from_slice(&v.to_le_bytes());
                }
                _ => {
                    let v: u64 = match r.below(5) {
                        0 => 0,
                        1 => u64::MAX,
                        2 => now.saturating_add(r.range(1, 30 * 86_400_000)),
                        3 => now.saturating_sub(r.range(1, 30 * 86_400_000)),
                        _ => now,
                    };
                    bytes.copy_from_slice(&v.to_le_bytes());
                }
            }
            if let Some(f) = rec.get_mut(at..at + n) {
                f.copy_from_slice(&bytes[..n]);
            }
            name.to_string()
        }
    }
}
