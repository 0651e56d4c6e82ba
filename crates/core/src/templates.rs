//! The shared configuration store (paper 5.7): "a hierarchical database … organized by
//! server, then by subnet, then by client". Most of a server's ACK is the same for every
//! client of one server and subnet (server identifier, subnet mask, routers, DNS servers,
//! domain name, sname and file, giaddr); what is a client's own is its address, its lease
//! times, its identity, and the header fields that echo its request.
//!
//! A cached reply is therefore kept in two parts:
//!
//! - a [`Template`]: the reply with everything per-client cut out, and where it was cut
//!   (the splice points, in the server's option order), with the option 55 codes of the
//!   request it answers (Appendix B, "What happens if the client request changes?": the
//!   same for every client of one operating system, and the server's option set depends on
//!   them anyway). Templates are interned per table ([`TemplateSet`]): one copy per
//!   distinct (server, subnet, option set, option 55), shared by reference count among the
//!   clients that have it, freed when the last one lets go, and bounded (`[limits]
//!   reply_templates`; beyond it a reply keeps a template of its own, counted);
//! - the client's own bytes, only what its record does not hold already (the issue's "only
//!   what is its own: address, lease times, identity, and any option that differs"): a
//!   bit set saying which parts are the record's ([`ReplyContext`]: its address as yiaddr,
//!   its hardware key as chaddr, its lease, T1 and T2 as options 51, 58 and 59, its client
//!   identifier as option 61), then the parts that are not (a yiaddr or chaddr that differs,
//!   the payload of every other per-client option). A typical client's own bytes are the
//!   one byte of that set; up to [`INLINE_OWN`] bytes live inside the [`CachedReply`]
//!   itself (no allocation), longer ones (a long host name or FQDN) on the heap.
//!
//! "Organized by server, then by subnet": the server identifier (option 54), giaddr and the
//! subnet's options are part of the template, so the templates of one server and subnet are
//! the same template; a client with options of its own (a host reservation with its own DNS
//! or boot file) gets a template of its own kind, shared with any client that has the same.
//!
//! What "expand" gives back ([`CachedReply::expand_into`], in one pass, without
//! allocating): the server's message byte for byte, except for the header fields that
//! every use of a cached reply sets itself, which are *normalised* to zero: xid, secs,
//! flags and ciaddr (a local answer takes them from the client's request, RFC 2131 table 3
//! and `proxy/answer.rs`; a RELEASE or a pool migration builds a request of its own). The
//! fields derived from the record come back as the server sent them: a part is derived
//! only when the record holds exactly the server's bytes (a lease the record counts
//! differently, an infinite lease's T1 above it, a chaddr other than the key's, an
//! option 61 other than the key's identifier are kept as the client's own bytes).
//!
//! Which options are per-client ([`PER_CLIENT_OPTIONS`]): lease times (51, 58, 59: servers
//! that give the remaining time differ per client and per renewal), client identifier (61,
//! RFC 6842 echo), host name (12) and client FQDN (81, RFC 4702), requested address (50).
//! Any other option that differs between two clients simply puts them in two templates.

use core::fmt;
use core::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use hashbrown::HashTable;

use crate::table::{ClientKey, ParamList};

pub(crate) mod legacy;

/// Options whose bytes belong to one client (see the module docs).
pub const PER_CLIENT_OPTIONS: [u8; 7] = [12, 50, 51, 58, 59, 61, 81];

/// Default of `[limits] reply_templates`.
pub const DEFAULT_MAX_TEMPLATES: usize = 16_384;

/// Own bytes up to this length are kept inside the [`CachedReply`] (no allocation).
pub const INLINE_OWN: usize = 22;

const PAD: u8 = 0;
const END: u8 = 255;
/// Layout of the compact message inside a template: a flags byte, header bytes 0..44, sname
/// (64) if flag 1, file (128) if flag 2, then bytes 236.. of the message (the "tail").
const HAS_SNAME: u8 = 1;
const HAS_FILE: u8 = 2;
/// The header fields a cached reply does not keep (xid, secs, flags, ciaddr) and the ones
/// it keeps apart (yiaddr, chaddr).
const NORMALISED_AT: usize = 4;
const YIADDR_AT: usize = 16;
const YIADDR_END: usize = 20;
const HTYPE_AT: usize = 1;
const HLEN_AT: usize = 2;
const CHADDR_AT: usize = 28;
const SNAME_AT: usize = 44;
const FILE_AT: usize = 108;
const COOKIE_AT: usize = 236;
/// Options start after the magic cookie.
const OPTIONS_IN_TAIL: usize = 4;
/// A splice: where in the tail (u16 LE) a per-client option goes, and its code.
const SPLICE_LEN: usize = 3;
/// The first bytes of a template in this layout (record format 4). A format 3 template
/// starts with its splice count (u16 LE), which is never 0xFFFF: that many per-client
/// options take more than the 64 KiB a message can have.
const TEMPLATE_MAGIC: [u8; 3] = [0xFF, 0xFF, 4];
/// Bits of the own bytes' derived set: yiaddr is the record's address, chaddr the
/// hardware key's; bit `FIRST_SPLICE_BIT + i`: splice `i`'s payload is the record's.
const YIADDR_BIT: usize = 0;
const CHADDR_BIT: usize = 1;
const FIRST_SPLICE_BIT: usize = 2;

const LEASE_TIME: u8 = 51;
const RENEWAL_T1: u8 = 58;
const REBINDING_T2: u8 = 59;
const CLIENT_ID: u8 = 61;

fn is_per_client(code: u8) -> bool {
    PER_CLIENT_OPTIONS.contains(&code)
}

/// FNV-1a, 64 bits: a template's identifier, stable across builds and restarts (it is the
/// store's key for the template).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The identifier of the template stored as `bytes` (of either layout).
pub(crate) fn template_id(bytes: &[u8]) -> u64 {
    fnv1a(bytes)
}

/// What a client's record holds that its reply's own bytes need not repeat (module docs):
/// the same values when the reply is split and whenever it is expanded. A record's
/// [`crate::table::ClientRecord::reply_context`]; a pool entry's lease names no client
/// (`key: None`: its chaddr and option 61 are kept as own bytes).
#[derive(Debug, Clone, Copy)]
pub struct ReplyContext<'a> {
    /// The client's key: chaddr (hardware key) or option 61 (client identifier).
    pub key: Option<&'a ClientKey>,
    /// yiaddr.
    pub address: Ipv4Addr,
    /// Option 51, 58 and 59's payloads (seconds).
    pub lease_secs: u32,
    /// See `lease_secs`.
    pub t1_secs: u32,
    /// See `lease_secs`.
    pub t2_secs: u32,
}

impl<'a> ReplyContext<'a> {
    /// The hardware key's (htype, chaddr).
    fn hardware(&self) -> Option<(u8, &'a [u8])> {
        match self.key?.as_bytes().split_first() {
            Some((0, rest)) => rest.split_first().map(|(h, c)| (*h, c)),
            _ => None,
        }
    }

    /// The payload the record gives per-client option `code`, written into `buf` for the
    /// lease times.
    fn payload<'b>(&'b self, code: u8, buf: &'b mut [u8; 4]) -> Option<&'b [u8]> {
        let secs = match code {
            LEASE_TIME => self.lease_secs,
            RENEWAL_T1 => self.t1_secs,
            REBINDING_T2 => self.t2_secs,
            // A length byte holds the identifier (a damaged store's longer key derives none).
            CLIENT_ID => return self.key?.client_id_bytes().filter(|id| id.len() <= 255),
            _ => return None,
        };
        *buf = secs.to_be_bytes();
        Some(&buf[..])
    }
}

/// What the clients of one server and subnet share: a reply with the per-client parts cut
/// out. Layout of its one allocation: `TEMPLATE_MAGIC` (FF FF 04), the option 55 codes (count,
/// codes), the number of splices (u16 LE), the splices (at u16 LE, code), then the compact
/// message (see `HAS_SNAME`).
pub struct Template {
    blob: Box<[u8]>,
    id: u64,
    /// Written to the store (persistence writes a template before the first record that
    /// names it).
    persisted: AtomicBool,
    /// Interned in a [`TemplateSet`] (shared, and stored apart); a reply alone is stored
    /// with its record.
    shared: AtomicBool,
}

/// A view of a template's parts.
struct Parts<'a> {
    params: &'a [u8],
    splices: &'a [u8],
    head: &'a [u8],
    sname: Option<&'a [u8]>,
    file: Option<&'a [u8]>,
    tail: &'a [u8],
}

impl Parts<'_> {
    fn splice_count(&self) -> usize {
        self.splices.len() / SPLICE_LEN
    }

    fn hlen(&self) -> usize {
        self.head.get(HLEN_AT).map_or(0, |h| usize::from(*h).min(16))
    }

    /// Bytes of the derived set in own bytes that fit this template.
    fn derived_len(&self) -> usize {
        (FIRST_SPLICE_BIT + self.splice_count()).div_ceil(8)
    }
}

/// What both template layouts hold from their splice count on (format 3's templates start
/// with it, format 4's after `TEMPLATE_MAGIC` and the option 55 codes): the splices, the
/// header, sname and file when kept, the tail.
pub(crate) struct CompactParts<'a> {
    pub(crate) splices: &'a [u8],
    pub(crate) head: &'a [u8],
    pub(crate) sname: Option<&'a [u8]>,
    pub(crate) file: Option<&'a [u8]>,
    pub(crate) tail: &'a [u8],
}

/// Split `b` (a template from its splice count on) into its parts; `None` if too short.
pub(crate) fn compact_parts(b: &[u8]) -> Option<CompactParts<'_>> {
    let n = usize::from(u16::from_le_bytes([*b.first()?, *b.get(1)?]));
    let splices = b.get(2..2 + n * SPLICE_LEN)?;
    let rest = b.get(2 + n * SPLICE_LEN..)?;
    let (&flags, rest) = rest.split_first()?;
    let head = rest.get(..SNAME_AT)?;
    let mut rest = rest.get(SNAME_AT..)?;
    let mut take = |present: bool, n: usize| -> Option<Option<&[u8]>> {
        if !present {
            return Some(None);
        }
        let (a, b) = (rest.get(..n)?, rest.get(n..)?);
        rest = b;
        Some(Some(a))
    };
    let sname = take(flags & HAS_SNAME != 0, FILE_AT - SNAME_AT)?;
    let file = take(flags & HAS_FILE != 0, COOKIE_AT - FILE_AT)?;
    Some(CompactParts { splices, head, sname, file, tail: rest })
}

/// One piece of a reply that is not the template's, in message order.
enum Piece<'a> {
    Yiaddr(&'a [u8]),
    Chaddr(&'a [u8]),
    /// A per-client option: the shared tail up to `at`, then the option.
    Option {
        at: usize,
        code: u8,
        payload: &'a [u8],
    },
}

impl Template {
    fn from_blob(blob: Box<[u8]>) -> Self {
        let id = fnv1a(&blob);
        Template { blob, id, persisted: AtomicBool::new(false), shared: AtomicBool::new(false) }
    }

    /// Its identifier (a hash of its bytes).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its bytes, as the store keeps them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.blob
    }

    /// Whether `bytes` are a template of this layout (record format 4) rather than format 3's
    /// (`templates/legacy.rs`).
    pub fn is_current_layout(bytes: &[u8]) -> bool {
        bytes.starts_with(&TEMPLATE_MAGIC)
    }

    /// A template read back from the store (checked: `None` if malformed).
    pub fn from_bytes(bytes: &[u8]) -> Option<Arc<Template>> {
        let t = Template::from_blob(bytes.into());
        let p = t.parts()?;
        // What `CachedReply::new` cuts out is a per-client option, and only where a whole
        // option stood.
        if !are_client_splices(p.tail, p.splices) {
            return None;
        }
        // Option 55 codes as `CachedReply::new` keeps them: ascending, no PAD.
        if p.params.contains(&0) || p.params.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        Some(Arc::new(t))
    }

    /// Whether it has been written to the store; marks it written.
    pub fn mark_persisted(&self) -> bool {
        self.persisted.swap(true, Ordering::Relaxed)
    }

    /// Whether it has been written to the store.
    pub fn is_persisted(&self) -> bool {
        self.persisted.load(Ordering::Relaxed)
    }

    /// Whether it is interned (shared by the replies that have it, stored apart).
    pub fn is_shared(&self) -> bool {
        self.shared.load(Ordering::Relaxed)
    }

    /// Forget that it was written (a full dump writes every template again).
    pub fn clear_persisted(&self) {
        self.persisted.store(false, Ordering::Relaxed);
    }

    /// The option 55 codes of the request its replies answer (ascending).
    pub fn param_codes(&self) -> &[u8] {
        self.parts().map_or(&[], |p| p.params)
    }

    fn parts(&self) -> Option<Parts<'_>> {
        let b = self.blob.strip_prefix(&TEMPLATE_MAGIC[..])?;
        let (&np, b) = b.split_first()?;
        let (params, b) = b.split_at_checked(usize::from(np))?;
        let CompactParts { splices, head, sname, file, tail } = compact_parts(b)?;
        Some(Parts { params, splices, head, sname, file, tail })
    }

    /// The client's parts of a reply, from its own bytes `own` and its record `ctx`, in
    /// message order, to `f`; `None` unless `own` fits this template exactly (and every
    /// part it leaves to the record is there).
    fn pieces<'a>(
        p: &Parts<'a>,
        own: &'a [u8],
        ctx: &'a ReplyContext<'a>,
        mut f: impl FnMut(Piece<'_>) -> Option<()>,
    ) -> Option<()> {
        let (derived, mut rest) = own.split_at_checked(p.derived_len())?;
        let is_derived = |bit: usize| derived.get(bit / 8).is_some_and(|b| b & (1 << (bit % 8)) != 0);
        let mut take = |n: usize| -> Option<&'a [u8]> {
            let (a, b) = rest.split_at_checked(n)?;
            rest = b;
            Some(a)
        };
        let address = ctx.address.octets();
        f(Piece::Yiaddr(if is_derived(YIADDR_BIT) { &address } else { take(4)? }))?;
        let hlen = p.hlen();
        let chaddr = if is_derived(CHADDR_BIT) {
            let (htype, chaddr) = ctx.hardware()?;
            (Some(&htype) == p.head.get(HTYPE_AT) && chaddr.len() == hlen).then_some(chaddr)?
        } else {
            take(hlen)?
        };
        f(Piece::Chaddr(chaddr))?;
        let mut buf = [0u8; 4];
        for (i, s) in p.splices.chunks_exact(SPLICE_LEN).enumerate() {
            let (at, code) = (usize::from(u16::from_le_bytes([s[0], s[1]])), s[2]);
            let payload = if is_derived(FIRST_SPLICE_BIT + i) {
                ctx.payload(code, &mut buf)?
            } else {
                let len = *take(1)?.first()?;
                take(usize::from(len))?
            };
            f(Piece::Option { at, code, payload })?;
        }
        // Bits past the splices are never set (one reply, one encoding).
        let used = (FIRST_SPLICE_BIT + p.splice_count()) % 8;
        let spare = if used == 0 { 0 } else { derived.last().map_or(0, |b| b >> used) };
        (rest.is_empty() && spare == 0).then_some(())
    }

    /// Whether `own` is what a client's own bytes can be for this template with record
    /// `ctx` (module docs).
    fn fits(&self, own: &[u8], ctx: &ReplyContext<'_>) -> bool {
        let Some(p) = self.parts() else { return false };
        Template::pieces(&p, own, ctx, |_| Some(())).is_some()
    }

    /// The shortest own bytes that fit this template: nothing derived, a zero yiaddr and
    /// chaddr, every per-client option empty.
    pub fn minimal_own(&self) -> Vec<u8> {
        let Some(p) = self.parts() else { return Vec::new() };
        vec![0u8; p.derived_len() + 4 + p.hlen() + p.splice_count()]
    }

    /// The same template for requests with option 55 `params`.
    fn with_params(&self, params: &ParamList) -> Option<Template> {
        let p = self.parts()?;
        let rest = self.blob.get(TEMPLATE_MAGIC.len() + 1 + p.params.len()..)?;
        let mut blob = Vec::with_capacity(self.blob.len() + 16);
        push_params(&mut blob, params);
        blob.extend_from_slice(rest);
        Some(Template::from_blob(blob.into_boxed_slice()))
    }

    /// Bytes this template takes in memory (its allocation and the `Arc` around it).
    pub fn stored_len(&self) -> usize {
        self.blob.len() + core::mem::size_of::<Template>() + 2 * core::mem::size_of::<usize>()
    }
}

/// Start a template's blob: the magic, then option 55's codes (count, codes; PAD never).
fn push_params(blob: &mut Vec<u8>, params: &ParamList) {
    blob.extend_from_slice(&TEMPLATE_MAGIC);
    let count_at = blob.len();
    blob.push(0);
    let mut n = 0u8;
    for c in params.codes().filter(|c| *c != PAD).take(255) {
        blob.push(c);
        n += 1;
    }
    if let Some(count) = blob.get_mut(count_at) {
        *count = n;
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.blob == other.blob
    }
}
impl Eq for Template {}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:016x}, {} bytes)", self.id, self.blob.len())
    }
}

/// A client's own bytes: inside the [`CachedReply`] up to [`INLINE_OWN`] bytes, else on
/// the heap.
#[derive(Clone, PartialEq, Eq)]
enum OwnBytes {
    Inline { len: u8, data: [u8; INLINE_OWN] },
    Heap(Box<[u8]>),
}

impl OwnBytes {
    fn new(bytes: &[u8]) -> Self {
        let mut data = [0u8; INLINE_OWN];
        match data.get_mut(..bytes.len()) {
            Some(d) => {
                d.copy_from_slice(bytes);
                OwnBytes::Inline { len: bytes.len() as u8, data }
            }
            None => OwnBytes::Heap(bytes.into()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            OwnBytes::Inline { len, data } => data.get(..usize::from(*len)).unwrap_or(&[]),
            OwnBytes::Heap(b) => b,
        }
    }
}

/// A server's reply as the table keeps it: a shared [`Template`] and the client's own bytes
/// (module docs), 32 bytes. [`CachedReply::expand_into`] gives back the message, with the
/// [`ReplyContext`] of the record that holds it.
#[derive(Clone)]
pub struct CachedReply {
    template: Arc<Template>,
    own: OwnBytes,
}

/// Walk the options of `tail` (bytes 236.. of a message), calling `f(at, code, option)` for
/// each whole option before END (`at`: its offset in `tail`; `option`: code, length and
/// payload). Stops at END, at anything malformed, or at a non-DHCP cookie.
fn walk_options(tail: &[u8], mut f: impl FnMut(usize, u8, &[u8])) {
    if tail.get(..OPTIONS_IN_TAIL) != Some(&[99, 130, 83, 99][..]) {
        return;
    }
    let mut i = OPTIONS_IN_TAIL;
    while let Some(&code) = tail.get(i) {
        match code {
            PAD => i += 1,
            END => return,
            _ => {
                let Some(&len) = tail.get(i + 1) else { return };
                let end = i + 2 + usize::from(len);
                let Some(option) = tail.get(i..end) else { return };
                f(i, code, option);
                i = end;
            }
        }
    }
}

/// Whether `splices` (at u16 LE, code) are what [`CachedReply::new`] leaves: in order, each
/// of a per-client option, each where an option of `tail` starts, or END, or the end of
/// `tail` (PAD bytes are options of one byte). Any other code or place would read the
/// client's own bytes as other options (a length byte taken for a code). One walk of
/// `tail` for all of them (a stored template may have thousands).
fn are_client_splices(tail: &[u8], splices: &[u8]) -> bool {
    let cookie = tail.get(..OPTIONS_IN_TAIL) == Some(&[99, 130, 83, 99][..]);
    let mut i = OPTIONS_IN_TAIL;
    for s in splices.chunks_exact(SPLICE_LEN) {
        let (at, code) = (usize::from(u16::from_le_bytes([s[0], s[1]])), s[2]);
        if !cookie || at < i || !is_per_client(code) {
            return false;
        }
        while i < at {
            i += match tail.get(i) {
                Some(&PAD) => 1,
                Some(&END) | None => return false,
                Some(_) => match tail.get(i + 1) {
                    Some(&len) => 2 + usize::from(len),
                    None => return false,
                },
            };
        }
        if i != at {
            return false;
        }
    }
    true
}

/// The own bytes being built: the derived set, then the parts that are not derived.
struct OwnBuilder {
    derived: Vec<u8>,
    rest: Vec<u8>,
}

impl OwnBuilder {
    /// Part `bit` of the reply: derived from the record, or `bytes` kept.
    fn part(&mut self, bit: usize, derived: bool, bytes: &[u8]) {
        if self.derived.len() <= bit / 8 {
            self.derived.resize(bit / 8 + 1, 0);
        }
        if derived {
            if let Some(b) = self.derived.get_mut(bit / 8) {
                *b |= 1 << (bit % 8);
            }
        } else {
            self.rest.extend_from_slice(bytes);
        }
    }

    /// The own bytes of a reply with `splices` per-client options.
    fn finish(mut self, splices: usize) -> OwnBytes {
        self.derived.resize((FIRST_SPLICE_BIT + splices).div_ceil(8), 0);
        self.derived.extend_from_slice(&self.rest);
        OwnBytes::new(&self.derived)
    }
}

impl CachedReply {
    /// Keep `message` (a whole DHCP/BOOTP message, at least 240 bytes), the reply to a
    /// request with option 55 `params`, for the record `ctx` (what it holds is not kept
    /// twice). The template is the reply's own until a [`TemplateSet`] interns it.
    pub fn new(message: &[u8], ctx: &ReplyContext<'_>, params: &ParamList) -> Option<Self> {
        let head = message.get(..SNAME_AT)?;
        let sname = message.get(SNAME_AT..FILE_AT)?;
        let file = message.get(FILE_AT..COOKIE_AT)?;
        let tail = message.get(COOKIE_AT..)?;
        let hlen = usize::from(*head.get(HLEN_AT)?).min(16);
        let mut own = OwnBuilder { derived: Vec::with_capacity(4), rest: Vec::new() };
        let yiaddr = head.get(YIADDR_AT..YIADDR_END)?;
        own.part(YIADDR_BIT, yiaddr == ctx.address.octets(), yiaddr);
        let chaddr = head.get(CHADDR_AT..CHADDR_AT + hlen)?;
        let keyed_by_it = ctx.hardware().is_some_and(|(htype, c)| Some(&htype) == head.get(HTYPE_AT) && c == chaddr);
        own.part(CHADDR_BIT, keyed_by_it, chaddr);
        // The tail without per-client options, and where each one was.
        let mut splices = Vec::new();
        let mut shared_tail = Vec::with_capacity(tail.len());
        let mut copied = 0;
        let mut buf = [0u8; 4];
        walk_options(tail, |at, code, option| {
            if is_per_client(code) {
                shared_tail.extend_from_slice(tail.get(copied..at).unwrap_or(&[]));
                copied = at + option.len();
                let bit = FIRST_SPLICE_BIT + splices.len() / SPLICE_LEN;
                splices.extend_from_slice(&(shared_tail.len() as u16).to_le_bytes());
                splices.push(code);
                let the_records = ctx.payload(code, &mut buf) == option.get(2..);
                own.part(bit, the_records, option.get(1..).unwrap_or(&[]));
            }
        });
        shared_tail.extend_from_slice(tail.get(copied..)?);
        let keep_sname = sname.iter().any(|b| *b != 0);
        let keep_file = file.iter().any(|b| *b != 0);
        let mut blob = Vec::with_capacity(8 + params.codes().count() + splices.len() + head.len() + shared_tail.len());
        push_params(&mut blob, params);
        blob.extend_from_slice(&((splices.len() / SPLICE_LEN) as u16).to_le_bytes());
        blob.extend_from_slice(&splices);
        blob.push((u8::from(keep_sname) * HAS_SNAME) | (u8::from(keep_file) * HAS_FILE));
        let head_at = blob.len();
        blob.extend_from_slice(head);
        // Normalised (xid, secs, flags, ciaddr) or the client's (yiaddr, chaddr): zero in
        // the shared copy.
        blob.get_mut(head_at + NORMALISED_AT..head_at + YIADDR_END)?.fill(0);
        blob.get_mut(head_at + CHADDR_AT..head_at + CHADDR_AT + hlen)?.fill(0);
        if keep_sname {
            blob.extend_from_slice(sname);
        }
        if keep_file {
            blob.extend_from_slice(file);
        }
        blob.extend_from_slice(&shared_tail);
        let template = Arc::new(Template::from_blob(blob.into_boxed_slice()));
        Some(CachedReply { template, own: own.finish(splices.len() / SPLICE_LEN) })
    }

    /// A reply from its parts as the store keeps them, for the record `ctx` (checked against
    /// the template: `None` if the client's bytes do not fit it, or leave to the record
    /// what it does not hold).
    pub fn from_parts(template: Arc<Template>, own: &[u8], ctx: &ReplyContext<'_>) -> Option<Self> {
        template.fits(own, ctx).then(|| CachedReply { template, own: OwnBytes::new(own) })
    }

    /// The same reply to a request with option 55 `params`: its template is then its own
    /// until a [`TemplateSet`] interns it.
    pub fn with_params(&self, params: &ParamList) -> Option<Self> {
        let template = Arc::new(self.template.with_params(params)?);
        Some(CachedReply { template, own: self.own.clone() })
    }

    /// The option 55 codes of the request it answers (ascending).
    pub fn param_codes(&self) -> &[u8] {
        self.template.param_codes()
    }

    /// The whole message's length (0 if the parts do not fit together).
    pub fn len(&self, ctx: &ReplyContext<'_>) -> usize {
        let Some(p) = self.template.parts() else { return 0 };
        let mut n = COOKIE_AT + p.tail.len();
        let fits = Template::pieces(&p, self.own.as_slice(), ctx, |piece| {
            if let Piece::Option { payload, .. } = piece {
                n += 2 + payload.len();
            }
            Some(())
        });
        fits.map_or(0, |()| n)
    }

    /// Write the whole message (module docs: what "expand" gives back) into `out`, with the
    /// record's `ctx`; returns its length, or `None` if `out` is too small (or the parts do
    /// not fit together).
    pub fn expand_into(&self, ctx: &ReplyContext<'_>, out: &mut [u8]) -> Option<usize> {
        let p = self.template.parts()?;
        out.get_mut(..SNAME_AT)?.copy_from_slice(p.head);
        let sname = out.get_mut(SNAME_AT..FILE_AT)?;
        match p.sname {
            None => sname.fill(0),
            Some(s) => sname.copy_from_slice(s),
        }
        let file = out.get_mut(FILE_AT..COOKIE_AT)?;
        match p.file {
            None => file.fill(0),
            Some(f) => file.copy_from_slice(f),
        }
        let (mut at, mut copied) = (COOKIE_AT, 0usize);
        Template::pieces(&p, self.own.as_slice(), ctx, |piece| {
            match piece {
                Piece::Yiaddr(a) => out.get_mut(YIADDR_AT..YIADDR_END)?.copy_from_slice(a),
                Piece::Chaddr(c) => out.get_mut(CHADDR_AT..CHADDR_AT + c.len())?.copy_from_slice(c),
                Piece::Option { at: split, code, payload } => {
                    let run = p.tail.get(copied..split)?;
                    out.get_mut(at..at + run.len())?.copy_from_slice(run);
                    at += run.len();
                    copied = split;
                    let dst = out.get_mut(at..at + 2 + payload.len())?;
                    dst[0] = code;
                    dst[1] = payload.len() as u8;
                    dst[2..].copy_from_slice(payload);
                    at += 2 + payload.len();
                }
            }
            Some(())
        })?;
        let run = p.tail.get(copied..)?;
        out.get_mut(at..at + run.len())?.copy_from_slice(run);
        Some(at + run.len())
    }

    /// The whole message (empty if the parts do not fit together).
    pub fn to_vec(&self, ctx: &ReplyContext<'_>) -> Vec<u8> {
        let mut v = vec![0u8; self.len(ctx)];
        let n = self.expand_into(ctx, &mut v).unwrap_or(0);
        v.truncate(n);
        v
    }

    /// The client hardware address the reply was for (`chaddr`, `hlen` bytes): the
    /// hardware key's, or kept in the own bytes.
    pub fn chaddr<'a>(&'a self, ctx: &ReplyContext<'a>) -> &'a [u8] {
        let Some(p) = self.template.parts() else { return &[] };
        let own = self.own.as_slice();
        let derived = |bit: usize| own.get(bit / 8).is_some_and(|b| b & (1 << (bit % 8)) != 0);
        if derived(CHADDR_BIT) {
            return ctx.hardware().map_or(&[], |(_, c)| c);
        }
        let at = p.derived_len() + if derived(YIADDR_BIT) { 0 } else { 4 };
        own.get(at..at + p.hlen()).unwrap_or(&[])
    }

    /// Its template.
    pub fn template(&self) -> &Arc<Template> {
        &self.template
    }

    /// The client's own bytes of the reply, as the store keeps them.
    pub fn own_bytes(&self) -> &[u8] {
        self.own.as_slice()
    }

    /// The length of the heap block holding its own bytes (0: kept inline).
    pub fn own_heap_len(&self) -> usize {
        match &self.own {
            OwnBytes::Inline { .. } => 0,
            OwnBytes::Heap(b) => b.len(),
        }
    }

    /// Bytes kept for this client alone: its own bytes, and its template when it shares it
    /// with no one.
    pub fn stored_len(&self) -> usize {
        let template = if Arc::strong_count(&self.template) <= 2 { self.template.stored_len() } else { 0 };
        self.own.as_slice().len() + template
    }
}

impl PartialEq for CachedReply {
    fn eq(&self, other: &Self) -> bool {
        self.own == other.own && (Arc::ptr_eq(&self.template, &other.template) || self.template == other.template)
    }
}
impl Eq for CachedReply {}

impl fmt::Debug for CachedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CachedReply({:?} + {} own bytes)", self.template, self.own_bytes().len())
    }
}

/// How a reply's template was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interned {
    /// Shared with the replies of other clients (found, or new and now shared).
    Shared,
    /// The set was full: the reply keeps its template alone (`[limits] reply_templates`).
    Alone,
}

/// The interned templates of one table: at most `max` live ones. An entry whose template no
/// reply holds any more is dead (its bytes are freed with the last reply: the set holds a
/// weak reference) and is swept when the set is full.
#[derive(Debug)]
pub struct TemplateSet {
    /// (id, template): one entry per id.
    live: HashTable<(u64, Weak<Template>)>,
    max: usize,
    /// Replies that kept a template alone because the set was full (monotonic).
    kept_alone: u64,
    /// Interns left before a sweep of a full set is tried again (a sweep that freed little
    /// waits, so that a full set costs O(1) per reply, amortised).
    sweep_after: usize,
    /// Ids of templates swept while a reply was interned, for persistence to delete (at
    /// most `max`; beyond it they are forgotten and `gone_lost` asks for a full dump).
    gone: Vec<u64>,
    gone_lost: bool,
}

impl TemplateSet {
    /// An empty set of at most `max` templates.
    pub fn new(max: usize) -> Self {
        TemplateSet { live: HashTable::new(), max, kept_alone: 0, sweep_after: 0, gone: Vec::new(), gone_lost: false }
    }

    /// A new bound (a reload); a smaller one frees nothing at once.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Templates in the set (some may be dead until the next sweep).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Replies that kept a template of their own because the set was full.
    pub fn kept_alone(&self) -> u64 {
        self.kept_alone
    }

    /// The live template of id `id`.
    pub fn get(&self, id: u64) -> Option<Arc<Template>> {
        self.live.find(id, |(i, _)| *i == id).and_then(|(_, w)| w.upgrade())
    }

    /// Every live template.
    pub fn iter(&self) -> impl Iterator<Item = Arc<Template>> + '_ {
        self.live.iter().filter_map(|(_, w)| w.upgrade())
    }

    /// Drop the entries of templates no reply holds, calling `gone(id)` for each.
    pub fn sweep(&mut self, mut gone: impl FnMut(u64)) {
        self.live.retain(|(id, w)| {
            let live = w.strong_count() > 0;
            if !live {
                gone(*id);
            }
            live
        });
    }

    /// Share `reply`'s template with the replies that have the same one (or make it the one
    /// others will share).
    pub fn intern(&mut self, reply: &mut CachedReply) -> Interned {
        self.intern_template(&mut reply.template)
    }

    /// Sweep, and give the ids of every template swept since the last call (here or while
    /// interning). False if some were forgotten (the store then needs a full dump).
    pub fn take_gone(&mut self, mut f: impl FnMut(u64)) -> bool {
        let mut gone = core::mem::take(&mut self.gone);
        self.sweep(|id| gone.push(id));
        for id in gone.drain(..) {
            f(id);
        }
        self.gone = gone;
        !core::mem::take(&mut self.gone_lost)
    }

    /// [`TemplateSet::intern`] for a template alone (read back from the store).
    pub fn intern_template(&mut self, template: &mut Arc<Template>) -> Interned {
        let id = template.id;
        let dead = match self.live.find_entry(id, |(i, _)| *i == id) {
            Ok(e) => match e.get().1.upgrade() {
                // The very template (a restore: every record of a template names one copy).
                Some(found) if Arc::ptr_eq(&found, template) => return Interned::Shared,
                Some(found) if *found == **template => {
                    *template = found;
                    return Interned::Shared;
                }
                // Another template with the same id (a 64-bit hash collision): never shared,
                // so that an id always names one template in the store.
                Some(_) => {
                    self.kept_alone += 1;
                    return Interned::Alone;
                }
                // The template came back after its last reply went: a new entry replaces it.
                None => {
                    e.remove();
                    true
                }
            },
            Err(_) => false,
        };
        if !dead && self.live.len() >= self.max && self.sweep_after == 0 {
            let before = self.live.len();
            let mut gone = core::mem::take(&mut self.gone);
            self.sweep(|id| gone.push(id));
            if gone.len() > self.max {
                gone.clear();
                self.gone_lost = true;
            }
            self.gone = gone;
            let freed = before - self.live.len();
            self.sweep_after = if freed * 8 >= self.max { 0 } else { self.max / 8 };
        } else if !dead && self.live.len() >= self.max {
            self.sweep_after -= 1;
        }
        if self.live.len() >= self.max {
            self.kept_alone += 1;
            return Interned::Alone;
        }
        template.shared.store(true, Ordering::Relaxed);
        self.live.insert_unique(id, (id, Arc::downgrade(template)), |(i, _)| *i);
        Interned::Shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(xid: u32, mac: u8, addr: u8, lease: u32, extra: &[(u8, &[u8])]) -> Vec<u8> {
        let mut m = vec![0u8; 240];
        m[0] = 2;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&xid.to_be_bytes());
        m[16..20].copy_from_slice(&[10, 0, 0, addr]);
        m[24..28].copy_from_slice(&[10, 0, 0, 1]);
        m[28..34].copy_from_slice(&[2, 0, 0, 0, 0, mac]);
        m[236..240].copy_from_slice(&[99, 130, 83, 99]);
        let mut opt = |c: u8, v: &[u8]| {
            m.push(c);
            m.push(v.len() as u8);
            m.extend_from_slice(v);
        };
        opt(53, &[5]);
        opt(54, &[192, 0, 2, 1]);
        opt(51, &lease.to_be_bytes());
        opt(1, &[255, 255, 255, 0]);
        for (c, v) in extra {
            opt(*c, v);
        }
        opt(3, &[10, 0, 0, 1]);
        m.push(255);
        m
    }

    /// The message as expanded: xid, secs, flags and ciaddr zero (module docs).
    fn normalised(m: &[u8]) -> Vec<u8> {
        let mut m = m.to_vec();
        m[NORMALISED_AT..YIADDR_AT].fill(0);
        m
    }

    /// The context of the record a table keeps for `m` under `key`.
    fn context<'a>(m: &[u8], key: &'a ClientKey) -> ReplyContext<'a> {
        let at = |i: usize| u32::from_be_bytes(m[i..i + 4].try_into().unwrap());
        let lease = (0..m.len() - 6).find(|i| m[*i] == 51 && m[i + 1] == 4).map_or(0, |i| at(i + 2));
        ReplyContext {
            key: Some(key),
            address: Ipv4Addr::new(m[16], m[17], m[18], m[19]),
            lease_secs: lease,
            t1_secs: lease / 2,
            t2_secs: lease / 8 * 7,
        }
    }

    fn mac_key(mac: u8) -> ClientKey {
        ClientKey::hardware(1, &[2, 0, 0, 0, 0, mac])
    }

    fn split(m: &[u8], key: &ClientKey) -> CachedReply {
        CachedReply::new(m, &context(m, key), &ParamList::new(&[1, 3, 6])).unwrap()
    }

    /// A template as the store gives it back, with its splices replaced by `splices`
    /// (offset in the shared tail, code).
    fn with_splices(t: &Template, splices: &[(u16, u8)]) -> Vec<u8> {
        let b = t.as_bytes();
        let p = t.parts().unwrap();
        let at = TEMPLATE_MAGIC.len() + 1 + p.params.len();
        let mut out = b[..at].to_vec();
        out.extend_from_slice(&(splices.len() as u16).to_le_bytes());
        for (at, code) in splices {
            out.extend_from_slice(&at.to_le_bytes());
            out.push(*code);
        }
        out.extend_from_slice(&b[at + 2 + p.splices.len()..]);
        out
    }

    #[test]
    fn a_stored_template_is_refused_unless_it_splices_per_client_options_between_whole_options() {
        let key = ClientKey::client_id(&[1, 2, 0, 0, 0, 0, 1]);
        let a = ack(1, 1, 10, 3600, &[(61, &[1, 2, 0, 0, 0, 0, 1])]);
        let reply = split(&a, &key);
        let t = reply.template();
        assert!(Template::from_bytes(t.as_bytes()).is_some(), "as written, it is read back");
        let p = t.parts().unwrap();
        let good: Vec<(u16, u8)> =
            p.splices.chunks_exact(SPLICE_LEN).map(|s| (u16::from_le_bytes([s[0], s[1]]), s[2])).collect();
        assert_eq!(good.iter().map(|s| s.1).collect::<Vec<_>>(), vec![51, 61]);
        assert!(Template::from_bytes(&with_splices(t, &good)).is_some());
        // A PAD or a non-client option (53) as the spliced code: refused.
        for code in [0u8, 53] {
            let bad = [(good[0].0, code), good[1]];
            assert!(Template::from_bytes(&with_splices(t, &bad)).is_none(), "code {code}");
        }
        // A splice inside an option (one byte into the option after the first splice).
        let bad = [(good[0].0 + 1, 51), good[1]];
        assert!(Template::from_bytes(&with_splices(t, &bad)).is_none(), "inside an option");
        // Option 55 codes out of order.
        let mut b = t.as_bytes().to_vec();
        b[TEMPLATE_MAGIC.len() + 1..TEMPLATE_MAGIC.len() + 4].copy_from_slice(&[6, 3, 1]);
        assert!(Template::from_bytes(&b).is_none(), "codes not ascending");
    }

    /// A damaged or hostile store's template: many splices at the end of a long tail. Its
    /// check walks the tail once (it walked it once per splice: 20,000 x 60,000 steps, a
    /// start-up stalled for seconds per such template or record).
    #[test]
    fn a_stored_template_with_many_splices_is_checked_in_one_walk_of_its_tail() {
        let key = mac_key(1);
        let reply = split(&ack(1, 1, 10, 3600, &[]), &key);
        let t = reply.template();
        let p = t.parts().unwrap();
        // The same template with its options replaced by 60,000 PADs and END, and 20,000
        // lease-time splices at END.
        let mut tail = vec![99, 130, 83, 99];
        tail.resize(60_004, PAD);
        tail.push(END);
        let splices = vec![(60_004u16, LEASE_TIME); 20_000];
        let mut b = with_splices(t, &splices);
        b.truncate(b.len() - p.tail.len());
        b.extend_from_slice(&tail);
        let started = std::time::Instant::now();
        assert!(Template::from_bytes(&b).is_some(), "well formed, if odd");
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_millis(500), "checked in {took:?}");
    }

    #[test]
    fn clients_of_one_subnet_share_one_template_and_expand_to_their_own_reply() {
        let mut set = TemplateSet::new(8);
        let (ka, kb) = (mac_key(1), mac_key(2));
        let a = ack(1, 1, 10, 3600, &[]);
        let b = ack(2, 2, 11, 1800, &[]);
        let (mut ra, mut rb) = (split(&a, &ka), split(&b, &kb));
        assert_eq!(set.intern(&mut ra), Interned::Shared);
        assert_eq!(set.intern(&mut rb), Interned::Shared);
        assert!(Arc::ptr_eq(ra.template(), rb.template()), "one template for both");
        assert_eq!(set.len(), 1);
        let (ca, cb) = (context(&a, &ka), context(&b, &kb));
        assert_eq!((ra.to_vec(&ca), rb.to_vec(&cb)), (normalised(&a), normalised(&b)));
        assert_eq!((ra.len(&ca), ra.chaddr(&ca)), (a.len(), &[2, 0, 0, 0, 0, 1][..]));
        // A typical client: address, chaddr and lease are its record's; one byte says so.
        assert_eq!(ra.own_bytes(), &[0b111]);
        assert_eq!((ra.own_heap_len(), ra.param_codes()), (0, &[1, 3, 6][..]));
    }

    #[test]
    fn a_cached_reply_is_32_bytes_and_a_typical_one_allocates_nothing_of_its_own() {
        assert_eq!(core::mem::size_of::<CachedReply>(), 32);
        assert_eq!(core::mem::size_of::<Option<CachedReply>>(), 32);
        let key = mac_key(1);
        // A host name of 12 bytes still fits inline (1 + 13 bytes).
        let named = ack(1, 1, 10, 3600, &[(12, b"host-0000001")]);
        let r = split(&named, &key);
        assert_eq!((r.own_heap_len(), r.own_bytes().len()), (0, 14));
        assert_eq!(r.to_vec(&context(&named, &key)), normalised(&named));
        // A long FQDN spills to the heap, byte for byte the same.
        let fqdn = [&[0u8, 0, 0][..], b"a-long-host-name.example.org"].concat();
        let long = ack(1, 1, 10, 3600, &[(81, &fqdn)]);
        let r = split(&long, &key);
        assert_eq!(r.own_heap_len(), 1 + 1 + fqdn.len());
        assert_eq!(r.to_vec(&context(&long, &key)), normalised(&long));
    }

    #[test]
    fn a_client_keyed_by_option_61_keeps_its_chaddr_and_takes_its_identifier_from_the_key() {
        let id = [1u8, 2, 0, 0, 0, 0, 9];
        let key = ClientKey::client_id(&id);
        let m = ack(7, 9, 12, 3600, &[(61, &id)]);
        let ctx = context(&m, &key);
        let r = split(&m, &key);
        assert_eq!(r.chaddr(&ctx), &[2, 0, 0, 0, 0, 9], "kept: the key names no hardware address");
        assert_eq!(r.own_bytes(), [&[0b1101u8][..], &[2, 0, 0, 0, 0, 9]].concat(), "61 from the key");
        assert_eq!(r.to_vec(&ctx), normalised(&m));
        // Another identifier than the key's is kept as the client's own.
        let other = ack(7, 9, 12, 3600, &[(61, b"\x01else")]);
        let r = split(&other, &key);
        assert_eq!(r.to_vec(&context(&other, &key)), normalised(&other));
        assert!(r.own_bytes().ends_with(b"\x05\x01else"));
    }

    #[test]
    fn lease_times_the_record_does_not_hold_as_sent_are_kept_as_sent() {
        let key = mac_key(3);
        // An infinite lease with a T1 above half of it, a T2 of 5 bytes, a yiaddr that is not
        // the record's address.
        let m = ack(1, 3, 20, u32::MAX, &[(58, &[0, 0, 0, 9]), (59, &[0, 0, 0, 0, 1])]);
        let mut ctx = context(&m, &key);
        ctx.address = Ipv4Addr::new(10, 0, 0, 99);
        let r = CachedReply::new(&m, &ctx, &ParamList::EMPTY).unwrap();
        assert_eq!(r.own_bytes()[0], 0b0000_0110, "chaddr and option 51 derived; yiaddr, 58, 59 kept");
        assert_eq!(r.to_vec(&ctx), normalised(&m));
    }

    #[test]
    fn own_bytes_that_leave_to_the_record_what_it_cannot_give_are_refused() {
        let key = mac_key(1);
        let m = ack(1, 1, 10, 3600, &[(12, b"name")]);
        let ctx = context(&m, &key);
        let r = split(&m, &key);
        let own = r.own_bytes().to_vec();
        assert!(CachedReply::from_parts(r.template().clone(), &own, &ctx).is_some());
        // Option 12 said to be the record's; a bit past the splices; chaddr from a key that
        // is no hardware address.
        for bad in [own[0] | 0b1000, own[0] | 0b1000_0000] {
            let own = [&[bad][..], &own[1..]].concat();
            assert!(CachedReply::from_parts(r.template().clone(), &own, &ctx).is_none(), "{bad:b}");
        }
        let id_key = ClientKey::client_id(b"\x01x");
        let by_id = ReplyContext { key: Some(&id_key), ..ctx };
        assert!(CachedReply::from_parts(r.template().clone(), &own, &by_id).is_none());
        assert!(CachedReply::from_parts(r.template().clone(), &own[..own.len() - 1], &ctx).is_none());
    }

    #[test]
    fn a_host_with_options_of_its_own_gets_its_own_template() {
        let mut set = TemplateSet::new(8);
        let mut plain = split(&ack(1, 1, 10, 3600, &[]), &mac_key(1));
        let own = ack(2, 2, 11, 3600, &[(6, &[8, 8, 8, 8])]);
        let mut special = split(&own, &mac_key(2));
        set.intern(&mut plain);
        set.intern(&mut special);
        assert!(!Arc::ptr_eq(plain.template(), special.template()));
        assert_eq!(special.to_vec(&context(&own, &mac_key(2))), normalised(&own));
    }

    #[test]
    fn a_full_set_leaves_new_templates_alone_and_a_freed_template_makes_room() {
        let mut set = TemplateSet::new(1);
        let mut a = split(&ack(1, 1, 10, 60, &[]), &mac_key(1));
        let m = ack(2, 2, 11, 60, &[(6, &[8, 8, 8, 8])]);
        let mut b = split(&m, &mac_key(2));
        assert_eq!(set.intern(&mut a), Interned::Shared);
        assert_eq!(set.intern(&mut b), Interned::Alone);
        assert_eq!((set.kept_alone(), b.to_vec(&context(&m, &mac_key(2)))), (1, normalised(&m)));
        drop(a);
        let mut c = split(&m, &mac_key(2));
        assert_eq!(set.intern(&mut c), Interned::Shared, "the freed template's entry was swept");
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn the_parameter_list_is_the_templates_and_changes_nothing_of_the_reply() {
        let key = mac_key(1);
        let m = ack(1, 1, 10, 3600, &[(61, &[1, 2, 0, 0, 0, 0, 1])]);
        let ctx = context(&m, &key);
        let r = CachedReply::new(&m, &ctx, &ParamList::EMPTY).unwrap();
        assert!(r.param_codes().is_empty());
        let asked = r.with_params(&ParamList::new(&[0u8, 1, 3, 6, 15, 252])).unwrap();
        assert_eq!(asked.param_codes(), &[1, 3, 6, 15, 252], "PAD is no parameter");
        assert_eq!((asked.own_bytes(), asked.to_vec(&ctx)), (r.own_bytes(), normalised(&m)));
        assert_ne!(asked.template().id(), r.template().id(), "two option 55 lists, two templates");
    }

    #[test]
    fn a_template_read_back_is_checked() {
        let key = mac_key(1);
        let m = ack(1, 1, 10, 60, &[]);
        let (r, ctx) = (split(&m, &key), context(&m, &key));
        let t = Template::from_bytes(r.template().as_bytes()).unwrap();
        assert_eq!(t.id(), r.template().id());
        assert_eq!(CachedReply::from_parts(t.clone(), r.own_bytes(), &ctx).unwrap().to_vec(&ctx), r.to_vec(&ctx));
        assert!(CachedReply::from_parts(t, &[], &ctx).is_none());
        assert!(Template::from_bytes(&[9, 0, 1]).is_none());
        assert!(Template::is_current_layout(r.template().as_bytes()));
    }
}
