"""A pair of cdra relays sharing one client table in Redis (issue 15 item 3).

Two relay namespaces on one client segment and one server segment (lab.PairLab), keepalived
(VRRP, unicast adverts) moving the virtual addresses 10.77.1.1 (the clients' router, cdra's
server identifier and giaddr) and 10.77.0.4 (the server's route back) between them, cdra
in proxy mode on both with `[store] backend = "redis"` and `[ha] virtual_address`, Redis in
a namespace of its own, Kea as the server.

- test_failover_during_outage: clients bound through A (the active relay); the server is
  stopped; A's cdra is SIGKILLed and its keepalived stopped, so the address moves to B; B
  loads the table from Redis and answers every client it never saw (reboots, renewals)
  with the server still down, nothing answered twice and nothing by A; then A comes back
  (VRRP preemption): it reloads the table before it answers or writes, and B goes silent.
- test_redis_down_at_start_up (configured without `[ha]`: with Redis, the downstream
  address is the pair's): Redis is not there when the active relay restarts; it
  serves anyway; when Redis comes back with an older table (saved before), the relay
  merges it with its own and writes the union back: Redis is not overwritten by what the
  relay had alone.
- test_lease_failover_during_outage (configured with only `[store] backend/url`: no
  `[ha]`, no downstream address, keepalived moving an address anyway): the lease in Redis
  says which relay is active; each client answered once, by A; A SIGKILLed during a
  server outage; B takes the lease within the lease's 3 s and answers every client from
  the shared table.
- test_lease_redis_down: Redis goes away under that pair: the holder goes silent before
  its lease can expire, both answer alone after twice the lease; Redis back, one holds
  the lease again.
- test_leasequery_refill_with_redis_down_at_start_up (`[leasequery]` on, no `[ha]`, ISC
  dhcpd with `allow leasequery;`): the standby asks the server nothing; the active relay,
  restarted with Redis away (its shared table unreadable, its own empty), sweeps the
  server once it serves and makes a record for each client the server leased to (review
  finding 1: the sweep used to run while the table was loading, its queries thrown away,
  the server marked as not answering, and nothing refilled).
- test_keepalived_follows_cdra: keepalived's check script (contrib/keepalived-pair.conf)
  moves the address when only the active cdra is SIGKILLed, and back when it returns.

These tests need cdra (skipped for CDRA_E2E_RELAY=dhcrelay), redis-server and keepalived
(scripts/e2e-deps installs both).
"""

from __future__ import annotations

import calendar
import os
import re
import shutil
import signal
import time

import pytest

import dhcp_packets as dp
import lab as L
from conftest import fresh_lab

ALL_CLIENTS = ["dhclient", "udhcpc", "dhcpcd"]
CLIENTS = [c for c in os.environ.get("CDRA_E2E_CLIENTS", ",".join(ALL_CLIENTS)).split(",") if c]

pytestmark = [
    pytest.mark.skipif(L.relay_kind() != "cdra", reason="a pair sharing a table is cdra's"),
    pytest.mark.skipif(not (shutil.which("redis-server") and os.path.exists(L.sbin("keepalived"))),
                       reason="needs redis-server and keepalived (scripts/e2e-deps)"),
]

SERVER_LEASE = 600
PROXY = {"client_lease": "10s"}
LOADED = re.compile(r"client table loaded from Redis.*\bstored=(\d+)\b.*\bloaded=(\d+)\b")


def note(msg: str) -> None:
    print(f"[pair] {msg}")


@pytest.fixture
def pair(request):
    yield from fresh_lab(request, L.PairLab)


def log_time(relay: L.PairRelay, needle: str) -> float:
    """Wall time (Unix seconds) of the last log line of `relay` containing `needle`."""
    lines = [ln for ln in relay.proc.text().splitlines() if needle in ln]
    assert lines, f"no log line with {needle!r}:\n" + L.tail(relay.proc.text())
    stamp = lines[-1].split()[0]  # 2026-12-06T07:02:50.789256Z
    whole, frac = stamp.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + frac)


def loads(relay: L.PairRelay) -> list[tuple[int, int]]:
    return [(int(m.group(1)), int(m.group(2))) for m in LOADED.finditer(relay.proc.text())]


def wait_role(lab: L.PairLab, active: str, timeout: float = 15) -> float:
    """Wait until relay `active` holds the virtual address and its cdra says it serves
    (`cdra_ha_active 1`), the other one is standby; returns when the address arrived."""
    standby = "B" if active == "A" else "A"
    L.wait_until(lambda: lab.holds_vip(active) and not lab.holds_vip(standby), timeout,
                 what=f"the virtual address on relay {active} only")
    arrived = time.time()
    L.wait_until(lambda: lab.relays[active].metrics().get("cdra_ha_active") == 1.0, 5,
                 what=f"cdra {active} to be active")
    other = lab.relays.get(standby)
    if other is not None and other.alive():
        L.wait_until(lambda: other.metrics().get("cdra_ha_active") == 0.0, 5,
                     what=f"cdra {standby} to be standby")
    return arrived


def start_pair(lab: L.PairLab, *, explicit_ha: bool = True,
               track_cdra: bool = False) -> dict[str, L.PairRelay]:
    """Redis, cdra on both relays, keepalived (A first: the master). `explicit_ha=False`:
    no `[ha]` section (the downstream address is the pair's, as Redis implies)."""
    lab.start_redis()
    for which in ("A", "B"):
        kw = L.pair_relay_kw(lab, which, proxy=PROXY)
        if not explicit_ha:
            kw["sections"] = {}
        lab.start_pair_relay(which, **kw)
    lab.start_keepalived("A", track_cdra=track_cdra)
    time.sleep(0.5)  # A first: it is the master at start-up
    lab.start_keepalived("B", track_cdra=track_cdra)
    wait_role(lab, "A", timeout=20)
    return lab.relays


def bind_clients(lab: L.PairLab, kinds: list[str], server_id: str = L.RELAY_DOWN_IP,
                 ) -> dict[str, tuple[L.Client, L.Capture, str]]:
    """Bind a client of each kind through the active relay, answering as `server_id`."""
    out = {}
    for kind in kinds:
        cns = lab.add_client()
        cap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
        cl = lab.start_client(kind, cns)
        ev = cl.wait_bound(timeout=25)
        ip = ev.get("ip", "")
        assert dp.ip_in(ip, L.POOL_START, L.POOL_END), f"{kind}: {ev}"
        assert ev.get("server_id") == server_id, f"{kind}: server identifier {ev}"
        # Both relays' kernels reach the client without asking (as wait_bound does for A).
        L.pin_neighbor(lab.rly2, L.DOWN_IF, ip, cns.mac)
        out[kind] = (cl, cap, ip)
    return out


def replies_by_sender(cap: L.Capture, mac: str, since: float) -> dict[str, list[dp.Frame]]:
    out: dict[str, list[dp.Frame]] = {}
    for f in L.to_client(cap, mac, since=since):
        out.setdefault(f.src_mac, []).append(f)
    return out


@pytest.mark.e2e_timeout(240)
def test_failover_during_outage(pair):
    lab = pair
    srv = lab.start_server("kea", lease_time=SERVER_LEASE)
    scap = lab.capture(lab.srv, "sv0", "server")
    relays = start_pair(lab)
    a, b = relays["A"], relays["B"]
    started = time.time()
    clients = bind_clients(lab, CLIENTS)
    for kind, (cl, cap, ip) in clients.items():
        senders = replies_by_sender(cap, cl.cns.mac, started)
        assert set(senders) == {lab.mac["A"]}, f"{kind}: replies from {set(senders)}: the standby answered"
    L.wait_until(lambda: lab.stored_records() == len(clients), 5,
                 what=f"{len(clients)} records in Redis")
    assert len(a.cache_records()) == len(clients)
    assert b.cache_records() == [], "the standby keeps no table"

    # The outage, then the active relay dies.
    srv.stop()
    killed = time.time()
    assert a.kill() == -signal.SIGKILL
    a.exit_checked = True
    lab.relay = b  # the one whose death fails the test at once (lab.fail_fast)
    lab.keepalived["A"].stop()
    moved = wait_role(lab, "B")
    b.proc.wait_log("client table loaded from Redis", 10)
    assert loads(b)[-1] == (len(clients), len(clients)), L.tail(b.proc.text())
    recs = {r["address"] for r in b.cache_records()}
    assert recs == {ip for _, _, ip in clients.values()}, b.cache("list")

    # Every client, none of which B ever saw, is answered by B with the server down.
    first_answer = None
    for kind, (cl, cap, ip) in clients.items():
        n = cl.restart()
        ev = cl.wait_bound(timeout=25, after=n)
        assert ev.get("ip") == ip and ev.get("server_id") == L.RELAY_DOWN_IP, f"{kind}: {ev}"
        if first_answer is None:
            acks = [f for f in L.to_client(cap, cl.cns.mac, since=moved) if f.dhcp.msg_type == dp.ACK]
            first_answer = acks[0].ts if acks else None
    for kind in ("dhcpcd", "dhclient"):
        if kind in clients:
            cl, cap, ip = clients[kind]
            ev = cl.renew(timeout=15)
            assert ev["kind"] == "renew" and ev.get("ip") == ip, f"{kind}: {ev}"
    time.sleep(0.5)
    for kind, (cl, cap, ip) in clients.items():
        assert ip in cl.cns.ipv4_addrs(), f"{kind} lost {ip}"
        senders = replies_by_sender(cap, cl.cns.mac, killed)
        assert set(senders) <= {lab.mac["B"]}, f"{kind}: replies from {set(senders)} after the failover"
        requests = {}
        for f in L.from_client(cap, cl.cns.mac, since=killed):
            requests[f.dhcp.xid] = requests.get(f.dhcp.xid, 0) + 1
        for f in senders.get(lab.mac["B"], []):
            replies = [g for g in senders[lab.mac["B"]] if g.dhcp.xid == f.dhcp.xid]
            assert len(replies) <= requests.get(f.dhcp.xid, 0), \
                f"{kind}: {len(replies)} replies to {requests.get(f.dhcp.xid, 0)} requests of xid {f.dhcp.xid:#x}:\n" \
                + L.describe_frames(replies)
    leaked = [f for f in scap.dhcp(lambda f: f.ts >= killed and f.dhcp.op == 1)]
    assert not leaked or not srv.proc.alive(), "the server was down"
    took = (first_answer - moved) if first_answer else None
    role_at = log_time(b, "the virtual address moved")
    loaded_at = log_time(b, "client table loaded from Redis")
    note(f"address seen on B {role_at - killed:.2f}s after A's kill; table loaded and served "
         f"{(loaded_at - role_at) * 1e3:.0f} ms after that; first ACK to a rebooting client "
         f"{took:.2f}s after the move (the client's own timing included)" if took is not None
         else "no ACK timing")
    L.wait_until(lambda: lab.stored_records() == len(clients), 5, what="B's table in Redis")

    # A comes back: VRRP preemption gives it the address; it reloads before it answers.
    a.restart()
    lab.relay = a
    lab.start_keepalived("A")
    wait_role(lab, "A", timeout=20)
    a.proc.wait_log("client table loaded from Redis", 10)
    assert loads(a)[-1] == (len(clients), len(clients)), L.tail(a.proc.text())
    L.wait_until(lambda: b.cache_records() == [], 5, what="B to drop its table")
    back = time.time()
    for kind, (cl, cap, ip) in clients.items():
        n = cl.restart()
        ev = cl.wait_bound(timeout=25, after=n)
        assert ev.get("ip") == ip and ev.get("server_id") == L.RELAY_DOWN_IP, f"{kind}: {ev}"
        senders = replies_by_sender(cap, cl.cns.mac, back)
        assert set(senders) == {lab.mac["A"]}, f"{kind}: replies from {set(senders)} after A came back"
    assert lab.stored_records() == len(clients)
    assert b.metrics().get("cdra_ha_standby_drops_total", 0) > 0
    a.check_alive()
    b.check_alive()


@pytest.mark.e2e_timeout(180)
def test_redis_down_at_start_up(pair):
    lab = pair
    lab.start_server("kea", lease_time=SERVER_LEASE)
    # A table from before: one client bound through the pair, saved by Redis to disk. No
    # [ha] section here: the downstream address (the virtual one) makes the pair.
    relays = start_pair(lab, explicit_ha=False)
    assert "the first downstream address" in relays["B"].proc.text()
    a = relays["A"]
    (first,) = bind_clients(lab, ["udhcpc"]).values()
    L.wait_until(lambda: lab.stored_records() == 1, 5, what="the first record in Redis")
    lab.stop_redis(save=True)

    # A restarts with Redis away: it serves (a new client) without it.
    a.stop()
    a.restart()
    a.proc.wait_log("cannot be loaded from Redis", 10)
    warnings = [ln for ln in a.proc.text().splitlines() if " WARN " in ln]
    assert len(warnings) == 1, "\n".join(warnings)
    (second,) = bind_clients(lab, ["dhcpcd"]).values()
    assert a.metrics().get("cdra_persistence_up") == 0.0

    # Redis comes back with the old table: merged, and the union written back.
    lab.start_redis()
    assert lab.stored_records() == 1, "Redis loaded its snapshot"
    a.proc.wait_log("client table loaded from Redis", 15)
    # stored: what Redis held; loaded: the table after the merge (its record and ours).
    assert loads(a)[-1] == (1, 2), L.tail(a.proc.text())
    L.wait_until(lambda: lab.stored_records() == 2, 5, what="both clients in Redis")
    assert {r["address"] for r in a.cache_records()} == {first[2], second[2]}
    assert a.metrics().get("cdra_persistence_up") == 1.0
    a.check_alive()


@pytest.mark.e2e_timeout(180)
def test_leasequery_refill_with_redis_down_at_start_up(pair):
    lab = pair
    lab.start_server("dhcpd", leasequery=True, lease_time=SERVER_LEASE)
    lab.start_redis()
    leasequery = {"enabled": True, "rate": 200}  # 10.77.1.0/24 in under 2 s
    for which in ("A", "B"):
        kw = L.pair_relay_kw(lab, which, proxy=PROXY)
        kw["sections"] = {"leasequery": leasequery}
        lab.start_pair_relay(which, **kw)
    lab.start_keepalived("A")
    time.sleep(0.5)  # A first: it is the master at start-up
    lab.start_keepalived("B")
    wait_role(lab, "A", timeout=20)
    a, b = lab.relays["A"], lab.relays["B"]
    clients = bind_clients(lab, ["udhcpc", "dhcpcd"])
    addresses = {ip for _, _, ip in clients.values()}
    note(f"bound through A: {sorted(addresses)}")
    # The standby asked nothing: what it sends is thrown away.
    assert b.proxy_event("leasequery_sent") == 0, L.tail(b.proc.text())
    assert b.proxy_event("leasequery_server_not_answering") == 0
    assert "does not answer leasequery" not in b.proc.text()

    # Redis goes (its table with it); A restarts: its shared table cannot be loaded and
    # its own is empty. It serves alone, and refills from the server.
    lab.stop_redis()
    a.stop()
    a.restart()
    a.proc.wait_log("cannot be loaded from Redis", 10)
    L.wait_until(lambda: a.proxy_event("leasequery_record_made") >= len(clients), 20,
                 what="records made from DHCPLEASEACTIVE once A serves")
    m = a.metrics()
    assert m.get(f'cdra_leasequery_server{{server="{L.SERVER_IP}",state="answers"}}') == 1, m
    assert a.proxy_event("leasequery_server_not_answering") == 0, L.tail(a.proc.text())
    assert a.proxy_event("leasequery_sweep_abandoned") == 0
    recs = {r["address"] for r in a.cache_records()}
    assert recs == addresses, a.cache("list")
    a.check_alive()
    b.check_alive()


@pytest.mark.e2e_timeout(120)
def test_keepalived_follows_cdra(pair):
    """keepalived's check script follows cdra (contrib/keepalived-pair.conf): only the
    active cdra is SIGKILLed, its keepalived keeps running and gives the address up; the
    survivor answers the client with the server down. When cdra is back, the address
    returns (preemption) and the old active answers again from the reloaded table."""
    lab = pair
    srv = lab.start_server("kea", lease_time=SERVER_LEASE)
    relays = start_pair(lab, track_cdra=True)
    a, b = relays["A"], relays["B"]
    ((cl, cap, ip),) = bind_clients(lab, ["dhclient"]).values()
    L.wait_until(lambda: lab.stored_records() == 1, 5, what="the record in Redis")
    srv.stop()
    killed = time.time()
    assert a.kill() == -signal.SIGKILL
    a.exit_checked = True
    lab.relay = b
    moved = wait_role(lab, "B", timeout=15)
    n = cl.restart()
    ev = cl.wait_bound(timeout=25, after=n)
    assert ev.get("ip") == ip and ev.get("server_id") == L.RELAY_DOWN_IP, ev
    assert set(replies_by_sender(cap, cl.cns.mac, killed)) == {lab.mac["B"]}
    note(f"keepalived's check script moved the address {moved - killed:.2f}s after cdra's kill")
    a.restart()
    lab.relay = a
    wait_role(lab, "A", timeout=15)
    a.proc.wait_log("client table loaded from Redis", 10)
    back = time.time()
    n = cl.restart()
    ev = cl.wait_bound(timeout=25, after=n)
    assert ev.get("ip") == ip, ev
    assert set(replies_by_sender(cap, cl.cns.mac, back)) == {lab.mac["A"]}
    assert lab.keepalived["A"].alive()
    b.check_alive()


def answered_once(cap: L.Capture, mac: str, since: float, kind: str) -> dict[str, list[dp.Frame]]:
    """Replies to `mac` since `since` by sender; no request answered more often than it was
    sent (one answer per request, whichever relay sent it)."""
    senders = replies_by_sender(cap, mac, since)
    requests: dict[int, int] = {}
    for f in L.from_client(cap, mac, since=since):
        requests[f.dhcp.xid] = requests.get(f.dhcp.xid, 0) + 1
    replies: dict[int, list[dp.Frame]] = {}
    for frames in senders.values():
        for f in frames:
            replies.setdefault(f.dhcp.xid, []).append(f)
    for xid, frames in replies.items():
        assert len(frames) <= requests.get(xid, 0), \
            f"{kind}: {len(frames)} replies to {requests.get(xid, 0)} requests of xid {xid:#x}:\n" \
            + L.describe_frames(frames)
    return senders


def lease_change(relay: L.PairRelay, change: str) -> float:
    return relay.metrics().get(f'cdra_ha_lease_changes_total{{change="{change}"}}', -1.0)


def start_lease_pair(lab: L.PairLab) -> tuple[L.PairRelay, L.PairRelay]:
    """Redis, cdra on both relays configured as the acceptance test may: only `[store]
    backend/url` (no `[ha]`, no downstream address); A first, so A takes the lease; then
    keepalived moving the address anyway (A the master)."""
    lab.start_redis()
    for which in ("A", "B"):
        kw = L.pair_relay_kw(lab, which, proxy=PROXY, address=None)
        kw["sections"] = {}
        lab.start_pair_relay(which, **kw)
        if which == "A":
            L.wait_until(lambda: lab.relays["A"].metrics().get("cdra_ha_active") == 1.0, 5,
                         what="A to take the lease")
    a, b = lab.relays["A"], lab.relays["B"]
    for r in (a, b):
        assert "active while holding the lease in Redis" in r.proc.text(), L.tail(r.proc.text())
    lab.start_keepalived("A")
    time.sleep(0.5)
    lab.start_keepalived("B")
    L.wait_until(lambda: lab.holds_vip("A"), 20, what="the virtual address on A")
    assert b.metrics().get("cdra_ha_active") == 0.0, "B is the standby"
    assert lease_change(a, "acquired") == 1.0, a.metrics_text()
    assert lease_change(b, "acquired") == 0.0, b.metrics_text()
    assert lab.redis_cli("GET", f"{L.REDIS_PREFIX}:active").startswith(_host_prefix(a))
    return a, b


@pytest.mark.e2e_timeout(240)
def test_lease_failover_during_outage(pair):
    """The acceptance test's configuration: only `[store] backend/url` (no `[ha]`, no
    downstream address), keepalived moving an address anyway. Nothing on the host says
    which relay is active, so the lease in Redis does: A takes it, B stays silent (each
    client answered once, by A, as A's own address); during a server outage A is SIGKILLed
    (its keepalived stopped too); B takes the lease once A's key expires, loads the table
    and answers every client from it."""
    lab = pair
    srv = lab.start_server("kea", lease_time=SERVER_LEASE)
    a, b = start_lease_pair(lab)
    started = time.time()
    # Without a pair address each relay answers as its own (A's here).
    clients = bind_clients(lab, CLIENTS, server_id=L.PAIR_A_DOWN)
    for kind, (cl, cap, ip) in clients.items():
        senders = answered_once(cap, cl.cns.mac, started, kind)
        assert set(senders) == {lab.mac["A"]}, f"{kind}: replies from {set(senders)}: the standby answered"
    L.wait_until(lambda: lab.stored_records() == len(clients), 5, what=f"{len(clients)} records in Redis")
    assert b.cache_records() == [], "the standby keeps no table"

    # The outage, then the active relay dies, and keepalived moves the address.
    srv.stop()
    killed = time.time()
    assert a.kill() == -signal.SIGKILL
    a.exit_checked = True
    lab.relay = b
    lab.keepalived["A"].stop()
    L.wait_until(lambda: b.metrics().get("cdra_ha_active") == 1.0, 10, what="B to take the lease")
    b.proc.wait_log("client table loaded from Redis", 10)
    assert loads(b)[-1] == (len(clients), len(clients)), L.tail(b.proc.text())
    acquired_at = log_time(b, "took the pair's lease")
    loaded_at = log_time(b, "client table loaded from Redis")
    assert acquired_at - killed < 3.0 + 0.5, f"took the lease {acquired_at - killed:.2f}s after the kill (lease 3 s)"

    for kind, (cl, cap, ip) in clients.items():
        n = cl.restart()
        ev = cl.wait_bound(timeout=25, after=n)
        assert ev.get("ip") == ip and ev.get("server_id") == L.PAIR_B_DOWN, f"{kind}: {ev}"
    time.sleep(0.5)
    for kind, (cl, cap, ip) in clients.items():
        assert ip in cl.cns.ipv4_addrs(), f"{kind} lost {ip}"
        senders = answered_once(cap, cl.cns.mac, killed, kind)
        assert set(senders) == {lab.mac["B"]}, f"{kind}: replies from {set(senders)} after the failover"
    assert lease_change(b, "acquired") == 1.0
    note(f"lease: B took it {acquired_at - killed:.2f}s after A's SIGKILL (lease 3 s), "
         f"table loaded and served {(loaded_at - acquired_at) * 1e3:.0f} ms after that")
    b.check_alive()


def _host_prefix(relay: L.PairRelay) -> str:
    """The start of the node id `relay` logged (host name and pid)."""
    m = re.search(r"node_id=(\S+)", relay.proc.text())
    assert m, L.tail(relay.proc.text())
    return m.group(1).rsplit(":", 1)[0]


@pytest.mark.e2e_timeout(180)
def test_lease_redis_down(pair):
    """Redis goes away under a pair the lease decides: A (the holder) goes silent before its
    lease could expire in Redis, then, Redis still away, both relays answer on their own
    after twice the lease (counted `alone`: a relay is there to answer while things are
    down). Redis back: one relay holds the lease again and the other is silent."""
    lab = pair
    lab.start_server("kea", lease_time=SERVER_LEASE)
    a, b = start_lease_pair(lab)
    cns = lab.add_client()
    cl = lab.start_client("dhclient", cns)
    ip = cl.wait_bound(timeout=25).get("ip", "")
    assert dp.ip_in(ip, L.POOL_START, L.POOL_END), ip
    L.wait_until(lambda: lab.stored_records() == 1, 5, what="the record in Redis")

    lab.stop_redis()
    gone = time.time()
    L.wait_until(lambda: lease_change(a, "expired") == 1.0, 5, what="A to give the role up")
    assert a.metrics().get("cdra_ha_active") == 0.0
    expired_at = log_time(a, "cannot renew the pair's lease")
    assert expired_at - gone < 3.0, f"A silent {expired_at - gone:.2f}s after Redis went (lease 3 s)"
    L.wait_until(lambda: lease_change(a, "alone") == 1.0 and lease_change(b, "alone") == 1.0, 10,
                 what="both relays alone")
    alone_at = max(log_time(r, "Redis out of reach for twice the lease") for r in (a, b))
    assert all(r.metrics().get("cdra_ha_active") == 1.0 for r in (a, b))
    # The client is answered with Redis down (the server is up: forwarded).
    n = cl.restart()
    ev = cl.wait_bound(timeout=25, after=n)
    assert ev.get("ip") == ip, ev

    lab.start_redis()
    back = time.time()
    L.wait_until(lambda: sorted(r.metrics().get("cdra_ha_active") for r in (a, b)) == [0.0, 1.0], 10,
                 what="one active relay again")
    standby = a if a.metrics().get("cdra_ha_active") == 0.0 else b
    assert lease_change(standby, "lost") == 1.0, standby.metrics_text()
    settled_at = log_time(standby, "another relay holds the pair's lease")
    note(f"Redis down: A silent {expired_at - gone:.2f}s after (lease 3 s), both alone "
         f"{alone_at - gone:.2f}s after; Redis back: one standby again {settled_at - back:.2f}s after")
    a.check_alive()
    b.check_alive()
