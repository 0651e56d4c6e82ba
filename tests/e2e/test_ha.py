"""Kea HA pairs as the servers (issue 15 item 1): cdra in relay, proxy, spoofing and pool
mode in front of a Kea 2.2 pair in hot-standby and in load-balancing mode, with
`server_selection` "all" and "failover".

The pair: server1 (primary) in the server namespace, server2 (standby / secondary) in the
second one, the same subnet and pool; they talk to each other through Kea's own HTTP
listener (HA multi-threading with `http-dedicated-listener`, no kea-ctrl-agent), routed
through the relay namespace (lab.Lab.start_kea_ha_pair). Load-balancing splits the pool:
server1's clients get 10.77.1.100-150, server2's 10.77.1.151-200.

Each test binds known clients (in load-balancing mode one of each server's half), checks
that every client was served and that no server was found down for the clients it declines
(`cdra_server_up`), then kills the primary (SIGKILL) and checks:
- the known clients never notice: in the caching modes a renewal is answered (by cdra),
  and a reboot keeps the address in every mode (relay mode: from the partner, which has
  the lease through HA's lease updates);
- a new client (of the dead server's half, in load-balancing mode) is served by the
  partner once it is in partner-down;
- nothing is answered twice: every capture at every client shows, per transaction, the
  replies of one server only.

The RFC 5107 test: with `server_id_override`, Kea 2.2 accepts a REQUEST naming cdra's
downstream address; in front of a load-balancing pair exactly one server ACKs it.

These tests need cdra (they are skipped for CDRA_E2E_RELAY=dhcrelay) and Kea.
"""

from __future__ import annotations

import signal
import time

import pytest

import dhcp_packets as dp
import lab as L
import test_pool as TP

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra",
                                reason="cdra's modes (CDRA_E2E_RELAY=cdra)")

HS, LB = "hot-standby", "load-balancing"
# Long server leases: nothing comes near a lease's T1 during a test.
SERVER_LEASE = 600
# cdra finds an unanswering server down after 3 requests unanswered for this long (the
# default). Not shorter: a request another server answered is not held against a server
# that answered anything within it before (crates/core/src/servers.rs), and in these tests
# clients come seconds apart.
SERVER_TIMEOUT = "10s"
# Chosen by their load-balancing hash (udhcpc sends client id 01+MAC; Kea 2.2's HA hashes
# it): each is always in the same half.
HALF1 = ["02:77:00:00:01:01", "02:77:00:00:03:01", "02:77:00:00:05:01"]
HALF2 = ["02:77:00:00:00:01", "02:77:00:00:02:01"]
POOL_HALF1 = (L.POOL_START, "10.77.1.150")
POOL_HALF2 = ("10.77.1.151", L.POOL_END)
POOL_SIZE = 2
# Pool mode: longer than udhcpc's first retransmission (2 s), so that in `failover` a new
# client's retransmission, which also goes to the partner, is answered before the pool
# steps in.
FALLBACK_AFTER = "5s"


def note(msg: str) -> None:
    print(f"[ha] {msg}")


def start(lab: L.Lab, ha_mode: str, mode: str, selection: str) -> tuple[L.Kea, L.Kea]:
    s1, s2 = lab.start_kea_ha_pair(ha_mode, lease_time=SERVER_LEASE)
    lab.capture(lab.srv, L.SERVER_IF, "server1")
    lab.capture(lab.srv2, L.SERVER2_IF, "server2")
    kw = dict(servers=(L.SERVER_IP, L.SERVER2_IP), extra_upstream=(L.UP2_IF,),
              server_selection=selection, relay_keys={"server_timeout": SERVER_TIMEOUT})
    if mode == "relay":
        lab.start_relay(metrics_listen=L.METRICS_LISTEN, **kw)
    elif mode == "pool":
        lab.start_relay(**L.proxy_relay_kw(lab, mode="pool", sections={"pool": {
            "size": POOL_SIZE, "assign": "outage", "fallback_after": FALLBACK_AFTER,
            "client_lease": "20s"}}, **kw))
        TP.wait_pool_leases(lab, s1, POOL_SIZE)
    else:
        # Proxy mode in front of a load-balancing pair: `offer_choice` "spread" (with `all`;
        # its hash may prefer the server that declines the client: the partner's OFFER is
        # passed on when offer_window closes) and "longest_lease" (with `failover`).
        proxy = ({"offer_choice": "spread" if selection == "all" else "longest_lease"}
                 if mode == "proxy" and ha_mode == LB else None)
        lab.start_relay(**L.proxy_relay_kw(lab, mode=mode, proxy=proxy, **kw))
        if mode == "spoof":
            lab.relay.proc.wait_log("intercepting client unicasts to the servers", 5)
    return s1, s2


def bind(lab: L.Lab, mac: str, mode: str) -> tuple[L.Client, L.Capture, str, str]:
    """A udhcpc client with MAC `mac`, bound: (client, its capture, address, the server
    identifier it holds)."""
    cns = lab.add_client(mac)
    ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
    cl = lab.start_client("udhcpc", cns)
    ev = cl.wait_bound(timeout=25)
    ip, sid = ev.get("ip", ""), ev.get("server_id", "")
    assert dp.ip_in(ip, L.POOL_START, L.POOL_END), ev
    want = {L.SERVER_IP, L.SERVER2_IP} if mode in ("relay", "spoof") else {L.RELAY_DOWN_IP}
    assert sid in want, f"{mac}: server identifier {sid}, expected one of {want}: {ev}"
    return cl, ccap, ip, sid


def answered_once(ccap: L.Capture, mac: str) -> None:
    """Per transaction (xid), the client received the replies of one server only: the
    pair never answered a client twice."""
    by_xid: dict[int, set[tuple[str, str | None]]] = {}
    for f in L.to_client(ccap, mac):
        if f.dhcp.msg_type in (dp.OFFER, dp.ACK, dp.NAK):
            by_xid.setdefault(f.dhcp.xid, set()).add((f.src_ip, f.dhcp.server_id))
    twice = {x: s for x, s in by_xid.items() if len(s) > 1}
    assert not twice, f"{mac} was answered by two servers: {twice}\n" + \
        L.describe_frames(L.to_client(ccap, mac))


def servers_up(lab: L.Lab) -> dict[str, float]:
    m = lab.relay.metrics()
    return {ip: m.get(f'cdra_server_up{{server="{ip}"}}', -1.0)
            for ip in (L.SERVER_IP, L.SERVER2_IP)}


# (HA mode, cdra mode, selection): every mode with each selection in front of a
# load-balancing pair; in front of a hot-standby pair every mode with `failover`, and `all`
# in relay and pool mode only (proxy and spoofing mode with `all` forward exactly as relay
# mode does; pool mode also decides by the servers' liveness: left in). 14 cases, ~2.5 min.
CASES = ([(HS, mode, "failover") for mode in ("relay", "proxy", "spoof", "pool")]
         + [(HS, mode, "all") for mode in ("relay", "pool")]
         + [(LB, mode, sel) for mode in ("relay", "proxy", "spoof", "pool")
            for sel in ("all", "failover")])


@pytest.mark.parametrize("ha_mode,mode,selection", CASES,
                         ids=[f"{h.split('-')[0]}-{m}-{s}" for h, m, s in CASES])
def test_kea_ha_primary_dies(lab, ha_mode, mode, selection):
    s1, s2 = start(lab, ha_mode, mode, selection)
    t0 = time.monotonic()
    # Load-balancing: two clients of server2's half, so that in `failover` server1 ignores
    # at least three requests over more than `server_timeout` (which made it "down").
    macs = [HALF1[0], HALF2[0], HALF2[1]] if ha_mode == LB else [HALF1[0], HALF2[0]]
    known = [bind(lab, mac, mode) for mac in macs]
    if ha_mode == LB:
        # Each half served by its own server (the pool is split between them).
        for (cl, _, ip, sid), half, server in zip(
                known, (POOL_HALF1, POOL_HALF2, POOL_HALF2),
                (L.SERVER_IP, L.SERVER2_IP, L.SERVER2_IP)):
            assert dp.ip_in(ip, *half), f"{cl.cns.mac} got {ip}, not from {server}'s half"
            if mode in ("relay", "spoof"):
                assert sid == server, (cl.cns.mac, ip, sid)
    else:
        for cl, _, ip, sid in known:
            assert mode not in ("relay", "spoof") or sid == L.SERVER_IP, (cl.cns.mac, sid)
    up = servers_up(lab)
    if ha_mode == LB or selection == "failover":
        # Neither half of a load-balancing pair is down for the clients it declines; in
        # failover the standby was never asked (nothing unanswered).
        assert up == {L.SERVER_IP: 1.0, L.SERVER2_IP: 1.0}, up
    note(f"{ha_mode} {mode} {selection}: bound "
         + ", ".join(f"{c.cns.mac}={ip} ({sid})" for c, _, ip, sid in known)
         + f" in {time.monotonic() - t0:.1f}s; servers up: {up}")

    # The primary dies.
    s1.proc.stop(signal.SIGKILL)
    killed = time.monotonic()
    ncns = lab.add_client(HALF1[1])
    ncap = lab.capture(ncns.ns, ncns.iface, f"client{ncns.index}")
    new = lab.start_client("udhcpc", ncns)
    L.wait_until(lambda: s2.ha_state() == "partner-down", 15, interval=0.2,
                 what="server2 in partner-down")
    note(f"server2 in partner-down {time.monotonic() - killed:.1f}s after the kill")

    problems: list[str] = []
    if mode != "relay":
        # Cached clients never notice: a renewal is answered, by cdra, at once.
        for cl, ccap, ip, sid in known:
            try:
                ev = cl.renew(timeout=10)
                if ev.get("ip") != ip:
                    problems.append(f"{cl.cns.mac} renewed to another address: {ev}")
            except (L.LabError, AssertionError) as e:
                problems.append(f"{cl.cns.mac}: no renewal with the primary dead: {e}")
    # A reboot keeps the address (relay mode: the partner has the lease).
    for cl, ccap, ip, sid in known:
        n = cl.restart()
        try:
            ev = cl.wait_bound(timeout=20, after=n)
            if ev.get("ip") != ip:
                problems.append(f"{cl.cns.mac} lost {ip} on reboot: {ev}")
        except L.LabError as e:
            problems.append(f"{cl.cns.mac}: no lease on reboot with the primary dead: {e}")
    # The new client is served by the partner.
    ev = new.wait_bound(timeout=25)
    served = time.monotonic() - killed
    ip = ev.get("ip", "")
    assert dp.ip_in(ip, L.POOL_START, L.POOL_END), ev
    assert ip not in {k[2] for k in known}, ev
    if mode in ("relay", "spoof"):
        assert ev.get("server_id") == L.SERVER2_IP, ev
    assert s2.is_active(ip), f"server2 has no lease for {ip}: {s2.leases_text()}"
    from_pool = bool(s2.lease_table().get(ip)) and s2.lease_table()[ip].is_pool()
    if mode != "pool":
        assert not from_pool, ev
    # Pool mode: a new client that no OFFER reached within fallback_after is served from
    # cdra's pool (its lease at server2 under a pool identity) and moved onto a lease of
    # its own at its first renewal; either is fine here.
    for cl, ccap, *_ in known:
        answered_once(ccap, cl.cns.mac)
    answered_once(ncap, ncns.mac)
    note(f"new client {ncns.mac} got {ip} from {'the pool' if from_pool else 'server2'} "
         f"{served:.1f}s after the kill; "
         f"servers up: {servers_up(lab)}")
    s2.check_alive()
    lab.relay.check_alive()
    assert not problems, "\n".join(problems)


def test_kea_ha_server_id_override(lab):
    """RFC 5107 with a load-balancing pair: cdra in relay mode (`all`) adds sub-option 11
    (10.77.1.1). Kea 2.2 does not put it in option 54 (its own address stays there), but it
    accepts a REQUEST naming it: each client's REQUEST for 10.77.1.1 is ACKed by exactly one
    server, the one whose half the client is in; after the primary dies, by the partner."""
    s1, s2 = lab.start_kea_ha_pair(LB, lease_time=SERVER_LEASE)
    scap1 = lab.capture(lab.srv, L.SERVER_IF, "server1")
    lab.capture(lab.srv2, L.SERVER2_IF, "server2")
    lab.start_relay(servers=(L.SERVER_IP, L.SERVER2_IP), extra_upstream=(L.UP2_IF,),
                    option82_insert=True, server_id_override=True,
                    relay_keys={"server_timeout": SERVER_TIMEOUT})
    known = [bind(lab, mac, "relay") for mac in (HALF1[0], HALF2[0])]
    disc = [f for f in L.from_client(scap1, known[0][0].cns.mac) if f.dhcp.msg_type == dp.DISCOVER]
    assert disc and (disc[0].dhcp.agent_suboptions() or {}).get(11) == bytes([10, 77, 1, 1]), \
        L.describe_frames(disc)

    def request_naming_cdra(cl: L.Client, ip: str) -> list[str]:
        """The servers that ACKed a REQUEST naming 10.77.1.1 (collected for 3 s)."""
        xid = L.new_xid()
        mac = bytes.fromhex(cl.cns.mac.replace(":", ""))
        req = dp.client_message(dp.REQUEST, xid=xid, mac=cl.cns.mac, requested_ip=ip,
                                server_id=L.RELAY_DOWN_IP, client_id=b"\x01" + mac)
        got = L.raw_exchange(cl.cns, req, xid, lambda d: False, timeout=3, retransmit=10)
        acks = [f for f in got if f.dhcp.msg_type == dp.ACK]
        assert all(f.dhcp.yiaddr == ip for f in acks), L.describe_frames(got)
        assert not [f for f in got if f.dhcp.msg_type == dp.NAK], L.describe_frames(got)
        # cdra delivers every reply from 10.77.1.1; option 54 names the server (Kea 2.2
        # keeps its own address there, sub-option 11 notwithstanding).
        return sorted(str(f.dhcp.server_id) for f in acks)

    for (cl, _, ip, sid), server in zip(known, (L.SERVER_IP, L.SERVER2_IP)):
        assert sid == server, (cl.cns.mac, sid)
        acked = request_naming_cdra(cl, ip)
        assert acked == [server], f"{cl.cns.mac} ({ip}): ACKed by {acked}, expected {server} alone"
    s1.proc.stop(signal.SIGKILL)
    L.wait_until(lambda: s2.ha_state() == "partner-down", 15, interval=0.2,
                 what="server2 in partner-down")
    cl, _, ip, _ = known[0]
    acked = request_naming_cdra(cl, ip)
    assert acked == [L.SERVER2_IP], f"after the kill, {ip} ACKed by {acked}"
    note(f"REQUESTs naming 10.77.1.1 ACKed once each, by the client's own server; after the "
         f"primary's death by the partner")
    lab.relay.check_alive()
