//! Record format 3's reply templates and own bytes (as cdra kept them before format 4),
//! read only: a store written by an older cdra is restored by expanding each format 3
//! reply into the server's message, which [`super::CachedReply::new`] then splits the
//! format 4 way.
//!
//! Format 3 layout of a template: the number of splices (u16 LE), the splices (offset in
//! the tail u16 LE, option code), a flags byte (1: sname kept, 2: file kept), header bytes
//! 0..44 (bytes 4..20 and chaddr zeroed), sname and file when kept, bytes 236.. of the
//! message without the per-client options. Own bytes: header bytes 4..20 (xid, secs,
//! flags, ciaddr, yiaddr), chaddr (`hlen` bytes), then a (length, payload) per splice.

use super::{
    are_client_splices, compact_parts, CompactParts, CHADDR_AT, COOKIE_AT, FILE_AT, HLEN_AT, SNAME_AT, SPLICE_LEN,
};

const OWN_HEADER_AT: usize = 4;
const OWN_HEADER_END: usize = 20;

/// A format 3 template, checked as it was (its splices name per-client options, each where
/// a whole option stood).
#[derive(Debug)]
pub(crate) struct LegacyTemplate {
    blob: Box<[u8]>,
}

impl LegacyTemplate {
    /// A format 3 template as the store kept it; `None` if malformed.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let t = LegacyTemplate { blob: bytes.into() };
        let p = t.parts()?;
        are_client_splices(p.tail, p.splices).then_some(t)
    }

    fn parts(&self) -> Option<CompactParts<'_>> {
        compact_parts(&self.blob)
    }

    /// The shortest own bytes that fit: zero header fields and chaddr, every per-client
    /// option empty.
    pub(crate) fn minimal_own(&self) -> Vec<u8> {
        let Some(p) = self.parts() else { return Vec::new() };
        let hlen = p.head.get(HLEN_AT).map_or(0, |h| usize::from(*h).min(16));
        vec![0u8; OWN_HEADER_END - OWN_HEADER_AT + hlen + p.splices.len() / SPLICE_LEN]
    }

    /// The server's message this template and a client's format 3 own bytes make; `None`
    /// unless the own bytes fit the template exactly.
    pub(crate) fn expand(&self, own: &[u8]) -> Option<Vec<u8>> {
        let p = self.parts()?;
        let mut out = Vec::with_capacity(COOKIE_AT + p.tail.len() + own.len() + p.splices.len());
        out.extend_from_slice(p.head);
        let hlen = usize::from(*p.head.get(HLEN_AT)?).min(16);
        let (own_head, mut own) = own.split_at_checked(OWN_HEADER_END - OWN_HEADER_AT + hlen)?;
        let (fields, chaddr) = own_head.split_at_checked(OWN_HEADER_END - OWN_HEADER_AT)?;
        out.get_mut(OWN_HEADER_AT..OWN_HEADER_END)?.copy_from_slice(fields);
        out.get_mut(CHADDR_AT..CHADDR_AT + hlen)?.copy_from_slice(chaddr);
        out.extend_from_slice(p.sname.unwrap_or(&[0; FILE_AT - SNAME_AT]));
        out.extend_from_slice(p.file.unwrap_or(&[0; COOKIE_AT - FILE_AT]));
        let mut copied = 0usize;
        for s in p.splices.chunks_exact(SPLICE_LEN) {
            let (split, code) = (usize::from(u16::from_le_bytes([s[0], s[1]])), s[2]);
            out.extend_from_slice(p.tail.get(copied..split)?);
            copied = split;
            let (&len, rest) = own.split_first()?;
            let (payload, rest) = rest.split_at_checked(usize::from(len))?;
            own = rest;
            out.extend_from_slice(&[code, len]);
            out.extend_from_slice(payload);
        }
        out.extend_from_slice(p.tail.get(copied..)?);
        own.is_empty().then_some(out)
    }
}
