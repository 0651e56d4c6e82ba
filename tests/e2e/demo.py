#!/usr/bin/env python3
"""A narrated demonstration of cdra in proxy and pool mode (run by `sudo ./scripts/demo`).

Builds the end-to-end lab's network in namespaces (see README.md here), starts Kea and
cdra (proxy mode, control socket, metrics), and runs real DHCP clients (dhclient, udhcpc,
dhcpcd) through it, saying what happens and showing the evidence:

  1. first leases are relayed to Kea;
  2. renewals and reboots are answered by cdra (Kea sees nothing);
  3. Kea is stopped: the clients keep their addresses, a new client gets nothing;
  4. a squatter takes a cached address: its owner gets a DHCPNAK from cdra;
  5. Kea is back: the new client gets a lease;

then a table of what Kea received against what cdra answered itself, and

  6. the same outage in address-pooling mode: cdra leases a pool from Kea ahead of time,
     a brand-new client gets a pool address while Kea is down, and is moved onto a Kea
     lease of its own (same address) once Kea is back.

 Everything it
creates is removed on exit (also on Ctrl-C). Exit status 0 only if every step behaved as
narrated.

Environment: CDRA_BIN (default target/release/cdra), CDRA_DEMO_KEEP=1 keeps the lab's
temp dir (logs, configs, pcaps) and prints where it is.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("CDRA_E2E_RELAY", "cdra")

import dhcp_packets as dp  # noqa: E402
import lab as L  # noqa: E402

DEADLINE = 300          # seconds: the whole demo, then it gives up (and cleans up)
KEA_LEASE = 600
NEW_CLIENT_WAIT = 10
POOL_SIZE = 3          # step 6: free addresses cdra keeps leased from Kea
POOL_CLIENT_LEASE = "20s"  # step 6: the pool client's lease (renews every 10 s)

T0 = time.monotonic()
RESULTS: list[tuple[str, bool, str]] = []


class StepFailed(Exception):
    pass


def say(text: str = "") -> None:
    print(text, flush=True)


def header(n: int | str, title: str) -> None:
    say()
    say(f"=== {str(n) + '. ' if n != '' else ''}{title}  (t={time.monotonic() - T0:.0f}s)")


def evidence(text: str) -> None:
    for line in text.rstrip("\n").splitlines():
        say(f"      | {line}")


def check(step: str, ok: bool, what: str) -> bool:
    RESULTS.append((step, ok, what))
    first, _, rest = what.partition("\n")
    say(f"   [{'ok' if ok else 'FAIL'}] {first}")
    if rest:
        evidence(rest)
    return ok


def kea_stats(kea: L.Kea) -> dict[str, int]:
    names = ["pkt4-received", "pkt4-discover-received", "pkt4-request-received",
             "pkt4-release-received", "pkt4-offer-sent", "pkt4-ack-sent", "pkt4-nak-sent"]
    return {n: kea.statistic(n) for n in names}


def fmt_stats(s: dict[str, int]) -> str:
    short = {"pkt4-received": "received", "pkt4-discover-received": "DISCOVER",
             "pkt4-request-received": "REQUEST", "pkt4-release-received": "RELEASE",
             "pkt4-offer-sent": "OFFER sent", "pkt4-ack-sent": "ACK sent",
             "pkt4-nak-sent": "NAK sent"}
    return ", ".join(f"{short[k]} {v}" for k, v in s.items())


def diff(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b[k] - a.get(k, 0) for k in b}


def addr_of(cl: L.Client) -> str:
    a = cl.cns.ipv4_addrs()
    return a[0] if a else "(none)"


def pool_step(lab: L.Lab, kea: L.Kea) -> None:
    """Step 6: the outage of step 3 again, with cdra in address-pooling mode: a brand-new
    client gets an address while Kea is down, and moves onto a Kea lease of its own when
    Kea is back."""
    step = "6 pool mode: a new client served through the outage"
    header(6, "The same outage in POOL mode: a brand-new client gets an address")
    lab.relay.stop()
    lab.start_relay(**L.proxy_relay_kw(lab, mode="pool", sections={"pool": {
        "size": POOL_SIZE, "assign": "outage", "fallback_after": "2s",
        "client_lease": POOL_CLIENT_LEASE}}))
    relay: L.CdraRelay = lab.relay
    say(f"   cdra restarted (same table) with mode = \"pool\": it leases {POOL_SIZE} addresses")
    say("   from Kea ahead of time, under client identities of its own, and keeps them renewed.")

    def pool() -> dict[str, L.Lease]:
        return {ip: l for ip, l in kea.active_leases().items() if l.is_pool()}
    try:
        held = L.wait_until(lambda: pool() if len(pool()) == POOL_SIZE else None, 20,
                            interval=0.2, what=f"{POOL_SIZE} pool leases in Kea's lease table")
    except L.LabError as e:
        check(step, False, f"the pool did not fill: {e}")
        return
    check(step, True, f"Kea's lease table shows the pool: {', '.join(sorted(held))}")
    evidence("\n".join(str(l) for _, l in sorted(held.items())))
    kea.stop()
    say("   Kea stopped again.")
    cns = lab.add_client()
    ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
    say(f"   A brand-new client (dhclient, MAC {cns.mac}) starts: its DISCOVER is relayed; no")
    say("   OFFER comes within fallback_after (2 s), so cdra OFFERs a pool address (after a")
    say("   probe) and ACKs it, with a short lease.")
    cl = lab.start_client("dhclient", cns)
    try:
        ev = cl.wait_bound(timeout=20)
    except L.LabError as e:
        check(step, False, f"the new client got nothing: {e}")
        return
    ip = ev.get("ip", "")
    check(step, ip in held and ev.get("server_id") == L.RELAY_DOWN_IP,
          f"the new client got {ip} from the pool (server {ev.get('server_id')}, lease "
          f"{ev.get('lease')} s) while Kea is down")
    evidence(relay.cache("list"))
    kea.restart()
    say("   Kea is back. At the client's next renewal cdra gives the pool lease back and asks")
    say("   Kea for the same address under the client's own identity...")

    def own() -> L.Lease | None:
        l = kea.active_leases().get(ip)
        return l if l is not None and l.mac == cns.mac else None
    try:
        lease = L.wait_until(own, 45, interval=0.5, what=f"Kea's lease on {ip} in the client's name")
        check(step, True, f"Kea now leases {ip} to the client itself ({lease.mac}); the client kept "
              "its address")
        check(step, ip in cns.ipv4_addrs(), f"dhclient still has {ip}")
    except L.LabError as e:
        check(step, False, f"the client was not moved onto a Kea lease of its own: {e}")
    m = relay.metrics()
    say("   cdra's pool counters (GET /metrics, excerpt):")
    evidence("\n".join(f"{k} {v:.0f}" for k, v in m.items()
                       if "pool" in k and v and "bucket" not in k))


def main() -> int:
    if os.geteuid() != 0:
        say("demo: needs root (network namespaces): sudo ./scripts/demo")
        return 2
    if not os.access(L.cdra_bin(), os.X_OK):
        say(f"demo: no cdra binary at {L.cdra_bin()} (cargo build --release -p cdra)")
        return 2
    lab = L.Lab("demo")
    clients: dict[str, tuple[L.Client, L.Capture, str]] = {}
    kea_total: dict[str, int] = {}
    try:
        header(0, "Setting up")
        lab.setup()
        say("   A small network in namespaces of this machine (nothing else is touched):")
        say(f"   clients --- segment --- [{L.RELAY_DOWN_IP} rd0  cdra  ru0 {L.RELAY_UP_IP}]"
            f" --- [{L.SERVER_IP} Kea]")
        kea = lab.start_server("kea", lease_time=KEA_LEASE)
        scap = lab.capture(lab.srv, L.SERVER_IF, "server")
        lab.capture(lab.rly, L.DOWN_IF, "relay-rd0")
        lab.start_relay(**L.proxy_relay_kw(lab))
        relay: L.CdraRelay = lab.relay
        say(f"   Kea 2 serves 10.77.1.100-200 with {KEA_LEASE} s leases.")
        say("   cdra runs in PROXY mode: it relays a client's first lease, remembers Kea's")
        say("   answer, and from then on answers that client itself, as its server.")
        say(f"   cdra config ({relay.conf}):")
        evidence("\n".join(ln for ln in relay.conf.read_text().splitlines()
                           if ln.startswith(("mode", "servers", "[proxy", "[store", "path",
                                             "[control", "socket", "[metrics", "listen"))))

        # ------------------------------------------------------------------ 1
        step = "1 first leases relayed"
        header(1, "First leases: cdra relays them to Kea")
        before = kea_stats(kea)
        for kind in ("dhclient", "udhcpc", "dhcpcd"):
            say(f"   Starting {kind} in its own namespace...")
            cl, ccap, ip = L.proxy_bound_client(lab, kind)
            clients[kind] = (cl, ccap, ip)
            check(step, cl.lease.get("server_id") == L.RELAY_DOWN_IP,
                  f"{kind} ({cl.cns.mac}) got {ip}; the server it sees is "
                  f"{cl.lease.get('server_id')} (cdra), lease {cl.lease.get('lease')} s")
        time.sleep(0.3)
        d = diff(before, kea_stats(kea))
        say("   What Kea saw (its statistics):")
        evidence(fmt_stats(d))
        check(step, d["pkt4-discover-received"] >= 3 and d["pkt4-request-received"] >= 3,
              "Kea received a DISCOVER and a REQUEST from each client (relayed by cdra)")
        relayed = scap.dhcp(lambda f: f.dhcp.op == 1)
        check(step, bool(relayed) and all(f.dhcp.giaddr == L.RELAY_DOWN_IP for f in relayed),
              f"every request at Kea came from cdra (giaddr {L.RELAY_DOWN_IP})")
        say("   cdra's client table (`cdra cache list`):")
        evidence(relay.cache("list"))

        # ------------------------------------------------------------------ 2
        step = "2 renewals and reboots answered by cdra"
        header(2, "Renewals and reboots: cdra answers, Kea sees nothing")
        before = kea_stats(kea)
        mark = time.time()
        for kind in ("udhcpc", "dhcpcd"):
            if kind not in clients:
                continue
            cl, ccap, ip = clients[kind]
            say(f"   {kind} renews its lease (SIGUSR1): a unicast DHCPREQUEST to 10.77.1.1...")
            n = len(cl.events())
            t = time.time()
            try:
                ev = cl.renew(timeout=8)
                kinds = [e["kind"] for e in cl.events()[n:]]
                time.sleep(0.2)
                mine = ccap.dhcp(lambda f: f.ts >= t)
                rebind = [f for f in mine if f.dhcp.op == 1 and f.dst_ip == "255.255.255.255"]
                if rebind:
                    check(step, False,
                          f"{kind} did not take cdra's answer to its unicast renewal and "
                          "broadcast the renewal (REBINDING), which cdra passes on to Kea:\n"
                          + L.describe_frames(mine))
                else:
                    check(step, kinds[:1] == ["renew"] and ev.get("ip") == ip,
                          f"{kind} renewed {ev.get('ip')} (lease {ev.get('lease')} s), "
                          "answered by cdra")
            except L.LabError as e:
                check(step, False, f"{kind} did not renew: {e}")
        say("   dhclient cannot be told to renew; it renews at T1 (here after 300 s).")
        for kind, (cl, ccap, ip) in clients.items():
            say(f"   {kind} 'reboots': stopped without a release, address removed, started "
                "again...")
            n = cl.restart()
            ev = cl.wait_bound(timeout=15, after=n)
            how = ("DISCOVER + REQUEST: it keeps no lease file" if kind == "udhcpc"
                   else "INIT-REBOOT: DHCPREQUEST for its old address")
            check(step, ev.get("ip") == ip,
                  f"{kind} is back with {ev.get('ip')} ({how})")
        time.sleep(0.5)
        d = diff(before, kea_stats(kea))
        say("   What Kea saw meanwhile:")
        evidence(fmt_stats(d))
        leaked = [f for f in scap.dhcp(lambda f: f.dhcp.op == 1 and f.ts >= mark)]
        check(step, d["pkt4-received"] == 0 and not leaked,
              "Kea received nothing: cdra answered every renewal and reboot itself"
              if not leaked else "Kea received requests that cdra should have answered:\n"
              + L.describe_frames(leaked))
        m = relay.metrics()
        say("   cdra's counters (GET /metrics, excerpt):")
        evidence("\n".join(f"{k} {v:.0f}" for k, v in m.items()
                           if "local_" in k or k.startswith("cdra_answered")))
        say("   `cdra cache list`:")
        evidence(relay.cache("list"))

        # ------------------------------------------------------------------ 3
        step = "3 Kea down: known clients served, new client not"
        header(3, "Kea is stopped: the known clients keep their addresses")
        kea_total = kea_stats(kea)
        kea.stop()
        say("   Kea stopped.")
        mark = time.time()
        for kind, (cl, ccap, ip) in clients.items():
            n = cl.restart()
            try:
                ev = cl.wait_bound(timeout=15, after=n)
                check(step, ev.get("ip") == ip,
                      f"{kind} rebooted and got {ev.get('ip')} back from cdra")
            except L.LabError as e:
                check(step, False, f"{kind} got nothing on reboot: {e}")
        ncns = lab.add_client()
        ncap = lab.capture(ncns.ns, ncns.iface, f"client{ncns.index}")
        new = lab.start_client("dhclient", ncns)
        say(f"   A brand-new client (dhclient, MAC {ncns.mac}) starts; waiting "
            f"{NEW_CLIENT_WAIT} s...")
        time.sleep(NEW_CLIENT_WAIT)
        got = L.to_client(ncap, ncns.mac)
        fwd = L.from_client(scap, ncns.mac)
        check(step, not got and not [e for e in new.events() if e["kind"] == "bound"],
              f"the new client got no answer: cdra knows nothing about it and passed its "
              f"{len(fwd)} DISCOVERs on to Kea, which is down")
        for kind, (cl, ccap, ip) in clients.items():
            check(step, ip in cl.cns.ipv4_addrs(), f"{kind} still has {ip}")

        # ------------------------------------------------------------------ 4
        step = "4 squatter gets nothing, owner gets a NAK"
        header(4, "A squatter takes a cached address: its owner gets a DHCPNAK")
        cl, ccap, ip = clients["dhclient"]
        cl.proc.stop()
        cl.cns.flush_addrs()
        squat = lab.add_client()
        squat.add_addr(ip)
        say(f"   dhclient ({cl.cns.mac}) is off; another host ({squat.mac}) configures {ip} "
            "by hand.")
        say("   dhclient starts again and asks for its old address (INIT-REBOOT); before a")
        say("   local ACK cdra probes the address (ARP) and finds the squatter...")
        mark = time.time()
        n4 = len(cl.events())
        cl.start()
        try:
            naks = ccap.wait_for(lambda f: f.dhcp.msg_type == dp.NAK and f.ts >= mark
                                 and f.dport == 68, 8, "a DHCPNAK")
            nak = naks[0]
            msg = nak.dhcp.options.get(56, b"").decode(errors="replace")
            check(step, nak.src_ip == L.RELAY_DOWN_IP,
                  f"dhclient got a DHCPNAK from {nak.src_ip} (option 54 "
                  f"{nak.dhcp.server_id}): \"{msg}\"")
        except L.LabError as e:
            check(step, False, f"no DHCPNAK: {e}")
        time.sleep(2)
        acks = [f for f in L.to_client(ccap, cl.cns.mac, since=mark)
                if f.dhcp.msg_type == dp.ACK and f.dhcp.yiaddr == ip]
        check(step, not acks, f"and no DHCPACK for {ip}")
        listed = relay.cache("list")
        check(step, f" {ip} " not in listed, f"cdra removed {ip} from its table:")
        evidence(listed)
        squat.flush_addrs()
        say(f"   The squatter gives {ip} up again.")

        # ------------------------------------------------------------------ 5
        step = "5 Kea back: the new client gets a lease"
        header(5, "Kea is back")
        kea.restart()
        say("   Kea started again (same lease file).")
        try:
            ev = new.wait_bound(timeout=20)
            check(step, True, f"the new client got {ev['ip']} (relayed by cdra)")
        except L.LabError as e:
            check(step, False, f"the new client still has no lease: {e}")
        try:
            ev = cl.wait_event({"bound"}, after=n4, timeout=20)
            check(step, True, f"dhclient got {ev['ip']} from Kea again")
        except L.LabError as e:
            check(step, False, f"dhclient still has no lease: {e}")

        # ------------------------------------------------------------------ summary
        header("", "Summary: what the server received vs what cdra answered")
        time.sleep(0.3)
        after = kea_stats(kea)
        for k, v in after.items():
            kea_total[k] = kea_total.get(k, 0) + v
        m = relay.metrics()

        def mv(key: str) -> int:
            return int(m.get(key, 0))

        rx = {t: mv(f'cdra_received_total{{interface="rd0",type="{t}"}}')
              for t in ("discover", "request", "release", "decline", "inform")}
        ev = {e: mv(f'cdra_proxy_events_total{{event="{e}"}}')
              for e in ("local_offer", "local_ack", "local_nak", "forwarded", "probe_started",
                        "probe_found_in_use")}
        def n_of(n: int, what: str) -> str:
            return f"{n} {what}" + ("" if n == 1 else "s")

        rows = [
            ("DISCOVER", rx["discover"], kea_total["pkt4-discover-received"],
             n_of(ev["local_offer"], "OFFER")),
            ("REQUEST", rx["request"], kea_total["pkt4-request-received"],
             f"{n_of(ev['local_ack'], 'ACK')}, {n_of(ev['local_nak'], 'NAK')}"),
            ("RELEASE", rx["release"], kea_total["pkt4-release-received"], "-"),
        ]
        say(f"   {'message':<10} {'clients sent':>13} {'Kea received':>13}   answered by cdra itself")
        for name, sent, kea_rx, local in rows:
            say(f"   {name:<10} {sent:>13} {kea_rx:>13}   {local}")
        say(f"   {'all':<10} {sum(rx.values()):>13} {kea_total['pkt4-received']:>13}   "
            f"{mv('cdra_answered_without_server_total')} answers that never reached Kea")
        forwarded = mv(f'cdra_server_requests_total{{server="{L.SERVER_IP}"}}')
        say(f"   cdra forwarded {forwarded} requests to Kea (some while it was down); "
            f"{ev['probe_started']} probes, {ev['probe_found_in_use']} found the address in use.")
        say("   (Kea's numbers are its statistic-get counters, summed over both runs of Kea;")
        say("    cdra's are from GET /metrics.)")

        # ------------------------------------------------------------------ 6
        pool_step(lab, kea)
        return 0
    except StepFailed as e:
        check("aborted", False, str(e))
        return 1
    except L.LabError as e:
        check("aborted", False, f"the demo could not go on: {e}")
        return 1
    finally:
        fails = [r for r in RESULTS if not r[1]]
        say()
        if fails:
            say(f"=== {len(fails)} check(s) did not behave as narrated:")
            for stepname, _, what in fails:
                say(f"   step {stepname}: {what.splitlines()[0]}")
        keep = os.environ.get("CDRA_DEMO_KEEP") == "1"
        problems = lab.cleanup()
        if keep:
            say(f"=== logs, configs and pcaps kept in {lab.dir}")
        else:
            lab.remove_dir()
        for p in problems:
            say(f"cleanup: {p}")
        say(f"=== cleaned up (namespaces and processes removed); "
            f"{time.monotonic() - T0:.0f}s in all")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _deadline(signum, frame):
    raise L.LabError(f"the demo took longer than {DEADLINE}s")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    signal.signal(signal.SIGALRM, _deadline)
    signal.alarm(DEADLINE)
    try:
        rc = main()
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything it created has been removed", flush=True)
        rc = 130
    fails = [r for r in RESULTS if not r[1]]
    sys.exit(rc or (1 if fails else 0))
