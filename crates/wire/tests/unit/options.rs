//! Option iteration with overload, RFC 3396 long options, patch_option and blank_option.

use core::net::Ipv4Addr;

use cdra_wire::options::Area;
use cdra_wire::{Message, OptionCode, WireError};

use crate::common::corpus::*;
use crate::common::*;

fn listing<T: AsRef<[u8]>>(m: &Message<T>) -> Vec<(u8, Area, Vec<u8>)> {
    m.options().map(|o| (o.code, o.area, o.data.to_vec())).collect()
}

fn long(m: &Message<Vec<u8>>, code: u8) -> Option<Vec<u8>> {
    let mut out = [0u8; 2048];
    m.long_option(code, &mut out).unwrap().map(<[u8]>::to_vec)
}

#[test]
fn overload_file_is_read_after_the_options_field() {
    let m = Message::new_checked(overload_file_ack()).unwrap();
    assert_eq!(m.overload(), 1);
    let l = listing(&m);
    assert_eq!(
        l.iter().map(|(c, a, _)| (*c, *a)).collect::<Vec<_>>(),
        vec![
            (53, Area::Options),
            (52, Area::Options),
            (54, Area::Options),
            (51, Area::Options),
            (15, Area::File),
            (6, Area::File)
        ]
    );
    assert_eq!(m.option_data(15), Some(&b"overloaded.example"[..]));
    let dns = m.option(OptionCode::DNS).unwrap();
    assert_eq!(dns.offset, 108 + 20);
    assert_eq!(dns.encoded_len(), 6);
}

#[test]
fn overload_sname_only() {
    let m = Message::new_checked(overload_sname_offer()).unwrap();
    assert_eq!(m.overload(), 2);
    assert_eq!(
        listing(&m).iter().map(|(c, a, _)| (*c, *a)).collect::<Vec<_>>(),
        vec![(53, Area::Options), (54, Area::Options), (52, Area::Options), (3, Area::Sname), (1, Area::Sname)]
    );
    assert_eq!(m.subnet_mask(), Some(Ipv4Addr::new(255, 255, 255, 0)));
    // file is not an option area here: its boot file name is not read as options.
    assert_eq!(&m.file()[..10], b"pxelinux.0");
    assert!(m.options().all(|o| o.area != Area::File));
}

#[test]
fn overload_both_iterates_options_then_file_then_sname() {
    let m = Message::new_checked(overload_both_split_ack()).unwrap();
    assert_eq!(m.overload(), 3);
    let l = listing(&m);
    assert_eq!(
        l.iter().map(|(c, a, _)| (*c, *a)).collect::<Vec<_>>(),
        vec![
            (53, Area::Options),
            (52, Area::Options),
            (43, Area::Options),
            (54, Area::Options),
            (43, Area::File),
            (66, Area::File),
            (43, Area::Sname),
            (12, Area::Sname),
        ]
    );
    // RFC 3396 + RFC 2131 4.1: instances concatenated options, file, sname.
    let m = Message::new_checked(overload_both_split_ack()).unwrap();
    assert_eq!(long(&m, 43).unwrap(), b"options-part-file-part--sname-part".to_vec());
    assert!(m.is_split(43));
    assert_eq!(m.option_data(12), Some(&b"host"[..]));
    assert_eq!(m.option_data(66), Some(&b"tftp.example"[..]));
}

#[test]
fn split_options_are_concatenated_in_order() {
    let m = Message::new_checked(split_121_ack()).unwrap();
    assert!(m.is_split(121));
    assert_eq!(m.options().filter(|o| o.code == 121).map(|o| o.data.len()).collect::<Vec<_>>(), vec![255, 45]);
    assert_eq!(long(&m, 121).unwrap(), split_121_data());
    // Non-adjacent instances (PAD and another option between them) still concatenate.
    let m = Message::new_checked(split_client_id_discover()).unwrap();
    assert_eq!(long(&m, 61).unwrap(), dhcpcd_client_id());
    assert_eq!(m.client_identifier(), Some(&dhcpcd_client_id()[..5]), "first instance only");
    // A single instance is its own long option; absent is None.
    assert_eq!(long(&m, 57).unwrap(), vec![5, 0xdc]);
    assert_eq!(long(&m, 58), None);
    assert!(!m.is_split(57));
    // Empty instances contribute nothing but make the option present.
    let m = Message::new_checked(Hdr::default().padded(&[80, 0, 80, 0, END], 300)).unwrap();
    assert_eq!(long(&m, 80), Some(vec![]));
    assert_eq!(Message::new_checked(user_class_split_discover()).map(|m| long(&m, 77).unwrap().len()), Ok(300));
}

#[test]
fn long_option_needs_room() {
    let m = Message::new_checked(split_121_ack()).unwrap();
    let mut small = [0u8; 299];
    assert_eq!(m.long_option(121, &mut small), Err(WireError::NoSpace));
    let mut tiny = [0u8; 0];
    assert_eq!(m.long_option(121, &mut tiny), Err(WireError::NoSpace));
    assert_eq!(m.long_option(99, &mut tiny), Ok(None));
    let mut exact = [0u8; 300];
    assert_eq!(m.long_option(121, &mut exact).unwrap().map(<[u8]>::len), Some(300));
    let mut one = [0u8; 1];
    assert_eq!(m.long_option(53, &mut one), Ok(Some(&[5u8][..])));
}

#[test]
fn patch_option_touches_only_same_length_instances() {
    let o = cat(&[
        &opt(53, &[1]),
        &opt(250, &[1, 1, 1, 1]),
        &opt(250, &[2, 2]),
        &opt(12, b"abcd"),
        &opt(250, &[3, 3, 3, 3]),
        &[END],
    ]);
    let orig = Hdr::default().padded(&o, 300);
    let mut m = Message::new_checked(orig.clone()).unwrap();
    assert_eq!(m.patch_option(250, &[9, 9, 9, 9]), 2);
    let got: Vec<_> = m.options().filter(|o| o.code == 250).map(|o| o.data.to_vec()).collect();
    assert_eq!(got, vec![vec![9, 9, 9, 9], vec![2, 2], vec![9, 9, 9, 9]]);
    // Exactly the 8 payload bytes changed.
    let diff: Vec<usize> = (0..orig.len()).filter(|&i| orig[i] != m.as_bytes()[i]).collect();
    assert_eq!(diff, vec![245, 246, 247, 248, 261, 262, 263, 264]);
    // Other lengths, other codes, absent codes.
    assert_eq!(m.patch_option(250, &[7, 7]), 1);
    assert_eq!(m.patch_option(250, &[7, 7, 7]), 0);
    assert_eq!(m.patch_option(99, &[7]), 0);
    assert_eq!(m.option_data(12), Some(&b"abcd"[..]));
    assert!(Message::new_checked(m.as_bytes()).is_ok());
}

#[test]
fn patch_option_helpers_and_overloaded_areas() {
    let mut m = Message::new_checked(kea_reply(5)).unwrap();
    let relay_side = Ipv4Addr::new(10, 1, 2, 1);
    assert_eq!(m.patch_option_addr(OptionCode::SERVER_ID, relay_side), 1);
    assert_eq!(m.server_identifier(), Some(relay_side));
    assert_eq!(m.patch_option_u32(OptionCode::LEASE_TIME, 600), 1);
    assert_eq!(m.patch_option_u32(OptionCode::RENEWAL_T1, 300), 1);
    assert_eq!(m.patch_option_u32(OptionCode::REBINDING_T2, 525), 1);
    assert_eq!((m.lease_time(), m.renewal_time(), m.rebinding_time()), (Some(600), Some(300), Some(525)));
    // The address option 3 is 4 bytes too, but only the code asked for is touched.
    assert_eq!(m.option_data(OptionCode::ROUTER), Some(&SERVER[..]));
    // 2-byte payload for an address option: nothing.
    assert_eq!(m.patch_option(OptionCode::SERVER_ID, &[1, 2]), 0);

    // Instances in file and sname are patched too.
    let mut m = Message::new_checked(overload_both_split_ack()).unwrap();
    // 43 has 12 bytes in options and 11 in file and in sname: two instances match.
    assert_eq!(m.patch_option(43, b"-FILE-PART-"), 2);
    assert_eq!(&m.as_bytes()[110..121], b"-FILE-PART-");
    assert_eq!(&m.as_bytes()[46..57], b"-FILE-PART-");
    assert_eq!(m.option_data(43), Some(&b"options-part"[..]));
    assert_eq!(m.patch_option(12, b"HOST"), 1);
    assert_eq!(m.option(12).unwrap().area, Area::Sname);
    assert_eq!(m.option_data(12), Some(&b"HOST"[..]));
}

#[test]
fn patch_option_patches_every_instance_not_just_eight() {
    // Regression: instances were collected into a fixed array of 8.
    let mut m = Message::new_checked(many_zero_length()).unwrap();
    assert_eq!(m.options().filter(|o| o.code == 250).count(), 20);
    assert_eq!(m.patch_option(250, &[0xee; 4]), 20);
    assert!(m.options().filter(|o| o.code == 250).all(|o| o.data == [0xee; 4]));
    assert_eq!(m.patch_option(80, &[]), 100);
    assert_eq!(m.blank_option(250), 20);
    assert_eq!(m.blank_option(80), 100);
    assert_eq!(m.options().map(|o| o.code).collect::<Vec<_>>(), vec![53]);
}

#[test]
fn patch_option_refuses_overload() {
    // Changing option 52 would re-interpret file/sname: 1 -> 3 here would make the
    // boot-file-name-free sname be parsed, 1 -> 0 would make the message invalid.
    let mut m = Message::new_checked(overload_file_ack()).unwrap();
    let before = m.as_bytes().to_vec();
    for v in 0..=255u8 {
        assert_eq!(m.patch_option(OptionCode::OVERLOAD, &[v]), 0);
    }
    assert_eq!(m.as_bytes(), &before[..]);
}

#[test]
fn blank_option_in_the_options_field() {
    let orig = relayed_discover();
    let mut m = Message::new_checked(orig.clone()).unwrap();
    let at = m.option(82).unwrap().offset;
    assert_eq!(m.blank_option(OptionCode::RELAY_AGENT_INFO), 1);
    assert_eq!(m.relay_agent_info(), None);
    assert_eq!(m.as_bytes().len(), orig.len());
    let n = 2 + agent_info().len();
    assert!(m.as_bytes()[at..at + n].iter().all(|&b| b == 0));
    assert_eq!(&m.as_bytes()[..at], &orig[..at]);
    assert_eq!(&m.as_bytes()[at + n..], &orig[at + n..]);
    assert_eq!(m.options().map(|o| o.code).collect::<Vec<_>>(), vec![53, 50, 12, 55]);
    assert_eq!(m.blank_option(OptionCode::RELAY_AGENT_INFO), 0);
}

#[test]
fn blank_option_in_the_file_area() {
    let orig = overload_file_ack();
    let mut m = Message::new_checked(orig.clone()).unwrap();
    let dns = m.option(OptionCode::DNS).unwrap();
    assert_eq!(dns.area, Area::File);
    let (at, n) = (dns.offset, dns.encoded_len());
    assert_eq!(m.blank_option(OptionCode::DNS), 1);
    assert!(m.as_bytes()[at..at + n].iter().all(|&b| b == 0));
    let diff: Vec<usize> = (0..orig.len()).filter(|&i| orig[i] != m.as_bytes()[i]).collect();
    assert!(diff.iter().all(|&i| (at..at + n).contains(&i)));
    assert_eq!(m.option(OptionCode::DNS), None);
    assert_eq!(m.option_data(15), Some(&b"overloaded.example"[..]), "the other file option stays");
    let re = Message::new_checked(m.as_bytes()).unwrap();
    assert_eq!(listing(&re), listing(&m));
    // Blanking an option spread over all three areas.
    let mut m = Message::new_checked(overload_both_split_ack()).unwrap();
    assert_eq!(m.blank_option(43), 3);
    assert_eq!(m.option(43), None);
    assert_eq!(m.options().map(|o| o.code).collect::<Vec<_>>(), vec![53, 52, 54, 66, 12]);
}

#[test]
fn blank_overload_stops_reading_file_and_sname() {
    let mut m = Message::new_checked(overload_both_split_ack()).unwrap();
    assert_eq!(m.blank_option(OptionCode::OVERLOAD), 1);
    assert_eq!(m.overload(), 0);
    let re = Message::new_checked(m.as_bytes()).unwrap();
    assert_eq!(re.overload(), 0);
    assert_eq!(listing(&m), listing(&re));
    assert_eq!(m.options().map(|o| o.code).collect::<Vec<_>>(), vec![53, 43, 54]);
}

#[test]
fn raw_option_fields() {
    let m = Message::new_checked(dhclient_discover()).unwrap();
    let o = m.option(OptionCode::HOSTNAME).unwrap();
    assert_eq!((o.code, o.data, o.area, o.offset, o.encoded_len()), (12, &b"debian"[..], Area::Options, 249, 8));
    assert_eq!(&m.as_bytes()[o.offset..o.offset + o.encoded_len()], &opt(12, b"debian")[..]);
    assert_eq!(m.option(OptionCode::PAD), None);
    assert_eq!(m.option(OptionCode::END), None);
}
