"""Automated lease renewals (issue "automated lease renewals", paper 2.3, 3.3, 5.3, A.2).

Kea gives one long lease (valid-lifetime 3600 s); cdra gives its clients short leases
(`client_lease = "20s"`, so T1 = 10 s) and answers their renewals itself: Kea receives no
renewal. When a client goes away without a release and its address falls silent, cdra
releases the long lease at Kea shortly after the short lease lapses; a client whose address
still answers ARP is not released. A client that renews only after its short lease lapsed
(udhcpc with `client_lease = "10s"`) is still answered locally (issue 9, defect 1).

These tests need cdra (they are skipped for CDRA_E2E_RELAY=dhcrelay).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

import dhcp_packets as dp
import lab as L

ALL_SERVERS = ["kea", "dhcpd", "dnsmasq"]
ALL_CLIENTS = ["dhclient", "udhcpc", "dhcpcd"]
SERVERS = [s for s in os.environ.get("CDRA_E2E_SERVERS", ",".join(ALL_SERVERS)).split(",") if s]
CLIENTS = [c for c in os.environ.get("CDRA_E2E_CLIENTS", ",".join(ALL_CLIENTS)).split(",") if c]

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra",
                                reason="automated lease renewals are cdra's (CDRA_E2E_RELAY=cdra)")

KEA_LEASE = 3600
CLIENT_LEASE = 20
PROXY = {"client_lease": f"{CLIENT_LEASE}s"}
RENEWALS = 3            # at T1 = 10 s (udhcpc: 15 s)
LAPSE_GRACE = 2         # cdra waits this long after a short lease ends before probing
RELEASE_WITHIN = 35     # after the lapse
LAPSING_LEASE = 10      # issue 9 defect 1: shorter than udhcpc's 30 s floor
LAPSING_WATCH = 65      # s after the first ACK: four udhcpc renewals (every 15 s)


def note(msg: str) -> None:
    print(f"[renewals] {msg}")


def next_event(cl: L.Client, after: int, kinds: set[str], timeout: float,
               what: str) -> tuple[dict[str, str], int]:
    """The first hook record of one of `kinds` at index >= `after`, and the index after it."""
    def find():
        lab = cl.lab
        lab.fail_fast()
        evs = cl.events()
        for i in range(after, len(evs)):
            if evs[i]["kind"] in kinds:
                return evs[i], i + 1
        return None
    return L.wait_until(find, timeout, what=what)


def requests_after_ack(scap: L.Capture, mac: str) -> tuple[dp.Frame, list[dp.Frame]]:
    acks = scap.dhcp(lambda f: f.dhcp.msg_type == dp.ACK and f.dhcp.chaddr == mac)
    assert acks, f"the server never ACKed {mac}"
    return acks[0], L.from_client(scap, mac, since=acks[0].ts + 0.0005)


@pytest.mark.parametrize("client", CLIENTS)
def test_short_leases_renewed_locally(lab, client):
    """The client gets a 20 s lease (in the relayed first ACK and in every local one) and
    renews at T1 again and again; cdra answers every renewal; Kea receives one DISCOVER and
    one REQUEST from it, and no renewal (statistics and capture)."""
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": KEA_LEASE}, proxy=PROXY)
    cl, ccap, ip = L.proxy_bound_client(lab, client)
    first = cl.lease
    assert first.get("lease") == str(CLIENT_LEASE), f"first lease not shortened: {first}"
    L.wait_until(lambda: srv.is_active(ip), 5, what=f"Kea lease for {ip}")
    kea_lease = srv.lease(ip) or {}
    assert kea_lease.get("valid-lft") == KEA_LEASE, kea_lease
    requests_at_kea = srv.statistic("pkt4-request-received")

    # Renewals come every T1 = 10 s (udhcpc: every 15 s); the hook records each one.
    renewals: list[dict[str, str]] = []
    n = len(cl.events())
    for i in range(RENEWALS):
        try:
            ev, n = next_event(cl, n, {"renew", "rebind", "bound", "expire", "fail", "nak"},
                               CLIENT_LEASE + 2, f"{client} renewal {i + 1}")
        except L.LabError:
            break
        renewals.append(ev)
    kinds = [e["kind"] for e in renewals]
    note(f"{client}: events after the first lease: {kinds} leases "
         f"{[e.get('lease') for e in renewals]}")
    first_ack, later = requests_after_ack(scap, cl.cns.mac)
    assert kinds == ["renew"] * RENEWALS, (
        f"{client} should have renewed {RENEWALS} times, got {kinds}; requests at Kea after "
        "the first ACK:\n" + L.describe_frames(later) + "\nclient capture:\n"
        + L.describe_frames(ccap.dhcp(lambda f: f.ts > first_ack.ts)))
    for e in renewals:
        assert e.get("ip") == ip and e.get("server_id") == L.RELAY_DOWN_IP, e
        assert e.get("lease") == str(CLIENT_LEASE), f"renewal with lease {e.get('lease')}: {e}"
    rebinds = [f for f in L.from_client(ccap, cl.cns.mac, since=first_ack.ts)
               if f.dhcp.ciaddr == ip and f.dst_ip == "255.255.255.255"]
    assert not rebinds, (
        f"{client} broadcast renewals (REBINDING, which cdra forwards to Kea): it did not take "
        "cdra's answer to its unicast renewal. Client capture:\n"
        + L.describe_frames(ccap.dhcp(lambda f: f.ts > first_ack.ts)))
    assert not later, f"Kea received requests from {client} after the first ACK:\n" + \
        L.describe_frames(later)
    assert srv.statistic("pkt4-request-received") == requests_at_kea, \
        "Kea's pkt4-request-received grew while cdra answered the renewals"
    local = lab.relay.proxy_event("local_renewal")
    assert local >= RENEWALS, f"cdra counted {local} local renewals"
    assert lab.relay.proxy_event("upstream_renewal") == 0
    lab.relay.check_alive()


def test_lapse_releases_silent_client(lab):
    """Client A (udhcpc) is SIGKILLed (no RELEASE) and its address removed; client B
    (dhclient) is SIGKILLed but keeps its address configured, so it still answers ARP.
    After their 20 s leases lapse, cdra probes: A's address is silent and cdra releases it
    at Kea (a DHCPRELEASE from 10.77.0.2, ciaddr = A's address; Kea's lease is gone
    within ~35 s of the lapse). B's address answers: nothing is released."""
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": KEA_LEASE}, proxy=PROXY)
    a, acap, ip_a = L.proxy_bound_client(lab, "udhcpc")
    b, bcap, ip_b = L.proxy_bound_client(lab, "dhclient")
    for ip in (ip_a, ip_b):
        L.wait_until(lambda ip=ip: srv.is_active(ip), 5, what=f"Kea lease for {ip}")
    a.proc.stop(signal.SIGKILL)
    a.cns.flush_addrs()
    b.proc.stop(signal.SIGKILL)
    assert ip_b in b.cns.ipv4_addrs()
    killed = time.time()
    # The short lease ends CLIENT_LEASE after the last ACK (the first one, or a renewal).
    last_ack_a = max(f.ts for f in L.to_client(acap, a.cns.mac) if f.dhcp.msg_type == dp.ACK)
    lapse_a = last_ack_a + CLIENT_LEASE
    note(f"A={ip_a} killed {killed - last_ack_a:.1f}s after its last ACK; B={ip_b} kept")

    rel = scap.wait_for(lambda f: f.dhcp.msg_type == dp.RELEASE and f.dhcp.ciaddr == ip_a,
                        max(1.0, lapse_a + RELEASE_WITHIN - time.time()),
                        "cdra's DHCPRELEASE of A's address at Kea")[0]
    assert rel.src_ip == L.RELAY_UP_IP, rel.describe()
    assert rel.dhcp.chaddr == a.cns.mac, rel.describe()
    assert rel.dhcp.server_id == L.SERVER_IP, rel.describe()
    after_lapse = rel.ts - lapse_a
    assert after_lapse >= 0, f"released {-after_lapse:.1f}s BEFORE A's lease lapsed"
    L.wait_until(lambda: srv.is_released(ip_a), 5, what=f"Kea to drop {ip_a}")
    note(f"A released {after_lapse:.1f}s after its short lease lapsed: {rel.describe()}")

    # B: its lapse is about as late as A's; give the probe time, then nothing released.
    last_ack_b = max(f.ts for f in L.to_client(bcap, b.cns.mac) if f.dhcp.msg_type == dp.ACK)
    settle = last_ack_b + CLIENT_LEASE + LAPSE_GRACE + 4 - time.time()
    if settle > 0:
        time.sleep(settle)
    released_b = scap.dhcp(lambda f: f.dhcp.msg_type == dp.RELEASE and f.dhcp.ciaddr == ip_b)
    assert not released_b, "cdra released B's address although B still answers ARP:\n" + \
        L.describe_frames(released_b)
    assert srv.is_active(ip_b), f"Kea no longer has B's lease for {ip_b}"
    m = lab.relay.metrics()
    assert m.get('cdra_proxy_events_total{event="release_sent"}') == 1, m
    # B's own MAC answered the lapse probe: B is still there, so its record stays too
    # (issue 9, defect 1); another host answering would be lapsed_still_in_use (A.2).
    assert m.get('cdra_proxy_events_total{event="lapsed_client_still_there"}', 0) >= 1, m
    assert m.get('cdra_proxy_events_total{event="lapsed_still_in_use"}', 0) == 0, m
    assert m.get('cdra_clients') == 1, m
    lab.relay.check_alive()


@pytest.mark.parametrize("server", SERVERS)
def test_lapsed_lease_client_still_answered_locally(lab, server):
    """Issue 9, defect 1: with `client_lease = "10s"`, busybox udhcpc raises the lease to
    its 30 s floor and renews every 15 s, each time after cdra's 10 s lease has lapsed and
    cdra's lapse probe has found the address answering ARP from the client's own MAC. The
    client is still there: cdra keeps its record and answers every renewal itself. Over
    65 s after the first exchange the server receives nothing more from the client
    (capture), cdra forwards nothing more and counts no probe_found_in_use, and udhcpc
    keeps its address. (Seen before the fix: Kea received 4 renewals in 65 s and cdra
    counted probes_found_in_use=4.)"""
    srv, scap, rcap = L.start_proxy(lab, server, server_kw={"lease_time": KEA_LEASE},
                                    proxy={"client_lease": f"{LAPSING_LEASE}s"})
    cl, ccap, ip = L.proxy_bound_client(lab, "udhcpc")
    assert cl.lease.get("lease") == str(LAPSING_LEASE), f"first lease not shortened: {cl.lease}"
    L.wait_until(lambda: srv.is_active(ip), 5, what=f"{server} lease for {ip}")
    first_ack, _ = requests_after_ack(scap, cl.cns.mac)
    forwarded = lab.relay.proxy_event("forwarded")
    n = len(cl.events())

    deadline = first_ack.ts + LAPSING_WATCH
    while time.time() < deadline:
        lab.fail_fast()
        assert cl.proc and cl.proc.alive(), "udhcpc exited"
        time.sleep(min(1.0, max(0.0, deadline - time.time())))

    later = L.from_client(scap, cl.cns.mac, since=first_ack.ts + 0.0005)
    m = lab.relay.metrics()
    ev = lambda name: m.get(f'cdra_proxy_events_total{{event="{name}"}}', 0.0)  # noqa: E731
    events = cl.events()[n:]
    kinds = [e["kind"] for e in events]
    counts = {k: ev(k) for k in ("forwarded", "probe_started", "probe_found_in_use",
                                 "probe_client_answered", "lapsed", "local_renewal",
                                 "lapsed_client_still_there", "release_sent")}
    note(f"{server}: {LAPSING_WATCH}s after the first ACK: {len(later)} requests from udhcpc "
         f"at the server; udhcpc events {kinds}; cdra {counts}")
    assert not later, (
        f"{server} received {len(later)} requests from udhcpc after the first ACK "
        f"(cdra: probe_found_in_use={counts['probe_found_in_use']:g}, "
        f"forwarded={counts['forwarded'] - forwarded:g} more):\n" + L.describe_frames(later))
    assert counts["probe_found_in_use"] == 0, f"cdra counted {counts}"
    assert counts["forwarded"] == forwarded, f"cdra forwarded requests after the first ACK: {counts}"
    assert kinds.count("renew") >= 3, f"udhcpc renewed {kinds.count('renew')} times: {kinds}"
    assert not set(kinds) & {"deconfig", "expire", "fail", "nak"}, f"udhcpc events {kinds}"
    for e in events:
        if e["kind"] == "renew":
            assert e.get("ip") == ip and e.get("server_id") == L.RELAY_DOWN_IP, e
    assert ip in cl.cns.ipv4_addrs(), f"udhcpc no longer holds {ip}"
    assert srv.is_active(ip), f"{server} no longer has the lease for {ip}"
    lab.relay.check_alive()
