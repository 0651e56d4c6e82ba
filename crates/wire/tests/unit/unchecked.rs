//! `Message::new_unchecked` (views of our own output) and `set_hardware`.

use super::common::corpus::{seeds, Expect};
use super::common::*;
use cdra_wire::Message;

#[test]
fn unchecked_view_of_a_valid_message_reads_what_the_checked_one_does() {
    for (name, expect, bytes) in seeds() {
        if expect != Expect::Valid {
            continue;
        }
        let checked = Message::new_checked(&bytes[..]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let unchecked = Message::new_unchecked(&bytes[..]);
        assert_eq!(checked.options_end(), unchecked.options_end(), "{name}");
        assert_eq!(checked.overload(), unchecked.overload(), "{name}");
        assert_eq!(checked.has_magic_cookie(), unchecked.has_magic_cookie(), "{name}");
        let a: Vec<_> = checked.options().map(|o| (o.code, o.data.to_vec())).collect();
        let b: Vec<_> = unchecked.options().map(|o| (o.code, o.data.to_vec())).collect();
        assert_eq!(a, b, "{name}");
        for code in [53u8, 54, 50, 61, 55, 82, 51, 1] {
            assert_eq!(checked.option_data(code), unchecked.option_data(code), "{name} option {code}");
        }
    }
}

#[test]
fn unchecked_view_of_garbage_never_panics() {
    for (_, _, bytes) in seeds() {
        for cut in [0, 1, 100, 236, 239, 240, 241, bytes.len()] {
            let b = bytes.get(..cut.min(bytes.len())).unwrap_or(&[]);
            let m = Message::new_unchecked(b);
            let _ = (m.xid(), m.chaddr(), m.message_type(), m.options().count(), m.lease_time());
        }
    }
}

#[test]
fn set_hardware_writes_htype_hlen_and_zero_pads_chaddr() {
    let mut bytes = dhclient_discover();
    let mut m = Message::new_checked(&mut bytes[..]).expect("valid");
    m.set_hardware(6, &[1, 2, 3]);
    assert_eq!((m.htype(), m.hlen(), m.chaddr()), (6, 3, &[1u8, 2, 3][..]));
    assert_eq!(bytes.get(28..44), Some(&[1u8, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]));
    let mut m = Message::new_checked(&mut bytes[..]).expect("valid");
    m.set_hardware(1, &[9u8; 20]);
    assert_eq!((m.hlen(), m.chaddr().len()), (16, 16));
}

#[test]
fn set_giaddr_and_hops_changes_those_two_fields_only() {
    for (name, expect, bytes) in seeds() {
        if expect != Expect::Valid {
            continue;
        }
        let mut out = bytes.clone();
        let giaddr = core::net::Ipv4Addr::new(10, 64, 0, 1);
        cdra_wire::message::set_giaddr_and_hops(&mut out, giaddr, 7);
        // The same as the view's setters would write.
        let mut expected = bytes.clone();
        let mut m = Message::new_unchecked(&mut expected[..]);
        m.set_giaddr(giaddr);
        m.set_hops(7);
        assert_eq!(out, expected, "{name}");
        let m = Message::new_checked(&out[..]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!((m.giaddr(), m.hops()), (giaddr, 7), "{name}");
    }
    // Too short to hold giaddr (bytes 24..28): hops (byte 3) is written, giaddr is not,
    // as the view's setters do; no panic.
    let mut short = vec![0u8; 20];
    cdra_wire::message::set_giaddr_and_hops(&mut short, core::net::Ipv4Addr::new(1, 2, 3, 4), 1);
    let mut expected = vec![0u8; 20];
    expected[3] = 1;
    assert_eq!(short, expected);
}
