#!/usr/bin/env python3
"""Capture real DHCPACKs (and BOOTREPLYs) from Kea, ISC dhcpd and dnsmasq, for the core's
differential test of the shared reply store (crates/core/tests/shared_replies.rs, paper 5.7).

    sudo python3 tests/e2e/capture_acks.py crates/core/tests/data

Builds one lab (lab.py: network namespaces, veth pairs; nothing on the host's own
interfaces), runs each server in turn in the lab's server namespace with a subnet carrying
the usual options and a few host reservations with options of their own (host name, DNS,
domain, boot file, by MAC and by client identifier), and plays a relay from the lab's relay
namespace: relayed DISCOVER / REQUEST (SELECTING), then a RENEW-style REQUEST (ciaddr set)
and an INIT-REBOOT REQUEST, from clients with and without option 61, 12 and 81 and with
different option 55 lists; plain BOOTP requests where the server serves BOOTP. Each reply
is written as one hex line to DIR/acks-<server>.hex ("# " lines are comments). The lab is
removed at the end, also on failure.
"""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dhcp_packets as dp  # noqa: E402
import lab as L  # noqa: E402

# Reserved hosts: 02:77:00:00:01:01 (10.77.1.10, host name, DNS and domain of its own),
# 02:77:00:00:01:02 (10.77.1.11, boot file and next server), and this client identifier:
CLIENT_ID_HOST = (b"\x00cdra-reserved", "10.77.1.12")
PRLS = [
    bytes([1, 3, 6, 15, 51, 54]),
    bytes([1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]),
    bytes([1, 3, 6, 12, 15, 28, 42, 66, 67, 119, 121]),
]


def kea_config(srv: L.Server) -> dict:
    hook_dir = next(iter(sorted(Path("/usr/lib").glob("*/kea/hooks"))), Path("/usr/lib/kea/hooks"))
    reservations = [{"hw-address": "02:77:00:00:01:01",
                     "ip-address": "10.77.1.10", "hostname": "printer-one",
                     "option-data": [{"name": "domain-name-servers", "data": "192.0.2.53"},
                                     {"name": "domain-name", "data": "printers.example"}]},
                    {"hw-address": "02:77:00:00:01:02", "ip-address": "10.77.1.11",
                     "next-server": "10.77.0.1", "boot-file-name": "pxelinux.0"},
                    {"client-id": CLIENT_ID_HOST[0].hex(), "ip-address": CLIENT_ID_HOST[1],
                     "hostname": "by-client-id"}]
    return {"Dhcp4": {
        "interfaces-config": {"interfaces": [srv.iface], "dhcp-socket-type": "udp"},
        "lease-database": {"type": "memfile", "persist": False},
        "authoritative": True, "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 3150,
        "hooks-libraries": [{"library": str(hook_dir / "libdhcp_bootp.so")}],
        "host-reservation-identifiers": ["hw-address", "client-id"],
        "subnet4": [{
            "id": 1, "subnet": L.CLIENT_NET,
            "pools": [{"pool": f"{L.POOL_START} - {L.POOL_END}"}],
            "option-data": [{"name": "routers", "data": L.ROUTER},
                            {"name": "domain-name-servers", "data": "10.77.0.53, 10.77.0.54"},
                            {"name": "domain-name", "data": "campus.example"},
                            {"name": "domain-search", "data": "campus.example, example"},
                            {"name": "ntp-servers", "data": "10.77.0.123"},
                            {"name": "broadcast-address", "data": "10.77.1.255"}],
            "reservations": reservations,
        }],
        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}],
                     "severity": "INFO"}],
    }}


def start_kea(lab: L.Lab) -> L.Server:
    srv = L.Kea(lab)
    conf = srv.dir / "kea-dhcp4.conf"
    conf.write_text(json.dumps(kea_config(srv), indent=2))
    env = {"KEA_PIDFILE_DIR": str(srv.dir), "KEA_LOCKFILE_DIR": str(srv.dir)}
    srv.proc = lab.spawn("kea", L.nsexec(srv.ns) + [L.sbin("kea-dhcp4"), "-c", str(conf)], env=env)
    srv._wait_ready()
    return srv


def start_dhcpd(lab: L.Lab) -> L.Server:
    srv = L.Dhcpd(lab)
    lease = srv.dir / "dhcpd.leases"
    lease.touch()
    conf = srv.dir / "dhcpd.conf"
    cid = "".join(f"\\{b:03o}" for b in CLIENT_ID_HOST[0])
    conf.write_text(textwrap.dedent(f"""\
        authoritative;
        ping-check false;
        ddns-update-style none;
        default-lease-time 3600;
        max-lease-time 7200;
        option domain-search code 119 = domain-list;
        subnet 10.77.0.0 netmask 255.255.255.0 {{ }}
        subnet 10.77.1.0 netmask 255.255.255.0 {{
          range dynamic-bootp {L.POOL_START} {L.POOL_END};
          option routers {L.ROUTER};
          option subnet-mask 255.255.255.0;
          option domain-name-servers 10.77.0.53, 10.77.0.54;
          option domain-name "campus.example";
          option domain-search "campus.example", "example";
          option ntp-servers 10.77.0.123;
          option broadcast-address 10.77.1.255;
        }}
        host printer {{ hardware ethernet 02:77:00:00:01:01; fixed-address 10.77.1.10;
          option host-name "printer-one"; option domain-name-servers 192.0.2.53;
          option domain-name "printers.example"; }}
        host pxe {{ hardware ethernet 02:77:00:00:01:02; fixed-address 10.77.1.11;
          next-server 10.77.0.1; filename "pxelinux.0"; }}
        host byid {{ option dhcp-client-identifier "{cid}"; fixed-address {CLIENT_ID_HOST[1]};
          option host-name "by-client-id"; }}
        """))
    srv.proc = lab.spawn("dhcpd", L.nsexec(srv.ns) + [
        L.sbin("dhcpd"), "-4", "-f", "-d", "-cf", str(conf), "-lf", str(lease),
        "-pf", str(srv.dir / "dhcpd.pid"), srv.iface])
    srv._wait_ready()
    return srv


def start_dnsmasq(lab: L.Lab) -> L.Server:
    srv = L.Dnsmasq(lab)
    conf = srv.dir / "dnsmasq.conf"
    cid = ":".join(f"{b:02x}" for b in CLIENT_ID_HOST[0])
    conf.write_text("\n".join([
        "port=0", f"interface={srv.iface}", "no-resolv", "no-hosts",
        f"dhcp-range={L.POOL_START},{L.POOL_END},255.255.255.0,3600s",
        f"dhcp-option=option:router,{L.ROUTER}",
        "dhcp-option=option:dns-server,10.77.0.53,10.77.0.54",
        "dhcp-option=option:domain-name,campus.example",
        "dhcp-option=option:domain-search,campus.example,example",
        "dhcp-option=option:ntp-server,10.77.0.123",
        "dhcp-authoritative", "no-ping", "bootp-dynamic",
        f"dhcp-leasefile={srv.dir / 'dnsmasq.leases'}", f"pid-file={srv.dir / 'dnsmasq.pid'}",
        "log-dhcp", "log-facility=-", "user=root", "group=root",
        "dhcp-host=02:77:00:00:01:01,10.77.1.10,printer-one,set:printer",
        "dhcp-option=tag:printer,option:dns-server,192.0.2.53",
        "dhcp-option=tag:printer,option:domain-name,printers.example",
        "dhcp-host=02:77:00:00:01:02,10.77.1.11,set:pxe",
        "dhcp-boot=tag:pxe,pxelinux.0,,10.77.0.1",
        f"dhcp-host=id:{cid},{CLIENT_ID_HOST[1]},by-client-id",
    ]) + "\n")
    srv.proc = lab.spawn("dnsmasq", L.nsexec(srv.ns) + [
        L.sbin("dnsmasq"), f"--conf-file={conf}", "--keep-in-foreground"])
    srv._wait_ready()
    return srv


def exchange(sock: socket.socket, msg: bytes, xid: int, timeout: float = 2.0) -> bytes | None:
    """Send a relayed request to the server, return its reply with this xid."""
    sock.sendto(msg, (L.SERVER_IP, 67))
    end = time.time() + timeout
    while time.time() < end:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            data, _ = sock.recvfrom(4096)
        except socket.timeout:
            return None
        if len(data) >= 240 and data[0] == 2 and int.from_bytes(data[4:8], "big") == xid:
            return data
    return None


def clients() -> list[dict]:
    """(mac, client id, extra options, option 55) of each client to play."""
    out = []
    for i in range(12):
        mac = f"02:77:10:00:00:{i + 1:02x}"
        cid = (b"\x01" + dp.mac2b(mac)) if i % 3 == 1 else (
            b"\xff\x00\x00\x00\x01\x00\x01" + bytes([i]) * 10 if i % 3 == 2 else None)
        extra: list[tuple[int, bytes]] = []
        if i % 4 == 1:
            extra.append((12, f"laptop-{i}".encode()))
        if i % 4 == 3:
            extra.append((81, b"\x01\x00\x00" + f"desk-{i}.campus.example".encode()))
        out.append({"mac": mac, "cid": cid, "extra": extra, "prl": PRLS[i % len(PRLS)]})
    out.append({"mac": "02:77:00:00:01:01", "cid": None, "extra": [(12, b"printer")], "prl": PRLS[1]})
    out.append({"mac": "02:77:00:00:01:02", "cid": None, "extra": [], "prl": PRLS[2] + bytes([66, 67])})
    out.append({"mac": "02:77:00:00:01:03", "cid": CLIENT_ID_HOST[0], "extra": [], "prl": PRLS[0]})
    return out


def request(kind: int, c: dict, xid: int, **kw) -> bytes:
    opts = [(dp.OPT_MSG_TYPE, bytes([kind]))]
    if c["cid"] is not None:
        opts.append((dp.OPT_CLIENT_ID, c["cid"]))
    if kw.get("requested"):
        opts.append((dp.OPT_REQUESTED_IP, dp.ip2b(kw["requested"])))
    if kw.get("server_id"):
        opts.append((dp.OPT_SERVER_ID, dp.ip2b(kw["server_id"])))
    opts.append((dp.OPT_PRL, c["prl"]))
    opts += c["extra"]
    return dp.build_dhcp(op=1, hops=1, xid=xid, flags=kw.get("flags", 0), ciaddr=kw.get("ciaddr", "0.0.0.0"),
                         giaddr=L.RELAY_DOWN_IP, chaddr=c["mac"], options=opts)


def capture(sock: socket.socket, server: str, bootp: bool) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    xid = 0x5a000000 + (hash(server) & 0xffff) * 256
    for n, c in enumerate(clients()):
        xid += 16
        offer = exchange(sock, request(1, c, xid, flags=0x8000 if n % 2 else 0), xid)
        if offer is None:
            print(f"{server}: no OFFER for {c['mac']}", file=sys.stderr)
            continue
        addr = dp.b2ip(offer[16:20])
        sid = dp.parse_dhcp(offer).server_id
        ack = exchange(sock, request(3, c, xid + 1, requested=addr, server_id=sid), xid + 1)
        if ack is None:
            print(f"{server}: no ACK for {c['mac']}", file=sys.stderr)
            continue
        got.append((f"{c['mac']} SELECTING", ack))
        time.sleep(1.1)  # a second of lease gone: servers that give the time left differ
        renew = exchange(sock, request(3, c, xid + 2, ciaddr=addr), xid + 2)
        if renew is not None:
            got.append((f"{c['mac']} RENEWING", renew))
        reboot = exchange(sock, request(3, c, xid + 3, requested=addr), xid + 3)
        if reboot is not None:
            got.append((f"{c['mac']} INIT-REBOOT", reboot))
    if bootp:
        for i in range(3):
            mac = f"02:77:20:00:00:{i + 1:02x}"
            x = xid + 100 + i
            req = dp.build_dhcp(op=1, hops=1, xid=x, giaddr=L.RELAY_DOWN_IP, chaddr=mac,
                                cookie=dp.MAGIC_COOKIE, raw_options=b"\xff", pad_to=dp.BOOTP_MIN)
            reply = exchange(sock, req, x)
            if reply is not None:
                got.append((f"{mac} BOOTP", reply))
            else:
                print(f"{server}: no BOOTREPLY for {mac}", file=sys.stderr)
    return got


def main() -> int:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "crates/core/tests/data")
    out_dir.mkdir(parents=True, exist_ok=True)
    lab = L.Lab("capture-acks").setup()
    try:
        for name, start, bootp in (("kea", start_kea, True), ("dhcpd", start_dhcpd, True),
                                   ("dnsmasq", start_dnsmasq, True)):
            srv = start(lab)
            with L.in_netns(lab.rly):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("0.0.0.0", 67))
            try:
                got = capture(sock, name, bootp)
            finally:
                sock.close()
                srv.proc.stop()
            path = out_dir / f"acks-{name}.hex"
            lines = [f"# {len(got)} replies from {name}, relayed through giaddr {L.RELAY_DOWN_IP}, "
                     f"captured by tests/e2e/capture_acks.py"]
            for what, data in got:
                lines.append(f"# {what}")
                lines.append(data.hex())
            path.write_text("\n".join(lines) + "\n")
            print(f"{path}: {len(got)} replies")
    finally:
        problems = lab.cleanup()
        lab.remove_dir()
        for p in problems:
            print(f"cleanup: {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
