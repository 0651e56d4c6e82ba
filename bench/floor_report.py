#!/usr/bin/env python3
"""Turns bench/floor's results (bench/results/floor.json) into bench/floor.md, which
bench/report.py includes in BENCHMARKS.md.

Usage: floor_report.py RESULTS.json FLOOR.md

Per rate: each relay's CPU per 1,000 completed DORA exchanges (perf task-clock of the relay
process over the step), median and range over the rounds; context switches per exchange;
drops. Then the ratios that issue 14 part 2 sets targets for, computed per round (the
relays of one round ran seconds apart, in the same conditions), their median and range,
and in how many rounds each target held. Then system calls per exchange from the untimed
pass. Standard library only.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

LABELS = {
    "null": "null relay (floor)",
    "cdra": "cdra relay",
    "dhcrelay": "ISC dhcrelay -d",
    "dhcrelay-q": "ISC dhcrelay -d -q",
    "null-before": "null relay, before",
    "cdra-before": "cdra relay, before",
}
# (numerator, denominator, target: the ratio must be at most this; None: no target)
RATIOS = [
    ("cdra", "null", 1.15),
    ("cdra", "dhcrelay", 0.8),
    ("cdra", "dhcrelay-q", 0.8),
    ("cdra-before", "null-before", 1.15),
    ("cdra-before", "dhcrelay", 0.8),
    ("cdra-before", "dhcrelay-q", 0.8),
    ("cdra", "cdra-before", None),
    ("null", "null-before", None),
    ("cdra", "null-before", None),
]
SYSCALLS = ["poll", "ppoll", "select", "pselect6", "epoll_wait", "recvmmsg", "recvmsg", "recvfrom", "read",
            "sendmmsg", "sendmsg", "sendto", "write", "writev"]


def per_k(step: dict) -> float | None:
    """CPU ms per 1,000 completed exchanges (None when more than half were lost)."""
    c = step["completed"]
    if c == 0 or step["dropped"] > c:
        return None
    # `perf stat -x,` gives task-clock in msec.
    return step["counters"].get("task-clock", 0.0) * 1000 / c


def med_range(values: list[float], nd: int = 1) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values):.{nd}f} ({min(values):.{nd}f}–{max(values):.{nd}f})"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def main() -> int:
    doc = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    relays = doc["relays"]
    timed = [s for s in doc["steps"] if s["pass"] == "timed"]
    by = {(s["round"], s["rate"], s["relay"]): s for s in timed}
    md = ["## Relays against the floor, interleaved (`bench/floor`)\n"]
    md.append(
        f"Run `{doc['run']}`, {doc['date']}, cdra {doc['cdra']}"
        + (f" (before: the binaries in `{doc['before']}`)" if doc.get("before") else "")
        + f"; {doc['rounds']} rounds of {doc['step_s']} s steps at {', '.join(str(r) for r in doc['rates'])} "
        f"DORA/s; load average {doc['load_start']} at the start of the timed rounds, {doc['load_timed_end']} "
        f"at their end. Each relay has its own topology and Kea, all started once; in every round each "
        f"rate is run through every relay in turn (the order rotates by one relay per round), so the "
        f"steps compared in a round are seconds apart. "
        + ("Pinned (`--pin`): every relay on CPU 1, every Kea and the load generator on CPU 0. "
           if doc.get("pinned") else "")
        + f"*CPU ms/1k*: the relay's `perf stat` task-clock "
        f"over the step per 1,000 completed exchanges, median (range) over the rounds. Ratios are "
        f"computed per round and then summarised. "
        + ("Hardware counters (instructions) were available and are shown."
           if doc.get("hardware_counters") else
           "This VM exposes no hardware counters (`perf stat -e instructions` says `<not supported>`), "
           "so there is no instructions-per-exchange figure; context switches and system calls per "
           "exchange are exact counts instead.")
        + "\n"
    )
    for rate in doc["rates"]:
        md.append(f"### {rate} DORA/s\n")
        rows = []
        for r in relays:
            steps = [s for s in timed if s["rate"] == rate and s["relay"] == r]
            if not steps:
                continue
            cpu = [v for v in (per_k(s) for s in steps) if v is not None]
            cs = [s["counters"].get("context-switches", 0) / s["completed"] for s in steps if s["completed"]]
            ins = [s["counters"]["instructions"] / s["completed"] for s in steps
                   if s["completed"] and "instructions" in s["counters"]]
            dropped = sum(s["dropped"] for s in steps)
            started = sum(s["started"] for s in steps)
            row = [LABELS.get(r, r), med_range(cpu), med_range(cs, 2)]
            if doc.get("hardware_counters"):
                row.append(med_range([i / 1000 for i in ins], 1))
            lost = f"{dropped} of {started} ({100 * dropped / max(started, 1):.2f} %)"
            where = {k: sum((x.get("rcvbuf_errors") or {}).get(k) or 0 for x in steps) for k in ("relay", "kea")}
            if any(where.values()):
                lost += f"; full receive buffers: relay's namespace {where['relay']}, Kea's {where['kea']}"
            row.append(lost)
            rows.append(row)
        head = ["relay", "CPU ms/1k", "context switches / exchange"]
        if doc.get("hardware_counters"):
            head.append("k instructions / exchange")
        head.append("dropped")
        md += table(head, rows)
        rows = []
        for num, den, target in RATIOS:
            if num not in relays or den not in relays:
                continue
            vals = []
            for rnd in range(1, doc["rounds"] + 1):
                a, b = by.get((rnd, rate, num)), by.get((rnd, rate, den))
                if a and b and per_k(a) and per_k(b):
                    vals.append(per_k(a) / per_k(b))
            if not vals:
                continue
            held = "–" if target is None else f"{sum(v <= target for v in vals)} of {len(vals)}"
            rows.append([f"{LABELS.get(num, num)} / {LABELS.get(den, den)}", med_range(vals, 2),
                         "–" if target is None else f"≤ {target}", held])
        md += table(["ratio (per round)", "median (range)", "target", "rounds within target"], rows)
    syscalls = [s for s in doc["steps"] if s["pass"] == "syscalls"]
    if syscalls:
        md.append("### System calls per exchange\n")
        md.append(
            "An untimed pass after the rounds (one step per relay and rate, `perf stat -e "
            "raw_syscalls:sys_enter,syscalls:sys_enter_*` on the relay process): calls per completed DORA "
            "exchange (4 messages relayed: DISCOVER, OFFER, REQUEST, ACK). *all* counts every system call.\n"
        )
        used = [c for c in SYSCALLS if any(s["counters"].get(f"syscalls:sys_enter_{c}", 0) for s in syscalls)]
        rows = []
        for rate in doc["rates"]:
            for r in relays:
                s = next((x for x in syscalls if x["rate"] == rate and x["relay"] == r), None)
                if not s or not s["completed"]:
                    continue
                c = s["completed"]
                rows.append([LABELS.get(r, r), str(rate), f"{s['counters'].get('raw_syscalls:sys_enter', 0) / c:.2f}"]
                            + [f"{s['counters'].get(f'syscalls:sys_enter_{k}', 0) / c:.2f}" for k in used])
        md += table(["relay", "DORA/s", "all"] + used, rows)
    md.append("Command (bench/floor writes the exact per-step commands into bench/results/floor.json):\n")
    md.append(f"```\nsudo bench/floor --rounds {doc['rounds']} --step {doc['step_s']} --rates \"{' '.join(str(r) for r in doc['rates'])}\""
              + (" --pin" if doc.get("pinned") else "")
              + (" --before DIR" if doc.get("before") else "") + "\n```\n")
    out.write_text("\n".join(md))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
