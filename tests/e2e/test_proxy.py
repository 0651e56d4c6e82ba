"""Proxy mode (issue "proxy mode"): cdra relays a client's first lease, then answers the
client itself (renewals, reboots, DISCOVERs), also while the server is down; it probes
before a local ACK and NAKs a client whose cached address another host now uses; its
client table can be inspected and flushed; the client only ever sees cdra as its server.

Paper: Fry and Knight, "A Caching DHCP Relay Agent", sections 3.2, 4.1, 5 and Table 1.
These tests need cdra (they are skipped for CDRA_E2E_RELAY=dhcrelay).
"""

from __future__ import annotations

import os
import time

import pytest

import dhcp_packets as dp
import lab as L

ALL_SERVERS = ["kea", "dhcpd", "dnsmasq"]
ALL_CLIENTS = ["dhclient", "udhcpc", "dhcpcd"]
SERVERS = [s for s in os.environ.get("CDRA_E2E_SERVERS", ",".join(ALL_SERVERS)).split(",") if s]
CLIENTS = [c for c in os.environ.get("CDRA_E2E_CLIENTS", ",".join(ALL_CLIENTS)).split(",") if c]

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra",
                                reason="proxy mode is cdra's (CDRA_E2E_RELAY=cdra)")

# The server's lease is long, so that nothing in a test comes near its T1 (past T1 a local
# ACK also renews upstream, paper 5.3, and the server would see a REQUEST).
SERVER_LEASE = 600
# dhclient cannot be told to renew: with client_lease = 10 s (cdra's minimum) it gets T1 =
# 5 s from cdra and renews by itself.
DHCLIENT_PROXY = {"client_lease": "10s"}
NEW_CLIENT_WAIT = 10.0
RENEWALS = 3


def note(msg: str) -> None:
    print(f"[proxy] {msg}")


def assert_from_cdra(frames: list[dp.Frame], what: str) -> None:
    """Every reply a client sees comes from cdra's downstream address, names cdra in option
    54 (paper 4.1: to its clients the proxy is the server) and carries no option 82."""
    assert frames, f"no {what}"
    for f in frames:
        assert f.src_ip == L.RELAY_DOWN_IP, f"{what} not from cdra: {f.describe()}"
        assert f.dhcp.server_id == L.RELAY_DOWN_IP, \
            f"{what} has option 54 = {f.dhcp.server_id}: {f.describe()}"
        assert dp.OPT_RELAY_AGENT not in f.dhcp.options, f"option 82 leaked: {f.describe()}"


def kea_counts(srv: L.Server) -> dict[str, int] | None:
    if not isinstance(srv, L.Kea):
        return None
    return {n: srv.statistic(n) for n in ("pkt4-received", "pkt4-discover-received",
                                          "pkt4-request-received")}


def renew(cl: L.Client) -> dict[str, str]:
    """udhcpc / dhcpcd: SIGUSR1; dhclient: its T1 (5 s from cdra with DHCLIENT_PROXY). The
    client's next record must be a renewal: a new lease ("bound") after the old one
    expired, or a rebind, is not a renewal."""
    n = len(cl.events())
    ev = cl.renew(timeout=12)
    kinds = [e["kind"] for e in cl.events()[n:]]
    assert ev["kind"] == "renew" and kinds[:1] == ["renew"], \
        f"{cl.kind}: expected a renewal, the client recorded {kinds}: {ev}"
    return ev


# --------------------------------------------------------------------------- every server x client

@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server", SERVERS)
def test_first_lease_relayed_then_local(lab, server, client):
    """The first lease goes through the server (DISCOVER + REQUEST relayed); the client's
    server identifier is cdra's 10.77.1.1. Then renewals (unicast to cdra; udhcpc and
    dhcpcd: three on SIGUSR1, dhclient: one at T1) and a reboot (dhclient/dhcpcd:
    INIT-REBOOT from their lease file; udhcpc: DISCOVER) are answered by cdra alone: the
    server receives nothing more from this client, and the client keeps its address."""
    proxy = DHCLIENT_PROXY if client == "dhclient" else {}
    srv, scap, rcap = L.start_proxy(lab, server, server_kw={"lease_time": SERVER_LEASE},
                                    proxy=proxy)
    cl, ccap, ip = L.proxy_bound_client(lab, client)
    mac = cl.cns.mac

    # 1. Relayed: DISCOVER and REQUEST reached the server from cdra (giaddr = rd0).
    scap.wait_for(lambda f: f.dhcp.msg_type == dp.ACK and f.dhcp.yiaddr == ip, 5,
                  "the server's ACK")
    first = L.from_client(scap, mac)
    kinds = {f.dhcp.msg_type for f in first}
    assert {dp.DISCOVER, dp.REQUEST} <= kinds, "server did not see DISCOVER + REQUEST:\n" + \
        L.describe_frames(first)
    for f in first:
        assert f.dhcp.giaddr == L.RELAY_DOWN_IP and f.src_ip == L.RELAY_UP_IP, f.describe()
    assert_from_cdra(L.to_client(ccap, mac), "reply to the first lease")
    before = kea_counts(srv)
    time.sleep(0.3)
    mark = time.time()

    # 2. Renewals: unicast to cdra (the client's server), answered by cdra. udhcpc and
    # dhcpcd renew on SIGUSR1 (three times), dhclient at its T1 (once).
    for _ in range(1 if client == "dhclient" else RENEWALS):
        ev = renew(cl)
        assert ev.get("ip") == ip and ev.get("server_id") == L.RELAY_DOWN_IP, ev
    out = ccap.wait_for(lambda f: f.dhcp.op == 1 and f.dhcp.msg_type == dp.REQUEST
                        and f.dhcp.ciaddr == ip and f.ts >= mark, 5, "the renewal")
    assert out[0].dst_ip == L.RELAY_DOWN_IP, f"renewal not unicast to cdra: {out[0].describe()}"

    # 3. Reboot: the client is stopped (no release), its address removed, started again.
    n = cl.restart()
    ev = cl.wait_bound(timeout=15, after=n)
    assert ev.get("ip") == ip, f"{client} got another address after the reboot: {ev}"
    assert ev.get("server_id") == L.RELAY_DOWN_IP, ev
    time.sleep(0.5)

    broadcast_renewals = [f for f in L.from_client(ccap, mac, since=mark)
                          if f.dhcp.ciaddr == ip and f.dst_ip == "255.255.255.255"]
    assert not broadcast_renewals, (
        f"{client} fell back to REBINDING (a broadcast renewal, which cdra forwards to the "
        "server): it did not take the answer to its unicast renewal. Client capture:\n"
        + L.describe_frames(ccap.dhcp(lambda f: f.ts >= mark)))
    leaked = L.from_client(scap, mac, since=mark)
    assert not leaked, "the server saw requests that cdra should have answered:\n" + \
        L.describe_frames(leaked)
    replies = L.to_client(ccap, mac, since=mark)
    assert_from_cdra(replies, "local reply")
    acks = [f for f in replies if f.dhcp.msg_type == dp.ACK]
    assert len(acks) >= 2 and all(f.dhcp.yiaddr == ip for f in acks), L.describe_frames(replies)

    if before is not None:
        after = kea_counts(srv)
        assert after == before, f"Kea received packets after the first lease: {before} -> {after}"
    local = lab.relay.proxy_event("local_ack")
    assert local >= 2, f"cdra counts {local} local ACKs"
    note(f"{server}/{client}: {ip}; after the first lease the server saw nothing; "
         f"cdra local_ack={local:.0f}, local_offer={lab.relay.proxy_event('local_offer'):.0f}")
    lab.relay.check_alive()


# --------------------------------------------------------------------------- server outage

@pytest.mark.parametrize("server", SERVERS)
def test_server_down(lab, server):
    """With the server stopped, the known clients keep their addresses through a renewal
    and a reboot (udhcpc, restarted without lease memory, DISCOVERs: cdra offers); a new
    client (fresh MAC) gets nothing within ~10 s. When the server is back, the new client
    gets a lease."""
    srv, scap, rcap = L.start_proxy(lab, server, server_kw={"lease_time": SERVER_LEASE},
                                    proxy=DHCLIENT_PROXY)
    known: dict[str, tuple[L.Client, L.Capture, str]] = {}
    for kind in CLIENTS:
        known[kind] = L.proxy_bound_client(lab, kind)
    srv.stop()
    mark = time.time()
    note(f"{server} stopped; known clients: "
         + ", ".join(f"{k}={v[2]}" for k, v in known.items()))

    problems: list[str] = []
    for kind, (cl, ccap, ip) in known.items():
        n = cl.restart()
        ev = cl.wait_bound(timeout=15, after=n)
        assert ev.get("ip") == ip, f"{kind} lost its address on reboot with the server down: {ev}"
        assert ev.get("server_id") == L.RELAY_DOWN_IP, ev
    for kind, (cl, ccap, ip) in known.items():
        try:
            ev = renew(cl)
            if ev.get("ip") != ip or ev.get("server_id") != L.RELAY_DOWN_IP:
                problems.append(f"{kind} renewal with the server down: {ev}")
        except (L.LabError, AssertionError) as e:
            problems.append(f"{kind}: no renewal with the server down ({e}); its packets:\n"
                            + L.describe_frames(ccap.dhcp(lambda f, m=mark: f.ts >= m)))
    if "udhcpc" in known:
        cl, ccap, ip = known["udhcpc"]
        offers = [f for f in L.to_client(ccap, cl.cns.mac, since=mark)
                  if f.dhcp.msg_type == dp.OFFER]
        assert offers and offers[-1].dhcp.yiaddr == ip, \
            "udhcpc's DISCOVER was not answered by cdra:\n" + L.describe_frames(
                L.to_client(ccap, cl.cns.mac, since=mark))
    for kind, (cl, ccap, ip) in known.items():
        assert_from_cdra(L.to_client(ccap, cl.cns.mac, since=mark), f"{kind} reply")

    # A new client: cdra relays its DISCOVERs, nobody answers.
    ncns = lab.add_client()
    ncap = lab.capture(ncns.ns, ncns.iface, f"client{ncns.index}")
    new = lab.start_client("dhclient", ncns)
    time.sleep(NEW_CLIENT_WAIT)
    assert not [e for e in new.events() if e["kind"] == "bound"], new.events()
    got = L.to_client(ncap, ncns.mac)
    assert not got, "the new client got an answer with the server down:\n" + \
        L.describe_frames(got)
    relayed = L.from_client(scap, ncns.mac)
    assert relayed and all(f.dhcp.giaddr == L.RELAY_DOWN_IP for f in relayed), \
        "cdra did not relay the new client's DISCOVERs:\n" + L.describe_frames(relayed)

    t0 = time.monotonic()
    srv.restart()
    ev = new.wait_bound(timeout=20)
    assert ev.get("server_id") == L.RELAY_DOWN_IP, ev
    assert ev["ip"] not in {v[2] for v in known.values()}, ev
    note(f"{server} back: the new client got {ev['ip']} {time.monotonic() - t0:.1f}s later")
    for kind, (cl, ccap, ip) in known.items():
        if ip not in cl.cns.ipv4_addrs():
            problems.append(f"{kind} no longer has {ip}")
    lab.relay.check_alive()
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- probe: squatter

@pytest.mark.parametrize("client", CLIENTS)
def test_squatter_gets_nak(lab, client):
    """Paper 3.2: before a local ACK to INIT-REBOOT / SELECTING cdra probes the address.
    Client A bound through cdra is stopped (address removed); another host (other MAC)
    configures A's address by hand; the server is down. When A comes back it must get a
    DHCPNAK from cdra and no ACK for that address, and cdra forgets the record."""
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": SERVER_LEASE})
    a, acap, ip = L.proxy_bound_client(lab, client)
    a.proc.stop()
    a.cns.flush_addrs()
    srv.stop()  # so that any ACK A could get is cdra's own
    squatter = lab.add_client()
    squatter.add_addr(ip)
    assert any(r["address"] == ip for r in lab.relay.cache_records())
    mark = time.time()
    a.start()

    naks = acap.wait_for(lambda f: f.dhcp.msg_type == dp.NAK and f.ts >= mark and f.dport == 68,
                         8, "a DHCPNAK to client A")
    nak = naks[0]
    assert nak.src_ip == L.RELAY_DOWN_IP and nak.dhcp.server_id == L.RELAY_DOWN_IP, nak.describe()
    assert nak.dhcp.chaddr == a.cns.mac, nak.describe()
    time.sleep(3)
    acks = [f for f in L.to_client(acap, a.cns.mac, since=mark)
            if f.dhcp.msg_type == dp.ACK and f.dhcp.yiaddr == ip]
    assert not acks, f"client A was ACKed {ip}, which the squatter uses:\n" + \
        L.describe_frames(acks)
    assert ip not in a.cns.ipv4_addrs()
    recs = lab.relay.cache_records()
    assert not any(r["address"] == ip for r in recs), \
        f"cdra still lists {ip}:\n" + "\n".join(r["line"] for r in recs)
    m = lab.relay.metrics()
    assert m.get('cdra_proxy_events_total{event="local_nak"}', 0) >= 1, m
    assert m.get('cdra_records_removed_total{cause="address_in_use"}', 0) >= 1, m
    note(f"{client}: NAK for {ip}: {nak.describe()}")
    lab.relay.check_alive()


def test_squatter_server_up(lab):
    """The same with the server running: cdra NAKs and never ACKs the address itself. What
    the client gets next is the server's decision (Kea 2.2 has no conflict detection and
    gives the client its old lease again); the test only notes it."""
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": SERVER_LEASE})
    a, acap, ip = L.proxy_bound_client(lab, "dhclient")
    a.proc.stop()
    a.cns.flush_addrs()
    squatter = lab.add_client()
    squatter.add_addr(ip)
    mark = time.time()
    n = len(a.events())
    a.start()
    acap.wait_for(lambda f: f.dhcp.msg_type == dp.NAK and f.ts >= mark and f.dport == 68, 8,
                  "a DHCPNAK to client A")
    ev = a.wait_event({"bound"}, after=n, timeout=15)
    replies = L.to_client(acap, a.cns.mac, since=mark)
    server_acks = {f.dhcp.xid for f in scap.dhcp(lambda f: f.dhcp.msg_type == dp.ACK
                                                  and f.ts >= mark)}
    local = [f for f in replies if f.dhcp.msg_type == dp.ACK and f.dhcp.yiaddr == ip
             and f.dhcp.xid not in server_acks]
    assert not local, "cdra itself ACKed the squatted address:\n" + L.describe_frames(local)
    note(f"after the NAK, A was bound to {ev.get('ip')} by the server "
         f"({'the squatted address again' if ev.get('ip') == ip else 'another address'})")
    lab.relay.check_alive()


# --------------------------------------------------------------------------- probe: what it is

@pytest.mark.parametrize("icmp_probe", ["auto", "always"])
def test_the_probe_is_arp_on_the_clients_link(lab, icmp_probe):
    """Issue 14: on a link with a MAC address the probe before a local ACK is an RFC 5227 ARP
    probe (sender IP 0.0.0.0), sent twice (at once and at half probe_timeout); an ICMP echo
    goes too only with icmp_probe = "always" (the old behaviour). No probe packet is
    refused by the kernel, and the client is ACKed by cdra after the probe."""
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": SERVER_LEASE},
                                    proxy={"icmp_probe": icmp_probe, "probe_timeout": "500ms"})
    a, acap, ip = L.proxy_bound_client(lab, "dhclient")
    a.proc.stop()
    a.cns.flush_addrs()
    srv.stop()  # the ACK can only be cdra's
    pcap = lab.capture(lab.rly, L.DOWN_IF, "relay-probes", bpf="arp or icmp")
    mark = time.time()
    a.start()
    acks = acap.wait_for(lambda f: f.dhcp.msg_type == dp.ACK and f.ts >= mark and f.dport == 68
                         and f.dhcp.yiaddr == ip, 10, "cdra's ACK to client A")
    time.sleep(0.5)
    pcap.stop()
    seen = [p for p in dp.read_pcap_probes(str(pcap.pcap)) if p[4] == ip and p[0] >= mark]
    # Before the ACK: afterwards the client may probe its address itself (RFC 5227).
    probes = [p for p in seen if p[1] == "arp" and p[3] == "0.0.0.0" and p[0] < acks[0].ts]
    echoes = [p for p in seen if p[1] == "echo" and p[0] < acks[0].ts]
    what = "\n".join(f"{t:.3f} {k} {mac} {sip} -> {tip}" for t, k, mac, sip, tip in seen)
    assert len(probes) == 2, f"two ARP probes for {ip} expected:\n{what}"
    assert probes[1][0] - probes[0][0] >= 0.2, f"the second at half the timeout:\n{what}"
    if icmp_probe == "auto":
        assert not echoes, f"no ICMP echo on a link with ARP:\n{what}"
    else:
        assert echoes, f"icmp_probe = always sends an echo:\n{what}"
    m = lab.relay.metrics()
    for method in ("arp", "icmp"):
        assert m.get(f'cdra_probe_send_failures_total{{method="{method}"}}', -1) == 0, m
    assert m.get("cdra_pending_probes_peak", 0) >= 1, m
    note(f"icmp_probe={icmp_probe}: {len(probes)} ARP probes, {len(echoes)} echoes, ACK at "
         f"{acks[0].ts - mark:.3f} s")
    lab.relay.check_alive()


# --------------------------------------------------------------------------- control socket

def test_cache_cli(lab):
    """`cdra cache list / show / flush / counters` over the control socket. A flushed client
    is unknown to cdra: its next renewal goes to the server (and it keeps its address);
    the other client's renewal is still answered locally."""
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": SERVER_LEASE})
    # dhcpcd: SIGUSR1 renews, and its unicast renewal is never lost (see test_first_lease_*)
    c1, cap1, ip1 = L.proxy_bound_client(lab, "dhcpcd")
    c2, cap2, ip2 = L.proxy_bound_client(lab, "dhcpcd")
    relay = lab.relay

    recs = {r["address"]: r for r in relay.cache_records()}
    assert set(recs) == {ip1, ip2}, relay.cache("list")
    for ip in (ip1, ip2):
        r = recs[ip]
        assert r["state"] == "bound" and r["interface"] == L.DOWN_IF, r["line"]
        assert r.get("server") == L.SERVER_IP, r["line"]
        assert r.get("lease_left", "").rstrip("s").isdigit(), r["line"]
    assert relay.cache("list").rstrip().endswith("# 2 client(s)")

    key1 = recs[ip1]["key"]
    shown = relay.cache("show", ip1)
    assert shown.startswith(key1) and ip1 in shown and "lease=" in shown, shown
    assert relay.cache("show", key1).splitlines()[0] == shown.splitlines()[0]
    out = relay.cache("show", "10.77.1.250", check=False)
    assert out.startswith("error: no client"), out
    counters = relay.cache("counters")
    assert "clients=2" in counters, counters

    out = relay.cache("flush", ip1)
    assert out.startswith("flushed"), out
    assert {r["address"] for r in relay.cache_records()} == {ip2}
    mark = time.time()
    ev = renew(c1)
    assert ev.get("ip") == ip1 and ev.get("server_id") == L.RELAY_DOWN_IP, ev
    fwd = scap.wait_for(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == c1.cns.mac
                        and f.dhcp.msg_type == dp.REQUEST and f.ts >= mark, 5,
                        "the flushed client's renewal at the server")
    assert fwd[0].dhcp.ciaddr == ip1, fwd[0].describe()
    L.wait_until(lambda: ip1 in {r["address"] for r in relay.cache_records()}, 5,
                 what=f"{ip1} back in the table from the server's ACK")
    mark2 = time.time()
    ev = renew(c2)
    assert ev.get("ip") == ip2, ev
    time.sleep(0.5)
    assert not L.from_client(scap, c2.cns.mac, since=mark2), "c2's renewal reached the server"

    out = relay.cache("flush", "all")
    assert out.strip() == "flushed 2 client(s)", out
    assert relay.cache_records() == []
    assert relay.metrics().get('cdra_records_removed_total{cause="flushed"}', 0) >= 3
    lab.relay.check_alive()


def test_cache_by_mac(lab):
    """README: `cdra cache show aa:bb:cc:dd:ee:ff` shows one client by MAC. udhcpc and
    dhcpcd send a client identifier (option 61), so their records are keyed by it; an
    operator still names them by their MAC."""
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": SERVER_LEASE})
    cl, ccap, ip = L.proxy_bound_client(lab, "udhcpc")
    out = lab.relay.cache("show", cl.cns.mac, check=False)
    assert ip in out and not out.startswith("error"), \
        f"`cdra cache show {cl.cns.mac}` for udhcpc (key {lab.relay.cache_records()[0]['key']}):" \
        f" {out.strip()}"
    out = lab.relay.cache("flush", cl.cns.mac, check=False)
    assert out.startswith("flushed"), f"`cdra cache flush {cl.cns.mac}`: {out.strip()}"


# --------------------------------------------------------------------------- what clients see

def test_client_view_and_metrics(lab):
    """With option 82 inserted towards the server, no client ever sees option 82, and every
    reply names cdra (option 54 = 10.77.1.1), relayed or local. The metrics endpoint counts
    the local answers (local_ack) and the server saw only the first leases."""
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": SERVER_LEASE},
                                    option82_insert=True, remote_id="cdra-lab")
    clients = [L.proxy_bound_client(lab, k) for k in CLIENTS]
    reqs = scap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.giaddr == L.RELAY_DOWN_IP)
    assert reqs and all((f.dhcp.agent_suboptions() or {}).get(1) == b"rd0" for f in reqs), \
        L.describe_frames(reqs)
    recs = {r["address"]: r for r in lab.relay.cache_records()}
    for cl, ccap, ip in clients:
        r = recs.get(ip)
        assert r is not None and r["state"] == "bound", (
            f"cdra did not cache the server's ACK for {cl.kind} ({ip}); its table:\n"
            + "\n".join(x["line"] for x in recs.values())
            + "\nthe server's replies: " + ", ".join(
                f"{f.dhcp.msg_name} {f.dhcp.chaddr} {len(f.payload)} bytes"
                for f in scap.dhcp(lambda f: f.dhcp.op == 2)))
    before = lab.relay.metrics()
    # Reboots (INIT-REBOOT for dhclient and dhcpcd, DISCOVER for udhcpc), twice each.
    for _ in range(2):
        for cl, ccap, ip in clients:
            n = cl.restart()
            assert cl.wait_bound(timeout=15, after=n).get("ip") == ip
    time.sleep(0.3)

    def local_acks() -> int:
        n = 0
        for cl, ccap, ip in clients:
            replies = L.to_client(ccap, cl.cns.mac)
            assert_from_cdra(replies, f"reply to {cl.kind}")
            n += sum(1 for f in replies if f.dhcp.msg_type == dp.ACK
                     and f.dhcp.giaddr == "0.0.0.0")
        return n

    # (Bracketed, in case a client sends something meanwhile.)
    seen_before = local_acks()
    after = lab.relay.metrics()
    time.sleep(0.2)
    seen_after = local_acks()
    key = 'cdra_proxy_events_total{event="local_ack"}'
    got = after.get(key, 0) - before.get(key, 0)
    assert seen_before <= got <= seen_after and got >= 2 * len(clients), \
        f"metrics local_ack grew by {got}, the clients received {seen_before}..{seen_after}"
    assert after["cdra_answered_without_server_total"] >= got
    assert after["cdra_clients"] == len(clients)
    for cl, ccap, ip in clients:
        ack = scap.dhcp(lambda f: f.dhcp.msg_type == dp.ACK and f.dhcp.chaddr == cl.cns.mac)
        assert len(ack) == 1, L.describe_frames(ack)
        later = L.from_client(scap, cl.cns.mac, since=ack[0].ts + 0.001)
        assert not later, f"the server saw {cl.kind} again:\n" + L.describe_frames(later)
    at_server = scap.dhcp(lambda f: f.dhcp.op == 1)
    note(f"local_ack +{got:.0f}, answered_without_server "
         f"{after['cdra_answered_without_server_total']:.0f}, server saw {len(at_server)}")
    lab.relay.check_alive()


# --------------------------------------------------------------------------- lab helpers

def test_proxy_config_toml(tmp_path):
    """The lab's proxy-mode config (no namespaces): the keys cdra reads, a per-lab store,
    and no proxy config without an explicit store (never the host's /var/lib/cdra)."""
    tomllib = pytest.importorskip("tomllib")
    store = tmp_path / "s" / "clients.redb"
    text = L.cdra_config(mode="proxy", proxy={"client_lease": "20s", "safe_network": False,
                                              "probe_timeout": "500ms"},
                         store_path=str(store), control_socket=str(tmp_path / "c.sock"),
                         metrics_listen=L.METRICS_LISTEN)
    cfg = tomllib.loads(text)
    assert cfg["mode"] == "proxy"
    assert cfg["proxy"] == {"client_lease": "20s", "safe_network": False,
                            "probe_timeout": "500ms"}
    assert cfg["store"] == {"path": str(store)}
    assert cfg["control"] == {"socket": str(tmp_path / "c.sock")}
    assert cfg["metrics"] == {"listen": L.METRICS_LISTEN}
    assert tomllib.loads(L.cdra_config(mode="proxy", store_enabled=False))["store"] == \
        {"enabled": False}
    with pytest.raises(L.LabError):
        L.cdra_config(mode="proxy")
    assert L.cdra_config() == L.cdra_config(mode="relay")  # relay mode unchanged
    (tmp_path / "x.toml").write_text(text)
    r = L.run([str(L.cdra_bin()), "check", "--config", str(tmp_path / "x.toml")], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "proxy mode" in r.stdout, r.stdout
