"""DHCPv4 packets, Ethernet/IPv4/UDP frames and pcap files, with the standard library only.

Used by the end-to-end lab to craft client packets (valid and hostile), to send them from
a raw AF_PACKET socket, and to read what tcpdump captured (`tcpdump -w`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import random
import socket
import struct
from typing import Iterable, Iterator

MAGIC_COOKIE = b"\x63\x82\x53\x63"
BOOTP_FIXED = 236  # op..file, before the cookie
BOOTP_MIN = 300    # RFC 951: the fixed fields and the 64-byte vend field (RFC 1542 2.1)

# Message types (option 53)
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MSG_NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
             7: "RELEASE", 8: "INFORM"}

OPT_PAD, OPT_END = 0, 255
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MSG_TYPE = 53
OPT_SERVER_ID = 54
OPT_PRL = 55
OPT_CLIENT_ID = 61
OPT_RELAY_AGENT = 82

BROADCAST_FLAG = 0x8000


def ip2b(ip: str) -> bytes:
    return socket.inet_aton(ip)


def b2ip(b: bytes) -> str:
    return socket.inet_ntoa(b)


def mac2b(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def b2mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def random_mac(rng: random.Random | None = None) -> str:
    r = rng or random
    return "02:" + ":".join(f"{r.randrange(256):02x}" for _ in range(5))


# --------------------------------------------------------------------------- DHCP messages

def encode_options(options: Iterable[tuple[int, bytes]], end: bool = True) -> bytes:
    out = bytearray()
    for code, value in options:
        if code in (OPT_PAD, OPT_END):
            out.append(code)
            continue
        out += bytes([code, len(value)]) + value
    if end:
        out.append(OPT_END)
    return bytes(out)


def agent_option(circuit_id: bytes | None = None, remote_id: bytes | None = None) -> bytes:
    sub = b""
    if circuit_id is not None:
        sub += bytes([1, len(circuit_id)]) + circuit_id
    if remote_id is not None:
        sub += bytes([2, len(remote_id)]) + remote_id
    return sub


def build_dhcp(*, op: int = 1, htype: int = 1, hlen: int = 6, hops: int = 0, xid: int = 0,
               secs: int = 0, flags: int = 0, ciaddr: str = "0.0.0.0",
               yiaddr: str = "0.0.0.0", siaddr: str = "0.0.0.0", giaddr: str = "0.0.0.0",
               chaddr: str | bytes = "00:00:00:00:00:00", sname: bytes = b"",
               file: bytes = b"", options: Iterable[tuple[int, bytes]] = (),
               raw_options: bytes | None = None, cookie: bytes = MAGIC_COOKIE,
               pad_to: int = 300) -> bytes:
    """A BOOTP/DHCP message. `raw_options` (bytes after the cookie) overrides `options`."""
    ch = chaddr if isinstance(chaddr, bytes) else mac2b(chaddr)
    hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", op, htype, hlen & 0xFF, hops & 0xFF,
                      xid & 0xFFFFFFFF, secs, flags, ip2b(ciaddr), ip2b(yiaddr), ip2b(siaddr),
                      ip2b(giaddr), ch.ljust(16, b"\0")[:16], sname.ljust(64, b"\0")[:64],
                      file.ljust(128, b"\0")[:128])
    body = raw_options if raw_options is not None else encode_options(options)
    msg = hdr + cookie + body
    if len(msg) < pad_to:
        msg += b"\0" * (pad_to - len(msg))
    return msg


def client_message(msg_type: int, *, xid: int, mac: str, hops: int = 0, flags: int = 0,
                   ciaddr: str = "0.0.0.0", giaddr: str = "0.0.0.0",
                   requested_ip: str | None = None, server_id: str | None = None,
                   client_id: bytes | None = None, extra: Iterable[tuple[int, bytes]] = (),
                   op: int = 1) -> bytes:
    opts: list[tuple[int, bytes]] = [(OPT_MSG_TYPE, bytes([msg_type]))]
    if client_id is not None:
        opts.append((OPT_CLIENT_ID, client_id))
    if requested_ip:
        opts.append((OPT_REQUESTED_IP, ip2b(requested_ip)))
    if server_id:
        opts.append((OPT_SERVER_ID, ip2b(server_id)))
    opts.append((OPT_PRL, bytes([OPT_SUBNET_MASK, OPT_ROUTER, 6, 15, OPT_LEASE_TIME,
                                 OPT_SERVER_ID])))
    opts.extend(extra)
    return build_dhcp(op=op, hops=hops, xid=xid, flags=flags, ciaddr=ciaddr, giaddr=giaddr,
                      chaddr=mac, options=opts)


def plain_bootp_request(*, xid: int, mac: str, flags: int = 0, secs: int = 0) -> bytes:
    """A classic RFC 951 BOOTREQUEST: no magic cookie, the 64-byte vend field all zero."""
    return build_dhcp(xid=xid, chaddr=mac, flags=flags, secs=secs, cookie=b"\0" * 4,
                      raw_options=b"", pad_to=BOOTP_MIN)


@dataclasses.dataclass
class Dhcp:
    op: int
    htype: int
    hlen: int
    hops: int
    xid: int
    secs: int
    flags: int
    ciaddr: str
    yiaddr: str
    siaddr: str
    giaddr: str
    chaddr: str
    options: dict[int, bytes]
    option_order: list[int]
    cookie: bool = True  # False: plain RFC 951 BOOTP, vend field opaque, no options

    @property
    def msg_type(self) -> int | None:
        v = self.options.get(OPT_MSG_TYPE)
        return v[0] if v else None

    @property
    def msg_name(self) -> str:
        t = self.msg_type
        if not self.cookie:
            return "BOOTP(no cookie)"
        return MSG_NAMES.get(t, f"BOOTP" if t is None else f"type{t}")

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & BROADCAST_FLAG)

    def ip_option(self, code: int) -> str | None:
        v = self.options.get(code)
        return b2ip(v[:4]) if v and len(v) >= 4 else None

    @property
    def server_id(self) -> str | None:
        return self.ip_option(OPT_SERVER_ID)

    @property
    def requested_ip(self) -> str | None:
        return self.ip_option(OPT_REQUESTED_IP)

    def agent_suboptions(self) -> dict[int, bytes] | None:
        v = self.options.get(OPT_RELAY_AGENT)
        if v is None:
            return None
        subs: dict[int, bytes] = {}
        i = 0
        while i + 2 <= len(v):
            code, ln = v[i], v[i + 1]
            subs[code] = v[i + 2:i + 2 + ln]
            i += 2 + ln
        return subs


def _parse_option_area(data: bytes, out: dict[int, bytes], order: list[int]) -> None:
    i = 0
    while i < len(data):
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return
        if i + 1 >= len(data):
            raise ValueError("option length missing")
        ln = data[i + 1]
        val = data[i + 2:i + 2 + ln]
        if len(val) != ln:
            raise ValueError("option overruns the packet")
        if code in out:  # RFC 3396 concatenation
            out[code] += val
        else:
            out[code] = val
            order.append(code)
        i += 2 + ln


def parse_dhcp(data: bytes) -> Dhcp:
    if len(data) < BOOTP_FIXED + 4:
        raise ValueError(f"too short: {len(data)}")
    (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, ch) = struct.unpack(
        "!BBBBIHH4s4s4s4s16s", data[:44])
    options: dict[int, bytes] = {}
    order: list[int] = []
    chaddr = b2mac(ch[:min(hlen, 16)] if 0 < hlen <= 16 else ch[:6])
    if data[BOOTP_FIXED:BOOTP_FIXED + 4] != MAGIC_COOKIE:
        # A plain RFC 951 BOOTP message has no cookie and no options (as cdra-wire reads it),
        # but all 300 bytes; shorter, it is neither BOOTP nor DHCP.
        if len(data) < BOOTP_MIN:
            raise ValueError("no magic cookie")
        return Dhcp(op, htype, hlen, hops, xid, secs, flags, b2ip(ci), b2ip(yi), b2ip(si),
                    b2ip(gi), chaddr, options, order, cookie=False)
    _parse_option_area(data[BOOTP_FIXED + 4:], options, order)
    ov = options.get(OPT_OVERLOAD)
    if ov:
        if ov[0] & 1:
            _parse_option_area(data[108:236], options, order)
        if ov[0] & 2:
            _parse_option_area(data[44:108], options, order)
    return Dhcp(op, htype, hlen, hops, xid, secs, flags, b2ip(ci), b2ip(yi), b2ip(si), b2ip(gi),
                chaddr, options, order)


# --------------------------------------------------------------------------- frames

def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_ip_frame(payload: bytes, *, src_mac: str, dst_mac: str = "ff:ff:ff:ff:ff:ff",
                 src_ip: str = "0.0.0.0", dst_ip: str = "255.255.255.255",
                 sport: int = 68, dport: int = 67, ttl: int = 64) -> bytes:
    """Ethernet + IPv4 + UDP (with checksums) around `payload`."""
    udp_len = 8 + len(payload)
    pseudo = ip2b(src_ip) + ip2b(dst_ip) + struct.pack("!BBH", 0, 17, udp_len)
    udp_nock = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    ck = _csum(pseudo + udp_nock) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_len, ck) + payload
    ip_nock = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), random.randrange(65536),
                          0, ttl, 17, 0, ip2b(src_ip), ip2b(dst_ip))
    iph = ip_nock[:10] + struct.pack("!H", _csum(ip_nock)) + ip_nock[12:]
    return mac2b(dst_mac) + mac2b(src_mac) + b"\x08\x00" + iph + udp


@dataclasses.dataclass
class Frame:
    ts: float
    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    sport: int
    dport: int
    payload: bytes
    dhcp: Dhcp | None
    error: str | None = None

    def describe(self) -> str:
        d = self.dhcp
        what = (f"{d.msg_name} xid={d.xid:#010x} hops={d.hops} flags={d.flags:#06x} "
                f"ci={d.ciaddr} yi={d.yiaddr} gi={d.giaddr} ch={d.chaddr}"
                + (f" opt82={d.agent_suboptions()}" if d.agent_suboptions() is not None else "")
                if d else f"undecodable ({self.error}) len={len(self.payload)}")
        return (f"{self.ts:.6f} {self.src_mac}>{self.dst_mac} {self.src_ip}:{self.sport} > "
                f"{self.dst_ip}:{self.dport} {what}")


def parse_frame(ts: float, data: bytes, linktype: int = 1) -> Frame | None:
    """An IPv4/UDP frame (Ethernet or Linux cooked), or None for anything else."""
    if linktype == 1:
        if len(data) < 14:
            return None
        dst, src, et = data[:6], data[6:12], struct.unpack("!H", data[12:14])[0]
        off = 14
        if et == 0x8100 and len(data) >= 18:
            et = struct.unpack("!H", data[16:18])[0]
            off = 18
    elif linktype == 113:  # LINUX_SLL
        if len(data) < 16:
            return None
        src = data[6:12]
        dst = b"\0" * 6
        et = struct.unpack("!H", data[14:16])[0]
        off = 16
    else:
        return None
    if et != 0x0800 or len(data) < off + 20:
        return None
    vihl = data[off]
    ihl = (vihl & 0xF) * 4
    if vihl >> 4 != 4 or data[off + 9] != 17:
        return None
    total = struct.unpack("!H", data[off + 2:off + 4])[0]
    sip, dip = b2ip(data[off + 12:off + 16]), b2ip(data[off + 16:off + 20])
    u = off + ihl
    if len(data) < u + 8:
        return None
    sport, dport, ulen = struct.unpack("!HHH", data[u:u + 6])
    end = min(len(data), off + total, u + ulen) if ulen >= 8 else len(data)
    payload = data[u + 8:end]
    dhcp = None
    err = None
    if {sport, dport} & {67, 68}:
        try:
            dhcp = parse_dhcp(payload)
        except (ValueError, struct.error) as e:
            err = str(e)
    return Frame(ts, b2mac(src), b2mac(dst), sip, dip, sport, dport, payload, dhcp, err)


def read_pcap(path: str) -> list[Frame]:
    """Frames of a classic pcap file (what `tcpdump -w` writes). Tolerates a cut-off tail."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError(f"{path}: not a pcap file (pcapng?)")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    frames: list[Frame] = []
    i = 24
    while i + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", data[i:i + 16])
        i += 16
        if i + incl > len(data):
            break
        fr = parse_frame(sec + frac / (1e9 if nano else 1e6), data[i:i + incl], linktype)
        i += incl
        if fr is not None:
            frames.append(fr)
    return frames


def read_pcap_probes(path: str) -> list[tuple[float, str, str, str, str]]:
    """ARP requests and ICMP echo requests in a classic pcap file (Ethernet link type), as
    (time, kind, source MAC, sender IP, target IP): kind "arp" (sender IP 0.0.0.0 for an
    RFC 5227 probe) or "echo". Tolerates a cut-off tail."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    out = []
    i = 24
    while i + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", data[i:i + 16])
        i += 16
        fr = data[i:i + incl]
        i += incl
        if len(fr) < 14:
            continue
        ts = sec + frac / (1e9 if nano else 1e6)
        et = struct.unpack("!H", fr[12:14])[0]
        if et == 0x0806 and len(fr) >= 42 and struct.unpack("!H", fr[20:22])[0] == 1:
            out.append((ts, "arp", b2mac(fr[6:12]), b2ip(fr[28:32]), b2ip(fr[38:42])))
        elif et == 0x0800 and len(fr) >= 34 and fr[23] == 1:
            ihl = (fr[14] & 0xF) * 4
            if len(fr) > 14 + ihl and fr[14 + ihl] == 8:
                out.append((ts, "echo", b2mac(fr[6:12]), b2ip(fr[26:30]), b2ip(fr[30:34])))
    return out


# --------------------------------------------------------------------------- hostile input

def hostile_payloads(rng: random.Random, *, relay_ip: str = "10.77.1.1",
                     valid_macs: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """An endless mix of malformed DHCP payloads (and some valid DISCOVERs), with a label."""
    valid_macs = valid_macs or [random_mac(rng) for _ in range(8)]

    def disc(**kw) -> bytes:
        base = dict(xid=rng.getrandbits(32), mac=random_mac(rng))
        base.update(kw)
        return client_message(DISCOVER, **base)

    kinds = [
        "truncated", "no_cookie", "hlen255", "option_overrun", "overload_garbage",
        "giaddr_self", "op2_from_client", "opt82_untrusted", "random", "valid",
        "empty", "huge_hops", "htype_garbage", "option_no_len", "sname_file_overrun",
    ]
    while True:
        k = rng.choice(kinds)
        if k == "truncated":
            p = disc()[:rng.randrange(0, 240)]
        elif k == "no_cookie":
            p = build_dhcp(xid=rng.getrandbits(32), chaddr=random_mac(rng),
                           cookie=os.urandom(4), options=[(OPT_MSG_TYPE, b"\x01")])
        elif k == "hlen255":
            p = build_dhcp(hlen=255, xid=rng.getrandbits(32), chaddr=random_mac(rng),
                           options=[(OPT_MSG_TYPE, b"\x01")])
        elif k == "option_overrun":
            p = build_dhcp(xid=rng.getrandbits(32), chaddr=random_mac(rng),
                           raw_options=bytes([OPT_MSG_TYPE, 1, 1, 12, 250]) + b"abc",
                           pad_to=0)
        elif k == "overload_garbage":
            p = build_dhcp(xid=rng.getrandbits(32), chaddr=random_mac(rng),
                           sname=os.urandom(64), file=os.urandom(128),
                           options=[(OPT_MSG_TYPE, b"\x01"), (OPT_OVERLOAD, b"\x03")])
        elif k == "giaddr_self":
            p = disc(giaddr=relay_ip, hops=1)
        elif k == "op2_from_client":
            p = disc(op=2)
        elif k == "opt82_untrusted":
            p = disc(extra=[(OPT_RELAY_AGENT, agent_option(b"evil", b"x" * 30))])
        elif k == "random":
            p = os.urandom(rng.randrange(1, 600))
        elif k == "valid":
            p = disc(mac=rng.choice(valid_macs))
        elif k == "empty":
            p = b""
        elif k == "huge_hops":
            p = disc(hops=255)
        elif k == "htype_garbage":
            p = build_dhcp(htype=rng.randrange(2, 256), hlen=rng.randrange(0, 17),
                           xid=rng.getrandbits(32), chaddr=os.urandom(16),
                           options=[(OPT_MSG_TYPE, b"\x01")])
        elif k == "option_no_len":
            p = build_dhcp(xid=rng.getrandbits(32), chaddr=random_mac(rng),
                           raw_options=bytes([OPT_MSG_TYPE, 1, 1, OPT_RELAY_AGENT]), pad_to=0)
        else:  # sname_file_overrun: overload set, sname holds an option that overruns
            p = build_dhcp(xid=rng.getrandbits(32), chaddr=random_mac(rng),
                           sname=bytes([OPT_CLIENT_ID, 200]) + b"z" * 62,
                           file=bytes([OPT_RELAY_AGENT, 255]) + b"q" * 126,
                           options=[(OPT_MSG_TYPE, b"\x01"), (OPT_OVERLOAD, b"\x03")])
        yield k, p


def ip_in(ip: str | None, lo: str, hi: str) -> bool:
    if not ip:
        return False
    a = ipaddress.IPv4Address(ip)
    return ipaddress.IPv4Address(lo) <= a <= ipaddress.IPv4Address(hi)


def mangle_frame(frame: bytes, rng: random.Random) -> tuple[str, bytes]:
    """IP/UDP-level damage to an Ethernet+IPv4+UDP frame (what a packet socket sees raw)."""
    f = bytearray(frame)
    ip = 14
    kind = rng.choice(["udp_len_long", "udp_len_short", "ip_len_short", "ip_len_long",
                       "fragment", "bad_ihl", "ip_options", "cut"])
    if kind == "udp_len_long":
        struct.pack_into("!H", f, ip + 20 + 4, 0xFFFF)
    elif kind == "udp_len_short":
        struct.pack_into("!H", f, ip + 20 + 4, rng.randrange(0, 8))
    elif kind == "ip_len_short":
        struct.pack_into("!H", f, ip + 2, rng.randrange(0, 28))
    elif kind == "ip_len_long":
        struct.pack_into("!H", f, ip + 2, 0xFFFF)
    elif kind == "fragment":
        struct.pack_into("!H", f, ip + 6, 0x2000 | rng.randrange(0, 16))  # MF + offset
    elif kind == "bad_ihl":
        f[ip] = 0x40 | rng.choice([0, 1, 4, 15])
    elif kind == "ip_options":
        # IHL 15 claims 40 bytes of options that are really UDP/DHCP bytes
        f[ip] = 0x4F
    else:
        del f[rng.randrange(14, min(len(f), 60)):]
    if kind not in ("bad_ihl", "ip_options", "cut"):
        # keep the IPv4 header checksum right so only the intended damage shows
        struct.pack_into("!H", f, ip + 10, 0)
        struct.pack_into("!H", f, ip + 10, _csum(bytes(f[ip:ip + 20])))
    return "ip_" + kind, bytes(f)
