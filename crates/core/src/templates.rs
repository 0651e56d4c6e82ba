//! The shared configuration store (paper 5.7): "a hierarchical database … organized by
//! server, then by subnet, then by client". Most of a server's ACK is the same for every
//! client of one server and subnet (server identifier, subnet mask, routers, DNS servers,
//! domain name, sname and file, giaddr); what is a client's own is its address, its lease
//! times, its identity and the header fields that echo its request.
//!
//! A cached reply is therefore kept in two parts:
//!
//! - a [`Template`]: the reply with everything per-client cut out, and where it was cut
//!   (the splice points, in the server's option order). Templates are interned per table
//!   ([`TemplateSet`]): one copy per distinct (server, subnet, option set), shared by
//!   reference count among the clients that have it, freed when the last one lets go, and
//!   bounded (`[limits] reply_templates`; beyond it a reply keeps a template of its own,
//!   counted);
//! - the client's own bytes: header bytes 4..20 (xid, secs, flags, ciaddr, yiaddr), its
//!   `chaddr` (`hlen` bytes), and the payload of each per-client option in splice order.
//!
//! "Organized by server, then by subnet": the server identifier (option 54), giaddr and the
//! subnet's options are part of the template, so the templates of one server and subnet are
//! the same template; a client with options of its own (a host reservation with its own DNS
//! or boot file) gets a template of its own kind, shared with any client that has the same.
//! The split is lossless by construction: [`CachedReply::expand_into`] gives back the
//! server's message byte for byte, in one pass (header, then the shared options copied in
//! runs with the client's options spliced in between), without allocating.
//!
//! Which options are per-client ([`PER_CLIENT_OPTIONS`]): lease times (51, 58, 59: servers
//! that give the remaining time differ per client and per renewal), client identifier (61,
//! RFC 6842 echo), host name (12) and client FQDN (81, RFC 4702), requested address (50).
//! Any other option that differs between two clients simply puts them in two templates.

use core::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use hashbrown::HashTable;

/// Options whose bytes belong to one client (see the module docs).
pub const PER_CLIENT_OPTIONS: [u8; 7] = [12, 50, 51, 58, 59, 61, 81];

/// Default of `[limits] reply_templates`.
pub const DEFAULT_MAX_TEMPLATES: usize = 16_384;

const PAD: u8 = 0;
const END: u8 = 255;
/// Layout of the compact message inside a template: a flags byte, header bytes 0..44, sname
/// (64) if flag 1, file (128) if flag 2, then bytes 236.. of the message (the "tail").
const HAS_SNAME: u8 = 1;
const HAS_FILE: u8 = 2;
const OWN_HEADER_AT: usize = 4;
const OWN_HEADER_END: usize = 20;
const HLEN_AT: usize = 2;
const CHADDR_AT: usize = 28;
const SNAME_AT: usize = 44;
const FILE_AT: usize = 108;
const COOKIE_AT: usize = 236;
/// Options start after the magic cookie.
const OPTIONS_IN_TAIL: usize = 4;
/// A splice: where in the tail (u16 LE) a per-client option goes, and its code.
const SPLICE_LEN: usize = 3;

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

/// What the clients of one server and subnet share: a reply with the per-client parts cut
/// out. Layout of its one allocation: the number of splices (u16 LE), the splices (at u16
/// LE, code), then the compact message (see `HAS_SNAME`).
pub struct Template {
    blob: Box<[u8]>,
    id: u64,
    /// Written to the store (persistence writes a template before the first record that
    /// names it).
    persisted: AtomicBool,
    /// Interned in a [`TemplateSet`] (shared, and stored apart); a reply alone is stored
    /// whole.
    shared: AtomicBool,
}

/// A view of a template's parts.
struct Parts<'a> {
    splices: &'a [u8],
    head: &'a [u8],
    sname: Option<&'a [u8]>,
    file: Option<&'a [u8]>,
    tail: &'a [u8],
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

    /// A template read back from the store (checked: `None` if malformed).
    pub fn from_bytes(bytes: &[u8]) -> Option<Arc<Template>> {
        let t = Template::from_blob(bytes.into());
        let p = t.parts()?;
        let mut last = 0usize;
        for s in p.splices.chunks_exact(SPLICE_LEN) {
            let at = usize::from(u16::from_le_bytes([*s.first()?, *s.get(1)?]));
            // What `CachedReply::new` cuts out is a per-client option, and only where a
            // whole option stood: any other code or place would read the client's own bytes
            // as other options (a length byte taken for a code).
            let code = *s.get(2)?;
            if at < last || !is_per_client(code) || !is_option_boundary(p.tail, at) {
                return None;
            }
            last = at;
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

    fn parts(&self) -> Option<Parts<'_>> {
        let b = &self.blob[..];
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
        Some(Parts { splices, head, sname, file, tail: rest })
    }

    /// Whether `own` is what a client's own bytes must be for this template: its header
    /// fields, `chaddr`, then one (length, payload) per splice, nothing more.
    fn fits(&self, own: &[u8]) -> bool {
        let Some(p) = self.parts() else { return false };
        let hlen = p.head.get(HLEN_AT).map_or(0, |h| usize::from(*h).min(16));
        let Some(mut rest) = own.get(OWN_HEADER_END - OWN_HEADER_AT + hlen..) else { return false };
        for _ in p.splices.chunks_exact(SPLICE_LEN) {
            let Some((&len, after)) = rest.split_first() else { return false };
            let Some(after) = after.get(usize::from(len)..) else { return false };
            rest = after;
        }
        rest.is_empty()
    }

    /// The shortest own bytes that fit this template: zero header fields and chaddr, every
    /// per-client option empty.
    pub fn minimal_own(&self) -> Vec<u8> {
        let Some(p) = self.parts() else { return Vec::new() };
        let hlen = p.head.get(HLEN_AT).map_or(0, |h| usize::from(*h).min(16));
        vec![0u8; OWN_HEADER_END - OWN_HEADER_AT + hlen + p.splices.len() / SPLICE_LEN]
    }

    /// The length of the shared tail (bytes 236.. without the per-client options).
    fn tail_len(&self) -> usize {
        self.parts().map_or(0, |p| p.tail.len())
    }

    /// Bytes this template takes in memory (its allocation and the `Arc` around it).
    pub fn stored_len(&self) -> usize {
        self.blob.len() + core::mem::size_of::<Template>() + 2 * core::mem::size_of::<usize>()
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

/// A server's reply as the table keeps it: a shared [`Template`] and the client's own bytes
/// (module docs). [`CachedReply::expand_into`] gives back the message byte for byte.
///
/// The client's allocation also holds the option 55 list of the request the reply answers
/// (Appendix B, "What happens if the client request changes?"): a count byte and the codes
/// ascending, before the reply's own bytes (typically 10 bytes, where a 256-bit set in the
/// record took 32).
#[derive(Clone)]
pub struct CachedReply {
    template: Arc<Template>,
    /// The parameter codes' count, the codes, then the reply's own bytes.
    own: Box<[u8]>,
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

/// Whether `at` is where an option of `tail` starts, or END, or the end of `tail`: the only
/// places [`CachedReply::new`] leaves a splice (PAD bytes are options of one byte).
fn is_option_boundary(tail: &[u8], at: usize) -> bool {
    if tail.get(..OPTIONS_IN_TAIL) != Some(&[99, 130, 83, 99][..]) {
        return false;
    }
    let mut i = OPTIONS_IN_TAIL;
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
    i == at
}

impl CachedReply {
    /// Keep `message` (a whole DHCP/BOOTP message, at least 240 bytes). The template is the
    /// reply's own until a [`TemplateSet`] interns it.
    pub fn new(message: &[u8]) -> Option<Self> {
        let head = message.get(..SNAME_AT)?;
        let sname = message.get(SNAME_AT..FILE_AT)?;
        let file = message.get(FILE_AT..COOKIE_AT)?;
        let tail = message.get(COOKIE_AT..)?;
        let hlen = usize::from(*head.get(HLEN_AT)?).min(16);
        let mut own = Vec::with_capacity(64);
        own.push(0); // no parameter list yet
        own.extend_from_slice(head.get(OWN_HEADER_AT..OWN_HEADER_END)?);
        own.extend_from_slice(head.get(CHADDR_AT..CHADDR_AT + hlen)?);
        // The tail without per-client options, and where each one was.
        let mut splices = Vec::new();
        let mut shared_tail = Vec::with_capacity(tail.len());
        let mut copied = 0;
        walk_options(tail, |at, code, option| {
            if is_per_client(code) {
                shared_tail.extend_from_slice(tail.get(copied..at).unwrap_or(&[]));
                copied = at + option.len();
                splices.extend_from_slice(&(shared_tail.len() as u16).to_le_bytes());
                splices.push(code);
                own.extend_from_slice(option.get(1..).unwrap_or(&[]));
            }
        });
        shared_tail.extend_from_slice(tail.get(copied..)?);
        let keep_sname = sname.iter().any(|b| *b != 0);
        let keep_file = file.iter().any(|b| *b != 0);
        let mut blob = Vec::with_capacity(3 + splices.len() + head.len() + shared_tail.len());
        blob.extend_from_slice(&((splices.len() / SPLICE_LEN) as u16).to_le_bytes());
        blob.extend_from_slice(&splices);
        blob.push((u8::from(keep_sname) * HAS_SNAME) | (u8::from(keep_file) * HAS_FILE));
        let head_at = blob.len();
        blob.extend_from_slice(head);
        // The client's header bytes live in `own`: zero them in the shared copy.
        blob.get_mut(head_at + OWN_HEADER_AT..head_at + OWN_HEADER_END)?.fill(0);
        blob.get_mut(head_at + CHADDR_AT..head_at + CHADDR_AT + hlen)?.fill(0);
        if keep_sname {
            blob.extend_from_slice(sname);
        }
        if keep_file {
            blob.extend_from_slice(file);
        }
        blob.extend_from_slice(&shared_tail);
        let template = Arc::new(Template::from_blob(blob.into_boxed_slice()));
        Some(CachedReply { template, own: own.into_boxed_slice() })
    }

    /// A reply from its parts as the store keeps them, with the option 55 codes `params`
    /// (checked against the template: `None` if the client's bytes do not fit it). One
    /// allocation.
    pub fn from_parts(template: Arc<Template>, own: &[u8], params: &[u8]) -> Option<Self> {
        if !template.fits(own) {
            return None;
        }
        let mut v = Vec::with_capacity(1 + params.len() + own.len());
        v.push(0);
        v.extend(params.iter().copied().filter(|c| *c != 0).take(255));
        let n = (v.len() - 1) as u8;
        if let Some(count) = v.first_mut() {
            *count = n;
        }
        v.extend_from_slice(own);
        Some(CachedReply { template, own: v.into_boxed_slice() })
    }

    /// The option 55 codes kept with it (ascending; empty until set).
    pub fn param_codes(&self) -> &[u8] {
        let n = usize::from(self.own.first().copied().unwrap_or(0));
        self.own.get(1..1 + n).unwrap_or(&[])
    }

    /// Keep `codes` (ascending, at most 255; code 0, PAD, is never kept) as its option 55
    /// list.
    pub fn set_param_codes(&mut self, codes: impl Iterator<Item = u8>) {
        let mut v = Vec::with_capacity(self.own.len() + 16);
        v.push(0);
        v.extend(codes.filter(|c| *c != 0).take(255));
        let n = (v.len() - 1) as u8;
        if let Some(count) = v.first_mut() {
            *count = n;
        }
        v.extend_from_slice(self.own_bytes());
        self.own = v.into_boxed_slice();
    }

    /// The whole message's length.
    pub fn len(&self) -> usize {
        // Each spliced option adds its code byte and (in `own`) its length and payload.
        let p = self.template.parts();
        let splices = p.as_ref().map_or(0, |p| p.splices.len() / SPLICE_LEN);
        let hlen = p.and_then(|p| p.head.get(HLEN_AT).copied()).map_or(0, |h| usize::from(h).min(16));
        let tail = self.template.tail_len();
        COOKIE_AT + tail + splices + self.own_bytes().len() - (OWN_HEADER_END - OWN_HEADER_AT + hlen)
    }

    /// Never empty (a message is at least its header).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Write the whole message into `out`; returns its length, or `None` if `out` is too
    /// small (or the parts do not fit together).
    pub fn expand_into(&self, out: &mut [u8]) -> Option<usize> {
        let p = self.template.parts()?;
        let own = self.own_bytes();
        out.get_mut(..SNAME_AT)?.copy_from_slice(p.head);
        let hlen = usize::from(*p.head.get(HLEN_AT)?).min(16);
        let (own_head, mut own) = own.split_at_checked(OWN_HEADER_END - OWN_HEADER_AT + hlen)?;
        let (fields, chaddr) = own_head.split_at_checked(OWN_HEADER_END - OWN_HEADER_AT)?;
        out.get_mut(OWN_HEADER_AT..OWN_HEADER_END)?.copy_from_slice(fields);
        out.get_mut(CHADDR_AT..CHADDR_AT + hlen)?.copy_from_slice(chaddr);
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
        let mut at = COOKIE_AT;
        let mut copied = 0usize;
        for s in p.splices.chunks_exact(SPLICE_LEN) {
            let (split, code) = (usize::from(u16::from_le_bytes([s[0], s[1]])), s[2]);
            let run = p.tail.get(copied..split)?;
            out.get_mut(at..at + run.len())?.copy_from_slice(run);
            at += run.len();
            copied = split;
            let (&len, rest) = own.split_first()?;
            let (payload, rest) = rest.split_at_checked(usize::from(len))?;
            own = rest;
            let dst = out.get_mut(at..at + 2 + payload.len())?;
            dst[0] = code;
            dst[1] = len;
            dst[2..].copy_from_slice(payload);
            at += 2 + payload.len();
        }
        let run = p.tail.get(copied..)?;
        out.get_mut(at..at + run.len())?.copy_from_slice(run);
        own.is_empty().then_some(at + run.len())
    }

    /// The whole message.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len()];
        let n = self.expand_into(&mut v).unwrap_or(0);
        v.truncate(n);
        v
    }

    /// The client hardware address the reply was for (`chaddr`, `hlen` bytes).
    pub fn chaddr(&self) -> &[u8] {
        let hlen = self.template.parts().and_then(|p| p.head.get(HLEN_AT).copied()).unwrap_or(0);
        let at = OWN_HEADER_END - OWN_HEADER_AT;
        self.own_bytes().get(at..at + usize::from(hlen).min(16)).unwrap_or(&[])
    }

    /// Its template.
    pub fn template(&self) -> &Arc<Template> {
        &self.template
    }

    /// The client's own bytes of the reply, as the store keeps them.
    pub fn own_bytes(&self) -> &[u8] {
        let n = usize::from(self.own.first().copied().unwrap_or(0));
        self.own.get(1 + n..).unwrap_or(&[])
    }

    /// Bytes kept in memory for this client alone: its own bytes, and its template when it
    /// shares it with no one.
    pub fn stored_len(&self) -> usize {
        let template = if Arc::strong_count(&self.template) <= 2 { self.template.stored_len() } else { 0 };
        self.own.len() + template
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

    /// A template as the store gives it back, with its splices replaced by `splices`
    /// (offset in the shared tail, code).
    fn with_splices(t: &Template, splices: &[(u16, u8)]) -> Vec<u8> {
        let b = t.as_bytes();
        let n = usize::from(u16::from_le_bytes([b[0], b[1]]));
        let mut out = (splices.len() as u16).to_le_bytes().to_vec();
        for (at, code) in splices {
            out.extend_from_slice(&at.to_le_bytes());
            out.push(*code);
        }
        out.extend_from_slice(&b[2 + n * SPLICE_LEN..]);
        out
    }

    #[test]
    fn a_stored_template_is_refused_unless_it_splices_per_client_options_between_whole_options() {
        let a = ack(1, 1, 10, 3600, &[(61, &[1, 2, 0, 0, 0, 0, 1])]);
        let reply = CachedReply::new(&a).unwrap();
        let t = reply.template();
        assert!(Template::from_bytes(t.as_bytes()).is_some(), "as written, it is read back");
        let b = t.as_bytes();
        let n = usize::from(u16::from_le_bytes([b[0], b[1]]));
        let good: Vec<(u16, u8)> = b[2..2 + n * SPLICE_LEN]
            .chunks_exact(SPLICE_LEN)
            .map(|s| (u16::from_le_bytes([s[0], s[1]]), s[2]))
            .collect();
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
    }

    #[test]
    fn clients_of_one_subnet_share_one_template_and_expand_to_their_own_reply() {
        let mut set = TemplateSet::new(8);
        let a = ack(1, 1, 10, 3600, &[(61, &[1, 2, 0, 0, 0, 0, 1])]);
        let b = ack(2, 2, 11, 1800, &[(61, &[1, 2, 0, 0, 0, 0, 2])]);
        let (mut ra, mut rb) = (CachedReply::new(&a).unwrap(), CachedReply::new(&b).unwrap());
        assert_eq!(set.intern(&mut ra), Interned::Shared);
        assert_eq!(set.intern(&mut rb), Interned::Shared);
        assert!(Arc::ptr_eq(ra.template(), rb.template()), "one template for both");
        assert_eq!(set.len(), 1);
        assert_eq!((ra.to_vec(), rb.to_vec()), (a, b));
        assert_eq!(ra.chaddr(), &[2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn a_host_with_options_of_its_own_gets_its_own_template() {
        let mut set = TemplateSet::new(8);
        let mut plain = CachedReply::new(&ack(1, 1, 10, 3600, &[])).unwrap();
        let own = ack(2, 2, 11, 3600, &[(6, &[8, 8, 8, 8])]);
        let mut special = CachedReply::new(&own).unwrap();
        set.intern(&mut plain);
        set.intern(&mut special);
        assert!(!Arc::ptr_eq(plain.template(), special.template()));
        assert_eq!(special.to_vec(), own);
    }

    #[test]
    fn a_full_set_leaves_new_templates_alone_and_a_freed_template_makes_room() {
        let mut set = TemplateSet::new(1);
        let mut a = CachedReply::new(&ack(1, 1, 10, 60, &[])).unwrap();
        let m = ack(2, 2, 11, 60, &[(6, &[8, 8, 8, 8])]);
        let mut b = CachedReply::new(&m).unwrap();
        assert_eq!(set.intern(&mut a), Interned::Shared);
        assert_eq!(set.intern(&mut b), Interned::Alone);
        assert_eq!((set.kept_alone(), b.to_vec()), (1, m.clone()));
        drop(a);
        let mut c = CachedReply::new(&m).unwrap();
        assert_eq!(set.intern(&mut c), Interned::Shared, "the freed template's entry was swept");
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn the_parameter_list_kept_with_the_reply_changes_nothing_of_it() {
        let m = ack(1, 1, 10, 3600, &[(61, &[1, 2, 0, 0, 0, 0, 1])]);
        let mut r = CachedReply::new(&m).unwrap();
        let own = r.own_bytes().to_vec();
        assert!(r.param_codes().is_empty());
        r.set_param_codes([0u8, 1, 3, 6, 15, 252].into_iter());
        assert_eq!(r.param_codes(), &[1, 3, 6, 15, 252], "PAD is no parameter");
        assert_eq!((r.own_bytes(), r.to_vec(), r.chaddr()), (&own[..], m.clone(), &[2, 0, 0, 0, 0, 1][..]));
        assert_eq!(r.len(), m.len());
        r.set_param_codes(core::iter::empty());
        assert_eq!((r.param_codes(), r.to_vec()), (&[][..], m));
    }

    #[test]
    fn a_template_read_back_is_checked() {
        let r = CachedReply::new(&ack(1, 1, 10, 60, &[])).unwrap();
        let t = Template::from_bytes(r.template().as_bytes()).unwrap();
        assert_eq!(t.id(), r.template().id());
        assert_eq!(CachedReply::from_parts(t.clone(), r.own_bytes(), &[]).unwrap().to_vec(), r.to_vec());
        assert!(CachedReply::from_parts(t, &r.own_bytes()[..10], &[]).is_none());
        assert!(Template::from_bytes(&[9, 0, 1]).is_none());
    }
}
