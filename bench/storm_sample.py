#!/usr/bin/env python3
"""Samples cdra's metrics while bench/storm runs: every INTERVAL seconds one GET /metrics,
and one JSON line with the time and the series that tell how the storm went (probes in
flight, probe counters, what was forwarded and answered). Runs until SIGTERM/SIGINT.

Usage: storm_sample.py --url http://127.0.0.1:9167/metrics --interval 0.1 --out FILE
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.request

KEEP = (
    "cdra_pending_probes",
    "cdra_probe",
    "cdra_proxy_events_total",
    "cdra_server_requests_total",
    "cdra_answered_without_server_total",
    "cdra_sent_total",
    "cdra_discarded_total",
    "cdra_dropped_total",
    "cdra_send_errors_total",
)


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=2) as r:
        text = r.read().decode(errors="replace")
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or not line.startswith(KEEP):
            continue
        name, _, value = line.rpartition(" ")
        try:
            v = float(value)
        except ValueError:
            continue
        if v != 0 or name.startswith("cdra_pending_probes"):
            out[name] = v
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    with open(a.out, "w") as f:
        while not stop:
            t = time.monotonic()
            try:
                values = scrape(a.url)
                f.write(json.dumps({"t": round(t - t0, 3), "m": values}) + "\n")
                f.flush()
            except OSError as e:
                print(f"storm_sample: {e}", file=sys.stderr)
            time.sleep(max(0.0, a.interval - (time.monotonic() - t)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
