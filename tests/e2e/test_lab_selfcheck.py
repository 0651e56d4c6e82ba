"""Checks of the lab's own helpers (no namespaces): packet codec, pcap reader, cdra config."""

from __future__ import annotations

import itertools
import random
import struct

import pytest

import dhcp_packets as dp
import lab as L


def test_dhcp_roundtrip():
    msg = dp.client_message(dp.REQUEST, xid=0x12345678, mac="02:77:00:00:00:01", hops=3,
                            requested_ip="10.77.1.150",
                            extra=[(dp.OPT_RELAY_AGENT, dp.agent_option(b"rd0", b"x"))])
    d = dp.parse_dhcp(msg)
    assert (d.op, d.hops, d.xid, d.chaddr) == (1, 3, 0x12345678, "02:77:00:00:00:01")
    assert d.msg_type == dp.REQUEST and d.requested_ip == "10.77.1.150"
    assert d.agent_suboptions() == {1: b"rd0", 2: b"x"}


def test_overload_is_parsed():
    sname = bytes([dp.OPT_SERVER_ID, 4]) + bytes([10, 77, 0, 1]) + b"\xff"
    msg = dp.build_dhcp(sname=sname, options=[(dp.OPT_MSG_TYPE, b"\x05"),
                                              (dp.OPT_OVERLOAD, b"\x02")])
    assert dp.parse_dhcp(msg).server_id == "10.77.0.1"


def test_plain_bootp_without_cookie_is_parsed_without_options():
    msg = dp.plain_bootp_request(xid=0x0B007001, mac="02:77:00:00:00:02")
    assert len(msg) == 300 and msg[236:300] == b"\0" * 64
    d = dp.parse_dhcp(msg)
    assert (d.op, d.xid, d.chaddr, d.cookie) == (1, 0x0B007001, "02:77:00:00:00:02", False)
    assert d.options == {} and d.msg_type is None and d.msg_name == "BOOTP(no cookie)"
    with pytest.raises(ValueError):
        dp.parse_dhcp(msg[:299])  # neither BOOTP (RFC 951: 300 bytes) nor DHCP
    assert dp.parse_dhcp(dp.client_message(dp.DISCOVER, xid=1, mac="02:00:00:00:00:01")).cookie


def test_hostile_payloads_are_hostile():
    rng = random.Random(1)
    bad = 0
    for _kind, p in itertools.islice(dp.hostile_payloads(rng), 500):
        try:
            dp.parse_dhcp(p)
        except (ValueError, struct.error):
            bad += 1
    assert bad > 100


def test_frame_and_pcap(tmp_path):
    payload = dp.client_message(dp.DISCOVER, xid=7, mac="02:00:00:00:00:09")
    fr = dp.udp_ip_frame(payload, src_mac="02:00:00:00:00:09")
    pcap = tmp_path / "x.pcap"
    hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack("<IIII", 1, 500000, len(fr), len(fr)) + fr
    pcap.write_bytes(hdr + rec + rec[:10])  # a cut-off tail is tolerated
    frames = dp.read_pcap(str(pcap))
    assert len(frames) == 1
    f = frames[0]
    assert (f.src_ip, f.dst_ip, f.sport, f.dport) == ("0.0.0.0", "255.255.255.255", 68, 67)
    assert f.dhcp and f.dhcp.xid == 7 and f.ts == pytest.approx(1.5)


def test_cdra_config_toml():
    tomllib = pytest.importorskip("tomllib")
    cfg = tomllib.loads(L.cdra_config(option82_insert=True, remote_id="cdra-lab", max_hops=3,
                                      circuit_id="rd0", address="10.77.1.1",
                                      policy="replace"))
    assert cfg["mode"] == "relay" and cfg["servers"] == ["10.77.0.1"]
    assert cfg["downstream"] == [{"interface": "rd0", "address": "10.77.1.1",
                                  "circuit_id": "rd0"}]
    assert cfg["upstream"] == [{"interface": "ru0"}]
    assert cfg["relay"]["max_hops"] == 3 and cfg["relay"]["server_selection"] == "all"
    assert cfg["relay"]["option82"] == {"insert": True, "remote_id": "cdra-lab",
                                        "policy": "replace", "link_selection": False,
                                        "server_id_override": False}
    plain = tomllib.loads(L.cdra_config())
    assert "remote_id" not in plain["relay"]["option82"]
    assert set(plain["downstream"][0]) == {"interface"}


def test_lease_tables_are_read(tmp_path):
    """The three servers' lease files as test_pool.py reads them (formats as written by Kea
    2.2, ISC dhcpd 4.4 and dnsmasq 2.90): the last record of an address wins; pool
    identities are recognised."""
    class Fake:
        pass
    far = 4102444800  # 2100-01-01
    kea = Fake()
    kea.leasefile = tmp_path / "leases4.csv"
    kea.leasefile.write_text(
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,"
        "state,user_context\n"
        f"10.77.1.100,0e:cd:e9:d9:43:6e,00:63:64:72:61:2d:70:6f:6f:6c:2f:31:30:2e:37:37:2e:31:"
        f"2e:31:2f:30,600,{far},1,0,0,cdra-pool-0,0,\n"
        f"10.77.1.101,02:77:00:00:00:02,01:02:77:00:00:00:02,600,{far},1,0,0,,0,\n"
        f"10.77.1.101,02:77:00:00:00:02,01:02:77:00:00:00:02,0,{far},1,0,0,,0,\n")
    t = L.Kea.lease_table(kea)
    assert t["10.77.1.100"].is_pool() and t["10.77.1.100"].pool_number() == 0
    assert t["10.77.1.100"].active and not t["10.77.1.101"].active
    dhcpd = Fake()
    dhcpd.leasefile = tmp_path / "dhcpd.leases"
    dhcpd.leasefile.write_text(
        'lease 10.77.1.100 {\n  binding state active;\n  hardware ethernet 0e:cd:e9:d9:43:6e;\n'
        '  uid "\\000cdra-pool/10.77.1.1/3";\n  client-hostname "cdra-pool-3";\n}\n'
        'lease 10.77.1.100 {\n  binding state free;\n  hardware ethernet 0e:cd:e9:d9:43:6e;\n}\n'
        'lease 10.77.1.102 {\n  binding state active;\n  hardware ethernet 02:77:00:00:00:03;\n'
        '  uid "\\377\\012\\273s";\n}\n')
    t = L.Dhcpd.lease_table(dhcpd)
    assert not t["10.77.1.100"].active and t["10.77.1.100"].is_pool()
    assert t["10.77.1.102"].active and t["10.77.1.102"].client_id == b"\xff\n\xbbs"
    dnsmasq = L.Dnsmasq.__new__(L.Dnsmasq)
    dnsmasq.leasefile = tmp_path / "dnsmasq.leases"
    dnsmasq.leasefile.write_text(
        f"{far} 0e:cd:e9:d9:41:6e 10.77.1.145 cdra-pool-2 00:63:64:72:61:2d:70:6f:6f:6c:2f:31:"
        f"30:2e:37:37:2e:31:2e:31:2f:32\n{far} 02:77:00:00:00:01 10.77.1.144 * *\n")
    t = L.Dnsmasq.lease_table(dnsmasq)
    assert t["10.77.1.145"].pool_number() == 2 and t["10.77.1.145"].hostname == "cdra-pool-2"
    assert not t["10.77.1.144"].is_pool() and t["10.77.1.144"].client_id is None
