"""Option 82 and giaddr per interface, the relay source port, and VRFs (issue 13 items 3, 4).

Every sub-option cdra builds is asserted byte for byte in the server's capture, and the
real servers must still answer (the client binds):

- circuit-id / remote-id from the format language (`{hostname}:{ifname}:{vlan}`, `hex:`);
- RFC 3527 link selection = the interface ADDRESS (0a4d0101, as ISC dhcrelay and SONiC);
- RFC 5010 flags (0x00 for a broadcast, 0x80 for a renewal unicast to the relay);
- RFC 5107 server identifier override; RFC 6607 VSS (type 255, global) + VSS control;
- the source interface (giaddr from ru0, link selection naming rd0; the server has no
  route to the client subnet at all, so its replies can only reach the relay at giaddr);
- RFC 8357 relay source port (requests from :1067 with sub-option 19, replies to :1067);
- `address` choosing giaddr among two addresses of rd0, and following it away and back.

VRFs: the kernel of the machine these tests were written on has no VRF driver
(CONFIG_NET_VRF unset, no modules), so the tests with real VRF devices skip there with the
reason; `test_server_socket_bound_to_its_device` runs everywhere and checks the same socket
path (the server-facing socket bound with SO_BINDTODEVICE, the server reachable only
through it by policy routing).

Skipped for CDRA_E2E_RELAY=dhcrelay.
"""

from __future__ import annotations

import socket
import time

import pytest

import dhcp_packets as dp
import lab as L

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra", reason="cdra's option 82 (CDRA_E2E_RELAY=cdra)")

SERVERS = ["kea", "dhcpd"]


def note(msg: str) -> None:
    print(f"[relay-options] {msg}")


def hostname_in(ns: str) -> str:
    return L.run(L.nsexec(ns) + ["cat", "/proc/sys/kernel/hostname"]).stdout.strip()


def sub(code: int, data: bytes) -> bytes:
    return bytes([code, len(data)]) + data


def start(lab: L.Lab, server: str, *, server_kw: dict | None = None, **relay_kw):
    srv = lab.start_server(server, **(server_kw or {}))
    scap = lab.capture(lab.srv, L.SERVER_IF, "server")
    lab.capture(lab.rly, L.DOWN_IF, "relay-rd0")
    relay = lab.start_relay(**relay_kw)
    return srv, scap, relay


def bound(lab: L.Lab, kind: str = "udhcpc", **kw):
    cns = lab.add_client()
    ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
    cl = lab.start_client(kind, cns, **kw)
    ev = cl.wait_bound(timeout=20)
    ip = ev.get("ip", "")
    assert dp.ip_in(ip, L.POOL_START, L.POOL_END), f"address {ip!r} not in the pool: {ev}"
    assert ev.get("router", "").split()[:1] == [L.ROUTER], ev
    return cl, ccap, ip


def requests_of(scap: L.Capture, mac: str, kind: int) -> list[dp.Frame]:
    return scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == mac and f.dhcp.msg_type == kind)


def no_option82_reached(ccap: L.Capture) -> None:
    """Nothing cdra delivered to the client carries option 82 (a server's own unicast to a
    client with an address, an ACK to an INFORM, is the server's business)."""
    for f in ccap.dhcp(lambda f: f.dport == 68 and f.src_ip == L.RELAY_DOWN_IP):
        assert dp.OPT_RELAY_AGENT not in f.dhcp.options, f"option 82 leaked: {f.describe()}"


# --------------------------------------------------------------------------- sub-options

@pytest.mark.parametrize("server", SERVERS)
def test_every_sub_option_byte_for_byte(lab, server):
    """circuit-id `{hostname}:{ifname}:{vlan}`, a hex remote-id, link selection (the
    interface address), flags, server id override, VSS (global) + control: the DISCOVER at
    the server carries exactly these bytes, the server answers, the client binds, and the
    echo of option 82 in the server's replies is recorded (what each server does with
    each sub-option)."""
    srv, scap, relay = start(
        lab, server, option82_insert=True, link_selection=True, server_id_override=True,
        downstream_keys={"circuit_id": "{hostname}:{ifname}:{vlan}", "remote_id": "hex:0a0b0c"},
        option82_keys={"vss": True, "flags": True}, metrics_listen=L.METRICS_LISTEN)
    cl, ccap, ip = bound(lab)
    host = hostname_in(lab.rly).encode()
    want = (sub(1, host + b":rd0:0") + sub(2, b"\x0a\x0b\x0c") + sub(5, bytes([10, 77, 1, 1]))
            + sub(10, b"\x00") + sub(11, bytes([10, 77, 1, 1])) + sub(151, b"\xff") + sub(152, b""))
    disc = requests_of(scap, cl.cns.mac, dp.DISCOVER)
    assert disc, "the server saw no DISCOVER"
    got = disc[0].dhcp.options.get(dp.OPT_RELAY_AGENT)
    assert got == want, f"option 82 {got!r} != {want!r}"
    assert disc[0].dhcp.giaddr == L.RELAY_DOWN_IP
    # RFC 3046 2.1: last option (the options dict keeps their order).
    assert list(disc[0].dhcp.options)[-1] == dp.OPT_RELAY_AGENT, disc[0].describe()
    offers = scap.dhcp(lambda f: f.dhcp.op == 2 and f.dhcp.msg_type == dp.OFFER and f.dhcp.chaddr == cl.cns.mac)
    assert offers, "no OFFER at the server"
    echoed = offers[0].dhcp.options.get(dp.OPT_RELAY_AGENT)
    note(f"{server}: DISCOVER option 82 = {got.hex()}; OFFER echoes "
         f"{echoed.hex() if echoed is not None else 'nothing'}; client server id "
         f"{cl.events()[-1].get('server_id')}")
    if echoed is not None and 152 in (offers[0].dhcp.agent_suboptions() or {}):
        # The server did not act on the VSS (RFC 6607 3.2): counted, passed on.
        L.wait_until(lambda: relay.metrics().get("cdra_vss_not_understood_total", 0) >= 1, 5,
                     what="cdra_vss_not_understood_total")
    no_option82_reached(ccap)
    relay.check_alive()


@pytest.mark.parametrize("server", SERVERS + ["dnsmasq"])
def test_flags_and_server_id_override(lab, server):
    """RFC 5010: the DISCOVER (broadcast) carries flags 0x00; a DHCPINFORM the bound client
    unicasts to 10.77.1.1 is relayed with the U flag (0x80). RFC 5107: what each server
    does with the server identifier override (the client's option 54) is recorded: a
    server that honours it makes clients renew through the relay."""
    srv, scap, relay = start(lab, server, option82_insert=True, server_id_override=True,
                             option82_keys={"flags": True})
    cl, ccap, ip = bound(lab)
    disc = requests_of(scap, cl.cns.mac, dp.DISCOVER)
    assert (disc[0].dhcp.agent_suboptions() or {}).get(10) == b"\x00", disc[0].describe()
    sid = cl.events()[-1].get("server_id")
    note(f"{server}: client's server id with RFC 5107 sub-option 11 = 10.77.1.1: {sid}")
    xid = L.new_xid()
    inform = dp.client_message(dp.INFORM, xid=xid, mac=cl.cns.mac, ciaddr=ip)
    with L.in_netns(cl.cns.ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((ip, 68))
        s.sendto(inform, (L.RELAY_DOWN_IP, 67))
    finally:
        s.close()
    fwd = scap.wait_for(lambda f: f.dhcp.op == 1 and f.dhcp.xid == xid, 5, "the relayed INFORM")
    assert fwd[0].dhcp.giaddr == L.RELAY_DOWN_IP, fwd[0].describe()
    assert (fwd[0].dhcp.agent_suboptions() or {}).get(10) == b"\x80", fwd[0].describe()
    ack = ccap.wait_for(lambda f: f.dhcp.op == 2 and f.dhcp.xid == xid, 5, "the ACK to the INFORM")
    note(f"{server}: ACK to the INFORM from {ack[0].src_ip} (RFC 2131 4.3.5: to ciaddr), "
         f"option 82 in it: {(ack[0].dhcp.agent_suboptions() or {})}")
    no_option82_reached(ccap)


# --------------------------------------------------------------------------- giaddr

@pytest.mark.parametrize("server", SERVERS)
def test_source_interface(lab, server):
    """`source_interface = "ru0"` (ISC dhcrelay -U, SONiC src-intf): giaddr 10.77.0.2, link
    selection 0a4d0101. The server's route to the client subnet is removed first: its
    replies go to 10.77.0.2 (its own subnet) and cdra takes them as answers for rd0."""
    L.run(["ip", "-n", lab.srv, "route", "del", L.CLIENT_NET])
    srv, scap, relay = start(lab, server, option82_insert=True,
                             downstream_keys={"source_interface": L.UP_IF})
    cl, ccap, ip = bound(lab)
    reqs = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == cl.cns.mac)
    assert reqs
    for f in reqs:
        assert f.dhcp.giaddr == L.RELAY_UP_IP, f.describe()
        assert f.dhcp.options.get(dp.OPT_RELAY_AGENT) == sub(1, b"rd0") + sub(5, bytes([10, 77, 1, 1])), f.describe()
    replies = scap.dhcp(lambda f: f.dhcp.op == 2 and f.dhcp.chaddr == cl.cns.mac)
    assert replies and all(f.dst_ip == L.RELAY_UP_IP for f in replies), L.describe_frames(replies)
    note(f"{server}: allocated {ip} by link selection, replies to giaddr {L.RELAY_UP_IP}")
    no_option82_reached(ccap)


@pytest.mark.parametrize("server", SERVERS)
def test_relay_source_port(lab, server):
    """`[relay] source_port = 1067` (RFC 8357): first-hop requests leave from :1067 with
    sub-option 19 (length 0); a server that implements RFC 8357 answers to :1067."""
    srv, scap, relay = start(lab, server, option82_insert=True, relay_keys={"source_port": 1067})
    cns = lab.add_client()
    ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
    cl = lab.start_client("udhcpc", cns)
    disc = scap.wait_for(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == cns.mac, 10, "the relayed DISCOVER")
    d = disc[0]
    assert d.sport == 1067 and d.dport == 67, d.describe()
    assert d.dhcp.options.get(dp.OPT_RELAY_AGENT) == sub(1, b"rd0") + sub(19, b""), d.describe()
    offer = scap.wait_for(lambda f: f.dhcp.op == 2 and f.dhcp.chaddr == cns.mac, 10, "the server's OFFER")
    note(f"{server}: OFFER sent to {offer[0].dst_ip}:{offer[0].dport}")
    if offer[0].dport != 1067:
        assert server == "dhcpd", offer[0].describe()
        pytest.xfail(f"Debian's ISC dhcpd 4.4.3 answers to port {offer[0].dport}: built without "
                     "RFC 8357 relay-port support (--enable-relay-port)")
    ev = cl.wait_bound(timeout=20)
    assert dp.ip_in(ev.get("ip", ""), L.POOL_START, L.POOL_END), ev
    no_option82_reached(ccap)


def test_address_among_several_and_following_it(lab):
    """`address = "10.77.1.254"`, rd0's second address: giaddr is that address; removed,
    cdra waits (a new client gets nothing relayed); added back, clients are served with it
    again."""
    L.run(["ip", "-n", lab.rly, "addr", "add", "10.77.1.254/24", "dev", L.DOWN_IF])
    srv, scap, relay = start(lab, "kea", address="10.77.1.254")
    cl, ccap, ip = bound(lab)
    reqs = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == cl.cns.mac)
    assert reqs and all(f.dhcp.giaddr == "10.77.1.254" for f in reqs), L.describe_frames(reqs)
    L.run(["ip", "-n", lab.rly, "addr", "del", "10.77.1.254/24", "dev", L.DOWN_IF])
    relay.proc.wait_log("does not have its configured address 10.77.1.254", 5)
    cns2 = lab.add_client()
    cl2 = lab.start_client("udhcpc", cns2)
    time.sleep(3)
    assert not scap.dhcp(lambda f: f.dhcp.chaddr == cns2.mac), "relayed while the address was gone"
    L.run(["ip", "-n", lab.rly, "addr", "add", "10.77.1.254/24", "dev", L.DOWN_IF])
    ev = cl2.wait_bound(timeout=25)
    assert dp.ip_in(ev.get("ip", ""), L.POOL_START, L.POOL_END), ev
    reqs = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == cns2.mac)
    assert reqs and all(f.dhcp.giaddr == "10.77.1.254" for f in reqs), L.describe_frames(reqs)


# --------------------------------------------------------------------------- VRFs

def vrf_supported(lab: L.Lab) -> bool:
    r = L.run(["ip", "-n", lab.rly, "link", "add", "vrf-probe", "type", "vrf", "table", "99"], check=False)
    if r.returncode != 0:
        return False
    L.run(["ip", "-n", lab.rly, "link", "del", "vrf-probe"])
    return True


def need_vrf(lab: L.Lab) -> None:
    if not vrf_supported(lab):
        pytest.skip("this kernel has no VRF devices (CONFIG_NET_VRF): `ip link add X type vrf` fails")


def put_in_vrf(lab: L.Lab, vrf: str, table: int, *devs: str) -> None:
    """Create VRF `vrf` (routing table `table`, an unreachable default so nothing leaks to
    the main table) in the relay namespace and enslave `devs` (their addresses and routes
    move into the table)."""
    cmds = [f"link add {vrf} type vrf table {table}", f"link set {vrf} up",
            f"route add table {table} unreachable default metric 4278198272"]
    cmds += [f"link set {d} master {vrf}" for d in devs]
    L.run(["ip", "-n", lab.rly, "-batch", "-"], input="\n".join(cmds) + "\n")


def assert_unreachable_from_default_vrf(lab: L.Lab, addr: str) -> None:
    """A UDP send from the relay namespace's default VRF to `addr` has no route."""
    with L.in_netns(lab.rly):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(OSError):
            s.sendto(b"x", (addr, 9))
    finally:
        s.close()


@pytest.mark.parametrize("mode", ["relay", "proxy"])
def test_servers_behind_a_vrf(lab, mode):
    """ru0 enslaved to vrf-srv (table 10): the server is reachable only through the VRF.
    `[[upstream]] vrf = "vrf-srv"` with `source_interface = "ru0"` (giaddr in the servers'
    VRF, link selection naming rd0): Kea answers and the client binds, in relay and proxy
    mode."""
    need_vrf(lab)
    put_in_vrf(lab, "vrf-srv", 10, L.UP_IF)
    L.run(["ip", "-n", lab.srv, "route", "del", L.CLIENT_NET])
    assert_unreachable_from_default_vrf(lab, L.SERVER_IP)
    kw = L.proxy_relay_kw(lab) if mode == "proxy" else {}
    srv, scap, relay = start(lab, "kea", option82_insert=True, upstream_keys={"vrf": "vrf-srv"},
                             downstream_keys={"source_interface": L.UP_IF}, **kw)
    cl, ccap, ip = bound(lab)
    reqs = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == cl.cns.mac)
    assert reqs and all(f.dhcp.giaddr == L.RELAY_UP_IP for f in reqs), L.describe_frames(reqs)
    no_option82_reached(ccap)


def test_vrf_created_after_start(lab):
    """cdra starts with `vrf = "vrf-srv"` before the VRF exists (its server socket is
    parked); the VRF is created and ru0 enslaved: the socket follows, clients are served."""
    need_vrf(lab)
    L.run(["ip", "-n", lab.srv, "route", "del", L.CLIENT_NET])
    srv, scap, relay = start(lab, "kea", option82_insert=True, upstream_keys={"vrf": "vrf-srv"},
                             downstream_keys={"source_interface": L.UP_IF})
    relay.proc.wait_log("the servers' VRF device does not exist", 5)
    put_in_vrf(lab, "vrf-srv", 10, L.UP_IF)
    relay.proc.wait_log("server-facing socket moved", 5)
    bound(lab)


def test_downstream_enslaved_to_a_vrf(lab):
    """rd0 and ru0 both in vrf-blue (the relay serves a tenant VRF): `vrf = "vrf-blue"`,
    and VSS names the tenant (RFC 6607 type 0, "vrf-blue") with its control sub-option."""
    need_vrf(lab)
    put_in_vrf(lab, "vrf-blue", 20, L.DOWN_IF, L.UP_IF)
    srv, scap, relay = start(lab, "kea", option82_insert=True, upstream_keys={"vrf": "vrf-blue"},
                             option82_keys={"vss": True})
    cl, ccap, ip = bound(lab)
    disc = requests_of(scap, cl.cns.mac, dp.DISCOVER)
    assert disc[0].dhcp.giaddr == L.RELAY_DOWN_IP
    assert disc[0].dhcp.options.get(dp.OPT_RELAY_AGENT) == (sub(1, b"rd0") + sub(151, b"\x00vrf-blue")
                                                            + sub(152, b"")), disc[0].describe()


def test_server_socket_bound_to_its_device(lab):
    """Runs without VRF support: the same socket path as a VRF, with the servers reached
    through one device only. ru0's connected route moves from the main table to table 10,
    used only for traffic leaving or arriving on ru0 (`ip rule oif/iif ru0`): a socket in
    the default VRF cannot reach the server (checked), the one bound to `vrf = "ru0"` can,
    and receives the server's replies. Relay mode and the proxy's renewals upstream."""
    L.run(["ip", "-n", lab.rly, "-batch", "-"], input="\n".join([
        f"route del 10.77.0.0/24 dev {L.UP_IF} table main",
        f"route add 10.77.0.0/24 dev {L.UP_IF} table 10",
        f"rule add oif {L.UP_IF} lookup 10 pref 100",
        f"rule add iif {L.UP_IF} lookup 10 pref 101",
    ]) + "\n")
    assert_unreachable_from_default_vrf(lab, L.SERVER_IP)
    srv, scap, relay = start(lab, "kea", upstream_keys={"vrf": L.UP_IF})
    cl, ccap, ip = bound(lab)
    reqs = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == cl.cns.mac)
    assert reqs and all(f.src_ip == L.RELAY_UP_IP and f.dhcp.giaddr == L.RELAY_DOWN_IP for f in reqs)
    relay.check_alive()
