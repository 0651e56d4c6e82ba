"""Persistence of the client table (issue "persistence", paper 3.4, 5.4, A.3).

cdra in proxy mode writes its client table to a store file (here under the lab's temp
dir; group commit every 100 ms). After a crash (SIGKILL) and a restart with the same
configuration it loads the table back and keeps answering its clients, even with the
server down. A damaged store file is moved aside with one warning and cdra starts empty.

These tests need cdra (they are skipped for CDRA_E2E_RELAY=dhcrelay).
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

import dhcp_packets as dp
import lab as L

ALL_CLIENTS = ["dhclient", "udhcpc", "dhcpcd"]
CLIENTS = [c for c in os.environ.get("CDRA_E2E_CLIENTS", ",".join(ALL_CLIENTS)).split(",") if c]

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra",
                                reason="the persistent client table is cdra's "
                                       "(CDRA_E2E_RELAY=cdra)")

SERVER_LEASE = 600
# dhclient renews by itself at T1: 5 s with cdra's minimum short lease.
PROXY = {"client_lease": "10s"}
RESTORED = re.compile(r"client table restored.*\bstored=(\d+)\b.*\bloaded=(\d+)\b")


def note(msg: str) -> None:
    print(f"[persistence] {msg}")


def store_path(lab: L.Lab) -> Path:
    return Path(lab.relay.cfg["store_path"])


def restored(text: str) -> list[tuple[int, int]]:
    return [(int(m.group(1)), int(m.group(2))) for m in RESTORED.finditer(text)]


def test_sigkill_restart_restores_table(lab):
    """Clients bound through cdra; the server is stopped; cdra is SIGKILLed and started
    again with the same config. Its log says the table was restored with one record per
    client, and the clients' reboots (dhclient, dhcpcd: INIT-REBOOT; udhcpc: DISCOVER) and
    renewals (dhclient at T1, dhcpcd on SIGUSR1) are answered from the reloaded table: the
    clients keep their addresses and the server sees none of it."""
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": SERVER_LEASE},
                                    proxy=PROXY)
    clients = {k: L.proxy_bound_client(lab, k) for k in CLIENTS}
    srv.stop()
    time.sleep(0.5)  # > one commit window (100 ms)
    relay = lab.relay
    assert len(relay.cache_records()) == len(clients)
    rc = relay.kill()
    assert rc == -signal.SIGKILL, rc
    killed = time.time()
    relay.restart()
    relay.proc.wait_log("client table restored", 5)
    got = restored(relay.proc.text())
    assert got and got[-1] == (len(clients), len(clients)), \
        f"restore report {got}, expected stored=loaded={len(clients)}:\n" + L.tail(relay.proc.text())
    recs = {r["address"]: r for r in relay.cache_records()}
    assert set(recs) == {ip for _, _, ip in clients.values()}, relay.cache("list")

    for kind, (cl, ccap, ip) in clients.items():
        n = cl.restart()
        ev = cl.wait_bound(timeout=15, after=n)
        assert ev.get("ip") == ip and ev.get("server_id") == L.RELAY_DOWN_IP, \
            f"{kind} after cdra's restart: {ev}"
    # Renewals: dhcpcd on SIGUSR1, dhclient at T1. (udhcpc's unicast renewals are covered by
    # test_proxy / test_renewals; here udhcpc's DISCOVER after its reboot is what it does.)
    for kind in ("dhcpcd", "dhclient"):
        if kind in clients:
            cl, ccap, ip = clients[kind]
            ev = cl.renew(timeout=12)
            assert ev["kind"] == "renew", f"{kind}: expected a renewal: {ev}"
            assert ev.get("ip") == ip and ev.get("server_id") == L.RELAY_DOWN_IP, ev
    time.sleep(0.3)
    for kind, (cl, ccap, ip) in clients.items():
        assert ip in cl.cns.ipv4_addrs(), f"{kind} lost {ip}"
        leaked = L.from_client(scap, cl.cns.mac, since=killed)
        relayed = [f for f in leaked if f.dhcp.giaddr == L.RELAY_DOWN_IP]
        assert not relayed, f"cdra forwarded {kind}'s requests after its restart:\n" + \
            L.describe_frames(relayed)
        acks = [f for f in L.to_client(ccap, cl.cns.mac, since=killed)
                if f.dhcp.msg_type == dp.ACK]
        assert acks and all(f.src_ip == L.RELAY_DOWN_IP and f.dhcp.yiaddr == ip for f in acks)
    local_acks = relay.proxy_event("local_ack")
    assert local_acks >= len(clients), f"cdra counted {local_acks} local ACKs since its restart"
    note(f"restored (stored, loaded) = {got[-1]}, then local_ack={local_acks:.0f}")
    relay.check_alive()


def test_garbage_store_moved_aside(lab):
    """A store file of random bytes: cdra starts, logs one warning line, moves the file to
    `<path>.corrupt-<time>` (byte for byte) and relays clients normally."""
    path = lab.dir / "cdra-store" / "clients.redb"
    path.parent.mkdir()
    junk = os.urandom(64 * 1024)
    path.write_bytes(junk)
    srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": SERVER_LEASE},
                                    store_path=str(path))
    relay = lab.relay
    relay.proc.wait_log("client table restored", 5)
    log = relay.proc.text()
    warnings = [ln for ln in log.splitlines() if " WARN " in ln or " ERROR " in ln]
    assert len(warnings) == 1, "expected one warning line:\n" + "\n".join(warnings or [log])
    moved = sorted(path.parent.glob("clients.redb.corrupt-*"))
    assert len(moved) == 1, sorted(p.name for p in path.parent.iterdir())
    assert moved[0].read_bytes() == junk, f"{moved[0]} is not the damaged file"
    assert str(moved[0]) in warnings[0], warnings[0]
    assert restored(log)[-1] == (0, 0), L.tail(log)

    cl, ccap, ip = L.proxy_bound_client(lab, "udhcpc")
    at_server = {f.dhcp.msg_type for f in L.from_client(scap, cl.cns.mac)}
    assert {dp.DISCOVER, dp.REQUEST} <= at_server, "the first lease was not relayed"
    assert path.exists() and path.stat().st_size > 0, "no new store file"
    # and the new store works: the record is written (restart cleanly, it is loaded back)
    time.sleep(0.5)
    relay.stop()
    relay.restart()
    relay.proc.wait_log("client table restored", 5)
    assert restored(relay.proc.text())[-1] == (1, 1), L.tail(relay.proc.text())
    assert len(list(path.parent.glob("clients.redb.corrupt-*"))) == 1
    note(f"warning: {warnings[0]}")
    relay.check_alive()
