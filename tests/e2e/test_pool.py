"""Address-pooling mode (issue 12; paper 4.3): `mode = "pool"` is proxy mode plus a pool.

cdra leases `[pool] size` free addresses per downstream link from an unmodified server, as
ordinary relayed leases (giaddr 10.77.1.1) under identities of its own: client identifier
`\\0cdra-pool/10.77.1.1/<n>`, chaddr 0e:cd:xx:xx:xx:xx, hostname `cdra-pool-<n>`. With
`assign = "outage"` a new client whose DISCOVER no server answers within `fallback_after`
gets a pool address (after an ARP + ICMP probe), in cdra's name; once the server answers
again, the pool client's next renewal moves it onto a lease of its own (cdra RELEASEs the
pool lease and sends a SELECTING REQUEST under the client's identity). With `"always"`
every new client is served from the pool and the server sees only the pool's upkeep.

Every test runs against every server (Kea, ISC dhcpd, dnsmasq) with one client of each kind
(dhclient, udhcpc, dhcpcd) at once, and reads the server's own lease table (Kea's memfile
CSV, dhcpd.leases, dnsmasq's lease file).

`test_outage_then_server_back[*]` needs more than a minute (cdra asks the server back for a
pool client at most once a minute, the first time when it assigns the address), so those
scenarios run in labs of their own, in threads, from the module's first test on, beside the
other tests; their test items only wait for them and report (see `Background`).

These tests need cdra (they are skipped for CDRA_E2E_RELAY=dhcrelay).
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import traceback
from typing import Any, Callable

import pytest

import dhcp_packets as dp
import lab as L

ALL_SERVERS = ["kea", "dhcpd", "dnsmasq"]
ALL_CLIENTS = ["dhclient", "udhcpc", "dhcpcd"]
SERVERS = [s for s in os.environ.get("CDRA_E2E_SERVERS", ",".join(ALL_SERVERS)).split(",") if s]
CLIENTS = [c for c in os.environ.get("CDRA_E2E_CLIENTS", ",".join(ALL_CLIENTS)).split(",") if c]

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra",
                                reason="pool mode is cdra's (CDRA_E2E_RELAY=cdra)")

# The server's leases are long: nothing in a test reaches a pool lease's T1.
SERVER_LEASE = 600
POOL_SIZE = 3
# Pool clients get 20 s leases from cdra: they renew every ~10 s (dhclient, dhcpcd at T1;
# udhcpc at 3/4 of a lease it raises to 30 s) on their own.
CLIENT_LEASE = "20s"
CLIENT_T1 = 10.0
FALLBACK_AFTER = "1s"
# cdra renews a pool client's entry (the renewal whose ACK starts the move to the server)
# at most once this long, the first time when it ACKs the pool address (RENEW_RETRY in
# crates/core/src/pool/upkeep.rs).
RENEW_RETRY = 60.0
MASK = "255.255.255.0"
RESTORED = re.compile(r"client table restored.*\bstored=(\d+)\b.*\bloaded=(\d+)\b.*"
                      r"\bpool_entries=(\d+)\b")


def note(msg: str) -> None:
    print(f"[pool] {msg}")


# --------------------------------------------------------------------------- helpers

def start_pool(lab: L.Lab, server: str, *, assign: str = "outage", size: int = POOL_SIZE,
               client_lease: str = CLIENT_LEASE, server_kw: dict | None = None,
               ) -> tuple[L.Server, L.Capture, L.Capture]:
    """The server (a capture on its interface), a capture on the relay's client side, cdra
    in pool mode (lab store, control socket, metrics); waits until the server's lease table
    shows the pool full. Returns the server and the two captures."""
    srv = lab.start_server(server, lease_time=SERVER_LEASE, **(server_kw or {}))
    scap = lab.capture(lab.srv, L.SERVER_IF, "server")
    rcap = lab.capture(lab.rly, L.DOWN_IF, "relay-rd0")
    lab.start_relay(**L.proxy_relay_kw(lab, mode="pool", sections={"pool": {
        "size": size, "assign": assign, "fallback_after": FALLBACK_AFTER,
        "client_lease": client_lease}}))
    wait_pool_leases(lab, srv, size)
    return srv, scap, rcap


def pool_leases(srv: L.Server) -> dict[str, L.Lease]:
    """Active leases of cdra's pool identities in the server's lease table, by address."""
    return {ip: l for ip, l in srv.active_leases().items() if l.is_pool()}


def wait_pool_leases(lab: L.Lab, srv: L.Server, n: int, timeout: float = 15,
                     avoid: set[str] = frozenset()) -> dict[str, L.Lease]:
    """Until the server's lease table shows exactly `n` active pool leases (none of them on
    an address in `avoid`)."""
    def full():
        lab.fail_fast()
        p = pool_leases(srv)
        return p if len(p) == n and not set(p) & set(avoid) else None
    try:
        return L.wait_until(full, timeout, interval=0.1,
                            what=f"{n} pool leases in the {srv.kind} lease table")
    except L.LabError as e:
        raise L.LabError(f"{e}:\n{srv.lease_file_text()}") from None


def check_pool_identities(leases: dict[str, L.Lease], what: str) -> None:
    """Each lease is a distinct pool identity (client id `\\0cdra-pool/10.77.1.1/<n>`,
    chaddr 0e:cd:.. locally administered, hostname cdra-pool-<n> when the server records
    it) on a distinct address of the downstream subnet's range."""
    numbers, macs = set(), set()
    for ip, l in leases.items():
        assert dp.ip_in(ip, L.POOL_START, L.POOL_END), f"{what}: {ip} outside the range: {l}"
        n = l.pool_number()
        assert n is not None and l.client_id == L.POOL_ID_PREFIX + f"{L.RELAY_DOWN_IP}/{n}".encode(), \
            f"{what}: not a pool client identifier: {l}"
        assert l.mac.startswith("0e:cd:") and int(l.mac[:2], 16) & 0b11 == 0b10, \
            f"{what}: chaddr {l.mac} is not a locally administered 0e:cd:..: {l}"
        assert l.hostname in ("", f"cdra-pool-{n}"), f"{what}: hostname {l.hostname!r}: {l}"
        numbers.add(n)
        macs.add(l.mac)
    assert len(numbers) == len(macs) == len(leases), f"{what}: identities not distinct:\n" + \
        "\n".join(map(str, leases.values()))


def identity(l: L.Lease) -> bytes:
    """How the server tells its clients apart: the client identifier, else the chaddr."""
    return l.client_id if l.client_id else b"hw:" + l.mac.encode()


def check_one_identity_per_address(srv: L.Server) -> dict[str, L.Lease]:
    """No identity holds two active leases (each address has one record by construction of
    the three lease files). Returns the active leases."""
    act = srv.active_leases()
    seen: dict[bytes, str] = {}
    for ip, l in act.items():
        other = seen.get(identity(l))
        assert other is None, f"{srv.kind}: one identity holds {other} and {ip}:\n" + \
            srv.lease_file_text()
        seen[identity(l)] = ip
    return act


def client_id_sent(ccap: L.Capture, mac: str) -> bytes | None:
    """Option 61 of the client's own requests (dhclient sends none)."""
    for f in L.from_client(ccap, mac):
        if dp.OPT_CLIENT_ID in f.dhcp.options:
            return f.dhcp.options[dp.OPT_CLIENT_ID]
    return None


def start_clients(lab: L.Lab, kinds: list[str]) -> dict[str, tuple[L.Client, L.Capture]]:
    """One client of each kind, each in a namespace of its own (distinct MACs) with a
    capture, all started before any is waited for."""
    out = {}
    for kind in kinds:
        cns = lab.add_client()
        ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
        out[kind] = (lab.start_client(kind, cns), ccap)
    return out


def check_pool_lease(kind: str, ev: dict[str, str], pool: set[str] | None) -> str:
    """A client's lease from the pool: one of the pool's addresses (`pool`; None: checked
    by the caller), the pool lease's options (subnet mask, router), cdra as its server."""
    ip = ev.get("ip", "")
    assert pool is None or ip in pool, \
        f"{kind} got {ip!r}, not one of the pool's {sorted(pool or ())}: {ev}"
    assert ev.get("mask") == MASK, f"{kind}: subnet mask {ev.get('mask')!r}: {ev}"
    assert ev.get("router", "").split() == [L.ROUTER], f"{kind}: routers {ev.get('router')!r}: {ev}"
    assert ev.get("server_id") == L.RELAY_DOWN_IP, f"{kind}: server id {ev.get('server_id')!r}: {ev}"
    return ip


def bind_all(clients: dict[str, tuple[L.Client, L.Capture]], pool: set[str] | None,
             timeout: float = 20) -> dict[str, str]:
    """Wait for every client's lease; each is a pool lease; the addresses are distinct."""
    got = {kind: check_pool_lease(kind, cl.wait_bound(timeout=timeout), pool)
           for kind, (cl, _) in clients.items()}
    assert len(set(got.values())) == len(got), f"two clients share an address: {got}"
    return got


def renew_once(cl: L.Client, ip: str, timeout: float = CLIENT_T1 + 8) -> dict[str, str]:
    """One renewal of the client, answered with its address: udhcpc and dhcpcd on SIGUSR1,
    dhclient at its T1."""
    n = len(cl.events())
    ev = cl.renew(timeout=timeout)
    kinds = [e["kind"] for e in cl.events()[n:]]
    assert ev["kind"] in ("renew", "bound") and "nak" not in kinds and "deconfig" not in kinds, \
        f"{cl.kind}: expected its renewal ACKed, it recorded {kinds}: {ev}"
    assert ev.get("ip") == ip, f"{cl.kind} renewed to {ev.get('ip')!r}, it had {ip}: {ev}"
    return ev


def renew_all(clients: dict[str, tuple[L.Client, L.Capture]], ips: dict[str, str]) -> None:
    """A renewal of each client, concurrently (dhclient's comes at its T1 anyway)."""
    errors: list[BaseException] = []

    def one(kind: str) -> None:
        try:
            renew_once(clients[kind][0], ips[kind])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=one, args=(k,)) for k in clients]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def frames_from_pool(cap: L.Capture, numbers: set[int] | None = None, since: float = 0.0,
                     ) -> list[dp.Frame]:
    """Requests of pool identities (all, or those numbered `numbers`) in `cap`."""
    def ours(f: dp.Frame) -> bool:
        cid = f.dhcp.options.get(dp.OPT_CLIENT_ID, b"")
        if f.dhcp.op != 1 or f.ts < since or not cid.startswith(L.POOL_ID_PREFIX):
            return False
        return numbers is None or int(cid.rsplit(b"/", 1)[1]) in numbers
    return cap.dhcp(ours)


def event(relay: L.CdraRelay, name: str) -> float:
    return relay.proxy_event(name)


def server_log_lines(srv: L.Server, ip: str, since: float = 0.0) -> list[str]:
    """Lines of the server's log (the running process's) that name `ip`: what it made of
    the hand-over (RELEASE, REQUEST, ACK/NAK), for the report."""
    text = srv.proc.text() if srv.proc else ""
    words = ("RELEASE", "REQUEST", "ACK", "NAK", "ALLOC", "free", "abandon")
    return [ln.strip() for ln in text.splitlines()
            if ip in ln and any(w in ln for w in words)
            and not ln.startswith("###")]


def dhcpd_history(srv: L.Server, ip: str) -> list[str]:
    """Every dhcpd.leases record of `ip`, oldest first: binding state and hardware."""
    out, cur = [], None
    for raw in srv.leasefile.read_text(errors="replace").splitlines():
        line = raw.strip()
        if line.startswith(f"lease {ip} "):
            cur = []
        elif cur is not None and line == "}":
            out.append(" ".join(cur))
            cur = None
        elif cur is not None and line.startswith(("binding state", "hardware", "uid")):
            cur.append(line)
    return out


# --------------------------------------------------------------------------- foreground tests

@pytest.mark.parametrize("server", SERVERS)
def test_pool_fills(lab, server):
    """mode = "pool", size 3: the server's lease table shows three leases of cdra pool
    identities (client id, chaddr, hostname), on three distinct addresses of the client
    subnet, each acquired by a relayed DISCOVER + SELECTING REQUEST (giaddr 10.77.1.1);
    nothing of it reaches the client link."""
    t0 = time.monotonic()
    srv, scap, rcap = start_pool(lab, server)
    filled = time.monotonic() - t0
    leases = pool_leases(srv)
    check_pool_identities(leases, server)
    for ip, l in leases.items():
        mine = [f for f in frames_from_pool(scap, {l.pool_number()})]
        kinds = [f.dhcp.msg_type for f in mine]
        assert kinds[:2] == [dp.DISCOVER, dp.REQUEST], \
            f"{l}: expected DISCOVER then REQUEST:\n" + L.describe_frames(mine)
        req = mine[1].dhcp
        assert req.requested_ip == ip and req.server_id == L.SERVER_IP and req.ciaddr == "0.0.0.0", \
            f"not a SELECTING REQUEST for {ip}: {mine[1].describe()}"
        assert all(f.dhcp.giaddr == L.RELAY_DOWN_IP and f.src_ip == L.RELAY_UP_IP for f in mine), \
            L.describe_frames(mine)
    assert not rcap.dhcp(), "pool upkeep reached the client link:\n" + rcap.summary()
    assert event(lab.relay, "pool_leased") == POOL_SIZE
    note(f"{server}: pool of {POOL_SIZE} leased in {filled:.2f}s (cdra start included): "
         + "; ".join(f"{ip}={l.mac}" for ip, l in sorted(leases.items())))
    lab.relay.check_alive()


@pytest.mark.parametrize("server", SERVERS)
def test_assign_always_server_sees_only_the_pool(lab, server):
    """assign = "always": dhclient, udhcpc and dhcpcd are served from the pool at once (no
    wait for a server OFFER), each a distinct address that the server leases to a pool
    identity (an entry given out is replaced at once, and a later client may get the
    replacement), with the pool lease's options
    and cdra as server; they renew with cdra. The server never sees them: no request with
    their chaddr in its capture, and its lease table holds only pool identities (the pool
    refilled to three free entries)."""
    srv, scap, rcap = start_pool(lab, server, assign="always", client_lease="10s")
    t0 = time.monotonic()
    clients = start_clients(lab, CLIENTS)
    # The server up, an entry given out is replaced at once: a later client may get the
    # replacement. Every address given is a pool lease at the server (checked below).
    ips = bind_all(clients, None)
    took = time.monotonic() - t0
    renew_all(clients, ips)
    refilled = wait_pool_leases(lab, srv, 2 * POOL_SIZE)
    assert set(ips.values()) <= set(refilled), \
        f"clients got addresses that are no pool leases: {ips}:\n{srv.lease_file_text()}"
    check_pool_identities(refilled, server)
    act = check_one_identity_per_address(srv)
    assert set(act) == set(refilled), f"{server} leases to others than the pool:\n" + \
        srv.lease_file_text()
    for kind, (cl, ccap) in clients.items():
        seen = [f for f in scap.dhcp() if f.dhcp.chaddr == cl.cns.mac]
        assert not seen, f"the server saw {kind}:\n" + L.describe_frames(seen)
        assert act[ips[kind]].is_pool(), f"{ips[kind]} is not a pool lease: {act[ips[kind]]}"
    assert event(lab.relay, "pool_fallback") == 0 and event(lab.relay, "pool_migration_started") == 0
    note(f"{server}: always: {ips} bound in {took:.1f}s (all three); the server saw only "
         f"{len(frames_from_pool(scap))} pool requests")
    lab.relay.check_alive()


@pytest.mark.parametrize("server", SERVERS)
def test_restart_keeps_pool_entries_and_clients(lab, server):
    """cdra with a store: pool filled, then the server stopped and dhclient, udhcpc and
    dhcpcd given the three pool addresses. cdra is SIGKILLed and started again: its log
    reports the three pool entries restored; each pool client renews (server still down)
    and keeps its address, answered by cdra. The server, started again, sees no DISCOVER or
    SELECTING REQUEST of the restored pool identities, and its lease table still leases the
    same addresses to the same pool identities (new entries refill the pool beside them)."""
    srv, scap, rcap = start_pool(lab, server)
    before = pool_leases(srv)
    srv.stop()
    clients = start_clients(lab, CLIENTS)
    ips = bind_all(clients, set(before))
    time.sleep(0.5)  # > one commit window (100 ms)
    relay = lab.relay
    assert relay.kill() == -signal.SIGKILL
    killed = time.time()
    relay.restart()
    relay.proc.wait_log("client table restored", 5)
    m = RESTORED.findall(relay.proc.text())
    assert m, "no restore report:\n" + L.tail(relay.proc.text())
    stored, loaded, entries = map(int, m[-1])
    assert (loaded, entries) == (len(CLIENTS), POOL_SIZE), \
        f"restored loaded={loaded} pool_entries={entries}, expected {len(CLIENTS)} and " \
        f"{POOL_SIZE}:\n" + L.tail(relay.proc.text())
    recs = {r["address"]: r for r in relay.cache_records()}
    assert set(ips.values()) <= set(recs), relay.cache("list")

    renew_all(clients, ips)
    srv.restart()
    # The refill (the three entries given out) is acquired now; the restored ones are not.
    wait_pool_leases(lab, srv, 2 * POOL_SIZE, timeout=40)
    after = pool_leases(srv)
    for ip, l in before.items():
        assert ip in after and identity(after[ip]) == identity(l), \
            f"{ip} no longer leased to {l}:\n{srv.lease_file_text()}"
    numbers = {l.pool_number() for l in before.values()}
    again = [f for f in frames_from_pool(scap, numbers, since=killed)
             if f.dhcp.msg_type == dp.DISCOVER or (f.dhcp.msg_type == dp.REQUEST
                                                   and f.dhcp.ciaddr == "0.0.0.0")]
    assert not again, "restored entries were acquired again:\n" + L.describe_frames(again)
    for kind, (cl, ccap) in clients.items():
        assert ips[kind] in cl.cns.ipv4_addrs(), f"{kind} lost {ips[kind]}"
        acks = [f for f in L.to_client(ccap, cl.cns.mac, since=killed) if f.dhcp.msg_type == dp.ACK]
        assert acks and all(f.src_ip == L.RELAY_DOWN_IP and f.dhcp.yiaddr == ips[kind]
                            for f in acks), L.describe_frames(acks)
    check_one_identity_per_address(srv)
    note(f"{server}: restored stored={stored} loaded={loaded} pool_entries={entries}; "
         f"clients kept {ips}; {len(after)} pool leases at the server")
    relay.check_alive()


@pytest.mark.parametrize("server", SERVERS)
def test_squatted_pool_address_not_given(lab, server):
    """Pool of three; a host on the link configures one of the pool's addresses by hand.
    Server stopped, dhclient, udhcpc and dhcpcd start: the probe before the pool OFFER finds
    the squatter, so no client is given that address: two clients get the two others, the
    third nothing. The squatted entry is held back, its lease kept (no DECLINE)."""
    srv, scap, rcap = start_pool(lab, server)
    pool = pool_leases(srv)
    squatted = sorted(pool)[0]
    sq = lab.add_client()
    sq.add_addr(squatted)
    srv.stop()
    clients = start_clients(lab, CLIENTS)
    got: dict[str, str] = {}

    def two_bound():
        lab.fail_fast()
        for kind, (cl, _) in clients.items():
            for ev in cl.events():
                if ev["kind"] == "bound":
                    got[kind] = check_pool_lease(kind, ev, set(pool))
        return len(got) >= 2
    L.wait_until(two_bound, 20, interval=0.1, what="two clients bound from the pool")
    time.sleep(5)  # the third client keeps asking (fallback 1 s, probes 0.5 s)
    two_bound()
    assert len(got) == 2, f"three clients bound from a pool with one address squatted: {got}"
    assert squatted not in got.values(), f"the squatted {squatted} was given out: {got}"
    assert len(set(got.values())) == 2, got
    for kind, (cl, ccap) in clients.items():
        given = [f for f in L.to_client(ccap, cl.cns.mac)
                 if f.dhcp.yiaddr == squatted and f.dhcp.msg_type in (dp.OFFER, dp.ACK)]
        assert not given, f"{kind} was offered {squatted}:\n" + L.describe_frames(given)
    relay = lab.relay
    assert event(relay, "pool_held_back") >= 1, relay.metrics_text()
    assert event(relay, "pool_decline_sent") == 0
    assert not scap.dhcp(lambda f: f.dhcp.msg_type == dp.DECLINE)
    assert srv.active_leases().get(squatted) and srv.active_leases()[squatted].is_pool()
    note(f"{server}: squatter on {squatted}; bound {got}; held_back="
         f"{event(relay, 'pool_held_back'):.0f} pool_empty={event(relay, 'pool_empty'):.0f}")
    relay.check_alive()


# --------------------------------------------------------------------------- background

class Background:
    """A scenario in a lab of its own, run in a thread from the module's first test on, so
    that the minute it waits overlaps the other tests. Its test item waits for it, reports
    its notes and raises its error; the item's diagnostics and artifacts are its lab's."""

    def __init__(self, name: str, fn: Callable[..., None], params: dict[str, Any]):
        self.name, self.fn, self.params = name, fn, params
        self.stop = threading.Event()
        self.lab = _StoppableLab(name, self.stop)
        self.error: BaseException | None = None
        self.trace = ""
        self.notes: list[str] = []
        self.problems: list[str] = []
        self.started = time.monotonic()
        self.finished: float | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self.lab.setup()
            self.fn(self.lab, self.notes.append, **self.params)
        except BaseException as e:  # noqa: BLE001
            self.error, self.trace = e, traceback.format_exc()
        finally:
            try:
                self.problems = self.lab.cleanup()
            except Exception as e:  # noqa: BLE001
                self.problems = [f"cleanup: {e}"]
            self.finished = time.monotonic()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.lab.cleanup()


class _StoppableLab(L.Lab):
    def __init__(self, name: str, stop: threading.Event):
        super().__init__(name)
        self.stop = stop

    def fail_fast(self) -> None:
        if self.stop.is_set():
            raise L.LabError("stopped (the test session ends)")
        super().fail_fast()


BACKGROUND: dict[str, Callable[..., None]] = {}


def background(fn: Callable[..., None]) -> Callable[..., None]:
    """Register `fn(lab, note, **params)` as the scenario of test `test_<fn name>`."""
    BACKGROUND["test_" + fn.__name__] = fn
    return fn


@pytest.fixture(scope="module", autouse=True)
def background_runs(request):
    """Start every selected background scenario of this module (at its first test)."""
    runs: dict[str, Background] = {}
    for item in request.session.items:
        if item.module is not request.module or item.originalname not in BACKGROUND:
            continue
        if L.relay_kind() != "cdra":
            continue
        runs[item.name] = Background(item.name, BACKGROUND[item.originalname],
                                     dict(item.callspec.params))
    for r in runs.values():
        r.start()
    yield runs
    for r in runs.values():
        r.halt()


def wait_background(request, runs: dict[str, Background], budget: float) -> None:
    run = runs[request.node.name]
    request.node._cdra_lab = run.lab  # diagnostics and artifacts (conftest)
    run.join(max(1.0, budget - (time.monotonic() - run.started)))
    for n in run.notes:
        note(n)
    if run.thread.is_alive():
        run.halt()
        raise L.LabError(f"{run.name} did not finish within {budget:.0f}s")
    note(f"{run.name}: {run.finished - run.started:.1f}s in its own lab")
    if run.error is not None:
        print(run.trace)
        raise run.error
    if run.problems:
        pytest.fail("lab teardown: " + "; ".join(run.problems), pytrace=False)


# --------------------------------------------------------------------------- outage, server back

@background
def outage_then_server_back(lab: L.Lab, note: Callable[[str], None], server: str) -> None:
    srv, scap, rcap = start_pool(lab, server)
    pool = pool_leases(srv)
    check_pool_identities(pool, server)
    relay = lab.relay

    # Outage: brand-new clients get the pool's addresses, from cdra.
    srv.stop()
    down = time.time()
    clients = start_clients(lab, CLIENTS)
    ips = bind_all(clients, set(pool))
    bound_at = time.monotonic()
    note(f"{server}: server down; {ips} from the pool {sorted(pool)} in "
         f"{time.time() - down:.1f}s")
    for kind, (cl, ccap) in clients.items():
        offers = [f for f in L.to_client(ccap, cl.cns.mac) if f.dhcp.msg_type in (dp.OFFER, dp.ACK)]
        assert offers and all(f.src_ip == L.RELAY_DOWN_IP and f.dhcp.server_id == L.RELAY_DOWN_IP
                              for f in offers), L.describe_frames(offers)

    # A fourth client: the pool is empty, and it gets nothing.
    extra = lab.start_client("udhcpc")
    extra_from = time.time()
    time.sleep(5)
    assert not [e for e in extra.events() if e["kind"] == "bound"], \
        f"a client beyond the pool's size got a lease: {extra.events()}"
    given = [f for f in L.to_client(rcap, extra.cns.mac, since=extra_from)
             if f.dhcp.msg_type in (dp.OFFER, dp.ACK)]
    assert not given, "cdra answered the fourth client:\n" + L.describe_frames(given)
    assert event(relay, "pool_empty") >= 1, relay.metrics_text()
    extra.stop()

    # The server is back: each pool client moves onto a lease of its own, keeping its address.
    srv.restart()
    back = time.monotonic()
    note(f"{server}: server back after {time.time() - down:.1f}s")

    def moved():
        lab.fail_fast()
        act = srv.active_leases()
        return all(act.get(ip) is not None and act[ip].mac == clients[k][0].cns.mac
                   for k, ip in ips.items())
    # The first renewal at least RENEW_RETRY after the assignment asks the server (two
    # renewals at most after that), and the hand-over is one exchange.
    deadline = max(bound_at + RENEW_RETRY, back) + 2 * CLIENT_T1 + 5
    try:
        L.wait_until(moved, deadline - time.monotonic(), interval=0.2,
                     what="every pool client's address leased to its own identity")
    except L.LabError as e:
        raise L.LabError(f"{e}:\n{srv.lease_file_text()}\n{relay.metrics_text()}") from None
    note(f"{server}: moved to the server {time.monotonic() - bound_at:.1f}s after the "
         f"assignment, {time.monotonic() - back:.1f}s after the server came back")

    # ... and they keep working (a further renewal each, ACKed, the same address).
    renew_all(clients, ips)

    # The server's table: each client's address under its own identity; the pool refilled
    # with three other addresses; one identity per address.
    refill = wait_pool_leases(lab, srv, POOL_SIZE, timeout=40, avoid=set(ips.values()))
    check_pool_identities(refill, server)
    act = check_one_identity_per_address(srv)
    for kind, (cl, ccap) in clients.items():
        l = act.get(ips[kind])
        assert l is not None and not l.is_pool() and l.mac == cl.cns.mac, \
            f"{kind}'s {ips[kind]} is not leased to it: {l}"
        assert (l.client_id or None) == client_id_sent(ccap, cl.cns.mac), \
            f"{kind}'s lease has client id {l.client_id!r}, it sends " \
            f"{client_id_sent(ccap, cl.cns.mac)!r}: {l}"
        assert ips[kind] in cl.cns.ipv4_addrs(), f"{kind} lost {ips[kind]}"
        naks = [f for f in L.to_client(ccap, cl.cns.mac) if f.dhcp.msg_type == dp.NAK]
        assert not naks, f"{kind} got a NAK:\n" + L.describe_frames(naks)
    assert set(act) == set(refill) | set(ips.values()), \
        f"{server} leases more than the clients' and the pool's addresses:\n" + srv.lease_file_text()
    recs = {r["address"]: r for r in relay.cache_records()}
    for kind, ip in ips.items():
        assert recs.get(ip, {}).get("state") == "bound", relay.cache("list")
    assert event(relay, "pool_migrated") == len(CLIENTS), relay.metrics_text()
    assert event(relay, "pool_migration_failed") == 0, relay.metrics_text()
    # What the server was sent for the hand-over: RELEASE of the pool lease, then the
    # client's SELECTING REQUEST for the same address, and its ACK.
    for kind, (cl, _) in clients.items():
        ip = ips[kind]
        rel = scap.dhcp(lambda f: f.dhcp.msg_type == dp.RELEASE and f.dhcp.ciaddr == ip)
        sel = scap.dhcp(lambda f: f.dhcp.msg_type == dp.REQUEST and f.dhcp.chaddr == cl.cns.mac
                        and f.dhcp.requested_ip == ip and f.dhcp.server_id == L.SERVER_IP)
        assert rel and sel and rel[0].ts <= sel[0].ts, \
            f"{kind}: no RELEASE then SELECTING REQUEST for {ip}:\n" + scap.summary(200)
    note(f"{server}: lease table after the move:\n    "
         + "\n    ".join(str(act[ip]) for ip in sorted(act)))
    for kind, ip in ips.items():
        note(f"{server}: the server's log on {kind}'s {ip} after it came back:\n    "
             + "\n    ".join(server_log_lines(srv, ip)[:8]))
        if isinstance(srv, L.Dhcpd):
            note(f"dhcpd: records of {ip}, oldest first:\n    " + "\n    ".join(dhcpd_history(srv, ip)))
    relay.check_alive()


@pytest.mark.e2e_timeout(180)
@pytest.mark.parametrize("server", SERVERS)
def test_outage_then_server_back(request, background_runs, server):
    """Pool of three. The server is stopped; brand-new dhclient, udhcpc and dhcpcd each get
    a distinct one of the pool's addresses from cdra, with the pool lease's subnet mask and
    router; a fourth client gets nothing. The server is started again: within two of the
    clients' renewals once cdra asks the server again (at most once a minute per pool
    client), each client's address is leased at the server to the client's own identity
    (its chaddr, its client id), the pool has three free leases on other addresses, no
    identity holds two addresses, and the clients keep their addresses (a further renewal
    is ACKed; no NAK)."""
    wait_background(request, background_runs, 170)


# --------------------------------------------------------------------------- the server refuses

# Reserved for the clients in test_handover_nak (in the subnet, outside the range).
RESERVED = {"dhclient": "10.77.1.250", "udhcpc": "10.77.1.251", "dhcpcd": "10.77.1.252"}
# An address a client uses may be free at the server while a move waits for its answer
# (MIGRATION_TIMEOUT = 2 s in crates/core/src/pool/assign.rs), plus sampling slack.
FREE_WHILE_HELD_MAX = 3.5


def fixed_macs(tag: int) -> dict[str, str]:
    """Known MACs for the clients, so that the server can be configured for them."""
    return {kind: f"02:77:{tag:02x}:00:00:{i + 1:02x}" for i, kind in enumerate(CLIENTS)}


def start_named_clients(lab: L.Lab, macs: dict[str, str]) -> dict[str, tuple[L.Client, L.Capture]]:
    out = {}
    for kind, mac in macs.items():
        cns = lab.add_client(mac=mac)
        ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
        out[kind] = (lab.start_client(kind, cns), ccap)
    return out


class AddressWatch:
    """Samples each client's configured addresses against the server's lease table: no two
    clients on one address; an address a client uses is leased at the server to a pool
    identity or to that client, never to another identity, and is free there for at most
    FREE_WHILE_HELD_MAX seconds in a row."""

    def __init__(self, lab: L.Lab, srv: L.Server, clients: dict[str, tuple[L.Client, L.Capture]],
                 fixed: dict[str, str] | None = None):
        """fixed: address -> MAC of a reservation the server does not write to its lease
        file (dhcpd's fixed-address)."""
        self.lab, self.srv, self.clients = lab, srv, clients
        self.fixed = dict(fixed or {})
        self.t0 = time.monotonic()
        self.free_since: dict[tuple[str, str], float] = {}
        self.longest_free = 0.0
        self.transitions: list[str] = []
        self.last: dict[str, tuple[str, str]] = {}

    def sample(self) -> None:
        self.lab.fail_fast()
        act = self.srv.active_leases()
        now_ = time.monotonic()
        held: dict[str, str] = {}
        for kind, (cl, _) in self.clients.items():
            for a in cl.cns.ipv4_addrs():
                assert a not in held, f"{kind} and {held[a]} both use {a}"
                held[a] = kind
                l = act.get(a)
                if l is None and self.fixed.get(a) == cl.cns.mac:
                    who = "its own, fixed"
                    self.free_since.pop((kind, a), None)
                elif l is None:
                    who = "free at the server"
                    since = self.free_since.setdefault((kind, a), now_)
                    self.longest_free = max(self.longest_free, now_ - since)
                    assert now_ - since <= FREE_WHILE_HELD_MAX, \
                        f"{kind} has used {a} for {now_ - since:.1f}s while the {self.srv.kind} " \
                        f"lease table has it free"
                else:
                    self.free_since.pop((kind, a), None)
                    who = "pool" if l.is_pool() else ("its own" if l.mac == cl.cns.mac else l.mac)
                    assert who in ("pool", "its own"), \
                        f"{kind} uses {a}, which the server leases to another: {l}"
                if self.last.get(kind) != (a, who):
                    self.last[kind] = (a, who)
                    self.transitions.append(f"{now_ - self.t0:5.1f}s {kind} {a} ({who})")

    def watch_until(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.sample()
            if pred():
                return
            if time.monotonic() >= deadline:
                raise L.LabError(f"timed out after {timeout:.0f}s waiting for {what}; seen:\n  "
                                 + "\n  ".join(self.transitions))
            time.sleep(0.25)


@background
def handover_nak(lab: L.Lab, note: Callable[[str], None], server: str) -> None:
    macs = fixed_macs(0xa0)
    srv, scap, rcap = start_pool(lab, server, server_kw={
        "hosts": {macs[k]: RESERVED[k] for k in CLIENTS}})
    pool = pool_leases(srv)
    srv.stop()
    clients = start_named_clients(lab, macs)
    ips = bind_all(clients, set(pool))
    bound_at = time.monotonic()
    srv.restart()
    fixed = {RESERVED[k]: macs[k] for k in CLIENTS} if isinstance(srv, L.Dhcpd) else {}
    watch = AddressWatch(lab, srv, clients, fixed)

    def on_reservations() -> bool:
        return all(RESERVED[k] in cl.cns.ipv4_addrs() for k, (cl, _) in clients.items())
    watch.watch_until(on_reservations, bound_at + RENEW_RETRY + 3 * CLIENT_T1 + 15 - time.monotonic(),
                      "every client on its reservation")
    relay = lab.relay
    for kind, (cl, ccap) in clients.items():
        naks = [f for f in L.to_client(ccap, cl.cns.mac) if f.dhcp.msg_type == dp.NAK]
        assert naks and all(f.src_ip == L.RELAY_DOWN_IP for f in naks), \
            f"{kind}: no NAK from cdra:\n" + L.describe_frames(L.to_client(ccap, cl.cns.mac))
        refused = scap.dhcp(lambda f: f.dhcp.msg_type == dp.NAK and f.dhcp.chaddr == cl.cns.mac)
        assert refused, f"the server did not NAK {kind}'s move:\n" + scap.summary(200)
    act = check_one_identity_per_address(srv)
    for kind, ip in ips.items():
        assert act.get(ip) is not None and act[ip].is_pool(), \
            f"{kind}'s pool address {ip} is not back in the pool: {act.get(ip)}"
        if isinstance(srv, L.Kea):
            mine = act.get(RESERVED[kind])
            assert mine is not None and mine.mac == macs[kind], f"{RESERVED[kind]}: {mine}"
    assert event(relay, "pool_migration_failed") == len(CLIENTS), relay.metrics_text()
    assert event(relay, "pool_client_restarted") == len(CLIENTS), relay.metrics_text()
    assert event(relay, "pool_migrated") == 0, relay.metrics_text()
    note(f"{server}: moves NAKed, clients restarted onto their reservations "
         f"{time.monotonic() - bound_at:.1f}s after the assignment; longest time an address "
         f"in use was free at the server: {watch.longest_free:.1f}s; seen:\n    "
         + "\n    ".join(watch.transitions))
    kind0 = CLIENTS[0]
    note(f"{server}: the server's log on {kind0}'s {ips[kind0]}:\n    "
         + "\n    ".join(server_log_lines(srv, ips[kind0])[:8]))
    relay.check_alive()


@pytest.mark.e2e_timeout(180)
@pytest.mark.parametrize("server", ["kea", "dhcpd"])
def test_handover_nak(request, background_runs, server):
    """The server reserves another address for each client (Kea reservation, dhcpd
    `fixed-address`, 10.77.1.250-252). During an outage dhclient, udhcpc and dhcpcd get pool
    addresses; once the server is back, each move is NAKed by the server (the client's
    SELECTING REQUEST names an address it may not have). cdra asks the address back under the
    pool identity, NAKs the client at its next request, the client starts over and gets its
    reservation from the server. Throughout, no two clients share an address and an address
    a client uses is never leased to another identity nor free at the server for more than
    a few seconds; the pool addresses are back in the pool. (dnsmasq is not a refusing
    server here: it grants a SELECTING REQUEST for another address than the client's
    `dhcp-host` one, then NAKs that client's next renewal that reaches it.)"""
    wait_background(request, background_runs, 170)


@background
def handover_ignored(lab: L.Lab, note: Callable[[str], None], server: str) -> None:
    macs = fixed_macs(0xb0)
    srv, scap, rcap = start_pool(lab, server, server_kw={"hosts": {m: None for m in macs.values()}})
    clients = start_named_clients(lab, macs)
    ips = bind_all(clients, None)
    watch = AddressWatch(lab, srv, clients)
    relay = lab.relay

    def each_started_over() -> bool:
        return all(len([e for e in cl.events() if e["kind"] == "bound"]) >= 2
                   for cl, _ in clients.values())
    watch.watch_until(each_started_over, 3 * CLIENT_T1 + 15, "every client to start over once")
    watch.watch_until(lambda: time.monotonic() - watch.t0 >= 2 * CLIENT_T1 + 12,
                      3 * CLIENT_T1 + 30, "a few more cycles")
    act = srv.active_leases()
    own = [l for l in act.values() if l.mac in macs.values()]
    assert not own, "the server leased to a client it ignores:\n" + "\n".join(map(str, own))
    asked = [f for f in scap.dhcp(lambda f: f.dhcp.msg_type in (dp.OFFER, dp.ACK)
                                  and f.dhcp.chaddr in macs.values())]
    assert not asked, "the server served an ignored client:\n" + L.describe_frames(asked)
    # dhcpd ignores the clients' DISCOVERs but, authoritative, NAKs their moves' REQUESTs
    # ("requested address not available"); Kea and dnsmasq stay silent.
    naks = scap.dhcp(lambda f: f.dhcp.msg_type == dp.NAK and f.dhcp.chaddr in macs.values())
    assert event(relay, "pool_migrated") == 0, relay.metrics_text()
    failed = event(relay, "pool_migration_failed")
    assert failed >= len(CLIENTS), relay.metrics_text()
    cycles = {k: len([e for e in cl.events() if e["kind"] == "bound"]) for k, (cl, _) in clients.items()}
    note(f"{server}: ignored clients served from the pool {ips}; in {time.monotonic() - watch.t0:.0f}s "
         f"{failed:.0f} failed moves ({len(naks)} NAKed by the server, the others unanswered), "
         f"leases per client {cycles}; longest time an address in use "
         f"was free at the server: {watch.longest_free:.1f}s; seen:\n    "
         + "\n    ".join(watch.transitions))
    relay.check_alive()


@pytest.mark.e2e_timeout(180)
@pytest.mark.parametrize("server", SERVERS)
def test_handover_ignored(request, background_runs, server):
    """The server ignores dhclient, udhcpc and dhcpcd (Kea's DROP class, dhcpd `deny
    booting`, dnsmasq `ignore`) and is up all along: no OFFER comes within fallback_after,
    so cdra serves them from the pool (assign = "outage" cannot tell a refusal by silence
    from an outage). Each move then gets no answer (Kea, dnsmasq) or a NAK (dhcpd NAKs a
    REQUEST for an address it will not give): the address is asked back under the pool
    identity (within MIGRATION_TIMEOUT, 2 s, when unanswered), the client is NAKed at its
    next request and is served from the pool again (it cycles). Throughout, no two clients share an address, an
    address a client uses is never leased to another identity, and it is free at the server
    for at most a few seconds; the server never leases anything to the clients."""
    wait_background(request, background_runs, 170)
