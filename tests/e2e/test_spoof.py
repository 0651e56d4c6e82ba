"""Spoofing mode (issue 11; paper 4.2, the second kind of caching relay): cdra runs on the
router between the clients and the servers and answers as the server itself. Every reply a
client sees carries the server's own identity (option 54 and the IPv4 source); the
client's unicast renewals to its server are intercepted on the router (an nftables table
owned by cdra, so nothing of it survives cdra) and answered from the cache, and the server
sees none of them; known clients keep their addresses while the server is down; after
`kill -9` of cdra nothing of the interception is left and a renewal reaches the server
directly; with two servers, every OFFER reaches the client.

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
                                reason="spoofing mode is cdra's (CDRA_E2E_RELAY=cdra)")

# Long server leases: nothing in a test comes near the server lease's T1 (past it a local
# ACK also renews upstream, paper 5.3, and the server would see a REQUEST).
SERVER_LEASE = 600
# dhclient cannot be told to renew: with client_lease = 10 s (cdra's minimum) it gets
# T1 = 5 s from cdra and renews by itself, unicast to its server.
DHCLIENT_SPOOF = {"client_lease": "10s"}
RENEWALS = 3


def note(msg: str) -> None:
    print(f"[spoof] {msg}")


def nft_ruleset(lab: L.Lab) -> str:
    """`nft list ruleset` inside the relay namespace (never the host's)."""
    return L.run(L.nsexec(lab.rly) + [L.sbin("nft"), "list", "ruleset"]).stdout


def ip_rules(lab: L.Lab) -> str:
    return L.run(["ip", "-n", lab.rly, "rule", "show"]).stdout


def start_spoof(lab: L.Lab, server: str, *, proxy: dict | None = None,
                **relay_kw) -> tuple[L.Server, L.Capture]:
    """The server (with a capture on its interface) and cdra in spoofing mode on the relay
    namespace, the router between clients and server (lab store, control socket, metrics)."""
    srv = lab.start_server(server, lease_time=SERVER_LEASE)
    scap = lab.capture(lab.srv, L.SERVER_IF, "server")
    lab.start_relay(**L.proxy_relay_kw(lab, mode="spoof", proxy=proxy, **relay_kw))
    lab.relay.proc.wait_log("intercepting client unicasts to the servers", 5)
    return srv, scap


def assert_as_server(frames: list[dp.Frame], what: str, server_ip: str = L.SERVER_IP) -> None:
    """Paper 4.2: every reply the client receives carries the server's identity: option 54
    and the datagram's IPv4 source are the server's address; no option 82 leaks."""
    assert frames, f"no {what}"
    for f in frames:
        assert f.src_ip == server_ip, f"{what} not from the server's address: {f.describe()}"
        assert f.dhcp.server_id == server_ip, \
            f"{what} has option 54 = {f.dhcp.server_id}: {f.describe()}"
        assert dp.OPT_RELAY_AGENT not in f.dhcp.options, f"option 82 leaked: {f.describe()}"


def spoof_bound_client(lab: L.Lab, kind: str, server_ip: str = L.SERVER_IP,
                       pool: tuple[str, str] = (L.POOL_START, L.POOL_END),
                       ) -> tuple[L.Client, L.Capture, str]:
    """A client (with a capture in its namespace) bound through cdra in spoofing mode: its
    lease names the server itself as server identifier."""
    cns = lab.add_client()
    ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
    cl = lab.start_client(kind, cns)
    ev = cl.wait_bound(timeout=20)
    ip = ev.get("ip", "")
    if not dp.ip_in(ip, *pool):
        raise L.LabError(f"{kind}: address {ip!r} not in the pool: {ev}")
    if ev.get("server_id") != server_ip:
        raise L.LabError(f"{kind}: server identifier {ev.get('server_id')!r}, expected the "
                         f"server's own {server_ip}: {ev}")
    return cl, ccap, ip


def renew(cl: L.Client) -> dict[str, str]:
    """udhcpc / dhcpcd: SIGUSR1; dhclient: its T1 (5 s from cdra with DHCLIENT_SPOOF). The
    client's next record must be a renewal."""
    n = len(cl.events())
    ev = cl.renew(timeout=12)
    kinds = [e["kind"] for e in cl.events()[n:]]
    assert ev["kind"] == "renew" and kinds[:1] == ["renew"], \
        f"{cl.kind}: expected a renewal, the client recorded {kinds}: {ev}"
    return ev


def unicast_renewals(ccap: L.Capture, mac: str, ip: str, since: float) -> list[dp.Frame]:
    return [f for f in L.from_client(ccap, mac, since=since)
            if f.dhcp.msg_type == dp.REQUEST and f.dhcp.ciaddr == ip and f.dst_ip != "255.255.255.255"]


def kea_counts(srv: L.Server) -> dict[str, int] | None:
    if not isinstance(srv, L.Kea):
        return None
    return {n: srv.statistic(n) for n in ("pkt4-received", "pkt4-request-received")}


# --------------------------------------------------------------------------- every server x client

@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("server", SERVERS)
def test_lease_names_the_server_and_renewals_never_reach_it(lab, server, client):
    """The first lease is relayed (the server sees DISCOVER and REQUEST from the relay); the
    client's lease names the server's own address as server identifier, and every reply
    it receives comes from that address. Its renewals, unicast to the server, are
    intercepted by cdra on the router and answered (udhcpc and dhcpcd: three on SIGUSR1,
    dhclient: one at T1): the server receives nothing more from this client."""
    proxy = DHCLIENT_SPOOF if client == "dhclient" else {}
    srv, scap = start_spoof(lab, server, proxy=proxy)
    cl, ccap, ip = spoof_bound_client(lab, client)
    mac = cl.cns.mac

    scap.wait_for(lambda f: f.dhcp.msg_type == dp.ACK and f.dhcp.yiaddr == ip, 5, "the server's ACK")
    first = L.from_client(scap, mac)
    assert {dp.DISCOVER, dp.REQUEST} <= {f.dhcp.msg_type for f in first}, \
        "the server did not see DISCOVER + REQUEST:\n" + L.describe_frames(first)
    for f in first:
        assert f.dhcp.giaddr == L.RELAY_DOWN_IP and f.src_ip == L.RELAY_UP_IP, f.describe()
    assert_as_server(L.to_client(ccap, mac), "reply to the first lease")
    # siaddr as the server sent it.
    sent = {f.dhcp.xid: f.dhcp.siaddr for f in scap.dhcp(lambda f: f.dhcp.op == 2)}
    for f in L.to_client(ccap, mac):
        if f.dhcp.xid in sent:
            assert f.dhcp.siaddr == sent[f.dhcp.xid], f"siaddr changed: {f.describe()}"
    before = kea_counts(srv)
    time.sleep(0.3)
    mark = time.time()

    for _ in range(1 if client == "dhclient" else RENEWALS):
        ev = renew(cl)
        assert ev.get("ip") == ip and ev.get("server_id") == L.SERVER_IP, ev
    time.sleep(0.3)

    sent_renewals = unicast_renewals(ccap, mac, ip, mark)
    assert sent_renewals and all(f.dst_ip == L.SERVER_IP for f in sent_renewals), \
        "renewals not unicast to the server:\n" + L.describe_frames(sent_renewals)
    rebinds = [f for f in L.from_client(ccap, mac, since=mark)
               if f.dhcp.ciaddr == ip and f.dst_ip == "255.255.255.255"]
    assert not rebinds, (f"{client} fell back to REBINDING: it did not take the answer to its "
                         "unicast renewal. Client capture:\n"
                         + L.describe_frames(ccap.dhcp(lambda f: f.ts >= mark)))
    leaked = L.from_client(scap, mac, since=mark)
    assert not leaked, "the server saw renewals that cdra should have intercepted:\n" + \
        L.describe_frames(leaked)
    replies = L.to_client(ccap, mac, since=mark)
    assert_as_server(replies, "answer to a renewal")
    acks = [f for f in replies if f.dhcp.msg_type == dp.ACK and f.dhcp.yiaddr == ip]
    assert len(acks) >= len(sent_renewals), L.describe_frames(replies)
    if before is not None:
        after = kea_counts(srv)
        assert after == before, f"Kea received packets during the renewals: {before} -> {after}"
    intercepted = lab.relay.proxy_event("intercepted")
    local = lab.relay.proxy_event("local_renewal")
    assert intercepted >= len(sent_renewals) and local >= len(sent_renewals), (intercepted, local)
    note(f"{server}/{client}: {ip} server_id={L.SERVER_IP}; {len(sent_renewals)} unicast "
         f"renewal(s) to {L.SERVER_IP} answered by cdra, none at the server "
         f"(intercepted={intercepted:.0f}, local_renewal={local:.0f})")
    lab.relay.check_alive()


# --------------------------------------------------------------------------- server outage

@pytest.mark.parametrize("server", SERVERS)
def test_server_down_known_clients_keep_their_addresses(lab, server):
    """With the server stopped, each known client (dhclient, udhcpc, dhcpcd) keeps its
    address through a reboot (INIT-REBOOT; udhcpc: DISCOVER, answered with a local OFFER)
    and a renewal (unicast to the stopped server, intercepted), every answer in the
    server's name."""
    srv, scap = start_spoof(lab, server, proxy=DHCLIENT_SPOOF)
    known = {kind: spoof_bound_client(lab, kind) for kind in CLIENTS}
    srv.stop()
    mark = time.time()
    note(f"{server} stopped; known clients: " + ", ".join(f"{k}={v[2]}" for k, v in known.items()))
    problems: list[str] = []
    for kind, (cl, ccap, ip) in known.items():
        n = cl.restart()
        ev = cl.wait_bound(timeout=15, after=n)
        assert ev.get("ip") == ip, f"{kind} lost its address on reboot with the server down: {ev}"
        assert ev.get("server_id") == L.SERVER_IP, ev
    for kind, (cl, ccap, ip) in known.items():
        try:
            ev = renew(cl)
            if ev.get("ip") != ip or ev.get("server_id") != L.SERVER_IP:
                problems.append(f"{kind} renewal with the server down: {ev}")
        except (L.LabError, AssertionError) as e:
            problems.append(f"{kind}: no renewal with the server down ({e}); its packets:\n"
                            + L.describe_frames(ccap.dhcp(lambda f, m=mark: f.ts >= m)))
    for kind, (cl, ccap, ip) in known.items():
        assert_as_server(L.to_client(ccap, cl.cns.mac, since=mark), f"{kind} reply")
        if ip not in cl.cns.ipv4_addrs():
            problems.append(f"{kind} no longer has {ip}")
    lab.relay.check_alive()
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- kill -9

def test_kill9_leaves_nothing_and_renewals_reach_the_server(lab):
    """While cdra runs, its table (named after its pid, flags owner) is in `nft list
    ruleset` of the relay namespace and a renewal is intercepted. After `kill -9`: the
    ruleset is empty, `ip rule` is as before, and the client's next renewal is routed to
    the server directly (giaddr 0, from the client's address) and answered. Started again,
    cdra intercepts again (a new table); the first renewal of a record restored from the
    store goes to the server first (the "suspect" precaution), the next is local."""
    rules_before = ip_rules(lab)
    srv, scap = start_spoof(lab, "kea")
    cl, ccap, ip = spoof_bound_client(lab, "dhcpcd")
    mac = cl.cns.mac
    pid = lab.relay.proc.pid
    ruleset = nft_ruleset(lab)
    for want in (f"table ip cdra_spoof_{pid} {{", "flags owner", L.SERVER_IP, f'iifname "{L.DOWN_IF}"',
                 "udp dport 67", "hook forward"):
        assert want in ruleset, f"`{want}` not in the relay's ruleset:\n{ruleset}"
    mark = time.time()
    renew(cl)
    time.sleep(0.3)
    assert not L.from_client(scap, mac, since=mark), "renewal reached the server while cdra runs"

    relay = lab.relay
    relay.kill()
    lab.relay = None  # killed on purpose: the lab must not fail fast on it
    t0 = time.monotonic()
    left = L.wait_until(lambda: nft_ruleset(lab).strip() == "", 3, what="the relay's ruleset to be empty")
    gone_after = time.monotonic() - t0
    assert left
    assert ip_rules(lab) == rules_before, f"ip rule changed:\n{ip_rules(lab)}"
    mark = time.time()
    ev = renew(cl)
    assert ev.get("ip") == ip and ev.get("server_id") == L.SERVER_IP, ev
    direct = scap.wait_for(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == mac and f.ts >= mark
                           and f.dhcp.msg_type == dp.REQUEST, 5, "the renewal at the server")
    assert direct[0].dhcp.giaddr == "0.0.0.0" and direct[0].src_ip == ip, \
        f"not the client's own renewal: {direct[0].describe()}"
    answers = scap.wait_for(lambda f: f.dhcp.op == 2 and f.dhcp.chaddr == mac and f.ts >= mark, 5,
                            "the server's answer")
    assert answers[0].dhcp.msg_type == dp.ACK and answers[0].dst_ip == ip, answers[0].describe()
    note(f"kill -9: table gone within {gone_after:.2f}s; the renewal went to {L.SERVER_IP} "
         f"and was answered: {answers[0].describe()}")

    # Back again: a new table; a restored record is suspect until the server confirms it.
    lab.relay = relay
    lab.relay.restart()
    lab.relay.proc.wait_log("intercepting client unicasts to the servers", 5)
    ruleset = nft_ruleset(lab)
    assert f"table ip cdra_spoof_{lab.relay.proc.pid} {{" in ruleset, ruleset
    mark = time.time()
    renew(cl)
    first = L.from_client(scap, mac, since=mark)
    assert all(f.dhcp.giaddr == L.RELAY_DOWN_IP for f in first), \
        "after the restart a renewal reached the server past cdra:\n" + L.describe_frames(first)
    time.sleep(0.3)
    mark = time.time()
    renew(cl)
    time.sleep(0.3)
    assert not L.from_client(scap, mac, since=mark), \
        "the second renewal after the restart reached the server"
    note(f"restarted: first renewal relayed by cdra ({len(first)} at the server), second local")
    lab.relay.check_alive()


# --------------------------------------------------------------------------- a learned server id

OTHER_SERVER_ID = "10.77.0.5"
# CAP_NET_ADMIN (12) and CAP_NET_RAW (13).
NET_ADMIN_AND_RAW = 1 << 12 | 1 << 13


def test_server_identifier_learned_from_an_ack_is_intercepted_too(lab):
    """ISC dhcpd answering from 10.77.0.1 with `server-identifier 10.77.0.5`: the client's
    lease names 10.77.0.5 and it renews there. cdra, already running with only CAP_NET_RAW
    and CAP_NET_ADMIN (privileges dropped at start-up), learns 10.77.0.5 from the ACK it
    believed and adds it to its table: the renewals to 10.77.0.5 are answered by cdra (from
    that address) and the server sees none of them."""
    L.run(["ip", "-n", lab.srv, "addr", "add", f"{OTHER_SERVER_ID}/24", "dev", L.SERVER_IF])
    L.pin_neighbor(lab.rly, L.UP_IF, OTHER_SERVER_ID, lab.mac_of(lab.srv, L.SERVER_IF))
    srv = lab.start_server("dhcpd", lease_time=SERVER_LEASE, server_identifier=OTHER_SERVER_ID)
    scap = lab.capture(lab.srv, L.SERVER_IF, "server")
    lab.start_relay(**L.proxy_relay_kw(lab, mode="spoof"))
    relay = lab.relay
    relay.proc.wait_log("intercepting client unicasts to the servers", 5)
    cap_eff = int(L.proc_status_field(relay.proc.pid, "CapEff"), 16)
    assert cap_eff == NET_ADMIN_AND_RAW, f"CapEff {cap_eff:#x}"
    assert OTHER_SERVER_ID not in nft_ruleset(lab)

    cl, ccap, ip = spoof_bound_client(lab, "dhcpcd", server_ip=OTHER_SERVER_ID)
    relay.proc.wait_log("seen in an ACK too", 5)
    ruleset = nft_ruleset(lab)
    assert OTHER_SERVER_ID in ruleset and L.SERVER_IP in ruleset, ruleset
    m = relay.metrics()
    assert m.get("cdra_intercepted_addresses") == 2 and m.get("cdra_intercept_errors_total") == 0, \
        {k: v for k, v in m.items() if "intercept" in k}
    assert_as_server(L.to_client(ccap, cl.cns.mac), "reply to the first lease", OTHER_SERVER_ID)

    time.sleep(0.3)
    mark = time.time()
    for _ in range(2):
        ev = renew(cl)
        assert ev.get("ip") == ip and ev.get("server_id") == OTHER_SERVER_ID, ev
    time.sleep(0.3)
    sent = unicast_renewals(ccap, cl.cns.mac, ip, mark)
    assert sent and all(f.dst_ip == OTHER_SERVER_ID for f in sent), L.describe_frames(sent)
    leaked = L.from_client(scap, cl.cns.mac, since=mark)
    assert not leaked, "the server saw renewals to the learned identifier:\n" + L.describe_frames(leaked)
    assert_as_server(L.to_client(ccap, cl.cns.mac, since=mark), "answer to a renewal", OTHER_SERVER_ID)
    note(f"dhcpd server-identifier {OTHER_SERVER_ID}: learned from the ACK and intercepted "
         f"after privileges were dropped (CapEff {cap_eff:#x}); {len(sent)} renewals answered by cdra")
    srv.check_alive()
    relay.check_alive()


# --------------------------------------------------------------------------- two servers

def test_two_servers_client_sees_both_offers(lab):
    """Paper 4.2: "A spoofing CDRA can forward all received OFFERs to the client and let the
    client decide which to accept." Kea on 10.77.0.1 and dnsmasq on 10.77.3.1 (its own
    pool) both answer a DISCOVER: the client's wire shows both OFFERs, each from its own
    server's address and naming it; the client's renewal to whichever it chose is
    intercepted (both addresses are in the interception set)."""
    lab.add_second_server()
    srv2 = lab.start_second_server("dnsmasq", lease_time=SERVER_LEASE)
    scap2 = lab.capture(lab.srv2, L.SERVER2_IF, "server2")
    srv, scap = start_spoof(lab, "kea", servers=(L.SERVER_IP, L.SERVER2_IP),
                            extra_upstream=(L.UP2_IF,))
    cns = lab.add_client()
    ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
    cl = lab.start_client("udhcpc", cns)
    ev = cl.wait_bound(timeout=20)

    def both():
        offers = L.to_client(ccap, cns.mac)
        got = {f.src_ip for f in offers if f.dhcp.msg_type == dp.OFFER}
        return offers if {L.SERVER_IP, L.SERVER2_IP} <= got else None
    offers = [f for f in L.wait_until(both, 10, what="OFFERs from both servers at the client")
              if f.dhcp.msg_type == dp.OFFER]
    for server_ip, pool in ((L.SERVER_IP, (L.POOL_START, L.POOL_END)),
                            (L.SERVER2_IP, (L.POOL2_START, L.POOL2_END))):
        mine = [f for f in offers if f.src_ip == server_ip]
        assert_as_server(mine, f"OFFER of {server_ip}", server_ip)
        assert all(dp.ip_in(f.dhcp.yiaddr, *pool) for f in mine), L.describe_frames(mine)
    chosen = ev.get("server_id")
    assert chosen in (L.SERVER_IP, L.SERVER2_IP), ev
    m = lab.relay.metrics()
    assert m.get("cdra_intercepted_addresses") == 2, m.get("cdra_intercepted_addresses")
    ruleset = nft_ruleset(lab)
    assert L.SERVER_IP in ruleset and L.SERVER2_IP in ruleset, ruleset

    time.sleep(0.3)
    mark = time.time()
    ev2 = renew(cl)
    assert ev2.get("ip") == ev["ip"] and ev2.get("server_id") == chosen, ev2
    time.sleep(0.3)
    for cap in (scap, scap2):
        leaked = L.from_client(cap, cns.mac, since=mark)
        assert not leaked, f"a server saw the renewal:\n{L.describe_frames(leaked)}"
    assert_as_server(L.to_client(ccap, cns.mac, since=mark), "answer to the renewal", chosen)
    note(f"OFFERs at the client: {sorted({f.src_ip for f in offers})}; bound to {ev['ip']} "
         f"from {chosen}; its renewal was intercepted")
    srv2.check_alive()
    lab.relay.check_alive()


# --------------------------------------------------------------------------- placement, other modes

def test_check_wants_the_router_and_other_modes_intercept_nothing(lab):
    """`cdra check` in spoofing mode looks at the relay namespace's routes: the lab's server
    (routed through ru0, the upstream interface) is fine; a server on the client segment or
    one of the relay's own addresses is reported in one line naming its key, exit 2.
    Relay and proxy mode install no nftables table."""
    def check(servers: tuple[str, ...]) -> tuple[int, str]:
        conf = lab.dir / f"check-{len(list(lab.dir.glob('check-*')))}.toml"
        conf.write_text(L.cdra_config(**L.proxy_relay_kw(lab, mode="spoof", servers=servers)))
        r = L.run(L.nsexec(lab.rly) + [str(L.cdra_bin()), "check", "--config", str(conf)], check=False)
        return r.returncode, (r.stdout + r.stderr).strip()

    rc, out = check((L.SERVER_IP,))
    assert rc == 0 and "spoof mode" in out, out
    for servers, want in (
        ((L.SERVER_IP, "10.77.1.50"), "servers[1]: 10.77.1.50 is routed through rd0, a downstream interface"),
        ((L.RELAY_DOWN_IP,), "servers[0]: 10.77.1.1 is an address of this host"),
        (("192.0.2.9",), "servers[0]: 192.0.2.9 has no route on this host"),
    ):
        rc, out = check(servers)
        assert rc == 2 and want in out and len(out.splitlines()) == 1, (rc, out)
        assert "must run on the router between the clients and the servers" in out, out
    note(f"cdra check: {out}")

    for mode_kw in ({"mode": "relay"}, L.proxy_relay_kw(lab)):
        lab.start_relay(**mode_kw)
        assert nft_ruleset(lab).strip() == "", f"{mode_kw['mode']} mode installed a table"
        assert "intercepting" not in lab.relay.proc.text()
        lab.relay.stop()
