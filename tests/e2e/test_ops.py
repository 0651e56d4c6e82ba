"""Issue 13, items 5 and 6: what an operator runs and looks at.

- `cdra cache list/show/counters --json` over the control socket;
- the per-client event log (`[log] events = "json"`): one line per lease event, written to
  cdra's standard output (here the relay's log file, with the diagnostic log);
- round-trip histograms and server liveness in /metrics;
- the systemd service protocol: READY=1 once the sockets are open, then WATCHDOG=1 from
  the packet loop every WATCHDOG_USEC/2 (PID 1 here is not systemd, so the test plays
  systemd's part: a Unix datagram socket named by NOTIFY_SOCKET);
- the Debian package's contents (scripts/package; CDRA_DEB names the package, as
  scripts/test sets it, else target/debian/cdra_*.deb if there is one).

These need cdra (skipped for CDRA_E2E_RELAY=dhcrelay).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import lab as L

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra",
                                reason="cdra's operations features (CDRA_E2E_RELAY=cdra)")

ROOT = Path(__file__).resolve().parents[2]


def note(msg: str) -> None:
    print(f"[ops] {msg}")


def event_lines(relay: L.CdraRelay) -> list[dict]:
    """The JSON event lines among cdra's output (standard output and error share the log)."""
    out = []
    for line in relay.proc.text().splitlines():
        if line.startswith('{"ts":'):
            out.append(json.loads(line))
    return out


def events_of(relay: L.CdraRelay, address: str) -> list[tuple[str, str | None]]:
    """(event, message) of the client that has (or was offered) `address`, in order."""
    evs = event_lines(relay)
    clients = {e["client"] for e in evs if e.get("address") == address}
    return [(e["event"], e.get("message")) for e in evs if e["client"] in clients]


def test_json_answers_and_the_event_log_of_a_dora_and_a_local_answer(lab):
    """A client's first lease goes through Kea (DISCOVER, OFFER, REQUEST, ACK), its renewal
    is answered by cdra: the event log has forwarded/server_reply lines for the DORA and a
    local_ack for the renewal, all naming the client, its interface and address. The cache
    commands answer in JSON with the same client; the counters and /metrics count the
    local ACK, the server's round trips and its liveness."""
    L.start_proxy(lab, "kea", server_kw={"lease_time": 600},
                  sections={"log": {"events": "json"}})
    relay = lab.relay
    cl, _cap, ip = L.proxy_bound_client(lab, "dhcpcd")
    L.wait_until(lambda: ("server_reply", "ack") in events_of(relay, ip), 5,
                 what="the server's ACK in the event log")
    ev = cl.renew(timeout=12)
    assert ev.get("ip") == ip, ev
    L.wait_until(lambda: ("local_ack", "ack") in events_of(relay, ip), 5,
                 what="the local ACK in the event log")
    seen = events_of(relay, ip)
    note(f"events of {ip}: {seen}")
    dora = [("forwarded", "discover"), ("server_reply", "offer"),
            ("forwarded", "request"), ("server_reply", "ack")]
    assert [e for e in seen if e[0] in ("forwarded", "server_reply")][:4] == dora, seen
    assert seen.index(("local_ack", "ack")) > seen.index(("server_reply", "ack")), seen
    lines = [e for e in event_lines(relay) if e.get("address") == ip]
    for e in lines:
        assert e["interface"] == L.DOWN_IF and e["ts"].endswith("Z"), e
    ack = next(e for e in lines if e["event"] == "local_ack")
    assert ack["server"] == L.SERVER_IP, ack
    key = ack["client"]

    rows = [json.loads(line) for line in relay.cache("list", "--json").splitlines()]
    assert [(r["type"], r["client"], r["address"], r["state"]) for r in rows] == \
        [("client", key, ip, "bound")], rows
    assert rows[0]["server"] == L.SERVER_IP and rows[0]["lease_left_secs"] > 0, rows
    shown = json.loads(relay.cache("show", ip, "--json"))
    assert (shown["client"], shown["lease_secs"]) == (key, 600), shown
    missing = relay.cache("show", "10.77.1.250", "--json", check=False)
    assert missing.startswith("error: no client"), missing
    counters = json.loads(relay.cache("counters", "--json"))
    assert counters["clients"] == 1 and counters["event"]["local_ack"] >= 1, counters
    server = counters["servers"][0]
    assert (server["server"], server["up"]) == (L.SERVER_IP, True), server
    assert server["round_trips"] >= 2 and server["replies"] >= 2, server

    m = relay.metrics()
    sel = f'server="{L.SERVER_IP}"'
    assert m[f"cdra_server_up{{{sel}}}"] == 1
    count = m[f"cdra_server_round_trip_seconds_count{{{sel}}}"]
    assert count >= 2 and m[f'cdra_server_round_trip_seconds_bucket{{{sel},le="+Inf"}}'] == count, m
    assert m["cdra_events_dropped_total"] == 0
    assert m['cdra_proxy_events_total{event="local_ack"}'] >= 1


def test_a_reload_turns_the_event_log_on(lab):
    """Started with `[log] events` off, cdra writes no event line; `cdra reload` of a file
    that sets `events = "json"` turns it on in place: the next client's DORA is logged."""
    L.start_proxy(lab, "kea", server_kw={"lease_time": 600})
    relay = lab.relay
    _cl, _cap, ip1 = L.proxy_bound_client(lab, "dhcpcd")
    time.sleep(1.2)  # a turn of the loop at least: nothing may be queued unseen
    assert event_lines(relay) == [], "the event log is off by default"
    cfg = {k: v for k, v in relay.cfg.items() if k != "exec_prefix"}
    cfg["sections"] = {**(cfg.get("sections") or {}), "log": {"events": "json"}}
    relay.conf.write_text(L.cdra_config(**cfg))
    r = L.run([str(L.cdra_bin()), "reload", "--socket", str(relay.cfg["control_socket"])], check=False)
    assert r.returncode == 0 and r.stdout.startswith("ok: reloaded"), r.stdout + r.stderr
    _cl2, _cap2, ip2 = L.proxy_bound_client(lab, "udhcpc")
    L.wait_until(lambda: ("server_reply", "ack") in events_of(relay, ip2), 5,
                 what="the second client's ACK in the event log")
    assert events_of(relay, ip1) == [], "nothing of the first client, bound before the reload"


def test_watchdog_ready_then_pings_from_the_loop(lab):
    """cdra under a stand-in for systemd (NOTIFY_SOCKET, WATCHDOG_USEC = 2 s): READY=1 once
    it serves, then WATCHDOG=1 about every second while it runs, STOPPING=1 on SIGTERM."""
    lab.start_server("kea")
    path = lab.dir / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.5)
    try:
        lab.start_relay(exec_prefix=["env", f"NOTIFY_SOCKET={path}", "WATCHDOG_USEC=2000000"])
        got: list[tuple[float, str]] = []
        start = time.monotonic()
        while time.monotonic() - start < 5.5:
            try:
                got.append((time.monotonic() - start, sock.recv(4096).decode()))
            except socket.timeout:
                pass
        note(f"notifications: {got}")
        assert got and "READY=1" in got[0][1].split("\n"), got
        pings = [t for t, msg in got if "WATCHDOG=1" in msg.split("\n")]
        assert len(pings) >= 4, f"expected a ping about every second: {got}"
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 1.9, f"a gap as long as the watchdog interval: {gaps}"
        # The relay still works while it pings.
        cl = lab.start_client("udhcpc", lab.add_client())
        cl.wait_bound(timeout=15)
        lab.relay.stop()
        sock.settimeout(2)
        tail = sock.recv(4096).decode()
        while "STOPPING=1" not in tail:
            tail = sock.recv(4096).decode()
    finally:
        sock.close()


def package_path() -> Path | None:
    if os.environ.get("CDRA_DEB"):
        return Path(os.environ["CDRA_DEB"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    debs = sorted((target / "debian").glob("cdra_*.deb"))
    return debs[-1] if debs else None


def test_package_contents():
    """The Debian package holds the binary, the unit, the conffile and a man page per
    subcommand (scripts/package --check), and the binary in it answers --version."""
    deb = package_path()
    if deb is None:
        pytest.skip("no package built (scripts/package; scripts/test sets CDRA_DEB)")
    r = subprocess.run([str(ROOT / "scripts" / "package"), "--check", str(deb)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    pages = sorted(line.rsplit("/", 1)[1] for line in listing.splitlines()
                   if "/usr/share/man/man8/" in line and line.endswith(".8.gz"))
    note(f"{deb.name}: {deb.stat().st_size} bytes, man pages {pages}")
    assert "cdra.8.gz" in pages and "cdra-cache-list.8.gz" in pages, pages
    conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True,
                               text=True, check=True).stdout.split()
    assert conffiles == ["/etc/cdra/cdra.toml"], conffiles
