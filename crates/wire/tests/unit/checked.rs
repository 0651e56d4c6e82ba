//! `Message::new_checked`: every rejection reason, and what it must accept.

use cdra_wire::{Message, WireError};

use crate::common::corpus::*;
use crate::common::*;

fn check(bytes: &[u8]) -> Result<(), WireError> {
    Message::new_checked(bytes).map(|_| ())
}

#[test]
fn truncated_below_240() {
    let full = dhclient_discover();
    for len in [0, 1, 4, 100, 235, 236, 239] {
        assert_eq!(check(&full[..len]), Err(WireError::Truncated), "len {len}");
    }
    // Truncation is reported before anything else is looked at.
    let mut bad = Hdr { op: 9, hlen: 200, cookie: [0; 4], ..Hdr::default() }.bytes();
    bad.truncate(239);
    assert_eq!(check(&bad), Err(WireError::Truncated));
}

#[test]
fn exactly_240_bytes_is_a_message_without_options() {
    let m = Message::new_checked(Hdr::request(DHCLIENT_MAC, 1).bytes()).unwrap();
    assert_eq!(m.options().count(), 0);
    assert_eq!(m.options_end(), None);
    assert_eq!(m.message_type(), None);
}

#[test]
fn bad_magic_cookie_when_too_short_for_plain_bootp() {
    // 240..299 bytes without the cookie: not DHCP, and not the 300 bytes RFC 1542 2.1
    // requires of a BOOTP message ("the minimal BOOTP header of 300 octets").
    for i in 0..4 {
        let mut cookie = COOKIE;
        cookie[i] ^= 0x01;
        let m = Hdr { cookie, ..Hdr::default() }.padded(&[53, 1, 1, END], 299);
        assert_eq!(check(&m), Err(WireError::BadMagicCookie), "byte {i}");
    }
    for len in [240, 241, 260, 299] {
        let m = Hdr { cookie: [0; 4], ..Hdr::default() }.padded(&[], len);
        assert_eq!(check(&m), Err(WireError::BadMagicCookie), "len {len}");
    }
    // The cookie (and that length) is checked before op and hlen.
    let m = Hdr { cookie: [0; 4], op: 7, hlen: 99, ..Hdr::default() }.padded(&[], 299);
    assert_eq!(check(&m), Err(WireError::BadMagicCookie));
}

#[test]
fn plain_bootp_without_the_cookie_is_a_message_without_options() {
    // RFC 951: a BOOTREQUEST whose 64-byte vend field is all zero. RFC 1542 relays
    // forward it; it has no options.
    for cookie in [[0u8; 4], [99, 130, 83, 98], *b"CMU\0", [0xff; 4]] {
        for len in [300, 301, 576] {
            let bytes =
                Hdr { cookie, ..Hdr::request(DHCLIENT_MAC, 7) }.padded(&[53, 1, 1, 82, 3, 1, 1, b'x', END], len);
            let m = Message::new_checked(&bytes[..]).unwrap_or_else(|e| panic!("{cookie:?} {len}: {e}"));
            assert!(!m.has_magic_cookie());
            assert_eq!(m.options().count(), 0);
            assert_eq!(m.message_type(), None);
            assert_eq!(m.relay_agent_info(), None);
            assert!((0..=255).all(|c| m.option(c).is_none()));
            assert_eq!((m.overload(), m.options_end()), (0, None));
            assert_eq!((m.xid(), m.chaddr()), (7, &DHCLIENT_MAC[..]));
        }
    }
    // With the cookie, the same bytes are a DHCP message.
    let m = Message::new_checked(Hdr::request(DHCLIENT_MAC, 7).padded(&[53, 1, 1, END], 300)).unwrap();
    assert!(m.has_magic_cookie());
    assert_eq!(m.message_type(), Some(cdra_wire::MessageType::Discover));
    // op and hlen are still checked.
    assert_eq!(check(&Hdr { cookie: [0; 4], op: 3, ..Hdr::default() }.padded(&[], 300)), Err(WireError::BadOp));
    assert_eq!(
        check(&Hdr { cookie: [0; 4], hlen: 17, ..Hdr::default() }.padded(&[], 300)),
        Err(WireError::BadHardwareLength)
    );
}

#[test]
fn option_edits_leave_a_plain_bootp_vendor_area_alone() {
    // Bytes after offset 240 that would be options (52 and 82) if there were a cookie.
    let vend = [52, 1, 9, 82, 3, 1, 1, b'x', 54, 4, 10, 0, 0, 1, END];
    let bytes = Hdr { cookie: *b"CMU\0", ..Hdr::request(DHCLIENT_MAC, 9) }.padded(&vend, 300);
    let mut m = Message::new_checked(bytes.clone()).unwrap();
    assert_eq!(m.patch_option(54, &[192, 0, 2, 1]), 0);
    assert_eq!(m.patch_options(&[(82, &[1, 1, b'y'])]), 0);
    assert_eq!(m.blank_option(82), 0);
    assert_eq!(m.blank_option(52), 0);
    assert_eq!(m.as_bytes(), &bytes[..]);
    // Header setters still work.
    m.set_giaddr([10, 77, 1, 1].into());
    m.set_hops(1);
    let m = Message::new_checked(m.into_inner()).unwrap();
    assert_eq!((m.giaddr(), m.hops()), ([10, 77, 1, 1].into(), 1));
    assert!(!m.has_magic_cookie());
}

#[test]
fn op_must_be_1_or_2() {
    for op in [0u8, 3, 4, 0x80, 255] {
        let m = Hdr { op, ..Hdr::default() }.padded(&[53, 1, 1, END], 300);
        assert_eq!(check(&m), Err(WireError::BadOp), "op {op}");
    }
    for op in [1u8, 2] {
        assert_eq!(check(&Hdr { op, ..Hdr::default() }.padded(&[53, 1, 1, END], 300)), Ok(()));
    }
    // op is checked before hlen.
    assert_eq!(check(&Hdr { op: 0, hlen: 17, ..Hdr::default() }.padded(&[], 300)), Err(WireError::BadOp));
}

#[test]
fn hlen_above_16_is_rejected() {
    for hlen in [17u8, 18, 100, 255] {
        let m = Hdr { hlen, ..Hdr::default() }.padded(&[53, 1, 1, END], 300);
        assert_eq!(check(&m), Err(WireError::BadHardwareLength), "hlen {hlen}");
    }
    for hlen in [0u8, 1, 6, 16] {
        let m = Message::new_checked(Hdr { hlen, ..Hdr::default() }.padded(&[END], 300)).unwrap();
        assert_eq!(m.chaddr().len(), hlen as usize);
    }
}

#[test]
fn option_overrun_in_the_options_field() {
    let h = Hdr::default();
    // Length runs past the end of the buffer, by one byte and by many.
    assert_eq!(check(&h.with(&[53, 1, 1, 12, 3, b'a', b'b'])), Err(WireError::OptionOverrun));
    assert_eq!(check(&h.with(&[53, 1, 1, 12, 200, b'a'])), Err(WireError::OptionOverrun));
    assert_eq!(check(&h.with(&[53, 2, 1])), Err(WireError::OptionOverrun));
    // A code in the last byte, with no length byte.
    assert_eq!(check(&h.with(&[53, 1, 1, 12])), Err(WireError::OptionOverrun));
    assert_eq!(check(&h.with(&[61])), Err(WireError::OptionOverrun));
    // Exactly filling the buffer is fine (no END).
    assert_eq!(check(&h.with(&[53, 1, 1, 12, 2, b'a', b'b'])), Ok(()));
    // An overrun after END is padding, not an option.
    assert_eq!(check(&h.with(&[53, 1, 1, END, 12, 200])), Ok(()));
    assert_eq!(check(&bad_relayed_overrun()), Err(WireError::OptionOverrun));
}

#[test]
fn option_overrun_in_file_when_overloaded() {
    assert_eq!(check(&bad_overrun_file()), Err(WireError::OptionOverrun));
    // Code in the last byte of file: its "length" would be the first cookie byte.
    let mut file = [0u8; 128];
    file[127] = 15;
    let m = Hdr::reply(DHCLIENT_MAC, 1).file_bytes(&file).padded(&[53, 1, 5, 52, 1, 1, END], 300);
    assert_eq!(check(&m), Err(WireError::OptionOverrun));
    // Overload 3 checks file too.
    let m = Hdr::reply(DHCLIENT_MAC, 1).file_bytes(&file).padded(&[53, 1, 5, 52, 1, 3, END], 300);
    assert_eq!(check(&m), Err(WireError::OptionOverrun));
    // Without overload of file, the same bytes are just a file name.
    let m = Hdr::reply(DHCLIENT_MAC, 1).file_bytes(&file).padded(&[53, 1, 5, 52, 1, 2, END], 300);
    assert_eq!(check(&m), Ok(()));
    let m = Hdr::reply(DHCLIENT_MAC, 1).file_bytes(&[6, 200, 1]).padded(&[53, 1, 5, END], 300);
    assert_eq!(check(&m), Ok(()));
}

#[test]
fn option_overrun_in_sname_when_overloaded() {
    assert_eq!(check(&bad_overrun_sname()), Err(WireError::OptionOverrun));
    let sname = cat(&[&opt(12, b"host"), &[3, 100, 1, 2, 3, 4]]);
    let m = Hdr::reply(DHCLIENT_MAC, 1).sname_bytes(&sname).padded(&[53, 1, 5, 52, 1, 2, END], 300);
    assert_eq!(check(&m), Err(WireError::OptionOverrun));
    let m = Hdr::reply(DHCLIENT_MAC, 1).sname_bytes(&sname).padded(&[53, 1, 5, 52, 1, 3, END], 300);
    assert_eq!(check(&m), Err(WireError::OptionOverrun));
    // Overload 1 leaves sname alone.
    let m = Hdr::reply(DHCLIENT_MAC, 1).sname_bytes(&sname).padded(&[53, 1, 5, 52, 1, 1, END], 300);
    assert_eq!(check(&m), Ok(()));
    // A sname option must not spill into file even if file would make it fit.
    let mut sname = vec![0u8; 64];
    sname[60..64].copy_from_slice(&[12, 4, b'a', b'b']);
    let m = Hdr::reply(DHCLIENT_MAC, 1).sname_bytes(&sname).file_bytes(b"cd").padded(&[53, 1, 5, 52, 1, 2, END], 300);
    assert_eq!(check(&m), Err(WireError::OptionOverrun));
}

#[test]
fn bad_overload_length_or_value() {
    let h = Hdr::default();
    for o in [&[52u8, 0][..], &[52, 2, 1, 1], &[52, 1, 0], &[52, 1, 4], &[52, 1, 255], &[52, 4, 0, 0, 0, 3]] {
        let m = h.padded(&cat(&[&[53, 1, 1], o, &[END]]), 300);
        assert_eq!(check(&m), Err(WireError::BadOverload), "{o:?}");
    }
    for v in 1..=3u8 {
        let m = Message::new_checked(h.padded(&[53, 1, 1, 52, 1, v, END], 300)).unwrap();
        assert_eq!(m.overload(), v);
    }
    // Option 52 after END is padding; option 52 inside an overloaded area is an ordinary
    // option (RFC 2132 9.3 allows it only in the options field), whatever its value.
    let m = Message::new_checked(h.padded(&[53, 1, 1, END, 52, 1, 9], 300)).unwrap();
    assert_eq!(m.overload(), 0);
    let m = Message::new_checked(overload_52_in_file()).unwrap();
    assert_eq!(m.overload(), 1);
    let in_file: Vec<_> = m.options().filter(|o| o.code == 52).map(|o| o.data).collect();
    assert_eq!(in_file, vec![&[1u8][..], &[9, 9][..]]);
}

#[test]
fn accepts_no_end_and_trailing_padding() {
    let m = Message::new_checked(no_end()).unwrap();
    assert_eq!(m.options_end(), None);
    assert_eq!(m.options().map(|o| o.code).collect::<Vec<_>>(), vec![53, 61]);

    let m = Message::new_checked(bootp_reply_no_end()).unwrap();
    assert_eq!(m.options_end(), None);
    assert_eq!(m.options().map(|o| o.code).collect::<Vec<_>>(), vec![1, 3, 6]);

    // Zero padding to 300 and to 548 (busybox), and garbage after END.
    let m = Message::new_checked(dhclient_discover()).unwrap();
    assert_eq!(m.as_bytes().len(), 300);
    assert_eq!(m.options_end(), Some(240 + 3 + 6 + 8 + 15));
    let m = Message::new_checked(udhcpc_discover()).unwrap();
    assert_eq!(m.as_bytes().len(), 548);
    let m = Message::new_checked(trailing_garbage()).unwrap();
    assert_eq!(m.options().map(|o| o.code).collect::<Vec<_>>(), vec![53]);
    assert_eq!(m.options_end(), Some(243));

    // Nothing but PAD.
    let m = Message::new_checked(Hdr::default().padded(&[], 576)).unwrap();
    assert_eq!((m.options().count(), m.options_end()), (0, None));
}

#[test]
fn works_over_any_buffer_type() {
    let bytes = kea_reply(5);
    let a = Message::new_checked(&bytes[..]).unwrap();
    let b = Message::new_checked(bytes.clone()).unwrap();
    let mut arr = [0u8; 312];
    arr.copy_from_slice(&bytes);
    let c = Message::new_checked(arr).unwrap();
    let mut v = bytes.clone();
    let d = Message::new_checked(&mut v[..]).unwrap();
    assert_eq!(a.xid(), b.xid());
    assert_eq!(c.options().count(), d.options().count());
    assert_eq!(b.into_inner(), bytes);
}

#[test]
fn error_labels_are_distinct_and_displayed() {
    let all = WireError::ALL;
    let labels: std::collections::HashSet<_> = all.iter().map(|e| e.label()).collect();
    assert_eq!(labels.len(), all.len());
    for e in all {
        assert_eq!(e.to_string(), e.label());
        assert!(e.label().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        let _: &dyn std::error::Error = &e;
    }
}
