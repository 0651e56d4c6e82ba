#!/usr/bin/env python3
"""Produce docs/grafana-cdra.png honestly: a running cdra, scraped by a real Prometheus.

What it does (as root; everything inside network namespaces it creates and removes, with
the end-to-end lab of tests/e2e/lab.py):

1. Kea (600 s leases) behind cdra in proxy mode (`client_lease = "30s"`, so clients renew
   with cdra every 15 s; `[log] events = "json"`), metrics at 127.0.0.1:9167 in the relay's
   namespace;
2. Debian's Prometheus (the `prometheus` package) in the same namespace, scraping cdra
   every 5 s;
3. real clients (dhcpcd, udhcpc, dhclient) join one by one; Kea is stopped for a while
   (cdra keeps answering the known clients; a newcomer is not served until Kea is back);
   one client vanishes without a release (its short lease lapses, a probe finds nobody,
   cdra releases it at Kea); one client is flushed with `cdra cache flush`;
4. contrib/grafana/render.py draws the dashboard's own queries (contrib/grafana/cdra.json)
   from Prometheus' HTTP API into one PNG. Grafana is not in Debian: this is a rendering
   of the dashboard's queries, not a Grafana screenshot.

    sudo python3 contrib/grafana/scrape_demo.py --minutes 6 --out docs/grafana-cdra.png

Needs: the e2e lab's packages (scripts/e2e-deps), prometheus, python3-matplotlib,
CDRA_BIN (default target/release/cdra). Prints the event log lines of one client.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
os.environ.setdefault("CDRA_E2E_RELAY", "cdra")

import lab as L  # noqa: E402

PROM_LISTEN = "127.0.0.1:9090"


def python_with_matplotlib() -> str:
    """The interpreter render.py runs with: this one, or Debian's (python3-matplotlib)."""
    for py in (sys.executable, "/usr/bin/python3"):
        if subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0:
            return py
    raise SystemExit("scrape_demo: no python3 with matplotlib (apt-get install python3-matplotlib)")


def say(msg: str) -> None:
    print(f"[scrape-demo +{time.monotonic() - T0:5.0f}s] {msg}", flush=True)


T0 = time.monotonic()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "grafana-cdra.png"))
    a = ap.parse_args()
    total = a.minutes * 60
    py = python_with_matplotlib()
    lab = L.Lab("scrape")
    try:
        lab.setup()
        kea = lab.start_server("kea", lease_time=600)
        lab.start_relay(**L.proxy_relay_kw(lab, proxy={"client_lease": "30s"},
                                           sections={"log": {"events": "json"}}))
        relay: L.CdraRelay = lab.relay
        prom_dir = lab.dir / "prometheus"
        prom_dir.mkdir()
        (prom_dir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
            "scrape_configs:\n  - job_name: cdra\n    static_configs:\n"
            f"      - targets: ['{L.METRICS_LISTEN}']\n        labels: {{instance: 'branch-lab'}}\n")
        prom = lab.spawn("prometheus", L.nsexec(lab.rly) + [
            "prometheus", f"--config.file={prom_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={prom_dir / 'data'}", f"--web.listen-address={PROM_LISTEN}"])
        start = time.time()
        say(f"cdra, Kea and Prometheus (pid {prom.pid}) running; scraping every 5 s")

        clients: list[tuple[L.Client, str]] = []
        kinds = ["dhcpcd", "udhcpc", "dhclient", "dhcpcd", "udhcpc", "dhcpcd"]
        for i, kind in enumerate(kinds[:4]):
            cl, _cap, ip = L.proxy_bound_client(lab, kind)
            clients.append((cl, ip))
            say(f"{kind} bound {ip} through Kea")
            time.sleep(10)
        lab_until = lambda t: max(0.0, start + t - time.time())  # noqa: E731
        time.sleep(lab_until(total * 0.3))
        say("stopping Kea: cdra answers the known clients alone")
        kea.stop()
        newcomer_ns = lab.add_client()
        newcomer = lab.start_client(kinds[4], newcomer_ns)
        say(f"a new {kinds[4]} arrives during the outage (no answer until Kea is back)")
        time.sleep(lab_until(total * 0.45))
        gone, gone_ip = clients[1]
        say(f"{gone.kind} {gone_ip} vanishes without a release (SIGKILL, address removed)")
        gone.proc.stop(signal.SIGKILL)
        gone.cns.flush_addrs()
        time.sleep(lab_until(total * 0.55))
        say("Kea is back")
        kea.restart()
        ev = newcomer.wait_bound(timeout=60)
        say(f"the newcomer got {ev.get('ip')}")
        time.sleep(lab_until(total * 0.7))
        _cl, _cap, ip = L.proxy_bound_client(lab, kinds[5])
        say(f"{kinds[5]} bound {ip}")
        flushed_ip = clients[0][1]
        say(f"cdra cache flush {flushed_ip}: {relay.cache('flush', flushed_ip).strip()}")
        time.sleep(lab_until(total))
        end = time.time()
        say("rendering the dashboard's queries")
        out = Path(a.out).resolve()
        subprocess.run(L.nsexec(lab.rly) + [
            py, str(ROOT / "contrib" / "grafana" / "render.py"),
            "--prometheus", f"http://{PROM_LISTEN}", "--start", str(start), "--end", str(end),
            "--step", "5", "--rate-interval", "30s", "--out", str(out),
            "--note", f"Lab: Kea + cdra (proxy mode) + {len(kinds)} real clients, "
                      f"{a.minutes:g} min, Kea stopped for {0.25 * total:.0f} s."], check=True)
        say(f"wrote {out}")
        lines = [json.loads(line) for line in relay.proc.text().splitlines()
                 if line.startswith('{"ts":')]
        key = next((e["client"] for e in lines if e.get("address") == gone_ip), None)
        say(f"event log: {len(lines)} lines; those of the client that vanished ({gone_ip}):")
        for e in lines:
            if e["client"] == key:
                print(json.dumps(e, separators=(",", ":")))
        print(relay.cache("counters", "--json"))
        return 0
    finally:
        lab.cleanup()


if __name__ == "__main__":
    sys.exit(main())
