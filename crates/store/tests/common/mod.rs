//! Test support: realistic records (real `cdra_core` encoding, a real 300-byte DHCPACK),
//! store paths in temporary directories, and a small deterministic random generator.
//! Also used by `examples/load_bench.rs`.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cdra_core::persist::{decode_record, encode_record};
use cdra_core::table::{CachedReply, ClientKey, ClientKind, ClientRecord, ClientState, ParamList, ServerBinding};
use cdra_core::Timestamp;
use cdra_store::{StoreConfig, WriteMode};
use cdra_wire::{MessageBuilder, MessageType, Op};

pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const IFACE: &str = "rd0";

/// The MAC address of client `i`.
pub fn mac(i: u64) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// Client `i`'s store key.
pub fn key(i: u64) -> Vec<u8> {
    ClientKey::hardware(1, &mac(i)).as_bytes().to_vec()
}

/// Client `i`'s address.
pub fn address(i: u64) -> Ipv4Addr {
    let n = (i % 16_000_000) as u32 + 1;
    Ipv4Addr::from(0x0a00_0000 | n)
}

/// A DHCPACK as a server sends one: 300 bytes, the usual options.
pub fn ack(i: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut b = MessageBuilder::new(&mut buf, Op::BootReply, Some(MessageType::Ack)).expect("builder");
    b.xid(i as u32).giaddr(Ipv4Addr::new(10, 77, 1, 1)).yiaddr(address(i)).chaddr(1, &mac(i));
    b.option(54, &SERVER.octets()).expect("opt");
    b.option(51, &86_400u32.to_be_bytes()).expect("opt");
    b.option(58, &43_200u32.to_be_bytes()).expect("opt");
    b.option(59, &75_600u32.to_be_bytes()).expect("opt");
    b.option(1, &[255, 255, 0, 0]).expect("opt");
    b.option(3, &[10, 77, 1, 1]).expect("opt");
    b.option(6, &[10, 77, 0, 53, 10, 77, 0, 54]).expect("opt");
    b.option(15, b"campus.example.org").expect("opt");
    b.option(28, &[10, 77, 255, 255]).expect("opt");
    b.option(42, &[10, 77, 0, 123]).expect("opt");
    let len = b.finish().expect("finish");
    buf.truncate(len);
    buf
}

/// Client `i`'s record, with `seq` as its last contact and last update (in seconds: a record
/// keeps them to the second), so a test can tell which write a stored value came from.
pub fn record(i: u64, seq: u64) -> ClientRecord {
    let now = Timestamp::from_secs(seq);
    let mut r = ClientRecord::new(ClientKey::hardware(1, &mac(i)), ClientKind::Dhcp, 0, now);
    r.state = ClientState::Bound;
    r.address = address(i);
    r.set_server(Some(ServerBinding { addr: SERVER, id: SERVER }));
    r.lease_secs = 86_400;
    r.t1_secs = 43_200;
    r.t2_secs = 75_600;
    r.set_lease_start(now);
    r.set_last_update(now);
    r.set_client_lease_end(Some(Timestamp::from_secs(seq + 600)));
    let params = ParamList::new(&[1, 3, 6, 15, 28, 42, 119]);
    r.reply = Some(CachedReply::new(&ack(i), &r.reply_context(), &params).expect("a whole message"));
    r
}

/// Client `i`'s `(key, value)` as the engine hands them to the store.
pub fn pair(i: u64, seq: u64) -> (Vec<u8>, Vec<u8>) {
    let mut v = Vec::new();
    encode_record(&record(i, seq), IFACE, &mut v);
    (key(i), v)
}

/// Decode a stored value and check it belongs to `key`; returns its `seq`.
pub fn check_pair(k: &[u8], v: &[u8]) -> Result<u64, String> {
    let (rec, iface) = decode_record(v).map_err(|e| format!("decode: {e}"))?;
    if rec.key.as_bytes() != k {
        return Err("the value's key is not the row's key".into());
    }
    if iface != IFACE {
        return Err(format!("interface {iface}"));
    }
    Ok(rec.last_update().as_millis() / 1000)
}

pub fn config(path: &Path, interval_ms: u64) -> StoreConfig {
    StoreConfig {
        path: path.to_path_buf(),
        commit_interval: Duration::from_millis(interval_ms),
        mode: WriteMode::GroupCommit,
        queue_capacity: 65536,
    }
}

/// A temporary directory and the store path inside it.
pub fn temp_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clients.redb");
    (dir, path)
}

/// xorshift64*: deterministic and dependency-free.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = self.next() as u8;
        }
    }
}

/// A seed from the clock, printed so a failure can be replayed with `CDRA_TEST_SEED`.
pub fn seed(test: &str) -> u64 {
    let s = std::env::var("CDRA_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    }) | 1;
    eprintln!("{test}: seed {s} (CDRA_TEST_SEED={s} to replay)");
    s
}
