//! `rewrite::rewrite`: removing and appending options, byte-for-byte preservation.

use core::net::Ipv4Addr;

use cdra_wire::options::Area;
use cdra_wire::relay_agent::{write_relay_agent_info, SubOptionCode};
use cdra_wire::rewrite::rewrite;
use cdra_wire::{Message, OptionCode, SubOption, WireError};

use crate::common::corpus::*;
use crate::common::*;

const NEW_CIRCUIT: &[u8] = b"ge-0/0/7.100";
const NEW_REMOTE: &[u8] = &[0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

fn new_agent() -> Vec<u8> {
    cat(&[&[1, NEW_CIRCUIT.len() as u8], NEW_CIRCUIT, &[2, 6], NEW_REMOTE])
}

/// The relay's edit: remove any 82, append ours.
fn relay(src: &[u8], dst: &mut [u8]) -> Result<usize, WireError> {
    let m = Message::new_checked(src).unwrap();
    rewrite(&m, dst, &[OptionCode::RELAY_AGENT_INFO], |w| {
        write_relay_agent_info(
            w,
            &[
                SubOption { code: SubOptionCode::CIRCUIT_ID, data: NEW_CIRCUIT },
                SubOption { code: SubOptionCode::REMOTE_ID, data: NEW_REMOTE },
            ],
        )
    })
}

/// Raw TLV bytes of the options field up to END, without PAD.
fn tlvs(bytes: &[u8]) -> Vec<Vec<u8>> {
    let m = Message::new_checked(bytes).unwrap();
    m.options()
        .filter(|o| o.area == Area::Options)
        .map(|o| bytes[o.offset..o.offset + o.encoded_len()].to_vec())
        .collect()
}

#[test]
fn appends_82_last_and_copies_everything_else_verbatim() {
    for src in [dhclient_discover(), udhcpc_discover(), dhcpcd_discover(), dhcpcd_renew(), inform()] {
        let mut dst = [0u8; 1500];
        let len = relay(&src, &mut dst).unwrap();
        let out = &dst[..len];
        let m = Message::new_checked(out).unwrap();
        let mut want = tlvs(&src);
        want.push(opt(82, &new_agent()));
        assert_eq!(tlvs(out), want);
        // The header (through the cookie) is untouched.
        assert_eq!(&out[..240], &src[..240]);
        // Options are packed: the copied TLVs, then 82, then END, then zeros to 300.
        let packed: Vec<u8> = want.concat();
        assert_eq!(&out[240..240 + packed.len()], &packed[..]);
        assert_eq!(out[240 + packed.len()], END);
        assert_eq!(m.options_end(), Some(240 + packed.len()));
        assert!(out[241 + packed.len()..].iter().all(|&b| b == 0));
        assert_eq!(len, (241 + packed.len()).max(300));
        assert_eq!(m.options().last().unwrap().code, 82);
        assert_eq!(m.relay_agent_info(), Some(&new_agent()[..]));
    }
}

#[test]
fn replaces_an_existing_82() {
    let src = relayed_discover();
    let mut dst = [0u8; 600];
    let len = relay(&src, &mut dst).unwrap();
    let m = Message::new_checked(&dst[..len]).unwrap();
    assert_eq!(m.options().filter(|o| o.code == 82).count(), 1);
    assert_eq!(m.relay_agent_info(), Some(&new_agent()[..]));
    assert_eq!(m.options().map(|o| o.code).collect::<Vec<_>>(), vec![53, 50, 12, 55, 82]);
    // Two 82 instances from two relays: both go.
    let len = relay(&relay_82_twice(), &mut dst).unwrap();
    let m = Message::new_checked(&dst[..len]).unwrap();
    assert_eq!(m.options().filter(|o| o.code == 82).count(), 1);
}

#[test]
fn removing_82_from_a_reply_keeps_the_rest() {
    let src = relayed_ack();
    let m = Message::new_checked(&src[..]).unwrap();
    let mut dst = [0u8; 600];
    let len = rewrite(&m, &mut dst, &[82], |_| Ok(())).unwrap();
    let mut want = tlvs(&src);
    want.pop();
    assert_eq!(tlvs(&dst[..len]), want);
    assert_eq!(len, 300);
    assert_eq!(&dst[..240], &src[..240]);
}

#[test]
fn preserves_split_options_unknown_options_and_order() {
    let src = split_121_ack();
    let m = Message::new_checked(&src[..]).unwrap();
    let mut dst = vec![0u8; 1024];
    let len = rewrite(&m, &mut dst, &[], |_| Ok(())).unwrap();
    assert_eq!(tlvs(&dst[..len]), tlvs(&src));
    let out = Message::new_checked(&dst[..len]).unwrap();
    let mut buf = [0u8; 300];
    assert_eq!(out.long_option(121, &mut buf).unwrap(), Some(&split_121_data()[..]));

    let src = many_zero_length();
    let m = Message::new_checked(&src[..]).unwrap();
    let len = rewrite(&m, &mut dst, &[80], |w| w.option(250, &[1])).unwrap();
    let out = Message::new_checked(&dst[..len]).unwrap();
    assert_eq!(out.options().filter(|o| o.code == 80).count(), 0);
    let tail: Vec<_> = out.options().filter(|o| o.code == 250).map(|o| o.data.len()).collect();
    assert_eq!(tail.len(), 21);
    assert_eq!(*tail.last().unwrap(), 1);
}

#[test]
fn pads_short_output_to_300_and_drops_long_padding() {
    // dnsmasq does not pad: its short NAK is padded to 300 in the copy.
    let src = dnsmasq_nak();
    assert!(src.len() < 300);
    let m = Message::new_checked(&src[..]).unwrap();
    let mut dst = [0xaau8; 400];
    let len = rewrite(&m, &mut dst, &[], |_| Ok(())).unwrap();
    assert_eq!(len, 300);
    assert_eq!(&dst[..src.len()], &src[..]);
    assert!(dst[src.len()..300].iter().all(|&b| b == 0));
    assert!(dst[300..].iter().all(|&b| b == 0xaa), "nothing written past the returned length");
    // busybox's 548 bytes of mostly padding shrink to 300.
    let m = Message::new_checked(udhcpc_discover()).unwrap();
    assert_eq!(rewrite(&m, &mut dst, &[], |_| Ok(())), Ok(300));
    // A long message keeps its length (minus trailing padding).
    let src = large_message();
    let m = Message::new_checked(&src[..]).unwrap();
    let end = m.options_end().unwrap();
    let mut dst = vec![0u8; 2000];
    assert_eq!(rewrite(&m, &mut dst, &[], |_| Ok(())), Ok(end + 1));
}

#[test]
fn no_space_on_small_buffers() {
    let src = dhcpcd_discover();
    let m = Message::new_checked(&src[..]).unwrap();
    let mut big = vec![0u8; 1500];
    let need = relay(&src, &mut big).unwrap();
    assert!(need > 300);
    for size in [0, 1, 100, 239, 240, 241, 299, 300, need - 1] {
        let mut dst = vec![0u8; size];
        assert_eq!(relay(&src, &mut dst), Err(WireError::NoSpace), "size {size}");
    }
    let mut dst = vec![0u8; need];
    assert_eq!(relay(&src, &mut dst), Ok(need));
    assert_eq!(&dst[..], &big[..need]);
    // A short message fits its options but not the padding to 300.
    let src = Hdr::default().with(&[53, 1, 1, END]);
    let m2 = Message::new_checked(&src[..]).unwrap();
    let mut dst = [0u8; 299];
    assert_eq!(rewrite(&m2, &mut dst, &[], |_| Ok(())), Err(WireError::NoSpace));
    let mut dst = [0u8; 300];
    assert_eq!(rewrite(&m2, &mut dst, &[], |_| Ok(())), Ok(300));
    // Errors from the append closure propagate.
    let mut dst = [0u8; 1500];
    assert_eq!(rewrite(&m, &mut dst, &[], |_| Err(WireError::BadRelayAgentInfo)), Err(WireError::BadRelayAgentInfo));
}

#[test]
fn overloaded_areas_are_kept_and_removed_options_there_become_pad() {
    let src = overload_both_split_ack();
    let m = Message::new_checked(&src[..]).unwrap();
    let mut dst = [0u8; 600];
    let len = rewrite(&m, &mut dst, &[43], |w| w.option(82, &[1, 1, b'x'])).unwrap();
    let out = Message::new_checked(&dst[..len]).unwrap();
    assert_eq!(out.overload(), 3);
    assert_eq!(
        out.options().map(|o| (o.code, o.area)).collect::<Vec<_>>(),
        vec![
            (53, Area::Options),
            (52, Area::Options),
            (54, Area::Options),
            (82, Area::Options),
            (66, Area::File),
            (12, Area::Sname)
        ]
    );
    // Only the 43 instances in file/sname changed in the fixed fields (13 bytes each).
    let file_43 = 108..121;
    let sname_43 = 44..57;
    for i in 0..240 {
        if file_43.contains(&i) || sname_43.contains(&i) {
            assert_eq!(dst[i], 0, "byte {i}");
        } else {
            assert_eq!(dst[i], src[i], "byte {i}");
        }
    }
}

#[test]
fn relay_flow_then_in_place_header_edits() {
    let src = dhclient_discover();
    let mut dst = [0u8; 600];
    let len = relay(&src, &mut dst).unwrap();
    let mut m = Message::new_checked(&mut dst[..len]).unwrap();
    m.set_giaddr(Ipv4Addr::from(RELAY));
    m.set_hops(m.hops() + 1);
    assert_eq!((m.giaddr(), m.hops()), (Ipv4Addr::from(RELAY), 1));
    assert_eq!(m.options().last().map(|o| o.code), Some(82));
}

#[test]
fn a_plain_bootp_message_without_the_cookie_is_not_rewritten() {
    // No options field to add option 82 to, and the vendor area is not ours: refused,
    // nothing written (the relay forwards such a message unchanged, without option 82).
    for src in [bootp_no_cookie_request(), bootp_no_cookie_vendor_area()] {
        let mut dst = vec![0xeeu8; 1500];
        assert_eq!(relay(&src, &mut dst), Err(WireError::BadMagicCookie));
        let m = Message::new_checked(&src[..]).unwrap();
        assert_eq!(rewrite(&m, &mut dst, &[], |_| Ok(())), Err(WireError::BadMagicCookie));
        assert!(dst.iter().all(|&b| b == 0xee));
    }
}
