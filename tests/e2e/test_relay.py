"""End-to-end tests of the relay under test (cdra, or ISC dhcrelay as the lab's baseline)
between real DHCP servers and real DHCP clients, each in its own network namespace.

CDRA_E2E_RELAY=cdra (default) runs $CDRA_BIN; CDRA_E2E_RELAY=dhcrelay runs ISC dhcrelay,
which validates the lab itself. Where cdra is meant to do better than dhcrelay the test
asserts dhcrelay's known behaviour and then reports xfail for it.
"""

from __future__ import annotations

import itertools
import os
import random
import time

import pytest

import dhcp_packets as dp
import lab as L

ALL_SERVERS = ["kea", "dhcpd", "dnsmasq"]
ALL_CLIENTS = ["dhclient", "udhcpc", "dhcpcd"]
SERVERS = [s for s in os.environ.get("CDRA_E2E_SERVERS", ",".join(ALL_SERVERS)).split(",") if s]
CLIENTS = [c for c in os.environ.get("CDRA_E2E_CLIENTS", ",".join(ALL_CLIENTS)).split(",") if c]
RELAY = L.relay_kind()

# dhclient cannot be told to renew: the server hands out T1 = 3 s in renewal tests.
RENEW_T1 = 3


def note(msg: str) -> None:
    """Observations worth seeing with -s / -rP (what the relay did)."""
    print(f"[{RELAY}] {msg}")


def start(lab: L.Lab, server: str, *, server_kw: dict | None = None,
          relay_kw: dict | None = None) -> tuple[L.Server, L.Capture]:
    srv = lab.start_server(server, **(server_kw or {}))
    scap = lab.capture(lab.srv, L.SERVER_IF, "server")
    lab.capture(lab.rly, L.DOWN_IF, "relay-rd0")  # for the diagnostics of a failure
    lab.start_relay(**(relay_kw or {}))
    return srv, scap


def assert_lease(ev: dict) -> str:
    ip = ev.get("ip", "")
    assert dp.ip_in(ip, L.POOL_START, L.POOL_END), f"address {ip!r} not in the pool: {ev}"
    assert ev.get("server_id") == L.SERVER_IP, f"server-id {ev.get('server_id')!r}: {ev}"
    assert ev.get("router", "").split()[:1] == [L.ROUTER], f"router {ev.get('router')!r}: {ev}"
    return ip


def bound_client(lab: L.Lab, kind: str, **kw) -> tuple[L.Client, L.Capture, str]:
    cns = lab.add_client()
    ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
    cl = lab.start_client(kind, cns, **kw)
    ip = assert_lease(cl.wait_bound(timeout=20))
    return cl, ccap, ip


# --------------------------------------------------------------------------- per server x client

@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server", SERVERS)
def test_dora(lab, server, client):
    """Full DISCOVER/OFFER/REQUEST/ACK through the relay; the client holds the address."""
    srv, scap = start(lab, server)
    cl, ccap, ip = bound_client(lab, client)
    L.wait_until(lambda: srv.is_active(ip), 5, what=f"{server} lease for {ip} to be active")

    # Server side: the client's broadcasts arrived relayed (giaddr = relay, hops 1),
    # sent from the relay's upstream address.
    relayed = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == cl.cns.mac)
    assert relayed, "the server saw no request from this client"
    for f in relayed:
        assert f.dhcp.giaddr == L.RELAY_DOWN_IP, f.describe()
        assert f.dhcp.hops == 1, f.describe()
        assert f.src_ip == L.RELAY_UP_IP, f.describe()
    # Client side: OFFER/ACK came from the relay's downstream address.
    replies = ccap.dhcp(lambda f: f.dport == 68 and f.dhcp.msg_type in (dp.OFFER, dp.ACK))
    assert replies, "the client capture shows no OFFER/ACK"
    for f in replies:
        assert f.src_ip == L.RELAY_DOWN_IP and f.sport == 67, f.describe()
        assert f.dhcp.giaddr == L.RELAY_DOWN_IP, f.describe()
        assert dp.OPT_RELAY_AGENT not in f.dhcp.options, f.describe()
    lab.relay.check_alive()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server", SERVERS)
def test_renewal_unicast(lab, server, client):
    """A renewal is unicast by the client to the server and routed by the relay's kernel;
    the server must get it exactly once (dhcrelay's packet socket relays a second copy)."""
    t1 = RENEW_T1 if client == "dhclient" else None
    srv, scap = start(lab, server, server_kw={"renew_time": t1})
    cl, ccap, ip = bound_client(lab, client)
    relay_mac = lab.mac_of(lab.rly, L.DOWN_IF)

    ev = cl.renew(timeout=(t1 or 0) + 10)
    assert ev.get("ip") == ip, f"renewal changed the address: {ev}"
    assert ev.get("server_id") == L.SERVER_IP, ev

    def renewals(f: dp.Frame) -> bool:
        return (f.dhcp.op == 1 and f.dhcp.msg_type == dp.REQUEST and f.dhcp.ciaddr == ip
                and f.dhcp.chaddr == cl.cns.mac)

    # Client side: the renewal left as a unicast to the server, via the relay's MAC.
    out = ccap.wait_for(lambda f: renewals(f) and f.src_ip == ip, 5, "the client's renewal")
    first = out[0]
    assert first.dst_ip == L.SERVER_IP and first.dst_mac == relay_mac, first.describe()
    # Server side: it arrived directly (routed), from the client's address, giaddr 0.
    direct = scap.wait_for(lambda f: renewals(f) and f.src_ip == ip
                           and f.dhcp.giaddr == "0.0.0.0", 5, "the routed renewal")
    d0 = direct[0]
    assert d0.dhcp.hops == 0, d0.describe()
    scap.wait_for(lambda f: f.dhcp.op == 2 and f.dhcp.msg_type == dp.ACK and f.dst_ip == ip
                  and f.dhcp.xid == d0.dhcp.xid, 5, "the server's unicast ACK to the client")
    time.sleep(0.5)  # room for a relayed duplicate to show up
    copies = [f for f in scap.dhcp(renewals)
              if f.dhcp.xid == d0.dhcp.xid and abs(f.ts - d0.ts) < 1.0]
    desc = "\n".join(f.describe() for f in copies)
    lab.relay.check_alive()
    if RELAY == "dhcrelay":
        assert len(copies) == 2, f"expected dhcrelay's duplicate, saw:\n{desc}"
        assert any(f.dhcp.giaddr == L.RELAY_DOWN_IP for f in copies), desc
        note(f"{server}/{client}: server got the renewal twice (routed + relayed copy)")
        pytest.xfail("dhcrelay relays a second copy of unicast renewals (server saw 2)")
    assert len(copies) == 1, f"the server saw the renewal {len(copies)} times:\n{desc}"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server", SERVERS)
def test_release(lab, server, client):
    """DHCPRELEASE reaches the server (unicast, routed) and the lease is freed."""
    srv, scap = start(lab, server)
    cl, ccap, ip = bound_client(lab, client)
    L.wait_until(lambda: srv.is_active(ip), 5, what=f"{server} lease for {ip}")
    cl.release()
    scap.wait_for(lambda f: f.dhcp.msg_type == dp.RELEASE and f.dhcp.ciaddr == ip, 5,
                  "the RELEASE at the server")
    L.wait_until(lambda: srv.is_released(ip), 5, what=f"{server} to release {ip}")
    rel = scap.dhcp(lambda f: f.dhcp.msg_type == dp.RELEASE and f.dhcp.ciaddr == ip)
    note(f"{server}/{client}: server saw {len(rel)} RELEASE copies")
    lab.relay.check_alive()


# --------------------------------------------------------------------------- relay behaviour

@pytest.mark.parametrize("server", SERVERS)
def test_broadcast_flag_client(lab, server):
    """udhcpc -B sets the broadcast flag: the relay must broadcast OFFER and ACK."""
    srv, scap = start(lab, server)
    cl, ccap, ip = bound_client(lab, "udhcpc", broadcast=True)
    reqs = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == cl.cns.mac)
    assert reqs and all(f.dhcp.broadcast for f in reqs), "client did not set the flag"
    replies = ccap.dhcp(lambda f: f.dport == 68 and f.dhcp.msg_type in (dp.OFFER, dp.ACK))
    assert {f.dhcp.msg_type for f in replies} >= {dp.OFFER, dp.ACK}
    for f in replies:
        assert f.dst_mac == "ff:ff:ff:ff:ff:ff" and f.dst_ip == "255.255.255.255", f.describe()
    lab.relay.check_alive()


@pytest.mark.parametrize("server", SERVERS)
def test_nak_delivery(lab, server):
    """Client B (another MAC) does INIT-REBOOT for client A's address: the server NAKs
    (Kea's NAK has the broadcast flag clear) and the relay must deliver it by broadcast."""
    srv, scap = start(lab, server)
    a, _acap, ip_a = bound_client(lab, "udhcpc")
    L.wait_until(lambda: srv.is_active(ip_a), 5, what=f"{server} lease for {ip_a}")
    b = lab.add_client()
    bcap = lab.capture(b.ns, b.iface, f"client{b.index}")
    xid = L.new_xid()
    req = dp.client_message(dp.REQUEST, xid=xid, mac=b.mac, requested_ip=ip_a)
    got = L.raw_exchange(b, req, xid, lambda d: d.msg_type == dp.NAK, timeout=6)
    at_server = scap.dhcp(lambda f: f.dhcp.xid == xid)
    nak_at_server = [f for f in at_server if f.dhcp.msg_type == dp.NAK]
    assert any(f.dhcp.op == 1 for f in at_server), "the relay did not forward the REQUEST"
    assert nak_at_server, (f"{server} sent no NAK for {ip_a} to another client:\n"
                           + "\n".join(f.describe() for f in at_server))
    note(f"{server}: NAK from server has broadcast flag "
         f"{'set' if nak_at_server[0].dhcp.broadcast else 'clear'}")
    naks = [f for f in got if f.dhcp.msg_type == dp.NAK]
    seen = bcap.dhcp(lambda f: f.dhcp.xid == xid and f.dhcp.op == 2)
    note(f"{server}: client B received: " + ("; ".join(f.describe() for f in seen) or "nothing"))
    assert naks, f"client B got no NAK (replies seen: {[f.describe() for f in got]})"
    n = naks[0]
    assert dp.OPT_RELAY_AGENT not in n.dhcp.options
    lab.relay.check_alive()
    broadcast = n.dst_mac == "ff:ff:ff:ff:ff:ff" and n.dst_ip == "255.255.255.255"
    if RELAY == "dhcrelay" and not broadcast and not nak_at_server[0].dhcp.broadcast:
        # Seen with Kea: dhcrelay sends the NAK to chaddr's MAC with IP destination
        # yiaddr = 0.0.0.0. Packet-socket clients take it; it is not a broadcast.
        assert n.dst_mac == b.mac, n.describe()
        pytest.xfail(f"dhcrelay unicasts a flag-clear NAK to chaddr: {n.describe()}")
    assert broadcast, f"NAK not broadcast: {n.describe()}"


@pytest.mark.parametrize("server", SERVERS)
def test_nak_real_client(lab, server):
    """A real dhclient that believes it holds client A's address (INIT-REBOOT) must be
    NAKed through the relay and then get another address at once (not after ~18 s of
    retrying, which is what a relay that drops the NAK causes)."""
    srv, scap = start(lab, server)
    a, _acap, ip_a = bound_client(lab, "udhcpc")
    L.wait_until(lambda: srv.is_active(ip_a), 5, what=f"{server} lease for {ip_a}")
    b = lab.add_client()
    bcap = lab.capture(b.ns, b.iface, f"client{b.index}")
    t0 = time.monotonic()
    cl = lab.start_client("dhclient", b, init_reboot_ip=ip_a)
    ev = cl.wait_event({"bound"}, timeout=12, what="dhclient B to be bound after the NAK")
    took = time.monotonic() - t0
    ip_b = assert_lease(ev)
    assert ip_b != ip_a, f"B was given A's address {ip_a}"
    naks = bcap.dhcp(lambda f: f.dport == 68 and f.dhcp.msg_type == dp.NAK)
    assert naks, "B got a new lease without a NAK first"
    note(f"{server}: dhclient B NAKed and re-bound to {ip_b} in {took:.2f}s; NAK at B: "
         f"{naks[0].describe()}")
    assert took < 8, f"dhclient B needed {took:.1f}s (NAK lost?)"
    lab.relay.check_alive()


@pytest.mark.parametrize("server", SERVERS)
def test_option82_insert(lab, server):
    """insert = true: requests reach the server with option 82 (circuit-id = "rd0", and
    remote-id where the relay supports it); the client never sees option 82."""
    srv, scap = start(lab, server, relay_kw={"option82_insert": True, "remote_id": "cdra-lab"})
    cl, ccap, ip = bound_client(lab, "udhcpc")
    reqs = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == cl.cns.mac
                     and f.dhcp.giaddr == L.RELAY_DOWN_IP)
    assert reqs
    for f in reqs:
        subs = f.dhcp.agent_suboptions()
        assert subs is not None, f"no option 82: {f.describe()}"
        assert subs.get(1) == b"rd0", f"circuit-id {subs.get(1)!r}: {f.describe()}"
        if RELAY == "cdra":
            assert subs.get(2) == b"cdra-lab", f"remote-id {subs.get(2)!r}: {f.describe()}"
    echoed = scap.dhcp(lambda f: f.dhcp.op == 2 and dp.OPT_RELAY_AGENT in f.dhcp.options)
    note(f"{server}: {len(echoed)} server replies echo option 82; relayed request carried "
         f"{reqs[0].dhcp.agent_suboptions()}")
    to_client = ccap.dhcp(lambda f: f.dport == 68)
    assert to_client
    for f in to_client:
        assert dp.OPT_RELAY_AGENT not in f.dhcp.options, f"option 82 leaked: {f.describe()}"
    lab.relay.check_alive()


def test_hop_limit(lab):
    """max_hops = 4: a DISCOVER arriving with hops = 4 is dropped, hops = 3 goes out with 4."""
    srv, scap = start(lab, "kea", relay_kw={"max_hops": 4})
    cns = lab.add_client()
    x4, x3 = L.new_xid(), L.new_xid()
    frames = [L.client_broadcast_frame(cns, dp.client_message(dp.DISCOVER, xid=x, mac=cns.mac,
                                                              hops=h))
              for x, h in ((x4, 4), (x3, 3))]
    L.send_frames(cns, frames)
    fwd = scap.wait_for(lambda f: f.dhcp.xid == x3 and f.dhcp.op == 1, 5,
                        "the hops=3 DISCOVER at the server")
    assert fwd[0].dhcp.hops == 4, fwd[0].describe()
    assert fwd[0].dhcp.giaddr == L.RELAY_DOWN_IP, fwd[0].describe()
    time.sleep(1.0)
    leaked = scap.dhcp(lambda f: f.dhcp.xid == x4)
    assert not leaked, "the hops=4 DISCOVER was forwarded:\n" + "\n".join(
        f.describe() for f in leaked)
    lab.relay.check_alive()


def test_hostile_storm(lab):
    """~2000 malformed frames (plus some valid DISCOVERs) from a client namespace, once
    paced and once flat out: the relay survives and a real client still gets a lease."""
    srv, scap = start(lab, "kea")
    attacker = lab.add_client()
    relay_mac = lab.mac_of(lab.rly, L.DOWN_IF)
    rng = random.Random(int(os.environ.get("CDRA_E2E_SEED", "4242")))
    frames: list[bytes] = []
    kinds: dict[str, int] = {}
    kind_of_xid: dict[bytes, str] = {}
    for kind, payload in itertools.islice(dp.hostile_payloads(rng, relay_ip=L.RELAY_DOWN_IP),
                                          2000):
        if len(payload) >= 8:
            kind_of_xid.setdefault(payload[4:8], kind)
        if rng.random() < 0.15:  # unicast to the relay itself
            fr = dp.udp_ip_frame(payload, src_mac=attacker.mac, dst_mac=relay_mac,
                                 src_ip="10.77.1.250", dst_ip=L.RELAY_DOWN_IP)
        else:
            fr = dp.udp_ip_frame(payload, src_mac=dp.random_mac(rng))
        if rng.random() < 0.1:
            kind, fr = dp.mangle_frame(fr, rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        frames.append(fr)
    t0 = time.monotonic()
    # Paced, so that the relay really parses (nearly) every frame...
    sent = L.send_frames(attacker, frames, burst=50, pause=0.003)
    note(f"storm: sent {sent} frames in {time.monotonic() - t0:.2f}s: {sorted(kinds.items())}")
    time.sleep(0.3)
    lab.relay.check_alive()
    # ...then the same again as fast as the socket takes them (receive-buffer overrun).
    t0 = time.monotonic()
    sent = L.send_frames(attacker, frames)
    note(f"storm: flooded {sent} frames in {time.monotonic() - t0:.2f}s")
    time.sleep(0.5)
    lab.relay.check_alive()
    # What the relay passed on to the server, by kind of input.
    from_relay = [f for f in scap.frames() if f.src_ip == L.RELAY_UP_IP and f.dport == 67]
    passed: dict[str, int] = {}
    for f in from_relay:
        k = kind_of_xid.get(f.payload[4:8], "?") if len(f.payload) >= 8 else "?"
        passed[k] = passed.get(k, 0) + 1
    note(f"storm: relay forwarded {len(from_relay)} packets: {sorted(passed.items())}")
    if RELAY == "cdra":
        bad = [f for f in from_relay if len(f.payload) < 2 or f.payload[0] != 1
               or f.payload[3] > 4]
        assert not bad, "forwarded a BOOTREPLY or a packet over the hop limit:\n" + \
            "\n".join(f.describe() for f in bad[:10])
    cl, ccap, ip = bound_client(lab, "udhcpc")
    lab.relay.check_alive()


def test_bootp_without_cookie(lab):
    """Issue 9, defect 10: a classic RFC 951 BOOTREQUEST (no magic cookie, vend field all
    zero, broadcast flag clear) from a client namespace is relayed (RFC 1542 4.1.1) to ISC
    dhcpd (`range dynamic-bootp`) with giaddr set and hops 1, and otherwise unchanged: no
    option 82 although insertion is on (there is no DHCP options field to put it in), the
    300-byte message and its vend field as sent. dhcpd's BOOTREPLY reaches the client,
    from the relay's downstream address, unicast to its MAC."""
    srv, scap = start(lab, "dhcpd", server_kw={"dynamic_bootp": True},
                      relay_kw={"option82_insert": True, "remote_id": "cdra-lab"})
    cns = lab.add_client()
    ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
    xid = L.new_xid()
    req = dp.plain_bootp_request(xid=xid, mac=cns.mac)
    got = L.raw_exchange(cns, req, xid, lambda d: d.op == 2, timeout=8)

    at_server = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.xid == xid)
    assert at_server, ("the BOOTREQUEST without cookie never reached dhcpd (cdra counted "
                       "it malformed?):\n" + scap.summary())
    fwd = at_server[0]
    assert fwd.src_ip == L.RELAY_UP_IP and fwd.dhcp.giaddr == L.RELAY_DOWN_IP, fwd.describe()
    assert fwd.dhcp.hops == 1 and fwd.dhcp.chaddr == cns.mac, fwd.describe()
    assert not fwd.dhcp.cookie, f"the relay added a cookie/options: {fwd.describe()}"
    assert len(fwd.payload) == len(req) and fwd.payload[236:] == req[236:], (
        f"vend field or length changed: {len(fwd.payload)} bytes, vend "
        f"{fwd.payload[236:].hex()}")
    assert fwd.payload[:3] == req[:3] and fwd.payload[4:24] == req[4:24] \
        and fwd.payload[28:236] == req[28:236], "fields other than hops/giaddr changed"
    if len(at_server) > 1:
        note(f"dhcpd saw {len(at_server)} copies (client retransmissions)")

    replies = scap.dhcp(lambda f: f.dhcp.op == 2 and f.dhcp.xid == xid)
    assert replies, "dhcpd sent no BOOTREPLY:\n" + srv.proc.text()[-2000:]
    assert got, ("dhcpd's BOOTREPLY did not reach the client. At the server:\n"
                 + L.describe_frames(replies) + "\nclient capture:\n"
                 + L.describe_frames(ccap.dhcp(lambda f: f.dhcp.xid == xid)))
    r = got[0]
    note(f"BOOTREPLY at the client: {r.describe()} (server sent it "
         f"{'with' if replies[0].dhcp.cookie else 'without'} the cookie, options "
         f"{replies[0].dhcp.option_order})")
    assert r.dhcp.msg_type is None, f"a DHCP reply to a BOOTP request: {r.describe()}"
    assert dp.ip_in(r.dhcp.yiaddr, L.POOL_START, L.POOL_END), r.describe()
    assert r.src_ip == L.RELAY_DOWN_IP and r.sport == 67, r.describe()
    assert r.dst_mac == cns.mac and r.dst_ip == r.dhcp.yiaddr, r.describe()
    assert dp.OPT_RELAY_AGENT not in r.dhcp.options, r.describe()
    lab.relay.check_alive()
