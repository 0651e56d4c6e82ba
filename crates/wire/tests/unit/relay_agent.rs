//! Option 82 sub-options (RFC 3046, 3527, 5107).

use core::net::Ipv4Addr;

use cdra_wire::builder::OptionsWriter;
use cdra_wire::relay_agent::{write_relay_agent_info, SubOptionCode};
use cdra_wire::{Message, RelayAgentInfo, SubOption, WireError};

use crate::common::corpus::*;
use crate::common::*;

#[test]
fn parses_circuit_and_remote_id() {
    let m = Message::new_checked(relayed_discover()).unwrap();
    let info = RelayAgentInfo::new_checked(m.relay_agent_info().unwrap()).unwrap();
    assert_eq!(info.circuit_id(), Some(&b"eth1:100"[..]));
    assert_eq!(info.remote_id(), Some(&[0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc][..]));
    assert_eq!((info.link_selection(), info.server_id_override()), (None, None));
    assert_eq!(info.sub_options().map(|s| s.code).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(info.get(9), None);
}

#[test]
fn parses_link_selection_and_server_id_override() {
    let m = Message::new_checked(relayed_request_link_selection()).unwrap();
    let info = RelayAgentInfo::new_checked(m.relay_agent_info().unwrap()).unwrap();
    assert_eq!(info.link_selection(), Some(Ipv4Addr::new(192, 168, 1, 0)));
    assert_eq!(info.server_id_override(), Some(Ipv4Addr::from(RELAY)));
    assert_eq!(info.get(SubOptionCode::LINK_SELECTION), Some(&[192, 168, 1, 0][..]));
    // Wrong-length address sub-options read as absent.
    let info = RelayAgentInfo::new_checked(&[5, 3, 1, 2, 3, 11, 0]).unwrap();
    assert_eq!((info.link_selection(), info.server_id_override()), (None, None));
}

#[test]
fn rejects_sub_options_that_overrun() {
    for bad in [&[1u8][..], &[1, 1], &[1, 2, 0], &[1, 8, b'e', b't', b'h'], &[1, 0, 2], &[1, 0, 2, 255, 0]] {
        assert_eq!(RelayAgentInfo::new_checked(bad).map(|_| ()), Err(WireError::BadRelayAgentInfo), "{bad:?}");
    }
    let m = Message::new_checked(relay_82_bad_suboptions()).unwrap();
    assert!(RelayAgentInfo::new_checked(m.relay_agent_info().unwrap()).is_err());
    // Empty is fine, and so are empty sub-options.
    assert_eq!(RelayAgentInfo::new_checked(&[]).unwrap().sub_options().count(), 0);
    assert_eq!(RelayAgentInfo::new_checked(&[1, 0, 2, 0]).unwrap().circuit_id(), Some(&[][..]));
}

#[test]
fn write_then_parse_round_trips() {
    let subs = [
        SubOption { code: SubOptionCode::CIRCUIT_ID, data: b"eth1:100" },
        SubOption { code: SubOptionCode::REMOTE_ID, data: &[1, 2, 3, 4, 5, 6] },
        SubOption { code: SubOptionCode::LINK_SELECTION, data: &[192, 168, 1, 0] },
        SubOption { code: SubOptionCode::SERVER_ID_OVERRIDE, data: &RELAY },
        SubOption { code: 9, data: &[] },
    ];
    let mut buf = [0u8; 300];
    let mut w = OptionsWriter::new(&mut buf, 0);
    write_relay_agent_info(&mut w, &subs).unwrap();
    let n = w.position();
    assert_eq!(n, 2 + 10 + 8 + 6 + 6 + 2);
    assert_eq!(&buf[..2], &[82, (n - 2) as u8]);
    let info = RelayAgentInfo::new_checked(&buf[2..n]).unwrap();
    assert_eq!(info.sub_options().collect::<Vec<_>>(), subs.to_vec());
    // And the hand-built option of the corpus is what the writer produces.
    let mut buf = [0u8; 64];
    let mut w = OptionsWriter::new(&mut buf, 0);
    let agent = agent_info();
    let parsed = RelayAgentInfo::new_checked(&agent[..]).unwrap().sub_options().collect::<Vec<_>>();
    write_relay_agent_info(&mut w, &parsed).unwrap();
    let n = w.position();
    assert_eq!(&buf[..n], &opt(82, &agent_info())[..]);
}

#[test]
fn more_than_255_bytes_is_rejected() {
    let a = [0x61u8; 127];
    let mut buf = [0u8; 1024];
    // 2 + 127 + 2 + 126 = 257 > 255.
    let mut w = OptionsWriter::new(&mut buf, 0);
    let r = write_relay_agent_info(&mut w, &[SubOption { code: 1, data: &a }, SubOption { code: 2, data: &a[..126] }]);
    assert_eq!(r, Err(WireError::NoSpace));
    assert_eq!(w.position(), 0, "nothing written");
    // One sub-option longer than 255 bytes.
    let big = [0u8; 256];
    let mut w = OptionsWriter::new(&mut buf, 0);
    assert_eq!(write_relay_agent_info(&mut w, &[SubOption { code: 1, data: &big }]), Err(WireError::NoSpace));
    // Exactly 255 bytes of payload fits.
    let mut w = OptionsWriter::new(&mut buf, 0);
    write_relay_agent_info(&mut w, &[SubOption { code: 1, data: &a }, SubOption { code: 2, data: &a[..124] }]).unwrap();
    assert_eq!(w.position(), 257);
    assert_eq!(buf[1], 255);
    // The writer's buffer is too small.
    let mut small = [0u8; 10];
    let mut w = OptionsWriter::new(&mut small, 0);
    assert_eq!(write_relay_agent_info(&mut w, &[SubOption { code: 1, data: b"eth1:100" }]), Err(WireError::NoSpace));
}
