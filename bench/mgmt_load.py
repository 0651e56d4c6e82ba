#!/usr/bin/env python3
"""Management-channel load for bench/mgmt, run inside cdra's network namespace.

  mgmt_load.py idle --metrics HOST:PORT --control PATH --count N --duration S
      holds N idle TCP connections to the metrics endpoint and N idle connections to the
      control socket (never sending a byte); every 100 ms a connection the server closed
      is opened again. Bounded: N <= 1000, S <= 600.
  mgmt_load.py list --cdra BIN --control PATH --duration S
      runs `cdra cache list --socket PATH` back to back (each to completion, its lines
      counted) until S seconds have passed.

Prints one JSON line with what it did. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import subprocess
import sys
import time

MAX_COUNT = 1000
MAX_DURATION = 600.0
PACE = 0.1


def connect_tcp(hostport: str) -> socket.socket | None:
    host, port = hostport.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=1)
        s.setblocking(False)
        return s
    except OSError:
        return None


def connect_unix(path: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1)
        s.connect(path)
        s.setblocking(False)
        return s
    except OSError:
        s.close()
        return None


def closed(s: socket.socket) -> bool:
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def idle(args) -> dict:
    count = min(args.count, MAX_COUNT)
    kinds = {"metrics": lambda: connect_tcp(args.metrics), "control": lambda: connect_unix(args.control)}
    held: dict[str, list[socket.socket | None]] = {k: [None] * count for k in kinds}
    stats = {k: {"opened": 0, "failed": 0, "closed_by_server": 0} for k in kinds}
    end = time.monotonic() + min(args.duration, MAX_DURATION)
    while time.monotonic() < end:
        for kind, make in kinds.items():
            for i, s in enumerate(held[kind]):
                if s is not None and closed(s):
                    s.close()
                    held[kind][i] = s = None
                    stats[kind]["closed_by_server"] += 1
                if s is None:
                    s = make()
                    held[kind][i] = s
                    stats[kind]["opened" if s else "failed"] += 1
        time.sleep(PACE)
    for socks in held.values():
        for s in socks:
            if s:
                s.close()
    return {"mode": "idle", "count": count, **stats}


def lists(args) -> dict:
    end = time.monotonic() + min(args.duration, MAX_DURATION)
    runs = []
    while time.monotonic() < end:
        t = time.monotonic()
        p = subprocess.run([args.cdra, "cache", "list", "--socket", args.control],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=300)
        lines = p.stdout.count(b"\n")
        runs.append({"seconds": round(time.monotonic() - t, 3), "lines": lines, "rc": p.returncode})
    return {"mode": "list", "lists": len(runs), "runs": runs}


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("idle")
    a.add_argument("--metrics", required=True)
    a.add_argument("--control", required=True)
    a.add_argument("--count", type=int, default=100)
    a.add_argument("--duration", type=float, required=True)
    b = sub.add_parser("list")
    b.add_argument("--cdra", required=True)
    b.add_argument("--control", required=True)
    b.add_argument("--duration", type=float, required=True)
    args = ap.parse_args()
    out = idle(args) if args.mode == "idle" else lists(args)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
