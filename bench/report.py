#!/usr/bin/env python3
"""Turns bench/run's results (cdra-loadgen JSON reports) into BENCHMARKS.md and a plot.

Usage: report.py RESULTS_DIR BENCHMARKS.md PLOT.png [--no-plot]
  --no-plot  link PLOT.png but leave the file as it is (bench/storm refreshes its section)

Reads RESULTS_DIR/{selftest,null-relay,dhcrelay,dhcrelay-quiet,dnsmasq,dnsmasq-bcast,cdra-relay,cdra-proxy}.json, machine.txt and
*.commands.txt; includes bench/commentary.md (hand-written analysis), bench/mgmt.md (written
by bench/mgmt), bench/floor.md (written by bench/floor), bench/storm.md (written by bench/storm), bench/fuzz.md (engine fuzzer
long runs), bench/pair.md (a pair of relays sharing the table in Redis) and
bench/leasequery.md (bench/leasequery_sweep.py) when present.
Standard library + matplotlib (Debian: python3-matplotlib).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETUPS = ["null-relay", "dhcrelay", "dhcrelay-quiet", "dnsmasq", "dnsmasq-bcast", "cdra-relay", "cdra-proxy"]
LABELS = {
    "null-relay": "null relay (floor)",
    "dhcrelay": "ISC dhcrelay",
    "dhcrelay-quiet": "ISC dhcrelay -q",
    "dnsmasq": "dnsmasq (relay)",
    "dnsmasq-bcast": "dnsmasq, BROADCAST flag",
    "cdra-relay": "cdra relay",
    "cdra-proxy": "cdra proxy",
}
COLORS = {"null-relay": "tab:gray", "dhcrelay": "tab:blue", "dhcrelay-quiet": "tab:cyan", "dnsmasq": "tab:orange", "dnsmasq-bcast": "tab:brown", "cdra-relay": "tab:green", "cdra-proxy": "tab:red"}


def load(results: Path) -> tuple[dict, dict, dict]:
    runs = {}
    for name in ["selftest"] + SETUPS:
        p = results / f"{name}.json"
        if p.exists():
            runs[name] = json.loads(p.read_text())
    machine = {}
    mp = results / "machine.txt"
    if mp.exists():
        for line in mp.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                machine[k] = v
    cmds = {}
    for name in ["selftest"] + SETUPS:
        p = results / f"{name}.commands.txt"
        if p.exists():
            cmds[name] = p.read_text()
    return runs, machine, cmds


def proc(ph: dict, label: str) -> dict | None:
    for p in ph.get("processes", []):
        if p["label"] == label:
            return p
    return None


def lat(ph: dict, kind: str) -> dict | None:
    ex = ph.get("exchanges", {}).get(kind)
    return ex.get("latency") if ex else None


def fmt(v, nd=1, dash="–"):
    if v is None:
        return dash
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def rate_str(ph: dict) -> str:
    return f"{ph['rate']:.0f}" if ph["rate"] > 0 else "max"


def rcvbuf(p: dict | None) -> str:
    u = (p or {}).get("netns_udp")
    return str(u.get("RcvbufErrors", 0)) if u else "–"


def row(setup: str, ph: dict, kind: str) -> list[str]:
    l = lat(ph, kind)
    relay = proc(ph, "relay")
    failing = ph["drop_pct"] > 50
    kea = proc(ph, "kea")
    kea_rx = (ph.get("kea") or {}).get("pkt4-received")
    per_ex = (kea_rx / ph["completed"]) if (kea_rx is not None and ph["completed"]) else None
    return [
        LABELS.get(setup, setup),
        rate_str(ph),
        f"{ph['offered_rate']:.0f}",
        f"{ph['achieved_rate']:.0f}",
        f"{ph['drop_pct']:.2f}",
        fmt(l["p50_ms"], 2) if l else "–",
        fmt(l["p99_ms"], 2) if l else "–",
        fmt(l["max_ms"], 1) if l else "–",
        fmt(relay["cpu_ms_per_1000"], 1) if relay and relay.get("cpu_ms_per_1000") is not None and not failing else "–",
        fmt(relay["cores"], 2) if relay else "–",
        fmt(kea["cpu_ms_per_1000"], 1) if kea and kea.get("cpu_ms_per_1000") is not None and not failing else "–",
        fmt(kea_rx) if kea_rx is not None else "–",
        fmt(per_ex, 2) if per_ex is not None else "–",
        f"{rcvbuf(relay)} / {rcvbuf(kea)}",
        str(ph["packets"]["duplicates"]),
    ]


HEAD = [
    "setup", "offered (cfg)", "offered /s", "achieved /s", "drop %", "p50 ms", "p99 ms", "max ms",
    "relay CPU ms/1k", "relay cores", "Kea CPU ms/1k", "Kea pkts rx", "Kea rx / exch", "UDP rcvbuf drops relay / Kea ns",
    "dup replies",
]


def run_id(cmds_text: str | None) -> str | None:
    """The bench run a setup's result comes from: the namespace prefix (bn + 6 hex digits) in
    its commands, new for every `bench/run`."""
    import re

    m = re.search(r"ip netns exec (bn[0-9a-f]{6})", cmds_text or "")
    return m.group(1) if m else None


FLOOR = ["null-relay", "cdra-relay", "dhcrelay", "dhcrelay-quiet"]


def floor_section(runs: dict, cmds: dict) -> list[str]:
    """Issue 14, part 2: CPU per exchange of cdra relay against the null relay and dhcrelay,
    per offered DORA rate, from one bench run."""
    if "null-relay" not in runs:
        return []
    here = [s for s in FLOOR if s in runs]
    ids = {s: run_id(cmds.get(s)) for s in here}
    same = [s for s in here if ids[s] == ids["null-relay"]]
    md = ["## Relay CPU against the floor (issue 14, part 2)\n"]
    md.append(
        "The *null relay* (`cdra-loadgen null-relay`, crates/loadgen/src/null_relay.rs) opens the "
        "sockets cdra's relay mode opens and makes the same system calls per wake-up and per "
        "message (`poll`; `recvmmsg` on the AF_PACKET tap and on UDP :67; one `sendmsg` per "
        "request to the server, one AF_PACKET `sendto` per reply to the client's MAC) but does no "
        "DHCP work beyond setting giaddr and hops and choosing the reply's destination. Its CPU per "
        "exchange is what the kernel charges a relay built this way; cdra's excess over it is "
        "cdra's own work. CPU ms per 1,000 completed DORA (utime+stime of the relay process), "
        f"from run `{ids['null-relay']}` (setups of other runs are left out: "
        f"{', '.join(LABELS[s] for s in here if s not in same) or 'none'}). "
        "Drops: exchanges lost, % of offered.\n"
    )
    head = ["offered DORA/s"] + [f"{LABELS[s]} CPU ms/1k" for s in same]
    ratios = [("cdra-relay", "null-relay"), ("cdra-relay", "dhcrelay"), ("cdra-relay", "dhcrelay-quiet")]
    ratios = [(a, b) for a, b in ratios if a in same and b in same]
    head += [f"{LABELS[a].split()[0]} / {LABELS[b].split(' (')[0]}" for a, b in ratios]
    head += [f"drop % {LABELS[s].split(' (')[0]}" for s in same]
    rows = []
    by_rate = {s: {p["rate"]: p for p in phases_of(runs[s], "dora")} for s in same}
    for rate in sorted(by_rate["null-relay"]):
        phs = {s: by_rate[s].get(rate) for s in same}

        def cpu(s: str):
            ph = phs.get(s)
            r = proc(ph, "relay") if ph else None
            return r.get("cpu_ms_per_1000") if r and ph["drop_pct"] <= 50 else None

        r = [f"{rate:.0f}"] + [fmt(cpu(s), 1) for s in same]
        for a, b in ratios:
            x, y = cpu(a), cpu(b)
            r.append(f"{x / y:.2f}" if x is not None and y else "–")
        r += [f"{phs[s]['drop_pct']:.2f}" if phs.get(s) else "–" for s in same]
        rows.append(r)
    md.append(table(rows, head))
    md.append("")
    return md


def table(rows: list[list[str]], head: list[str] = HEAD) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def phases_of(run: dict, scenario: str, rate_pred=lambda r: True, first_only=False) -> list[dict]:
    out = [p for p in run["phases"] if p["scenario"] == scenario and rate_pred(p["rate"])]
    return out[:1] if first_only else out


def drop_block(text: str, header: str, note: str) -> str:
    """Replaces the file block starting at `header` (up to the next command or file) by `note`."""
    out, skipping = [], False
    for line in text.splitlines():
        if line == header:
            skipping = True
            out.append(note)
            continue
        if skipping and (line.startswith("$ ") or line.startswith("--- ")):
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out)


def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    (a1, a2), (a3, a4) = axes
    for s in SETUPS:
        if s not in runs:
            continue
        ph = phases_of(runs[s], "dora")
        xs = [p["offered_rate"] for p in ph]
        # Latency and CPU of a step that lost most of its exchanges describe the survivors only.
        ok = [p["drop_pct"] <= 50 for p in ph]
        p99 = [(lat(p, "dora") or {}).get("p99_ms") if good else None for p, good in zip(ph, ok)]
        drops = [p["drop_pct"] for p in ph]
        cpu = [(proc(p, "relay") or {}).get("cpu_ms_per_1000") if good else None for p, good in zip(ph, ok)]
        nan = float("nan")
        a1.plot(xs, [v if v is not None else nan for v in p99], marker="o", color=COLORS[s], label=LABELS[s])
        a2.plot(xs, drops, marker="o", color=COLORS[s], label=LABELS[s])
        a4.plot(xs, [v if v is not None else nan for v in cpu], marker="o", color=COLORS[s], label=LABELS[s])
    a1.set_title("DORA latency p99 (first DISCOVER to ACK; steps losing >50 % omitted)")
    a1.set_xlabel("offered DORA/s")
    a1.set_ylabel("ms")
    a1.set_yscale("log")
    a2.set_title("DORA exchanges dropped")
    a2.set_xlabel("offered DORA/s")
    a2.set_ylabel("% of offered (symlog)")
    a2.set_yscale("symlog", linthresh=1.0)
    a2.set_ylim(0, 110)
    a4.set_title("relay CPU per 1,000 completed DORA")
    a4.set_xlabel("offered DORA/s")
    a4.set_ylabel("CPU ms (utime+stime)")
    a4.set_ylim(bottom=0)
    for s in SETUPS:
        if s not in runs:
            continue
        for kind, style, mark in (("init-reboot", "-", "o"), ("renew", "--", "s")):
            ph = [p for p in phases_of(runs[s], kind) if p["drop_pct"] <= 50]
            if not ph:
                continue
            xs = [p["offered_rate"] for p in ph]
            p99 = [(lat(p, kind) or {}).get("p99_ms") for p in ph]
            a3.plot(xs, p99, marker=mark, linestyle=style, color=COLORS[s], label=f"{LABELS[s]} {kind}")
    a3.set_title("INIT-REBOOT / RENEW latency p99 (relays at 4,000/s; cdra proxy: warm cache)")
    a3.set_xlabel("offered exchanges/s")
    a3.set_ylabel("ms")
    a3.set_xscale("log")
    a3.set_yscale("log")
    for a in (a1, a2, a3, a4):
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=7 if a is a3 else 8)
    fig.suptitle("cdra-loadgen: relays in front of Kea 2.2 (same machine, same offered load)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    results, md_path, png_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    no_plot = "--no-plot" in sys.argv[4:]
    runs, machine, cmds = load(results)
    md: list[str] = []
    md.append("# cdra benchmarks\n")
    md.append(
        "Generated by `bench/run` (then `bench/report.py`); rerun with `sudo bench/run` to refresh. "
        "Each relay runs in its own fresh set of network namespaces with a fresh Kea behind it, and "
        "receives the same client traffic from `cdra-loadgen` (emulated clients: broadcasts from "
        "0.0.0.0:68 with giaddr 0, one MAC per client as chaddr and Ethernet source, renewals "
        "unicast to the server-id). A lost exchange is a drop (no retransmissions); timeout 1 s.\n"
    )
    md.append("## Method\n")
    md.append(
        "- Topology per setup (fresh namespaces, fresh Kea, fresh relay): client namespace `lg0` "
        "--veth-- `rd0` 10.64.0.1/14 | relay namespace | `ru0` 10.200.0.2/24 --veth-- `sv0` "
        "10.200.0.1/24 server namespace; IP forwarding on in the relay namespace, IPv6 off.\n"
        "- Kea 2.2 `kea-dhcp4`: one subnet 10.64.0.0/14 (pool of ~262k addresses), memfile lease "
        "file on tmpfs, `lfc-interval` 0, single-threaded, logging at WARN to a file, statistics "
        "read over its control socket (`statistic-get-all`) before and after every step.\n"
        "- `cdra-loadgen` emulates the clients from the client namespace: every client has its own "
        "MAC (chaddr and Ethernet source, sent through an AF_PACKET socket), sends DISCOVER and "
        "REQUEST as broadcasts from 0.0.0.0:68 with giaddr 0 (BROADCAST flag clear unless noted), "
        "RENEW as a unicast from its address to its server-id through the router MAC it learned "
        "from the ACK, and answers ARP for its address. Exchanges start at the offered rate (token "
        "bucket); a reply is matched by xid and chaddr; no retransmissions, a reply later than 1 s "
        "is a drop. The DORA steps use fresh clients each (1000/s x 10 s, then 2000/s ..., 130k "
        "clients in all), so every DORA is a new lease for Kea.\n"
        "- CPU: utime+stime from /proc/PID/stat before and after each step, for the relay, Kea "
        "and the generator. Lost datagrams: `RcvbufErrors` of each process's namespace.\n"
        "- All of it shares the machine's 2 vCPUs: generator, relay, Kea, and the kernel's packet "
        "processing (softirq) between the namespaces. Around 6,000 DORA/s Kea (one thread) is "
        "the bottleneck. Absolute latencies include the scheduling of three busy processes on two "
        "cores; the comparison between relays is the point.\n"
    )
    md.append("## Machine\n")
    for k, label in [("date", "date (UTC)"), ("nproc", "nproc"), ("cpu", "CPU"), ("kernel", "kernel"), ("os", "OS"),
                     ("kea", "Kea"), ("dhcrelay", "dhcrelay"), ("dnsmasq", "dnsmasq"), ("cdra", "cdra commit"),
                     ("step_s", "seconds per DORA step"), ("run", "run"), ("setups", "setups run"),
                     ("load_start", "load average at start (1, 5, 15 min)"),
                     ("load_end", "load average at end")]:
        if k in machine:
            md.append(f"- {label}: {machine[k]}")
    if machine.get("quick") == "1":
        md.append("- **quick run (`--quick`): short steps, numbers are rough**")
    md.append("")
    md.append(
        "Columns: *offered (cfg)* is the configured rate (max = closed loop, as fast as the "
        "generator's window of outstanding exchanges allows); *offered /s* what the generator "
        "actually sent; *achieved /s* exchanges completed per second of the sending window; "
        "*p50/p99/max* latency from the first client message to the final reply (DORA: DISCOVER "
        "to ACK); *relay CPU ms/1k* utime+stime of the relay process per 1,000 completed exchanges "
        "(includes the kernel work done in its system calls, e.g. delivering what it sends into "
        "the next namespace); *relay cores* its average share of one core; *Kea CPU ms/1k* the "
        "same for Kea; *Kea pkts rx* Kea's `pkt4-received` during the step; *Kea rx / exch* "
        "messages Kea received per completed exchange (a relayed DORA is 2); *UDP rcvbuf drops* "
        "datagrams the kernel dropped because a socket's receive buffer was full, in the relay's and "
        "in Kea's namespace (`RcvbufErrors` of /proc/PID/net/snmp): where lost messages were lost. "
        "*dup replies* replies to an exchange that had already completed. "
        "CPU per 1,000 is not shown for a step that lost more than half of its exchanges.\n"
    )

    if any(s in runs for s in SETUPS):
        md.append("## DORA through each relay\n")
        older = [s for s in SETUPS if s in runs and machine.get("run") and run_id(cmds.get(s)) != machine["run"]]
        if older:
            md.append(
                f"Not in run `{machine['run']}` (results of an earlier `bench/run`, possibly on another "
                f"machine, kept in bench/results): {', '.join(LABELS[s] for s in older)}.\n"
            )
        rows = []
        for s in SETUPS:
            if s in runs:
                rows += [row(s, p, "dora") for p in phases_of(runs[s], "dora")]
        md.append(table(rows))
        md.append("")
        md.append("## INIT-REBOOT and RENEW through each relay\n")
        md.append(
            "Clients that got their lease in the DORA steps. INIT-REBOOT: broadcast REQUEST with "
            "option 50 (first 20,000 clients). RENEW: REQUEST with ciaddr, unicast to the server-id "
            "(first 500 clients, each renewing several times: the ACK to ciaddr needs an ARP entry in "
            "the relay namespace, and the kernel's neighbour table is global and limited to 1,024 "
            "entries by default). Through a plain relay the renewal is routed past the relay to Kea; "
            "in proxy mode the server-id is cdra itself.\n"
        )
        rows = []
        for s in SETUPS:
            if s not in runs:
                continue
            for kind in ("init-reboot", "renew"):
                for p in phases_of(runs[s], kind, first_only=True):
                    r = row(s, p, kind)
                    rows.append([f"{r[0]} {kind}"] + r[1:])
        md.append(table(rows))
        md.append("")
    md += floor_section(runs, cmds)
    if "cdra-proxy" in runs:
        md.append("## cdra proxy, warm cache\n")
        md.append(
            "After the DORA steps filled its cache, cdra (`mode = \"proxy\"`, `safe_network = true`, "
            "so no address probes) answers INIT-REBOOT and RENEW itself. *Kea pkts rx* near 0 shows "
            "that the server was not asked.\n"
        )
        rows = []
        for kind in ("init-reboot", "renew"):
            for p in phases_of(runs["cdra-proxy"], kind):
                rows.append([kind] + row("cdra-proxy", p, kind)[1:])
        md.append(table(rows, ["exchange"] + HEAD[1:]))
        md.append("")
    if "selftest" in runs:
        md.append("## The generator's own ceiling\n")
        md.append(
            "`cdra-loadgen run` against `cdra-loadgen reflect` (a stateless responder, no relay, no "
            "server) on a bare veth pair, window of 512 outstanding exchanges. *gen CPU ms/1k* is the "
            "generator's own CPU per 1,000 exchanges; its inverse is the rate one core could drive.\n"
        )
        rows = []
        for p in runs["selftest"]["phases"]:
            kind = p["scenario"]
            l = lat(p, kind)
            per = p["generator_cpu_s"] * 1e6 / p["completed"] if p["completed"] else None
            refl = proc(p, "reflector")
            rows.append([
                kind, rate_str(p), f"{p['offered_rate']:.0f}", f"{p['achieved_rate']:.0f}", f"{p['drop_pct']:.2f}",
                fmt(l["p50_ms"], 2) if l else "–", fmt(l["p99_ms"], 2) if l else "–",
                fmt(per, 1), f"{p['generator_cpu_s'] / max(p['elapsed_s'], 1e-9):.2f}",
                fmt(refl["cores"], 2) if refl else "–",
            ])
        md.append(table(rows, ["exchange", "offered (cfg)", "offered /s", "achieved /s", "drop %", "p50 ms",
                               "p99 ms", "gen CPU ms/1k", "gen cores", "reflector cores"]))
        md.append("")
    targets = Path(__file__).with_name("targets.md")
    if targets.exists():
        md.append(targets.read_text().rstrip() + "\n")
    commentary = Path(__file__).with_name("commentary.md")
    if commentary.exists():
        md.append(commentary.read_text().rstrip() + "\n")
    # Written by bench/mgmt (management channels vs the packet path), kept across bench/run.
    mgmt = Path(__file__).with_name("mgmt.md")
    if mgmt.exists():
        md.append(mgmt.read_text().rstrip() + "\n")
    # Written by bench/floor (relays against the floor, interleaved), kept across bench/run.
    floor = Path(__file__).with_name("floor.md")
    if floor.exists():
        md.append(floor.read_text().rstrip() + "\n")
    # Written by bench/storm (the storm after a power failure), kept across bench/run.
    storm = Path(__file__).with_name("storm.md")
    if storm.exists():
        md.append(storm.read_text().rstrip() + "\n")
    fuzz = Path(__file__).with_name("fuzz.md")
    if fuzz.exists():
        md.append(fuzz.read_text().rstrip() + "\n")
    pair = Path(__file__).with_name("pair.md")
    if pair.exists():
        md.append(pair.read_text().rstrip() + "\n")
    leasequery = Path(__file__).with_name("leasequery.md")
    if leasequery.exists():
        md.append(leasequery.read_text().rstrip() + "\n")
    md.append("## Plot\n")
    md.append(f"![latency and drops]({png_path.relative_to(md_path.parent) if png_path.is_relative_to(md_path.parent) else png_path})\n")
    md.append("## How to run\n")
    md.append(
        "```\nsudo bench/run            # ~8 minutes: installs missing Debian packages, builds, runs, "
        "rewrites this file\nsudo bench/run --quick    # 2 s steps, a smoke test\n"
        "sudo bench/run --only selftest,cdra-proxy\n"
        "sudo bench/mgmt           # management channels vs the packet path (its own section)\n"
        "sudo bench/storm          # the storm after a power failure (its own section)\n"
        "sudo bench/floor --before DIR  # null relay, cdra, dhcrelay interleaved (its own section)\n```\n"
    )
    md.append(
        "`cdra-loadgen` alone (inside a namespace whose interface faces the relay):\n\n```\n"
        "cdra-loadgen run -i lg0 --clients 200000 --timeout 1s --phase dora:4000:10s \\\n"
        "    --phase renew:4000:5s:500 --cpu relay=PID --kea-socket /path/kea4.sock --json out.json\n"
        "cdra-loadgen run --help\n```\n"
    )
    if cmds:
        md.append("## Exact commands of this run\n")
        md.append("Namespace names and temporary paths are this run's (`bench/run` makes new ones each time).\n")
        kea_shown = False
        for name in ["selftest"] + SETUPS:
            if name in cmds:
                text = cmds[name].rstrip()
                if kea_shown:
                    text = drop_block(text, "--- kea-dhcp4.json", "(the same Kea configuration as above)")
                kea_shown = kea_shown or "--- kea-dhcp4.json" in text
                md.append(f"### {LABELS.get(name, name)}\n\n```\n{text}\n```\n")
    md_path.write_text("\n".join(md))
    if not no_plot:
        plot(runs, png_path)

    # Short summary on stdout.
    print("== summary (DORA: offered/s -> achieved/s, drop %, p99 ms, relay CPU ms per 1000)")
    for s in SETUPS:
        if s not in runs:
            continue
        parts = []
        for p in phases_of(runs[s], "dora"):
            l = lat(p, "dora") or {}
            r = proc(p, "relay") or {}
            parts.append(
                f"{p['offered_rate']:.0f}->{p['achieved_rate']:.0f} {p['drop_pct']:.1f}% "
                f"{l.get('p99_ms', float('nan')):.2f}ms {r.get('cpu_ms_per_1000') or float('nan'):.0f}"
            )
        print(f"  {LABELS[s]:<18} " + " | ".join(parts))
    if "cdra-proxy" in runs:
        for kind in ("init-reboot", "renew"):
            ph = phases_of(runs["cdra-proxy"], kind)
            best = max(ph, key=lambda p: p["achieved_rate"], default=None)
            if best:
                print(f"  cdra proxy {kind}: up to {best['achieved_rate']:.0f}/s achieved "
                      f"({best['drop_pct']:.2f}% dropped, p99 {(lat(best, kind) or {}).get('p99_ms', float('nan')):.2f} ms)")
    if "selftest" in runs:
        for p in runs["selftest"]["phases"]:
            if p["rate"] == 0:
                print(f"  generator ceiling ({p['scenario']}, vs reflector): {p['achieved_rate']:.0f}/s")
    print(f"wrote {md_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
