"""RFC 4388 leasequery (issue 15 item 2): cdra started with no store in front of a server
that answers DHCPLEASEQUERY (ISC dhcpd, `allow leasequery;`) refills its table in the
background, and answers clients it never saw through a server outage, with the paper's
precautions (a probe before each local ACK, paper 3.2; the records are suspect, paper 3.4).
Servers that do not answer leasequery (Kea without its lease-query hook, dnsmasq 2.90) are
detected, counted and left alone.

These tests need cdra (they are skipped for CDRA_E2E_RELAY=dhcrelay).
"""

from __future__ import annotations

import os
import time

import pytest

import dhcp_packets as dp
import lab as L

ALL_CLIENTS = ["dhclient", "udhcpc", "dhcpcd"]
CLIENTS = [c for c in os.environ.get("CDRA_E2E_CLIENTS", ",".join(ALL_CLIENTS)).split(",") if c]

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra",
                                reason="leasequery is cdra's (CDRA_E2E_RELAY=cdra)")

SERVER_LEASE = 600
# 253 addresses of 10.77.1.0/24 at 200 a second: the sweep takes under 2 s.
LEASEQUERY = {"enabled": True, "rate": 200}


def note(msg: str) -> None:
    print(f"[leasequery] {msg}")


def start_empty_proxy(lab: L.Lab, mode: str = "proxy") -> L.Relay:
    """cdra in a caching mode with no store (it starts empty every time) and leasequery on."""
    relay = lab.start_relay(**L.proxy_relay_kw(lab, mode=mode, store=False,
                                               sections={"leasequery": LEASEQUERY}))
    if mode == "spoof":
        relay.proc.wait_log("intercepting client unicasts to the servers", 5)
    return relay


def sweep_over(relay: L.Relay) -> bool:
    m = relay.metrics()
    return m.get("cdra_leasequery_sweeps", 1) == 0 and m.get("cdra_leasequery_outstanding", 1) == 0


@pytest.mark.parametrize("mode", ["proxy", "spoof", "pool"])
def test_an_empty_cdra_refills_from_dhcpd_and_answers_unseen_clients_through_an_outage(lab, mode):
    refill_then_outage(lab, mode, {})


def test_refill_from_a_plain_dhcpd_without_authoritative_or_a_mask_option(lab):
    """The same with a dhcpd.conf that has no `authoritative;` (dhcpd then ignores cdra's
    INFORM for the subnet) and no `option subnet-mask` (its leasequery answers then carry the
    router only): the link's configuration comes from a DHCPLEASEUNASSIGNED, the mask from
    the link's own prefix, and the clients get both."""
    refill_then_outage(lab, "proxy", {"authoritative": False, "subnet_mask_option": False})


def refill_then_outage(lab: L.Lab, mode: str, server_kw: dict) -> None:
    """Clients get their leases from ISC dhcpd through cdra in relay mode (which caches
    nothing). cdra is then restarted in a caching mode without a store: its table is empty,
    it sweeps 10.77.1.0/24 with DHCPLEASEQUERY and makes one suspect record per active lease
    (in pool mode, not of its own pool leases). The server stops; every client reboots
    (dhclient and dhcpcd: INIT-REBOOT; udhcpc: DISCOVER, then REQUEST) and is answered by
    cdra with its address and the subnet's configuration, each local ACK after an ARP probe
    of the address; in spoofing mode in the server's name."""
    srv = lab.start_server("dhcpd", leasequery=True, lease_time=SERVER_LEASE, **server_kw)
    lab.start_relay(mode="relay")
    clients = {}
    for kind in CLIENTS:
        cns = lab.add_client()
        ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
        cl = lab.start_client(kind, cns)
        ev = cl.wait_bound(timeout=20)
        assert ev.get("server_id") == L.SERVER_IP, f"{kind} bound through the plain relay: {ev}"
        clients[kind] = (cl, ccap, ev["ip"])
    note("bound through the relay: " + ", ".join(f"{k}={v[2]}" for k, v in clients.items()))
    lab.relay.stop()

    relay = start_empty_proxy(lab, mode)
    identity = L.SERVER_IP if mode == "spoof" else L.RELAY_DOWN_IP
    L.wait_until(lambda: relay.proxy_event("leasequery_record_made") >= len(clients), 20,
                 what="records made from DHCPLEASEACTIVE")
    L.wait_until(lambda: sweep_over(relay), 10, what="the sweep to end")
    m = relay.metrics()
    counts = {e: relay.proxy_event(f"leasequery_{e}")
              for e in ("sent", "active", "unassigned", "unknown", "timed_out")}
    note(f"sweep: {counts}")
    # 10.77.1.2-254 (10.77.1.1 is cdra's), each answered once.
    # A non-authoritative dhcpd ignores the INFORM (the one query left unanswered).
    unanswered = 0 if server_kw.get("authoritative", True) else 1
    assert counts["sent"] == 253 and counts["timed_out"] == unanswered, counts
    assert counts["active"] + counts["unassigned"] + counts["unknown"] == 253, counts
    assert m.get('cdra_proxy_events_total{event="leasequery_record_made"}') == len(clients), m
    assert m.get('cdra_proxy_events_total{event="leasequery_link_configured"}', 0) >= 1, m
    assert m.get(f'cdra_leasequery_server{{server="{L.SERVER_IP}",state="answers"}}') == 1, m
    recs = {r["address"]: r for r in relay.cache_records() if not r["key"].startswith("pool:")}
    assert set(recs) == {ip for _, _, ip in clients.values()}, relay.cache("list")
    probes_before = relay.proxy_event("probe_started")

    srv.stop()
    mark = time.time()
    for kind, (cl, ccap, ip) in clients.items():
        n = cl.restart()
        ev = cl.wait_bound(timeout=20, after=n)
        assert ev.get("ip") == ip, f"{kind} did not get its address back from cdra: {ev}"
        assert ev.get("server_id") == identity, f"{kind}: {ev}"
        assert ev.get("mask") in ("255.255.255.0", "24"), f"{kind}: the subnet's mask: {ev}"
        assert L.ROUTER in ev.get("router", ""), f"{kind}: the subnet's router: {ev}"
        acks = [f for f in L.to_client(ccap, cl.cns.mac, since=mark) if f.dhcp.msg_type == dp.ACK]
        assert acks and all(f.src_ip == identity for f in acks), \
            L.describe_frames(L.to_client(ccap, cl.cns.mac, since=mark))
        note(f"{mode}: {kind} rebooted with the server down: {ip} from cdra")
    probes = relay.proxy_event("probe_started") - probes_before
    assert probes >= len(clients), f"a probe before each local ACK (paper 3.2): {probes}"
    relay.check_alive()


@pytest.mark.parametrize("server", ["kea", "dnsmasq"])
def test_a_server_without_leasequery_is_detected_and_left_alone(lab, server):
    """Kea without its lease-query hook and dnsmasq 2.90 ignore DHCPLEASEQUERY: after
    `unanswered_limit` queries in a row unanswered the server is marked not answering
    (counted, in metrics), the sweep is given up and no more queries go to it; clients are
    served as usual."""
    lab.start_server(server, lease_time=SERVER_LEASE)
    relay = start_empty_proxy(lab)
    L.wait_until(lambda: relay.proxy_event("leasequery_server_not_answering") >= 1, 20,
                 what=f"{server} found not answering leasequery")
    m = relay.metrics()
    assert m.get(f'cdra_leasequery_server{{server="{L.SERVER_IP}",state="not_answering"}}') == 1, m
    assert m.get('cdra_proxy_events_total{event="leasequery_sweep_abandoned"}', 0) >= 1, m
    assert m.get('cdra_proxy_events_total{event="leasequery_active"}', 0) == 0, m
    L.wait_until(lambda: relay.metrics().get("cdra_leasequery_outstanding", 1) == 0, 10,
                 what="the last queries to time out")
    sent = relay.proxy_event("leasequery_sent")
    time.sleep(3)
    assert relay.proxy_event("leasequery_sent") == sent, "left alone: no more queries"
    note(f"{server}: {sent:.0f} queries, then left alone")
    cl, _, ip = L.proxy_bound_client(lab, "udhcpc")
    note(f"a client still binds through cdra: {ip}")
    relay.check_alive()
