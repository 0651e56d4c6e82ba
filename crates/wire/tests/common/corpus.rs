//! The fuzz seed corpus (crates/wire/fuzz/corpus/message/), generated deterministically.
//! `cargo test -p cdra-wire --test corpus_gen -- --ignored` rewrites the files; the replay
//! test checks that the committed files still match.

use super::*;

/// Where the corpus lives, relative to the crate.
pub fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/message")
}

/// Whether a seed is expected to pass `Message::new_checked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Valid,
    Invalid,
}

/// Every seed: file name, expectation, bytes.
pub fn seeds() -> Vec<(&'static str, Expect, Vec<u8>)> {
    use Expect::{Invalid, Valid};
    let mut v: Vec<(&'static str, Expect, Vec<u8>)> = vec![
        // Clients.
        ("client-dhclient-discover", Valid, dhclient_discover()),
        ("client-dhclient-request", Valid, dhclient_request()),
        ("client-udhcpc-discover", Valid, udhcpc_discover()),
        ("client-udhcpc-request", Valid, udhcpc_request()),
        ("client-dhcpcd-discover", Valid, dhcpcd_discover()),
        ("client-dhcpcd-renew", Valid, dhcpcd_renew()),
        ("client-decline", Valid, decline()),
        ("client-release", Valid, release()),
        ("client-inform", Valid, inform()),
        ("client-split-client-id", Valid, split_client_id_discover()),
        ("client-user-class-split", Valid, user_class_split_discover()),
        ("client-ipoib-hlen0", Valid, ipoib_discover()),
        ("client-hlen16", Valid, hlen16_discover()),
        // Servers.
        ("server-kea-offer", Valid, kea_reply(2)),
        ("server-kea-ack", Valid, kea_reply(5)),
        ("server-iscdhcpd-ack", Valid, iscdhcpd_ack()),
        ("server-iscdhcpd-nak", Valid, iscdhcpd_nak()),
        ("server-dnsmasq-offer", Valid, dnsmasq_reply(2)),
        ("server-dnsmasq-ack", Valid, dnsmasq_reply(5)),
        ("server-dnsmasq-nak", Valid, dnsmasq_nak()),
        ("server-split-121", Valid, split_121_ack()),
        ("server-leasequery-unknown-type", Valid, leasequery()),
        // Relayed.
        ("relay-discover-82", Valid, relayed_discover()),
        ("relay-request-82-link-selection", Valid, relayed_request_link_selection()),
        ("relay-ack-82", Valid, relayed_ack()),
        ("relay-82-twice", Valid, relay_82_twice()),
        ("relay-82-bad-suboptions", Valid, relay_82_bad_suboptions()),
        // Overload.
        ("overload-file", Valid, overload_file_ack()),
        ("overload-sname", Valid, overload_sname_offer()),
        ("overload-both-split", Valid, overload_both_split_ack()),
        ("overload-52-in-file-ignored", Valid, overload_52_in_file()),
        // BOOTP and odd but valid shapes.
        ("bootp-request", Valid, bootp_request()),
        ("bootp-reply-no-end", Valid, bootp_reply_no_end()),
        ("bootp-no-cookie-request", Valid, bootp_no_cookie_request()),
        ("bootp-no-cookie-reply", Valid, bootp_no_cookie_reply()),
        ("bootp-no-cookie-vendor-area", Valid, bootp_no_cookie_vendor_area()),
        ("header-only-240", Valid, Hdr::request(DHCLIENT_MAC, 1).bytes()),
        ("no-end", Valid, no_end()),
        ("trailing-garbage-after-end", Valid, trailing_garbage()),
        ("all-pad", Valid, Hdr::request(DHCLIENT_MAC, 2).padded(&[], 576)),
        ("many-zero-length-options", Valid, many_zero_length()),
        ("type-len0-len2-dup", Valid, odd_message_types()),
        ("option-len255", Valid, option_len255()),
        ("giaddr-hops-max", Valid, giaddr_hops_max()),
        ("large-1400", Valid, large_message()),
        // Hostile.
        ("bad-truncated-239", Invalid, dhclient_discover()[..239].to_vec()),
        ("bad-truncated-0", Invalid, Vec::new()),
        ("bad-cookie", Invalid, bad_cookie()),
        ("bad-no-cookie-299", Invalid, bootp_no_cookie_request()[..299].to_vec()),
        ("bad-op-0", Invalid, Hdr { op: 0, ..Hdr::default() }.padded(&[53, 1, 1, END], 300)),
        ("bad-op-3", Invalid, Hdr { op: 3, ..Hdr::default() }.padded(&[53, 1, 1, END], 300)),
        ("bad-hlen-17", Invalid, Hdr { hlen: 17, ..Hdr::default() }.padded(&[53, 1, 1, END], 300)),
        ("bad-hlen-255", Invalid, Hdr { hlen: 255, ..Hdr::default() }.padded(&[53, 1, 1, END], 300)),
        ("bad-overrun-options", Invalid, Hdr::default().with(&[53, 1, 1, 12, 10, b'a', b'b'])),
        ("bad-code-without-length", Invalid, Hdr::default().with(&[53, 1, 1, 12])),
        ("bad-overrun-file", Invalid, bad_overrun_file()),
        ("bad-overrun-sname", Invalid, bad_overrun_sname()),
        ("bad-overload-len2", Invalid, Hdr::default().padded(&[53, 1, 1, 52, 2, 1, 1, END], 300)),
        ("bad-overload-value0", Invalid, Hdr::default().padded(&[53, 1, 1, 52, 1, 0, END], 300)),
        ("bad-overload-value4", Invalid, Hdr::default().padded(&[53, 1, 1, 52, 1, 4, END], 300)),
        ("bad-relayed-overrun", Invalid, bad_relayed_overrun()),
    ];
    v.sort_by_key(|(name, _, _)| *name);
    v
}

pub fn decline() -> Vec<u8> {
    let h = Hdr::request(DHCLIENT_MAC, 0x0606_0606);
    h.padded(&cat(&[&opt(53, &[4]), &opt(50, &OFFERED), &opt(54, &SERVER), &opt(56, b"address in use"), &[END]]), 300)
}

pub fn release() -> Vec<u8> {
    let h = Hdr { ciaddr: OFFERED, ..Hdr::request(UDHCPC_MAC, 0x0707_0707) };
    h.padded(&cat(&[&opt(53, &[7]), &opt(61, &udhcpc_client_id()), &opt(54, &SERVER), &[END]]), 300)
}

pub fn inform() -> Vec<u8> {
    let h = Hdr { ciaddr: OFFERED, ..Hdr::request(DHCLIENT_MAC, 0x0808_0808) };
    h.padded(&cat(&[&opt(53, &[8]), &opt(55, &DHCLIENT_PRL), &opt(60, b"MSFT 5.0"), &[END]]), 300)
}

/// RFC 3004 user class longer than 255 bytes, split in adjacent instances.
pub fn user_class_split_discover() -> Vec<u8> {
    let uc: Vec<u8> = (0..300u16).map(|i| b'a' + (i % 26) as u8).collect();
    let h = Hdr::request(UDHCPC_MAC, 0x0909_0909);
    h.padded(&cat(&[&opt(53, &[1]), &opt(77, &uc[..255]), &opt(77, &uc[255..]), &[END]]), 300)
}

/// IP over InfiniBand: htype 32, hlen 0, broadcast flag, client id carries the address.
pub fn ipoib_discover() -> Vec<u8> {
    let h = Hdr { htype: 32, hlen: 0, flags: 0x8000, xid: 0x0a0a_0a0a, ..Hdr::default() };
    let id: Vec<u8> = cat(&[&[0xff, 0, 0, 0, 1], &[0, 4], &[0x11; 16]]);
    h.padded(&cat(&[&opt(53, &[1]), &opt(61, &id), &[END]]), 300)
}

/// hlen 16, the largest accepted: every chaddr byte belongs to the address.
pub fn hlen16_discover() -> Vec<u8> {
    let mut h = Hdr { htype: 6, hlen: 16, xid: 0x1616_1616, ..Hdr::default() };
    h.chaddr = [0xab; 16];
    h.padded(&cat(&[&opt(53, &[1]), &[END]]), 300)
}

/// DHCPLEASEQUERY (type 10, RFC 4388): a relay forwards it unchanged.
pub fn leasequery() -> Vec<u8> {
    let h = Hdr { giaddr: RELAY, ciaddr: OFFERED, hlen: 0, htype: 0, ..Hdr::default() };
    h.padded(&cat(&[&opt(53, &[10]), &opt(55, &[51, 61, 82]), &[END]]), 300)
}

/// Two option 82 instances (a second relay appended its own); the first is what
/// `relay_agent_info` returns.
pub fn relay_82_twice() -> Vec<u8> {
    let h = Hdr { giaddr: RELAY, hops: 2, ..Hdr::request(DHCLIENT_MAC, 0x8282_8282) };
    h.padded(&cat(&[&opt(53, &[1]), &opt(82, &agent_info()), &opt(82, &[1, 3, b'x', b'y', b'z']), &[END]]), 300)
}

/// Option 82 whose sub-options overrun it: the message is valid, the sub-options are not.
pub fn relay_82_bad_suboptions() -> Vec<u8> {
    let h = Hdr { giaddr: RELAY, hops: 1, ..Hdr::request(DHCLIENT_MAC, 0x8282_8283) };
    h.padded(&cat(&[&opt(53, &[1]), &opt(82, &[1, 8, b'e', b't', b'h']), &[END]]), 300)
}

/// Option 52 = 1 and, inside `file`, another option 52 with a nonsense value: RFC 2132 9.3
/// only honours option 52 in the options field, so it is an ordinary option there.
pub fn overload_52_in_file() -> Vec<u8> {
    let file = cat(&[&opt(52, &[9, 9]), &opt(15, b"f"), &[END]]);
    let h = Hdr { yiaddr: OFFERED, ..Hdr::reply(DHCLIENT_MAC, 0x5252_5252) }.file_bytes(&file);
    h.padded(&cat(&[&opt(53, &[5]), &opt(52, &[1]), &opt(54, &SERVER), &[END]]), 300)
}

/// RFC 951 BOOTP request: 64-byte vendor area with the cookie and END, no option 53.
pub fn bootp_request() -> Vec<u8> {
    let h = Hdr::request(DHCLIENT_MAC, 0x0b00_7000);
    h.padded(&[END], 300)
}

/// BOOTP reply whose options run to the end of the buffer without END.
pub fn bootp_reply_no_end() -> Vec<u8> {
    let h =
        Hdr { yiaddr: OFFERED, siaddr: SERVER, ..Hdr::reply(DHCLIENT_MAC, 0x0b00_7000) }.file_bytes(b"/boot/vmlinuz");
    h.with(&cat(&[&opt(1, &[255, 255, 255, 0]), &opt(3, &SERVER), &opt(6, &SERVER)]))
}

pub fn no_end() -> Vec<u8> {
    Hdr::request(DHCLIENT_MAC, 3).with(&cat(&[&opt(53, &[1]), &opt(61, &udhcpc_client_id()), &[0, 0, 0]]))
}

/// Non-zero bytes after END (some stacks leave garbage there): ignored.
pub fn trailing_garbage() -> Vec<u8> {
    Hdr::request(DHCLIENT_MAC, 4).with(&cat(&[&opt(53, &[1]), &[END], &[12, 200, 0xde, 0xad, 0xbe, 0xef, 52, 1, 9]]))
}

/// 100 instances of option 80 (empty) and 20 instances of option 250 (4 bytes).
pub fn many_zero_length() -> Vec<u8> {
    let mut o = opt(53, &[1]);
    for i in 0..100u8 {
        o.extend_from_slice(&[80, 0]);
        if i % 5 == 0 {
            o.extend_from_slice(&opt(250, &[i, i, i, i]));
        }
    }
    o.push(END);
    Hdr::request(DHCPCD_MAC, 5).padded(&o, 300)
}

/// 53 with length 0, then with length 2, then a proper one: `message_type` looks at the
/// first instance only.
pub fn odd_message_types() -> Vec<u8> {
    Hdr::request(DHCLIENT_MAC, 6).padded(&cat(&[&opt(53, &[]), &opt(53, &[1, 3]), &opt(53, &[1]), &[END]]), 300)
}

pub fn option_len255() -> Vec<u8> {
    let d: Vec<u8> = (0..255u8).collect();
    Hdr::reply(DHCLIENT_MAC, 7).with(&cat(&[&opt(53, &[5]), &opt(43, &d), &[END]]))
}

pub fn giaddr_hops_max() -> Vec<u8> {
    let h = Hdr { giaddr: [172, 16, 0, 1], hops: 255, ..Hdr::request(UDHCPC_MAC, 8) };
    h.padded(&cat(&[&opt(53, &[1]), &opt(82, &agent_info()), &[END]]), 300)
}

/// 1400 bytes: many options of several sizes, ending in END and padding.
pub fn large_message() -> Vec<u8> {
    let mut o = opt(53, &[5]);
    let mut code = 100u8;
    while o.len() < 1100 {
        let len = (code as usize * 7) % 60;
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(code)).collect();
        o.extend_from_slice(&opt(code, &data));
        code = code.wrapping_add(3).max(1);
        if code == 255 {
            code = 1;
        }
    }
    o.push(END);
    Hdr::reply(DHCPCD_MAC, 9).padded(&o, 1400)
}

/// A cookie one bit off, in a message too short (260 bytes) to be a plain RFC 951 BOOTP
/// message: neither DHCP nor BOOTP.
pub fn bad_cookie() -> Vec<u8> {
    Hdr { cookie: [99, 130, 83, 98], ..Hdr::default() }.padded(&[53, 1, 1, END], 260)
}

/// A classic RFC 951 BOOTREQUEST: no magic cookie, the 64-byte vend field all zero.
pub fn bootp_no_cookie_request() -> Vec<u8> {
    Hdr { cookie: [0; 4], secs: 4, ..Hdr::request(DHCLIENT_MAC, 0x0b00_7001) }.padded(&[], 300)
}

/// The RFC 951 BOOTREPLY to it, through a relay (giaddr set): addresses, a server name
/// and a boot file, no cookie.
pub fn bootp_no_cookie_reply() -> Vec<u8> {
    let h =
        Hdr { cookie: [0; 4], yiaddr: OFFERED, siaddr: SERVER, giaddr: RELAY, ..Hdr::reply(DHCLIENT_MAC, 0x0b00_7001) };
    h.sname_bytes(b"bootserver").file_bytes(b"/tftpboot/vmunix").padded(&[], 300)
}

/// A vendor area in some other format (a vendor's own magic, then bytes that would read
/// as an overrunning option 52 and option 82 if taken for options): opaque, no options.
pub fn bootp_no_cookie_vendor_area() -> Vec<u8> {
    let h = Hdr { cookie: *b"CMU\0", ..Hdr::request(UDHCPC_MAC, 0x0b00_7002) };
    h.padded(&cat(&[&[52, 1, 9], &[82, 200, 1], &[53, 1, 1, END]]), 300)
}

pub fn bad_overrun_file() -> Vec<u8> {
    let file = cat(&[&opt(15, b"ok"), &[6, 200, 1, 2, 3, 4]]);
    Hdr::reply(DHCLIENT_MAC, 10).file_bytes(&file).padded(&cat(&[&opt(53, &[5]), &opt(52, &[1]), &[END]]), 300)
}

pub fn bad_overrun_sname() -> Vec<u8> {
    // The last sname byte is an option code whose length byte would be file[0].
    let mut sname = vec![0u8; 64];
    sname[63] = 12;
    Hdr::reply(DHCLIENT_MAC, 11)
        .sname_bytes(&sname)
        .file_bytes(b"x")
        .padded(&cat(&[&opt(53, &[5]), &opt(52, &[2]), &[END]]), 300)
}

/// A relayed DISCOVER whose option 82 claims more bytes than the message has.
pub fn bad_relayed_overrun() -> Vec<u8> {
    let mut v = relayed_discover();
    let at = v.iter().rposition(|&b| b == END).unwrap();
    v.truncate(at);
    let n = v.len();
    let agent_len = agent_info().len();
    v[n - agent_len - 1] = 250;
    v
}
