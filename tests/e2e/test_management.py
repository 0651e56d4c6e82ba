"""Issue 10, item 5: no management client can delay a DHCP answer.

The metrics endpoint and the control socket are served by cdra's management thread; the
data-plane loop only answers small bounded queries. Before, the loop served both itself:
each accepted metrics connection got a blocking read of up to 200 ms (50 idle connections
stalled DHCP for 10 s) and a control client trickling its command held the loop for up to
512 reads of 200 ms. These tests hold such connections open and time a DHCP exchange.
(The same with `cdra cache list` over 1,000,000 records is measured by `bench/mgmt`.)
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

import dhcp_packets as dp
import lab as L

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra",
                                reason="cdra's management channels (CDRA_E2E_RELAY=cdra)")

IDLE = 50
# Generous: a relayed DISCOVER is answered in milliseconds; before the fix it took ~10 s.
BOUND = 1.0
# cdra's defaults ([metrics] / [control] max_connections and timeout).
MAX_CONNECTIONS = 8
TIMEOUT = 5.0


def note(msg: str) -> None:
    print(f"[management] {msg}")


class Trickler(threading.Thread):
    """Connects to the control socket and writes one byte every 150 ms, never a whole
    line, until the server closes the connection or it is stopped."""

    def __init__(self, path: str):
        super().__init__(daemon=True)
        self.path = path
        self.stop_event = threading.Event()
        self.cut_after: float | None = None

    def run(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        start = time.monotonic()
        try:
            s.connect(self.path)
            while not self.stop_event.wait(0.15):
                try:
                    s.send(b"l")
                except OSError:
                    self.cut_after = time.monotonic() - start
                    return
        finally:
            s.close()


def test_idle_management_connections_do_not_delay_dhcp(lab):
    """50 idle TCP connections to /metrics and a control client trickling its command are
    held open while a client's DISCOVER is relayed: the OFFER arrives within 1 s. The
    connections beyond metrics.max_connections are refused (counted), the held ones and the
    trickler are closed after their timeout (counted), and scrapes work again."""
    lab.start_server("kea")
    sock = str(lab.dir / "cdra-control.sock")
    relay = lab.start_relay(control_socket=sock, metrics_listen=L.METRICS_LISTEN)
    cns = lab.add_client()
    host, port = L.METRICS_LISTEN.rsplit(":", 1)
    held: list[socket.socket] = []
    trickler = Trickler(sock)
    try:
        with L.in_netns(lab.rly):
            for _ in range(IDLE):
                held.append(socket.create_connection((host, int(port)), timeout=2))
        trickler.start()
        time.sleep(0.3)
        xid = L.new_xid()
        start = time.monotonic()
        got = L.raw_exchange(cns, dp.client_message(dp.DISCOVER, xid=xid, mac=cns.mac), xid,
                             lambda d: d.msg_type == dp.OFFER, timeout=15, retransmit=30)
        elapsed = time.monotonic() - start
        assert got, "no OFFER at all within 15 s"
        note(f"OFFER after {elapsed * 1000:.1f} ms with {IDLE} idle metrics connections "
             "and a trickling control client")
        assert elapsed < BOUND, (f"the OFFER took {elapsed:.2f} s while management clients "
                                 f"sat idle (bound {BOUND} s)")
        relay.check_alive()
        # Once the idle connections have timed out, the endpoint answers again.
        L.wait_until(lambda: trickler.cut_after is not None, TIMEOUT + 3,
                     what="the trickling control client to be cut off")
        assert trickler.cut_after is not None and trickler.cut_after < TIMEOUT + 2, trickler.cut_after
    finally:
        trickler.stop_event.set()
        for s in held:
            s.close()
    time.sleep(0.2)
    m = relay.metrics()
    refused = m.get('cdra_management_refused_total{channel="metrics"}')
    timeouts = m.get('cdra_management_timeouts_total{channel="metrics"}')
    note(f"metrics connections refused {refused}, timed out {timeouts}")
    assert refused == IDLE - MAX_CONNECTIONS, m
    assert timeouts is not None and timeouts >= 1, m
    counters = relay.cache("counters")
    assert "management_timeouts_control=1" in counters, counters
