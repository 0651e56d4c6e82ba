//! Length-changing edits: copy a checked message into a caller's buffer, removing some
//! options and appending others before END. Everything not removed is copied byte for
//! byte and in its original order; nothing is allocated.

use crate::builder::{OptionsWriter, MIN_BOOTP_LEN};
use crate::error::WireError;
use crate::message::{Message, HEADER_LEN};
use crate::options::{Area, OptionCode};

/// Copy `src` into `dst` without the options whose codes are in `remove`, then call
/// `append` to add options after the copied ones (RFC 3046 2.1 wants option 82 last, so
/// it is appended here), write END and pad to 300 bytes. Removed options that sit in an
/// overloaded `file`/`sname` field are overwritten with PAD there. Returns the new length.
///
/// Option 52 is copied like any other option; removing it leaves `file` and `sname` in
/// place, where they then read as plain header fields rather than options.
///
/// A plain BOOTP message without the magic cookie ([`Message::has_magic_cookie`]) has no
/// options field to edit and its vendor area is not ours to overwrite (RFC 951 section 3:
/// an "optional vendor-specific area"): `Err(WireError::BadMagicCookie)`, nothing
/// written. A relay forwards such a message as it is, without option 82 (RFC 3046 adds
/// option 82 to the DHCP options field, which the message does not have).
pub fn rewrite<T, F>(src: &Message<T>, dst: &mut [u8], remove: &[u8], append: F) -> Result<usize, WireError>
where
    T: AsRef<[u8]>,
    F: FnOnce(&mut OptionsWriter<'_>) -> Result<(), WireError>,
{
    if !src.has_magic_cookie() {
        return Err(WireError::BadMagicCookie);
    }
    let bytes = src.as_bytes();
    let header = bytes.get(..HEADER_LEN).ok_or(WireError::Truncated)?;
    dst.get_mut(..HEADER_LEN).ok_or(WireError::NoSpace)?.copy_from_slice(header);
    for o in src.options().filter(|o| o.area != Area::Options && remove.contains(&o.code)) {
        if let Some(span) = dst.get_mut(o.offset..o.offset + o.encoded_len()) {
            span.fill(OptionCode::PAD);
        }
    }
    let mut w = OptionsWriter::new(dst, HEADER_LEN);
    for o in src.options().filter(|o| o.area == Area::Options && !remove.contains(&o.code)) {
        let tlv = bytes.get(o.offset..o.offset + o.encoded_len()).ok_or(WireError::Truncated)?;
        w.raw(tlv)?;
    }
    append(&mut w)?;
    w.finish(MIN_BOOTP_LEN)
}
