//! Shared test helpers: a hand-rolled message assembler that does not use the crate under
//! test, and the realistic/hostile messages the unit tests, the differential test and the
//! fuzz seed corpus are made of.
#![allow(dead_code)]

pub mod corpus;

/// BOOTP header fields, assembled by hand into bytes (RFC 2131 figure 1).
#[derive(Clone, Debug)]
pub struct Hdr {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: [u8; 4],
    pub yiaddr: [u8; 4],
    pub siaddr: [u8; 4],
    pub giaddr: [u8; 4],
    pub chaddr: [u8; 16],
    pub sname: [u8; 64],
    pub file: [u8; 128],
    pub cookie: [u8; 4],
}

pub const COOKIE: [u8; 4] = [99, 130, 83, 99];

impl Default for Hdr {
    fn default() -> Self {
        Hdr {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0,
            secs: 0,
            flags: 0,
            ciaddr: [0; 4],
            yiaddr: [0; 4],
            siaddr: [0; 4],
            giaddr: [0; 4],
            chaddr: [0; 16],
            sname: [0; 64],
            file: [0; 128],
            cookie: COOKIE,
        }
    }
}

impl Hdr {
    /// A client request from `mac` with transaction id `xid`.
    pub fn request(mac: [u8; 6], xid: u32) -> Self {
        let mut h = Hdr { xid, ..Hdr::default() };
        h.chaddr[..6].copy_from_slice(&mac);
        h
    }

    /// A server reply to `mac`.
    pub fn reply(mac: [u8; 6], xid: u32) -> Self {
        Hdr { op: 2, ..Hdr::request(mac, xid) }
    }

    pub fn sname_bytes(mut self, s: &[u8]) -> Self {
        self.sname = [0; 64];
        self.sname[..s.len()].copy_from_slice(s);
        self
    }

    pub fn file_bytes(mut self, f: &[u8]) -> Self {
        self.file = [0; 128];
        self.file[..f.len()].copy_from_slice(f);
        self
    }

    /// The 240 bytes: header and cookie.
    pub fn bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(300);
        v.extend_from_slice(&[self.op, self.htype, self.hlen, self.hops]);
        v.extend_from_slice(&self.xid.to_be_bytes());
        v.extend_from_slice(&self.secs.to_be_bytes());
        v.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            v.extend_from_slice(&a);
        }
        v.extend_from_slice(&self.chaddr);
        v.extend_from_slice(&self.sname);
        v.extend_from_slice(&self.file);
        v.extend_from_slice(&self.cookie);
        assert_eq!(v.len(), 240);
        v
    }

    /// Header, cookie, then `options` verbatim.
    pub fn with(&self, options: &[u8]) -> Vec<u8> {
        let mut v = self.bytes();
        v.extend_from_slice(options);
        v
    }

    /// Header, cookie, `options`, then zero padding to `len` (300 for RFC 1542 senders).
    pub fn padded(&self, options: &[u8], len: usize) -> Vec<u8> {
        let mut v = self.with(options);
        if v.len() < len {
            v.resize(len, 0);
        }
        v
    }
}

/// One option TLV.
pub fn opt(code: u8, data: &[u8]) -> Vec<u8> {
    assert!(data.len() <= 255);
    let mut v = vec![code, data.len() as u8];
    v.extend_from_slice(data);
    v
}

/// Concatenate byte strings.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

pub const END: u8 = 255;

pub const DHCLIENT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
pub const UDHCPC_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
pub const DHCPCD_MAC: [u8; 6] = [0xdc, 0xa6, 0x32, 0x01, 0x02, 0x03];

pub const SERVER: [u8; 4] = [192, 168, 1, 1];
pub const OFFERED: [u8; 4] = [192, 168, 1, 100];
pub const RELAY: [u8; 4] = [10, 1, 2, 1];

/// dhclient's parameter request list (ISC dhclient 4.4, Debian's dhclient.conf).
pub const DHCLIENT_PRL: [u8; 13] = [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42];
pub const UDHCPC_PRL: [u8; 7] = [1, 3, 6, 12, 15, 28, 42];
pub const DHCPCD_PRL: [u8; 10] = [1, 121, 33, 3, 6, 28, 51, 58, 59, 119];

/// udhcpc's client identifier: type 1 (Ethernet) followed by the MAC.
pub fn udhcpc_client_id() -> Vec<u8> {
    cat(&[&[1], &UDHCPC_MAC])
}

/// dhcpcd's RFC 4361 client identifier: 0xff, IAID, DUID-LLT (type 1, hw type 1, time, MAC).
pub fn dhcpcd_client_id() -> Vec<u8> {
    cat(&[&[0xff], &[0x32, 0x01, 0x02, 0x03], &[0x00, 0x01, 0x00, 0x01], &[0x2c, 0x4a, 0x1b, 0x3e], &DHCPCD_MAC])
}

pub const DHCPCD_VENDOR: &[u8] = b"dhcpcd-10.0.6:Linux-6.1.0-18-amd64:x86_64:GenuineIntel";

/// ISC dhclient DISCOVER: no client identifier, option 50 from the old lease, hostname,
/// PRL, END, padded to 300.
pub fn dhclient_discover() -> Vec<u8> {
    let h = Hdr { secs: 0, ..Hdr::request(DHCLIENT_MAC, 0x3903_f326) };
    h.padded(&cat(&[&opt(53, &[1]), &opt(50, &OFFERED), &opt(12, b"debian"), &opt(55, &DHCLIENT_PRL), &[END]]), 300)
}

/// ISC dhclient REQUEST (SELECTING): server id and requested address.
pub fn dhclient_request() -> Vec<u8> {
    let h = Hdr { secs: 2, ..Hdr::request(DHCLIENT_MAC, 0x3903_f326) };
    h.padded(
        &cat(&[
            &opt(53, &[3]),
            &opt(54, &SERVER),
            &opt(50, &OFFERED),
            &opt(12, b"debian"),
            &opt(55, &DHCLIENT_PRL),
            &[END],
        ]),
        300,
    )
}

/// busybox udhcpc DISCOVER: client id 01+MAC, max size 576, vendor class, 548 bytes long.
pub fn udhcpc_discover() -> Vec<u8> {
    let h = Hdr::request(UDHCPC_MAC, 0x5ee1_7a01);
    h.padded(
        &cat(&[
            &opt(53, &[1]),
            &opt(61, &udhcpc_client_id()),
            &opt(57, &[0x02, 0x40]),
            &opt(55, &UDHCPC_PRL),
            &opt(60, b"udhcp 1.36.1"),
            &opt(12, b"alpine"),
            &[END],
        ]),
        548,
    )
}

/// busybox udhcpc REQUEST.
pub fn udhcpc_request() -> Vec<u8> {
    let h = Hdr::request(UDHCPC_MAC, 0x5ee1_7a01);
    h.padded(
        &cat(&[
            &opt(53, &[3]),
            &opt(61, &udhcpc_client_id()),
            &opt(50, &OFFERED),
            &opt(54, &SERVER),
            &opt(57, &[0x02, 0x40]),
            &opt(55, &UDHCPC_PRL),
            &opt(60, b"udhcp 1.36.1"),
            &opt(12, b"alpine"),
            &[END],
        ]),
        548,
    )
}

/// dhcpcd DISCOVER: RFC 4361 client id, max size 1500, rapid commit (80, empty), vendor
/// class, forcerenew nonce capable (145), PRL.
pub fn dhcpcd_discover() -> Vec<u8> {
    let h = Hdr::request(DHCPCD_MAC, 0xa1b2_c3d4);
    h.padded(
        &cat(&[
            &opt(53, &[1]),
            &opt(61, &dhcpcd_client_id()),
            &opt(57, &[0x05, 0xdc]),
            &opt(80, &[]),
            &opt(60, DHCPCD_VENDOR),
            &opt(12, b"raspberrypi"),
            &opt(145, &[1]),
            &opt(55, &DHCPCD_PRL),
            &[END],
        ]),
        300,
    )
}

/// dhcpcd REQUEST while RENEWING: ciaddr set, no server id, no requested address.
pub fn dhcpcd_renew() -> Vec<u8> {
    let h = Hdr { ciaddr: OFFERED, secs: 0, ..Hdr::request(DHCPCD_MAC, 0xa1b2_c3d5) };
    h.padded(
        &cat(&[
            &opt(53, &[3]),
            &opt(61, &dhcpcd_client_id()),
            &opt(57, &[0x05, 0xdc]),
            &opt(60, DHCPCD_VENDOR),
            &opt(12, b"raspberrypi"),
            &opt(55, &DHCPCD_PRL),
            &[END],
        ]),
        300,
    )
}

fn lease_opts(lease: u32, t1: u32, t2: u32) -> Vec<u8> {
    cat(&[&opt(51, &lease.to_be_bytes()), &opt(58, &t1.to_be_bytes()), &opt(59, &t2.to_be_bytes())])
}

/// Kea OFFER/ACK to udhcpc: 53 first, server id, times, mask, router, DNS, domain, and
/// the client id echoed (RFC 6842). `mt` is 2 (OFFER) or 5 (ACK).
pub fn kea_reply(mt: u8) -> Vec<u8> {
    let h = Hdr { yiaddr: OFFERED, ..Hdr::reply(UDHCPC_MAC, 0x5ee1_7a01) };
    h.padded(
        &cat(&[
            &opt(53, &[mt]),
            &opt(54, &SERVER),
            &lease_opts(3600, 1800, 3150),
            &opt(1, &[255, 255, 255, 0]),
            &opt(3, &SERVER),
            &opt(6, &[8, 8, 8, 8, 1, 1, 1, 1]),
            &opt(15, b"example.org"),
            &opt(61, &udhcpc_client_id()),
            &[END],
        ]),
        300,
    )
}

/// ISC dhcpd ACK to dhclient (no T1/T2), padded to 300, siaddr = next-server.
pub fn iscdhcpd_ack() -> Vec<u8> {
    let h = Hdr { yiaddr: OFFERED, siaddr: SERVER, ..Hdr::reply(DHCLIENT_MAC, 0x3903_f326) };
    h.padded(
        &cat(&[
            &opt(53, &[5]),
            &opt(54, &SERVER),
            &opt(51, &86400u32.to_be_bytes()),
            &opt(1, &[255, 255, 255, 0]),
            &opt(3, &SERVER),
            &opt(6, &SERVER),
            &opt(15, b"lan"),
            &opt(28, &[192, 168, 1, 255]),
            &[END],
        ]),
        300,
    )
}

/// ISC dhcpd NAK.
pub fn iscdhcpd_nak() -> Vec<u8> {
    let h = Hdr::reply(DHCLIENT_MAC, 0x3903_f327);
    h.padded(&cat(&[&opt(53, &[6]), &opt(54, &SERVER), &opt(56, b"requested address not available"), &[END]]), 300)
}

/// dnsmasq OFFER/ACK to dhcpcd: not padded (dnsmasq sends what it wrote), hostname echoed.
pub fn dnsmasq_reply(mt: u8) -> Vec<u8> {
    let h = Hdr { yiaddr: OFFERED, siaddr: SERVER, ..Hdr::reply(DHCPCD_MAC, 0xa1b2_c3d4) };
    h.with(&cat(&[
        &opt(53, &[mt]),
        &opt(54, &SERVER),
        &lease_opts(43200, 21600, 37800),
        &opt(1, &[255, 255, 255, 0]),
        &opt(28, &[192, 168, 1, 255]),
        &opt(3, &SERVER),
        &opt(6, &SERVER),
        &opt(15, b"lan"),
        &opt(12, b"raspberrypi"),
        &[END],
    ]))
}

/// dnsmasq NAK: broadcast flag, message 56, client id echoed.
pub fn dnsmasq_nak() -> Vec<u8> {
    let h = Hdr { flags: 0x8000, ..Hdr::reply(DHCPCD_MAC, 0xa1b2_c3d5) };
    h.with(&cat(&[
        &opt(53, &[6]),
        &opt(54, &SERVER),
        &opt(56, b"wrong server-ID"),
        &opt(61, &dhcpcd_client_id()),
        &[END],
    ]))
}

/// Option 82 as a relay adds it: circuit id "eth1:100" and remote id = a MAC.
pub fn agent_info() -> Vec<u8> {
    cat(&[&[1, 8], b"eth1:100", &[2, 6], &[0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]])
}

/// dhclient DISCOVER relayed: giaddr, hops 1, option 82 last.
pub fn relayed_discover() -> Vec<u8> {
    let h = Hdr { giaddr: RELAY, hops: 1, ..Hdr::request(DHCLIENT_MAC, 0x3903_f326) };
    h.padded(
        &cat(&[
            &opt(53, &[1]),
            &opt(50, &OFFERED),
            &opt(12, b"debian"),
            &opt(55, &DHCLIENT_PRL),
            &opt(82, &agent_info()),
            &[END],
        ]),
        300,
    )
}

/// udhcpc REQUEST relayed with link selection and server id override sub-options.
pub fn relayed_request_link_selection() -> Vec<u8> {
    let h = Hdr { giaddr: RELAY, hops: 1, ..Hdr::request(UDHCPC_MAC, 0x5ee1_7a01) };
    let agent = cat(&[&agent_info(), &[5, 4], &[192, 168, 1, 0], &[11, 4], &RELAY]);
    h.padded(
        &cat(&[
            &opt(53, &[3]),
            &opt(61, &udhcpc_client_id()),
            &opt(50, &OFFERED),
            &opt(54, &SERVER),
            &opt(55, &UDHCPC_PRL),
            &opt(82, &agent),
            &[END],
        ]),
        300,
    )
}

/// Kea ACK sent back to the relay: giaddr set, option 82 echoed last.
pub fn relayed_ack() -> Vec<u8> {
    let h = Hdr { yiaddr: OFFERED, giaddr: RELAY, ..Hdr::reply(DHCLIENT_MAC, 0x3903_f326) };
    h.padded(
        &cat(&[
            &opt(53, &[5]),
            &opt(54, &SERVER),
            &lease_opts(3600, 1800, 3150),
            &opt(1, &[255, 255, 255, 0]),
            &opt(3, &SERVER),
            &opt(82, &agent_info()),
            &[END],
        ]),
        300,
    )
}

/// An area's bytes, padded with zeros to `len`.
pub fn area(bytes: &[u8], len: usize) -> Vec<u8> {
    assert!(bytes.len() <= len);
    let mut v = bytes.to_vec();
    v.resize(len, 0);
    v
}

/// ACK with option 52 = 1: domain name and DNS in `file`.
pub fn overload_file_ack() -> Vec<u8> {
    let file = cat(&[&opt(15, b"overloaded.example"), &opt(6, &[9, 9, 9, 9]), &[END]]);
    let h = Hdr { yiaddr: OFFERED, ..Hdr::reply(DHCLIENT_MAC, 0x0101_0101) }.file_bytes(&file);
    h.padded(&cat(&[&opt(53, &[5]), &opt(52, &[1]), &opt(54, &SERVER), &opt(51, &3600u32.to_be_bytes()), &[END]]), 300)
}

/// OFFER with option 52 = 2: router and mask in `sname`; `file` holds a boot file name.
pub fn overload_sname_offer() -> Vec<u8> {
    let sname = cat(&[&opt(3, &SERVER), &opt(1, &[255, 255, 255, 0]), &[END]]);
    let h =
        Hdr { yiaddr: OFFERED, ..Hdr::reply(DHCLIENT_MAC, 0x0202_0202) }.sname_bytes(&sname).file_bytes(b"pxelinux.0");
    h.padded(&cat(&[&opt(53, &[2]), &opt(54, &SERVER), &opt(52, &[2]), &[END]]), 300)
}

/// ACK with option 52 = 3 and option 43 split across options, file and sname (RFC 3396
/// concatenation in RFC 2131 4.1 order), plus option 12 only in sname.
pub fn overload_both_split_ack() -> Vec<u8> {
    let file = cat(&[&opt(43, b"-file-part-"), &[0, 0], &opt(66, b"tftp.example"), &[END]]);
    let sname = cat(&[&opt(43, b"-sname-part"), &opt(12, b"host"), &[END]]);
    let h = Hdr { yiaddr: OFFERED, ..Hdr::reply(DHCLIENT_MAC, 0x0303_0303) }.file_bytes(&file).sname_bytes(&sname);
    h.padded(&cat(&[&opt(53, &[5]), &opt(52, &[3]), &opt(43, b"options-part"), &opt(54, &SERVER), &[END]]), 300)
}

/// Classless static routes (121) split in two adjacent instances (255 + 45 bytes).
pub fn split_121_data() -> Vec<u8> {
    // RFC 3442: a /8 route is width(1) + 1 significant octet + router(4) = 6 bytes; 50 of them.
    let mut v = Vec::new();
    for i in 0..50u8 {
        v.extend_from_slice(&[8, 10u8.wrapping_add(i), 192, 168, 1, 1]);
    }
    assert_eq!(v.len(), 300);
    v
}

pub fn split_121_ack() -> Vec<u8> {
    let d = split_121_data();
    let h = Hdr { yiaddr: OFFERED, ..Hdr::reply(DHCPCD_MAC, 0xa1b2_c3d4) };
    h.padded(
        &cat(&[
            &opt(53, &[5]),
            &opt(54, &SERVER),
            &opt(121, &d[..255]),
            &opt(121, &d[255..]),
            &opt(1, &[255, 255, 255, 0]),
            &[END],
        ]),
        300,
    )
}

/// A DISCOVER whose client id is split in two instances separated by PAD and another option.
pub fn split_client_id_discover() -> Vec<u8> {
    let id = dhcpcd_client_id();
    let h = Hdr::request(DHCPCD_MAC, 0x0404_0404);
    h.padded(
        &cat(&[&opt(53, &[1]), &opt(61, &id[..5]), &[0, 0], &opt(57, &[5, 0xdc]), &opt(61, &id[5..]), &[END]]),
        300,
    )
}
