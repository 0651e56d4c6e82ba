#!/usr/bin/env python3
"""RFC 4388 leasequery sweep (issue 15 item 2): how long cdra, started with no store,
takes to sweep 10.77.1.0/24 against ISC dhcpd (`allow leasequery;`), and the CPU it uses.

Builds the e2e lab (tests/e2e/lab.py: namespaces of its own, cleaned up), binds three
clients (dhclient, udhcpc, dhcpcd) through cdra in relay mode, then starts cdra in proxy
mode without a store and `[leasequery] enabled = true, rate = R`, and polls its metrics
until `cdra_leasequery_sweeps` and `cdra_leasequery_outstanding` are 0.

Usage (root): bench/leasequery_sweep.py [RATE ...]   (default: 50 1000)
Needs: CDRA_BIN or target/release/cdra; the e2e packages (scripts/e2e-deps).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
os.environ.setdefault("CDRA_BIN", str(REPO / "target" / "release" / "cdra"))

import lab as L  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sweep(rate: int) -> str:
    lab = L.Lab("lqsweep").setup()
    try:
        lab.start_server("dhcpd", leasequery=True, lease_time=600)
        lab.start_relay(mode="relay")
        for kind in ("dhclient", "udhcpc", "dhcpcd"):
            lab.start_client(kind).wait_bound(timeout=20)
        lab.relay.stop()
        started = time.monotonic()
        relay = lab.start_relay(**L.proxy_relay_kw(
            lab, store=False, sections={"leasequery": {"enabled": True, "rate": rate}}))

        def done() -> bool:
            m = relay.metrics()
            return (m.get("cdra_leasequery_sweeps", 1) == 0
                    and m.get("cdra_leasequery_outstanding", 1) == 0
                    and relay.proxy_event("leasequery_sent") > 0)

        L.wait_until(done, 120, interval=0.02, what="the sweep to end")
        took = time.monotonic() - started
        return (f"rate={rate}/s: 10.77.1.0/24 swept {took:.2f} s after cdra started; "
                f"queries {relay.proxy_event('leasequery_sent'):.0f}, "
                f"records made {relay.proxy_event('leasequery_record_made'):.0f}, "
                f"timed out {relay.proxy_event('leasequery_timed_out'):.0f}; "
                f"cdra CPU since start {cpu_seconds(relay.proc.pid):.2f} s")
    finally:
        lab.cleanup()


if __name__ == "__main__":
    for r in [int(a) for a in sys.argv[1:]] or [50, 1000]:
        print(sweep(r), flush=True)
