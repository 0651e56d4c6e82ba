"""End-to-end lab for cdra: real DHCP servers and clients in network namespaces.

Topology (one set of namespaces per Lab, every name carries a unique per-run prefix):

    client ns  eth0 --veth-- pN  |                 |
    client ns  eth0 --veth-- pM  | segment ns br0  | up0 --veth-- rd0  relay ns  ru0 --veth-- sv0  server ns
                                                     10.77.1.1/24          10.77.0.2/24     10.77.0.1/24

The relay namespace forwards IP (client unicasts to the server are routed by its kernel);
the server namespace routes 10.77.1.0/24 via 10.77.0.2. IPv6 is off everywhere.
`Lab.add_second_server()` adds a second server namespace (sv1 10.77.3.1/24 -- ru1
10.77.3.2/24 on the relay), for a second DHCP server (pool 10.77.1.201-250).

Everything here is Python 3 standard library. Only processes this module started are
stopped, by PID; namespaces are deleted on cleanup (also on interrupt, via atexit and
the pytest fixtures), and a later run removes namespaces of a run whose owner died.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import dataclasses
import glob
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import dhcp_packets as dp

REPO_ROOT = Path(__file__).resolve().parents[2]

SERVER_IP = "10.77.0.1"
RELAY_UP_IP = "10.77.0.2"
RELAY_DOWN_IP = "10.77.1.1"
CLIENT_NET = "10.77.1.0/24"
POOL_START = "10.77.1.100"
POOL_END = "10.77.1.200"
ROUTER = RELAY_DOWN_IP

DOWN_IF = "rd0"
# A second client link (Lab.add_second_link): the relay's rd1 straight to one host.
DOWN2_IF = "rd1"
RELAY_DOWN2_IP = "10.77.2.1"
UP_IF = "ru0"
SERVER_IF = "sv0"
# A second server (Lab.add_second_server): its own namespace, wired to the relay's ru1.
SERVER2_IP = "10.77.3.1"
RELAY_UP2_IP = "10.77.3.2"
UP2_IF = "ru1"
SERVER2_IF = "sv1"
POOL2_START = "10.77.1.201"
POOL2_END = "10.77.1.250"
CLIENT_IF = "eth0"

STATE_DIR = Path("/run/cdra-e2e") if Path("/run").is_dir() else Path("/tmp/cdra-e2e")
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


class LabError(AssertionError):
    pass


def now() -> float:
    return time.monotonic()


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll `pred` until it returns something truthy; raise LabError after `timeout`."""
    deadline = now() + timeout
    while True:
        v = pred()
        if v:
            return v
        if now() >= deadline:
            raise LabError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def run(argv: list[str], *, timeout: float = 15, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"command timed out after {timeout}s: {' '.join(argv)}") from e
    if check and r.returncode != 0:
        raise LabError(f"command failed ({r.returncode}): {' '.join(argv)}\n{r.stdout}{r.stderr}")
    return r


def nsexec(ns: str) -> list[str]:
    return ["ip", "netns", "exec", ns]


def sbin(name: str) -> str:
    p = shutil.which(name)
    if p:
        return p
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    raise LabError(f"{name} not found: run scripts/e2e-deps")


@contextlib.contextmanager
def in_netns(ns: str):
    """Switch this thread into network namespace `ns` (sockets made inside stay there)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({ns}): {os.strerror(e)}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover
                os._exit(99)  # never keep running in the wrong namespace
    finally:
        os.close(own)
        os.close(target)


def _proc_starttime(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def udp_ports_in_ns_of(pid: int) -> set[int]:
    """Local UDP ports bound in the network namespace of process `pid`."""
    ports: set[int] = set()
    try:
        with open(f"/proc/{pid}/net/udp") as f:
            next(f)
            for line in f:
                ports.add(int(line.split()[1].split(":")[1], 16))
    except (OSError, StopIteration):
        pass
    return ports


# --------------------------------------------------------------------------- processes

class Proc:
    """A process this lab started; logs to a file; stopped by PID only."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict | None = None,
                 cwd: str | None = None, stdin_pipe: bool = False):
        """stdin_pipe: stdin is a pipe this lab holds open (close_stdin() ends it), for a
        tool that runs until it reads a key; otherwise /dev/null."""
        self.name = name
        self.argv = argv
        self.log = log
        self.returncode: int | None = None
        self._logf = open(log, "ab", buffering=0)
        self._logf.write(f"### {' '.join(argv)}\n".encode())
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_pipe else
                                      subprocess.DEVNULL, stdout=self._logf,
                                      stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self.started = now()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_children(self, sig: int) -> list[int]:
        """Signal the direct children of this process (by PID): the tool that a wrapper
        such as `timeout` runs, when the wrapper would not pass the signal on (SIGKILL)."""
        try:
            kids = [int(x) for x in Path(f"/proc/{self.pid}/task/{self.pid}/children")
                    .read_text().split()]
        except (OSError, ValueError):
            return []
        for k in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, sig)
        return kids

    def close_stdin(self) -> None:
        if self.popen.stdin:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()

    def send_signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Signal, wait, SIGKILL if needed. Returns the exit status (negative: signal)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            if self.wait(timeout) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.wait(5)
                self._logf.write(f"### {self.name}: killed after {timeout}s\n".encode())
        self.returncode = self.popen.returncode
        self.close_stdin()
        with contextlib.suppress(Exception):
            self._logf.close()
        return self.returncode

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, needle: str, timeout: float) -> None:
        def ok():
            if needle in self.text():
                return True
            if not self.alive():
                raise LabError(f"{self.name} exited ({self.popen.returncode}) before "
                               f"logging {needle!r}:\n{tail(self.text())}")
            return False
        wait_until(ok, timeout, what=f"{self.name} to log {needle!r}")


def tail(text: str, lines: int = 60) -> str:
    ls = text.splitlines()
    cut = len(ls) - lines
    return ("  ...(%d lines cut)\n" % cut if cut > 0 else "") + "\n".join(ls[-lines:])


# --------------------------------------------------------------------------- captures

class Capture:
    """tcpdump -w in a namespace; frames() parses the pcap (readable while running)."""

    def __init__(self, lab: "Lab", ns: str, iface: str, name: str,
                 bpf: str = "udp port 67 or udp port 68"):
        self.lab, self.ns, self.iface, self.name = lab, ns, iface, name
        self.pcap = lab.dir / f"{name}.pcap"
        self.proc = lab.spawn(f"tcpdump-{name}",
                              nsexec(ns) + [sbin("tcpdump"), "-i", iface, "-p", "-n", "-U", "--immediate-mode", "-s", "0",
                                            "-Z", "root", "-w", str(self.pcap), bpf])
        self.proc.wait_log("listening on", 10)
        lab.captures.append(self)

    def frames(self) -> list[dp.Frame]:
        if not self.pcap.exists():
            return []
        return dp.read_pcap(str(self.pcap))

    def dhcp(self, pred: Callable[[dp.Frame], bool] = lambda f: True) -> list[dp.Frame]:
        return [f for f in self.frames() if f.dhcp is not None and pred(f)]

    def wait_for(self, pred: Callable[[dp.Frame], bool], timeout: float = 5,
                 what: str = "a packet") -> list[dp.Frame]:
        def find():
            self.lab.fail_fast()
            return self.dhcp(pred)
        return wait_until(find, timeout, what=f"{what} in capture {self.name}")

    def stop(self) -> None:
        if self.proc.alive():
            time.sleep(0.05)
            self.proc.stop(signal.SIGINT, timeout=5)

    def summary(self, limit: int = 80) -> str:
        try:
            fr = self.frames()
        except Exception as e:  # noqa: BLE001
            return f"(unreadable: {e})"
        lines = [f.describe() for f in fr]
        cut = len(lines) - limit
        return "\n".join(lines[:limit]) + (f"\n  ...({cut} more)" if cut > 0 else "")


# --------------------------------------------------------------------------- the lab

class ClientNs:
    def __init__(self, lab: "Lab", ns: str, mac: str, index: int):
        self.lab, self.ns, self.mac, self.index = lab, ns, mac, index
        self.iface = CLIENT_IF

    def ipv4_addrs(self) -> list[str]:
        out = run(["ip", "-n", self.ns, "-4", "-o", "addr", "show", "dev", self.iface]).stdout
        return [ln.split()[3].split("/")[0] for ln in out.splitlines() if " inet " in ln]

    def flush_addrs(self) -> None:
        """Remove every IPv4 address from the interface (it stays up)."""
        run(["ip", "-n", self.ns, "-4", "addr", "flush", "dev", self.iface])

    def add_addr(self, ip: str, prefix: int = 24) -> None:
        run(["ip", "-n", self.ns, "addr", "add", f"{ip}/{prefix}", "dev", self.iface])

    def packet_socket(self, timeout: float = 0.2) -> socket.socket:
        with in_netns(self.ns):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
            s.bind((self.iface, 0))
        s.settimeout(timeout)
        return s


_LABS: list["Lab"] = []
_DIRS: list[Path] = []
_LABS_LOCK = threading.Lock()


class Lab:
    """One isolated topology with its own temp dir, processes and captures."""

    def __init__(self, name: str = "lab"):
        self.prefix = "c" + secrets.token_hex(3)[:5]
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"cdra-e2e-{self.prefix}-"))
        _DIRS.append(self.dir)
        self.srv = f"{self.prefix}-srv"
        self.rly = f"{self.prefix}-rly"
        self.seg = f"{self.prefix}-seg"
        self.srv2 = f"{self.prefix}-srv2"
        self.namespaces: list[str] = []
        self.clients: list[ClientNs] = []
        self.procs: list[Proc] = []
        self.captures: list[Capture] = []
        self.components: list[Any] = []  # servers, relays, clients: have .diagnostics()
        self.relay: Any = None
        self.server: Any = None
        self.cleaned = False
        with _LABS_LOCK:
            _LABS.append(self)

    # ---- setup / teardown

    def setup(self) -> "Lab":
        if os.geteuid() != 0:
            raise LabError("the e2e lab needs root (network namespaces)")
        sweep_stale()
        self.arp_fulls_at_start = arp_table_fulls()
        for ns in (self.srv, self.rly, self.seg):
            self._add_ns(ns)
        run(nsexec(self.rly) + ["sh", "-c", "echo 1 >/proc/sys/net/ipv4/ip_forward"])
        ip = ["ip"]
        run(ip + ["link", "add", UP_IF, "netns", self.rly, "type", "veth", "peer", "name",
                  SERVER_IF, "netns", self.srv])
        run(ip + ["link", "add", DOWN_IF, "netns", self.rly, "type", "veth", "peer", "name",
                  "up0", "netns", self.seg])
        batch = {
            self.seg: ["link add br0 type bridge stp_state 0 forward_delay 0",
                       "link set up0 master br0", "link set up0 up", "link set br0 up"],
            self.rly: [f"addr add {RELAY_DOWN_IP}/24 dev {DOWN_IF}",
                       f"addr add {RELAY_UP_IP}/24 dev {UP_IF}",
                       f"link set {DOWN_IF} up", f"link set {UP_IF} up"],
            self.srv: [f"addr add {SERVER_IP}/24 dev {SERVER_IF}", f"link set {SERVER_IF} up",
                       f"route add {CLIENT_NET} via {RELAY_UP_IP}"],
        }
        for ns, cmds in batch.items():
            run(["ip", "-n", ns, "-batch", "-"], input="\n".join(cmds) + "\n")
        for ns, dev in ((self.srv, SERVER_IF), (self.rly, UP_IF), (self.rly, DOWN_IF)):
            wait_link_up(ns, dev)
        self.relay_down_mac = self.mac_of(self.rly, DOWN_IF)
        pin_neighbor(self.rly, UP_IF, SERVER_IP, self.mac_of(self.srv, SERVER_IF))
        pin_neighbor(self.srv, SERVER_IF, RELAY_UP_IP, self.mac_of(self.rly, UP_IF))
        return self

    def _add_ns(self, ns: str) -> None:
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        self._write_state()
        run(nsexec(ns) + ["sh", "-c",
                          "echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6;"
                          "echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6;"
                          "ip link set lo up"])

    def add_client(self, mac: str | None = None) -> ClientNs:
        c = self._client_on_segment(mac, "77")
        pin_neighbor(c.ns, CLIENT_IF, ROUTER, self.relay_down_mac)
        return c

    def _client_on_segment(self, mac: str | None, mac_tag: str) -> ClientNs:
        """A client namespace on the client segment's bridge (MAC 02:<mac_tag>:..:<n>)."""
        i = len(self.clients) + 1
        ns = f"{self.prefix}-c{i}"
        mac = mac or f"02:{mac_tag}:{secrets.token_hex(1)}:{secrets.token_hex(1)}:{secrets.token_hex(1)}:{i:02x}"
        self._add_ns(ns)
        run(["ip", "link", "add", CLIENT_IF, "netns", ns, "address", mac, "type", "veth",
             "peer", "name", f"p{i}", "netns", self.seg])
        run(["ip", "-n", self.seg, "-batch", "-"],
            input=f"link set p{i} master br0\nlink set p{i} up\n")
        run(["ip", "-n", ns, "link", "set", CLIENT_IF, "up"])
        wait_link_up(ns, CLIENT_IF)
        c = ClientNs(self, ns, mac, i)
        self.clients.append(c)
        return c

    def add_second_link(self, mac: str | None = None) -> ClientNs:
        """A second downstream link: the relay's rd1 (10.77.2.1/24) wired straight to the
        eth0 of one new host namespace (no bridge). cdra serves it only when configured
        with `extra_downstream=(DOWN2_IF,)`; no server has a subnet for it."""
        i = len(self.clients) + 1
        ns = f"{self.prefix}-c{i}"
        mac = mac or f"02:78:{secrets.token_hex(1)}:{secrets.token_hex(1)}:{secrets.token_hex(1)}:{i:02x}"
        self._add_ns(ns)
        run(["ip", "link", "add", DOWN2_IF, "netns", self.rly, "type", "veth", "peer", "name",
             CLIENT_IF, "netns", ns, "address", mac])
        run(["ip", "-n", self.rly, "-batch", "-"],
            input=f"addr add {RELAY_DOWN2_IP}/24 dev {DOWN2_IF}\nlink set {DOWN2_IF} up\n")
        run(["ip", "-n", ns, "link", "set", CLIENT_IF, "up"])
        wait_link_up(self.rly, DOWN2_IF)
        wait_link_up(ns, CLIENT_IF)
        c = ClientNs(self, ns, mac, i)
        self.clients.append(c)
        return c

    def add_second_server(self) -> str:
        """A second server namespace: its sv1 (10.77.3.1/24) wired to the relay's ru1
        (10.77.3.2/24), routing the client net via the relay (next hops pinned). Start a
        server there with `lab.start_second_server(kind)`; cdra reaches it through ru1
        (`cdra_config(extra_upstream=(UP2_IF,))`). Returns the namespace."""
        self._add_ns(self.srv2)
        run(["ip", "link", "add", UP2_IF, "netns", self.rly, "type", "veth", "peer", "name",
             SERVER2_IF, "netns", self.srv2])
        run(["ip", "-n", self.rly, "-batch", "-"],
            input=f"addr add {RELAY_UP2_IP}/24 dev {UP2_IF}\nlink set {UP2_IF} up\n")
        run(["ip", "-n", self.srv2, "-batch", "-"],
            input=f"addr add {SERVER2_IP}/24 dev {SERVER2_IF}\nlink set {SERVER2_IF} up\n"
                  f"route add {CLIENT_NET} via {RELAY_UP2_IP}\n")
        wait_link_up(self.rly, UP2_IF)
        wait_link_up(self.srv2, SERVER2_IF)
        pin_neighbor(self.rly, UP2_IF, SERVER2_IP, self.mac_of(self.srv2, SERVER2_IF))
        pin_neighbor(self.srv2, SERVER2_IF, RELAY_UP2_IP, self.mac_of(self.rly, UP2_IF))
        return self.srv2

    def _state_file(self) -> Path:
        return STATE_DIR / f"{self.prefix}.json"

    def _write_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self._state_file().write_text(json.dumps({
            "owner_pid": os.getpid(), "owner_start": _proc_starttime(os.getpid()),
            "namespaces": self.namespaces, "dir": str(self.dir)}))

    def spawn(self, name: str, argv: list[str], env: dict | None = None,
              stdin_pipe: bool = False, cwd: str | Path | None = None) -> Proc:
        if self.cleaned:
            # A scenario running in a thread of its own must not start anything once its
            # lab was cleaned up (interrupt): nobody would stop it.
            raise LabError(f"lab {self.prefix} was cleaned up: not starting {name}")
        base = name
        n = 1
        while any(p.name == name for p in self.procs):
            n += 1
            name = f"{base}.{n}"
        p = Proc(name, argv, self.dir / f"{name}.log", env=env, stdin_pipe=stdin_pipe,
                 cwd=str(cwd) if cwd else None)
        self.procs.append(p)
        return p

    def mac_of(self, ns: str, dev: str) -> str:
        out = run(["ip", "-n", ns, "-o", "link", "show", "dev", dev]).stdout
        return out.split("link/ether", 1)[1].split()[0]

    def capture(self, ns: str, iface: str, name: str, **kw) -> Capture:
        return Capture(self, ns, iface, name, **kw)

    def cleanup(self) -> list[str]:
        """Stop everything, delete the namespaces. Returns problems worth reporting."""
        if self.cleaned:
            return []
        self.cleaned = True
        problems: list[str] = []
        for c in self.captures:
            with contextlib.suppress(Exception):
                c.stop()
        for comp in reversed(self.components):
            stop = getattr(comp, "stop", None)
            if stop:
                try:
                    stop()
                except Exception as e:  # noqa: BLE001
                    problems.append(f"{comp!r}: {e}")
        for p in reversed(self.procs):
            with contextlib.suppress(Exception):
                p.stop(timeout=3)
        for ns in reversed(self.namespaces):
            kill_ns_pids(ns)
            r = run(["ip", "netns", "del", ns], check=False)
            if r.returncode != 0 and Path(f"/run/netns/{ns}").exists():
                problems.append(f"ip netns del {ns}: {r.stderr.strip()}")
        with contextlib.suppress(OSError):
            self._state_file().unlink()
        with _LABS_LOCK:
            if self in _LABS:
                _LABS.remove(self)
        return problems

    def remove_dir(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- diagnostics

    def diagnostics(self) -> str:
        out = [f"==== lab {self.prefix} ({self.dir}) relay={relay_kind()} ===="]
        a0, a1 = getattr(self, "arp_fulls_at_start", None), arp_table_fulls()
        if a0 is not None and a1 is not None and a1 > a0:
            out.append(f"!!!! the kernel's global ARP table overflowed {a1 - a0} times during "
                       "this test (something else on this machine fills it; see dmesg): "
                       "packets needing a new ARP entry were dropped in every namespace")
        for comp in self.components:
            d = getattr(comp, "diagnostics", None)
            if d:
                with contextlib.suppress(Exception):
                    out.append(d())
        for p in self.procs:
            if p.name.startswith("tcpdump"):
                continue
            state = "running" if p.alive() else f"exited {p.popen.returncode}"
            out.append(f"---- log {p.name} (pid {p.pid}, {state}) ----\n{tail(p.text(), 80)}")
        for c in self.captures:
            out.append(f"---- capture {c.name} ({c.ns} {c.iface}) ----\n{c.summary()}")
        return "\n".join(out)

    # ---- convenience

    def fail_fast(self) -> None:
        """Raise at once if the relay under test died (instead of waiting for a timeout)."""
        if self.relay is not None and self.relay.proc is not None and not self.relay.alive():
            self.relay.check_alive()

    def start_server(self, kind: str, **kw) -> "Server":
        s = SERVERS[kind](self, **kw)
        self.components.append(s)
        self.server = s
        s.start()
        return s

    def start_second_server(self, kind: str, **kw) -> "Server":
        """A server of `kind` in the second server namespace (add_second_server() first),
        with its own pool (10.77.1.201-250). `lab.server` stays the first one."""
        s = SERVERS[kind](self, ns=self.srv2, iface=SERVER2_IF, address=SERVER2_IP,
                          pool=(POOL2_START, POOL2_END), tag="2", **kw)
        self.components.append(s)
        s.start()
        return s

    def start_kea_ha_pair(self, mode: str, **kw) -> tuple["Kea", "Kea"]:
        """A Kea HA pair (`mode`: "hot-standby" | "load-balancing"): server1 (the primary)
        in the server namespace, server2 in a second one (add_second_server() is done
        here), both with the same subnet and pool (10.77.1.100-200), their HA traffic
        routed through the relay namespace (which forwards). Waits until both are in the
        HA state of `mode`. `lab.server` is server1. cdra reaches server2 through ru1
        (`cdra_config(extra_upstream=(UP2_IF,))`)."""
        if not os.path.isdir(self.dir):
            raise LabError("lab not set up")
        self.add_second_server()
        run(["ip", "-n", self.srv, "route", "add", "10.77.3.0/24", "via", RELAY_UP_IP])
        run(["ip", "-n", self.srv2, "route", "add", "10.77.0.0/24", "via", RELAY_UP2_IP])
        s1 = Kea(self, ha=("server1", mode), **kw)
        s2 = Kea(self, ns=self.srv2, iface=SERVER2_IF, address=SERVER2_IP, tag="2",
                 ha=("server2", mode), **kw)
        for s in (s1, s2):
            self.components.append(s)
            s.start()
        self.server = s1
        states = {}

        def ready():
            for s in (s1, s2):
                s.check_alive()
                states[s.tag or "1"] = s.ha_state()
            return all(v == mode for v in states.values())
        try:
            wait_until(ready, 30, interval=0.25, what=f"the Kea pair to reach {mode}")
        except LabError as e:
            raise LabError(f"{e}: HA states {states}") from None
        return s1, s2

    def start_relay(self, **kw) -> "Relay":
        r = make_relay(self, **kw)
        self.components.append(r)
        self.relay = r
        r.start()
        return r

    def start_client(self, kind: str, cns: ClientNs | None = None, **kw) -> "Client":
        cns = cns or self.add_client()
        c = CLIENTS[kind](self, cns, **kw)
        self.components.append(c)
        c.start()
        return c


def pin_neighbor(ns: str, dev: str, ip: str, mac: str) -> None:
    """A permanent ARP entry. The kernel's ARP table is ONE table for all namespaces with
    a global limit (gc_thresh3, 1024 by default): a load test elsewhere on the machine can
    fill it ("neighbour: arp_cache: neighbor table overflow!" in dmesg) and then no new
    entry can be resolved in any namespace, so routed packets silently vanish. Permanent
    entries are exempt from that limit, so the lab pins every next hop it routes through."""
    run(["ip", "-n", ns, "neigh", "replace", ip, "lladdr", mac, "dev", dev, "nud", "permanent"])


def ns_packet_socket(ns: str, iface: str, timeout: float = 0.2) -> socket.socket:
    """An AF_PACKET socket (IPv4 frames) bound to `iface` inside namespace `ns`."""
    with in_netns(ns):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        s.bind((iface, 0))
    s.settimeout(timeout)
    return s


def send_frames_from(ns: str, iface: str, frames: Iterable[bytes]) -> int:
    """Send raw Ethernet frames from `iface` in namespace `ns` (any lab namespace: a host
    on a client segment, the server's side). Returns how many the kernel took."""
    s = ns_packet_socket(ns, iface)
    n = 0
    try:
        for fr in frames:
            with contextlib.suppress(OSError):
                s.send(fr)
                n += 1
    finally:
        s.close()
    return n


def link_stats(ns: str, dev: str) -> dict[str, int]:
    """The interface's kernel counters (`ip -s -j link`): rx/tx packets, bytes, dropped."""
    out = run(["ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev]).stdout
    st = json.loads(out)[0].get("stats64", {})
    return {f"{d}_{k}": int(v) for d in ("rx", "tx") for k, v in st.get(d, {}).items()
            if isinstance(v, int)}


def set_rp_filter(ns: str, dev: str, value: int) -> None:
    """net.ipv4.conf.DEV.rp_filter inside lab namespace `ns` (0 off, 1 strict, 2 loose; the
    kernel uses the larger of `all` and the interface's value)."""
    run(nsexec(ns) + ["sh", "-c", f"echo {int(value)} >/proc/sys/net/ipv4/conf/{dev}/rp_filter"])


def rp_filter(ns: str, dev: str) -> int:
    """The effective reverse-path filter mode of `dev` in `ns`: max(all, dev)."""
    r = run(nsexec(ns) + ["sh", "-c", f"cat /proc/sys/net/ipv4/conf/all/rp_filter "
                                      f"/proc/sys/net/ipv4/conf/{dev}/rp_filter"]).stdout.split()
    return max(int(x) for x in r)


def proc_status_field(pid: int, field: str) -> str:
    """The value of a field of /proc/PID/status (e.g. CapEff: hex), '' if absent."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def proc_status_kib(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/PID/status (VmHWM: peak resident set size; VmRSS: current)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def scapy_python() -> str:
    """An interpreter that can import scapy (Debian's python3-scapy is for /usr/bin/python3,
    which may not be the one running pytest)."""
    import sys
    for cand in (sys.executable, "/usr/bin/python3"):
        if cand and subprocess.run([cand, "-c", "import scapy.all"], capture_output=True,
                                   timeout=60).returncode == 0:
            return cand
    raise LabError("no python3 with scapy: run scripts/e2e-deps (python3-scapy)")


def arp_table_fulls() -> int | None:
    """The kernel's global count of 'neighbor table overflow' events (all namespaces)."""
    try:
        lines = Path("/proc/net/stat/arp_cache").read_text().split("\n")
        col = lines[0].split().index("table_fulls")
        return sum(int(l.split()[col], 16) for l in lines[1:] if l.strip())
    except (OSError, ValueError, IndexError):
        return None


def wait_link_up(ns: str, dev: str, timeout: float = 5) -> None:
    """Wait for carrier (IFF_RUNNING): Kea skips an interface that is not running yet."""
    def up():
        out = run(["ip", "-n", ns, "-o", "link", "show", "dev", dev]).stdout
        return "LOWER_UP" in out and ",UP" in out
    wait_until(up, timeout, interval=0.01, what=f"{ns} {dev} to be up")


def kill_ns_pids(ns: str) -> None:
    """SIGKILL whatever still runs in one of our own namespaces (children of our daemons)."""
    r = run(["ip", "netns", "pids", ns], check=False, timeout=5)
    me = os.getpid()
    for tok in r.stdout.split():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            pid = int(tok)
            if pid != me:
                os.kill(pid, signal.SIGKILL)


def sweep_stale() -> None:
    """Remove namespaces left by an earlier lab run whose owning process is gone."""
    for f in glob.glob(str(STATE_DIR / "c*.json")):
        try:
            st = json.loads(Path(f).read_text())
        except (OSError, ValueError):
            continue
        pid = st.get("owner_pid")
        if pid and _proc_starttime(pid) is not None and _proc_starttime(pid) == st.get("owner_start"):
            continue  # owner alive (maybe a parallel run)
        for ns in st.get("namespaces", []):
            if Path(f"/run/netns/{ns}").exists():
                kill_ns_pids(ns)
                run(["ip", "netns", "del", ns], check=False)
        d = st.get("dir", "")
        if os.path.basename(d).startswith("cdra-e2e-c"):
            shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(f)


def cleanup_all(remove_dirs: bool = True) -> None:
    """Clean up every lab of this process (interrupts, atexit) and delete their temp dirs."""
    with _LABS_LOCK:
        labs = list(_LABS)
    for lab in labs:
        with contextlib.suppress(Exception):
            lab.cleanup()
    if remove_dirs:
        for d in _DIRS:
            shutil.rmtree(d, ignore_errors=True)


import atexit  # noqa: E402

atexit.register(cleanup_all)


# --------------------------------------------------------------------------- servers

# What the client identifier of a cdra pool identity starts with (pool mode: type 0, then
# "cdra-pool/<giaddr>/<n>"); its chaddr is 0e:cd:xx:xx:xx:xx, its hostname cdra-pool-<n>.
POOL_ID_PREFIX = b"\0cdra-pool/"


@dataclasses.dataclass
class Lease:
    """One address in a server's lease table, as the server's own file records it (the last
    record of the address)."""
    ip: str
    mac: str
    client_id: bytes | None
    hostname: str
    active: bool
    record: str  # the record as the file has it, for messages

    def is_pool(self) -> bool:
        """Leased to one of cdra's pool identities (client id, chaddr or hostname)."""
        return bool((self.client_id or b"").startswith(POOL_ID_PREFIX)
                    or self.mac.lower().startswith("0e:cd:")
                    or self.hostname.startswith("cdra-pool-"))

    def pool_number(self) -> int | None:
        """n of the pool identity `\\0cdra-pool/<giaddr>/<n>`, if the client id is one."""
        cid = self.client_id or b""
        if not cid.startswith(POOL_ID_PREFIX):
            return None
        try:
            return int(cid.rsplit(b"/", 1)[1])
        except (IndexError, ValueError):
            return None

    def __str__(self) -> str:
        return self.record


def _hex_bytes(text: str) -> bytes | None:
    """'00:63:64' (or '006364') -> bytes; None for '' or '*'."""
    text = text.strip()
    if not text or text == "*":
        return None
    try:
        return bytes.fromhex(text.replace(":", "").replace("-", ""))
    except ValueError:
        return None


def _dhcpd_string(text: str) -> bytes:
    """A dhcpd.leases value: a quoted string with C/octal escapes, or colon hex."""
    text = text.strip().rstrip(";").strip()
    if not text.startswith('"'):
        return _hex_bytes(text) or b""
    body, out, i = text[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567":
                j = i + 1
                while j < len(body) and j < i + 4 and body[j] in "01234567":
                    j += 1
                out.append(int(body[i + 1:j], 8) & 0xFF)
                i = j
                continue
            out += {"n": b"\n", "t": b"\t", "r": b"\r"}.get(nxt, nxt.encode())
            i += 2
            continue
        out += c.encode()
        i += 1
    return bytes(out)


class Server:
    kind = "?"

    def __init__(self, lab: Lab, *, lease_time: int = 120, renew_time: int | None = None,
                 rebind_time: int | None = None, ns: str | None = None,
                 iface: str = SERVER_IF, address: str = SERVER_IP,
                 pool: tuple[str, str] = (POOL_START, POOL_END), tag: str = "",
                 hosts: dict[str, str | None] | None = None):
        """ns/iface/address/pool/tag: where it runs and what it hands out (default: the
        lab's server namespace, sv0, 10.77.0.1, 10.77.1.100-200); `tag` tells the files
        and processes of a second server apart. `hosts`: MAC -> a reserved address for that
        client (in the client subnet, outside the range), or None: the server ignores that
        client (Kea: the DROP class; dhcpd: `deny booting`; dnsmasq: `ignore`)."""
        self.lab = lab
        self.hosts = dict(hosts or {})
        self.lease_time = lease_time
        self.renew_time = renew_time
        self.rebind_time = rebind_time
        self.ns = ns or lab.srv
        self.iface = iface
        self.address = address
        self.pool = pool
        self.tag = tag
        self.dir = lab.dir / f"server-{self.kind}{tag}"
        self.dir.mkdir()
        self.proc: Proc | None = None

    def __repr__(self) -> str:
        return f"<{self.kind} server>"

    def _wait_ready(self) -> None:
        assert self.proc
        def ready():
            if not self.proc.alive():
                raise LabError(f"{self.kind} exited ({self.proc.popen.returncode}):\n"
                               f"{tail(self.proc.text())}")
            return 67 in udp_ports_in_ns_of(self.proc.pid)
        wait_until(ready, 15, what=f"{self.kind} to bind port 67")

    def check_alive(self) -> None:
        if self.proc and not self.proc.alive():
            raise LabError(f"{self.kind} server died ({self.proc.popen.returncode})")

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def restart(self) -> None:
        """Start the server again (same config, same lease file) after stop()."""
        if self.proc and self.proc.alive():
            raise LabError(f"{self.kind} is still running")
        self.start()

    def is_active(self, ip: str) -> bool:
        raise NotImplementedError

    def is_released(self, ip: str) -> bool:
        raise NotImplementedError

    def lease_table(self) -> dict[str, Lease]:
        """Address -> its last record in the server's lease file (readable while the
        server is stopped): Kea's memfile CSV, dhcpd.leases, dnsmasq's lease file."""
        raise NotImplementedError

    def active_leases(self) -> dict[str, Lease]:
        """The addresses the server's file says are leased now."""
        return {ip: l for ip, l in self.lease_table().items() if l.active}

    def lease_file_text(self) -> str:
        """Every active lease, one line each (for messages)."""
        try:
            return "\n".join(str(l) for l in self.active_leases().values()) or "(none)"
        except Exception as e:  # noqa: BLE001
            return f"(unreadable: {e})"

    def diagnostics(self) -> str:
        return (f"---- {self.kind} leases ----\n{self.leases_text()}\n"
                f"---- {self.kind} lease file, active leases ----\n{self.lease_file_text()}")

    def leases_text(self) -> str:
        return ""


# A Kea HA pair (Lab.start_kea_ha_pair): server1 in the server namespace, server2 in the
# second one; they talk to each other over HTTP on this port, each with its own listener
# inside kea-dhcp4 (Kea's HA multi-threading with `http-dedicated-listener`: no
# kea-ctrl-agent), routed through the relay namespace.
HA_PORT = 8647
HA_PEERS = (("server1", SERVER_IP), ("server2", SERVER2_IP))
# HA timers (ms): a partner that misses heartbeats for HA_MAX_RESPONSE_DELAY is down
# (max-unacked-clients 0: no wait for clients' `secs`), and the survivor serves everyone.
HA_HEARTBEAT_DELAY = 1000
HA_MAX_RESPONSE_DELAY = 3000


class Kea(Server):
    kind = "kea"

    def __init__(self, lab: Lab, *, ha: tuple[str, str] | None = None, **kw):
        """`ha`: (this server's name in HA_PEERS, "hot-standby" | "load-balancing"): the
        HA hook with the lab's two peers (server1 primary; server2 standby or secondary);
        in load-balancing mode the pool is split between the classes HA_server1 (first
        half) and HA_server2, as Kea's HA wants."""
        super().__init__(lab, **kw)
        self.ha = ha

    def _ha_hook(self, name: str, mode: str) -> dict[str, Any]:
        lib = (glob.glob("/usr/lib/*/kea/hooks/libdhcp_ha.so")
               + glob.glob("/usr/lib/kea/hooks/libdhcp_ha.so"))
        if not lib:
            raise LabError("libdhcp_ha.so not found (kea-dhcp4-server)")
        roles = ("primary", "standby" if mode == "hot-standby" else "secondary")
        return {"library": lib[0], "parameters": {"high-availability": [{
            "this-server-name": name,
            "mode": mode,
            "heartbeat-delay": HA_HEARTBEAT_DELAY,
            "max-response-delay": HA_MAX_RESPONSE_DELAY,
            "max-ack-delay": 1000,
            "max-unacked-clients": 0,
            "sync-timeout": 5000,
            "multi-threading": {"enable-multi-threading": True, "http-dedicated-listener": True,
                                "http-listener-threads": 1, "http-client-threads": 1},
            "peers": [{"name": n, "url": f"http://{ip}:{HA_PORT}/", "role": role,
                       "auto-failover": True}
                      for (n, ip), role in zip(HA_PEERS, roles)],
        }]}}

    def ha_state(self) -> str:
        """This server's HA state (`ha-heartbeat` on its control socket)."""
        r = self.command("ha-heartbeat")
        return str(r.get("arguments", {}).get("state", r))

    def start(self) -> None:
        self.sock = self.dir / "ctrl.sock"
        self.leasefile = self.dir / "leases4.csv"
        hook = (glob.glob("/usr/lib/*/kea/hooks/libdhcp_lease_cmds.so")
                + glob.glob("/usr/lib/kea/hooks/libdhcp_lease_cmds.so"))
        if not hook:
            raise LabError("libdhcp_lease_cmds.so not found (kea-dhcp4-server)")
        subnet: dict[str, Any] = {
            "id": 1, "subnet": CLIENT_NET,
            "pools": [{"pool": f"{self.pool[0]} - {self.pool[1]}"}],
            "option-data": [{"name": "routers", "data": ROUTER}],
        }
        if self.ha and self.ha[1] == "load-balancing":
            first, last = ipaddress.IPv4Address(self.pool[0]), ipaddress.IPv4Address(self.pool[1])
            mid = first + (int(last) - int(first)) // 2
            subnet["pools"] = [
                {"pool": f"{first} - {mid}", "client-class": "HA_server1"},
                {"pool": f"{mid + 1} - {last}", "client-class": "HA_server2"}]
        reserved = [{"hw-address": mac, "ip-address": ip} for mac, ip in self.hosts.items() if ip]
        if reserved:
            subnet["reservations"] = reserved
        ignored = [mac for mac, ip in self.hosts.items() if not ip]
        cfg: dict[str, Any] = {"Dhcp4": {
            "interfaces-config": {"interfaces": [self.iface], "dhcp-socket-type": "udp"},
            "lease-database": {"type": "memfile", "persist": True,
                               "name": str(self.leasefile), "lfc-interval": 0},
            "authoritative": True,
            "valid-lifetime": self.lease_time,
            "control-socket": {"socket-type": "unix", "socket-name": str(self.sock)},
            "hooks-libraries": [{"library": hook[0]}],
            "subnet4": [subnet],
            "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}],
                         "severity": "INFO"}],
        }}
        if ignored:
            # Kea drops every packet classified into the built-in class DROP.
            test = " or ".join(f"pkt4.mac == 0x{m.replace(':', '')}" for m in ignored)
            cfg["Dhcp4"]["client-classes"] = [{"name": "DROP", "test": test}]
        if self.ha:
            cfg["Dhcp4"]["hooks-libraries"].append(self._ha_hook(*self.ha))
            # HA's own HTTP listener needs Kea's multi-threading.
            cfg["Dhcp4"]["multi-threading"] = {"enable-multi-threading": True,
                                               "thread-pool-size": 2, "packet-queue-size": 16}
        if self.renew_time:
            cfg["Dhcp4"]["renew-timer"] = self.renew_time
            cfg["Dhcp4"]["rebind-timer"] = self.rebind_time or max(self.renew_time + 1,
                                                                   self.lease_time * 7 // 8)
        conf = self.dir / "kea-dhcp4.conf"
        conf.write_text(json.dumps(cfg, indent=2))
        env = {"KEA_PIDFILE_DIR": str(self.dir), "KEA_LOCKFILE_DIR": str(self.dir)}
        self.proc = self.lab.spawn(f"kea{self.tag}", nsexec(self.ns) + [sbin("kea-dhcp4"), "-c",
                                                                        str(conf)], env=env)
        self._wait_ready()
        wait_until(self.sock.exists, 10, what="kea control socket")

    def restart(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.unlink()  # a stale socket would make start() return too early
        super().restart()

    def statistic(self, name: str) -> int:
        """`statistic-get NAME` (e.g. pkt4-request-received): the current value (0 if none)."""
        r = self.command("statistic-get", {"name": name})
        samples = r.get("arguments", {}).get(name) or []
        return int(samples[0][0]) if samples else 0

    def command(self, command: str, arguments: dict | None = None) -> dict:
        req = {"command": command}
        if arguments is not None:
            req["arguments"] = arguments
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(str(self.sock))
            s.sendall(json.dumps(req).encode())
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                try:
                    return json.loads(buf.decode())
                except ValueError:
                    continue
            raise LabError(f"kea: no complete answer to {command}: {buf[:300]!r}")
        finally:
            s.close()

    def lease(self, ip: str) -> dict | None:
        r = self.command("lease4-get", {"ip-address": ip})
        if r.get("result") == 0:
            return r["arguments"]
        return None

    def is_active(self, ip: str) -> bool:
        l = self.lease(ip)
        return bool(l) and l.get("state", 0) == 0

    def is_released(self, ip: str) -> bool:
        l = self.lease(ip)
        return l is None or l.get("state", 0) != 0 or l.get("valid-lft", 1) == 0

    def lease_table(self) -> dict[str, Lease]:
        """The memfile CSV (address,hwaddr,client_id,valid_lifetime,expire,subnet_id,
        fqdn_fwd,fqdn_rev,hostname,state,...), appended to on every change: the last row of
        an address wins; a deleted lease is a row with valid_lifetime 0."""
        out: dict[str, Lease] = {}
        if not self.leasefile.exists():
            return out
        now_wall = time.time()
        with open(self.leasefile, newline="", errors="replace") as f:
            for row in csv.DictReader(f):
                try:
                    ip = row["address"]
                    valid, expire = int(row["valid_lifetime"]), int(row["expire"])
                    state = int(row.get("state") or 0)
                except (KeyError, ValueError, TypeError):
                    continue
                out[ip] = Lease(ip=ip, mac=(row.get("hwaddr") or "").lower(),
                                client_id=_hex_bytes(row.get("client_id") or ""),
                                hostname=row.get("hostname") or "",
                                active=state == 0 and valid > 0 and expire > now_wall,
                                record="kea: " + ",".join(str(v) for v in row.values()))
        return out

    def leases_text(self) -> str:
        try:
            r = self.command("lease4-get-all")
            return "\n".join(f"{l['ip-address']} {l['hw-address']} state={l['state']} "
                             f"valid={l['valid-lft']}"
                             for l in r.get("arguments", {}).get("leases", [])) or str(r)
        except Exception as e:  # noqa: BLE001
            return f"(lease4-get-all failed: {e})"


class Dhcpd(Server):
    kind = "dhcpd"

    def __init__(self, lab: Lab, *, dynamic_bootp: bool = False,
                 server_identifier: str | None = None, leasequery: bool = False,
                 authoritative: bool = True, subnet_mask_option: bool = True, **kw):
        """dynamic_bootp: the pool also serves plain BOOTP clients (`range dynamic-bootp`);
        without it dhcpd logs "BOOTP from dynamic client and no dynamic leases".
        server_identifier: what dhcpd puts in option 54 (`server-identifier`), when it is
        not the address it answers from.
        leasequery: answer RFC 4388 DHCPLEASEQUERY (`allow leasequery;`).
        authoritative: the `authoritative;` statement (without it dhcpd ignores INFORMs for
        the subnet). subnet_mask_option: `option subnet-mask` in the client subnet (without
        it dhcpd still puts the mask in ACKs, but not in leasequery answers)."""
        super().__init__(lab, **kw)
        self.leasequery = leasequery
        self.authoritative = authoritative
        self.subnet_mask_option = subnet_mask_option
        self.dynamic_bootp = dynamic_bootp
        self.server_identifier = server_identifier

    def start(self) -> None:
        self.leasefile = self.dir / "dhcpd.leases"
        self.leasefile.touch()
        t = ""
        if self.renew_time:
            t = (f"option dhcp-renewal-time {self.renew_time};\n"
                 f"option dhcp-rebinding-time "
                 f"{self.rebind_time or max(self.renew_time + 1, self.lease_time * 7 // 8)};\n")
        conf = self.dir / "dhcpd.conf"
        conf.write_text(textwrap.dedent(f"""\
            # cdra e2e lab
            {"authoritative;" if self.authoritative else ""}
            ping-check false;
            ddns-update-style none;
            {"allow leasequery;" if self.leasequery else ""}
            default-lease-time {self.lease_time};
            max-lease-time {self.lease_time};
            min-lease-time {self.lease_time};
            """) + t + textwrap.dedent(f"""\
            subnet {self.address.rsplit(".", 1)[0]}.0 netmask 255.255.255.0 {{ }}
            subnet 10.77.1.0 netmask 255.255.255.0 {{
              range {"dynamic-bootp " if self.dynamic_bootp else ""}{self.pool[0]} {self.pool[1]};
              option routers {ROUTER};
              {"option subnet-mask 255.255.255.0;" if self.subnet_mask_option else ""}
            }}
            """) + (f"server-identifier {self.server_identifier};\n" if self.server_identifier else "")
            + "".join(f"host h{i} {{ hardware ethernet {mac}; "
                      + (f"fixed-address {ip}; }}\n" if ip else "deny booting; }\n")
                      for i, (mac, ip) in enumerate(self.hosts.items())))
        self.proc = self.lab.spawn(f"dhcpd{self.tag}", nsexec(self.ns) + [
            sbin("dhcpd"), "-4", "-f", "-d", "-cf", str(conf), "-lf", str(self.leasefile),
            "-pf", str(self.dir / "dhcpd.pid"), self.iface])
        self._wait_ready()

    def states(self) -> dict[str, str]:
        """ip -> binding state of the last record in the lease file."""
        st: dict[str, str] = {}
        cur = None
        for line in self.leasefile.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("lease ") and line.endswith("{"):
                cur = line.split()[1]
            elif cur and line.startswith("binding state "):
                st[cur] = line.split()[2].rstrip(";")
            elif line == "}":
                cur = None
        return st

    def lease_table(self) -> dict[str, Lease]:
        """dhcpd.leases: `lease IP { ... }` blocks appended on every change; the last block
        of an address wins (binding state, hardware ethernet, uid, client-hostname)."""
        out: dict[str, Lease] = {}
        cur: dict[str, Any] | None = None
        for raw in self.leasefile.read_text(errors="replace").splitlines():
            line = raw.strip()
            if line.startswith("lease ") and line.endswith("{"):
                cur = {"ip": line.split()[1], "lines": [line]}
                continue
            if cur is None:
                continue
            cur["lines"].append(line)
            if line.startswith("binding state "):
                cur["state"] = line.split()[2].rstrip(";")
            elif line.startswith("hardware ethernet "):
                cur["mac"] = line.split()[2].rstrip(";").lower()
            elif line.startswith("uid "):
                cur["uid"] = _dhcpd_string(line[4:])
            elif line.startswith("client-hostname "):
                cur["hostname"] = _dhcpd_string(line[len("client-hostname "):]).decode(
                    errors="replace")
            elif line == "}":
                out[cur["ip"]] = Lease(ip=cur["ip"], mac=cur.get("mac", ""),
                                       client_id=cur.get("uid"),
                                       hostname=cur.get("hostname", ""),
                                       active=cur.get("state") == "active",
                                       record="dhcpd: " + " ".join(cur["lines"]))
                cur = None
        return out

    def is_active(self, ip: str) -> bool:
        return self.states().get(ip) == "active"

    def is_released(self, ip: str) -> bool:
        return self.states().get(ip) in ("free", "released")

    def leases_text(self) -> str:
        return "\n".join(f"{k} {v}" for k, v in self.states().items())


class Dnsmasq(Server):
    kind = "dnsmasq"

    def start(self) -> None:
        self.leasefile = self.dir / "dnsmasq.leases"
        lease = max(self.lease_time, 120)  # dnsmasq's minimum is 2 min
        lines = [
            "# cdra e2e lab", "port=0", f"interface={self.iface}", "no-resolv", "no-hosts",
            f"dhcp-range={self.pool[0]},{self.pool[1]},255.255.255.0,{lease}s",
            f"dhcp-option=option:router,{ROUTER}", "dhcp-authoritative", "no-ping",
            f"dhcp-leasefile={self.leasefile}", f"pid-file={self.dir / 'dnsmasq.pid'}",
            "log-dhcp", "log-facility=-", "user=root", "group=root",
        ]
        lines += [f"dhcp-host={mac},{ip or 'ignore'}" for mac, ip in self.hosts.items()]
        if self.renew_time:
            # dnsmasq 2.90 ignores T1 = 2 (sends lease/2 instead); 3 and up work.
            lines.append(f"dhcp-option=option:T1,{max(self.renew_time, 3)}")
            lines.append(f"dhcp-option=option:T2,"
                         f"{self.rebind_time or max(self.renew_time + 1, lease * 7 // 8)}")
        conf = self.dir / "dnsmasq.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.proc = self.lab.spawn(f"dnsmasq{self.tag}", nsexec(self.ns) + [
            sbin("dnsmasq"), f"--conf-file={conf}", "--keep-in-foreground"])
        self._wait_ready()

    def leases(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.leasefile.exists():
            for line in self.leasefile.read_text(errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    out[parts[2]] = line
        return out

    def is_active(self, ip: str) -> bool:
        return ip in self.leases()

    def is_released(self, ip: str) -> bool:
        return ip not in self.leases()

    def lease_table(self) -> dict[str, Lease]:
        """dnsmasq's lease file, rewritten on every change: `expiry mac ip hostname
        client-id` per lease (`*` for none); a released lease is gone from it."""
        out: dict[str, Lease] = {}
        now_wall = time.time()
        for ip, line in self.leases().items():
            parts = line.split()
            try:
                expiry = int(parts[0])
            except ValueError:
                continue
            out[ip] = Lease(ip=ip, mac=parts[1].lower(),
                            client_id=_hex_bytes(parts[4]) if len(parts) > 4 else None,
                            hostname="" if len(parts) < 4 or parts[3] == "*" else parts[3],
                            active=expiry == 0 or expiry > now_wall,
                            record="dnsmasq: " + line)
        return out

    def leases_text(self) -> str:
        return "\n".join(self.leases().values())


SERVERS: dict[str, type[Server]] = {"kea": Kea, "dhcpd": Dhcpd, "dnsmasq": Dnsmasq}


# --------------------------------------------------------------------------- relays

def relay_kind() -> str:
    return os.environ.get("CDRA_E2E_RELAY", "cdra").strip() or "cdra"


def cdra_bin() -> Path:
    p = Path(os.environ.get("CDRA_BIN", "target/release/cdra"))
    return p if p.is_absolute() else REPO_ROOT / p


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def cdra_config(*, servers: Iterable[str] = (SERVER_IP,), downstream: str = DOWN_IF,
                upstream: str = UP_IF, address: str | None = None,
                circuit_id: str | None = None, trusted: bool | None = None, max_hops: int = 4,
                server_selection: str = "all", option82_insert: bool = False,
                remote_id: str | None = None, policy: str = "forward",
                link_selection: bool = False, server_id_override: bool = False,
                mode: str = "relay", proxy: dict[str, Any] | None = None,
                store_path: str | Path | None = None, store_enabled: bool | None = None,
                store_keys: dict[str, Any] | None = None,
                control_socket: str | Path | None = None,
                metrics_listen: str | None = None, user: str | None = None,
                exec_prefix: list[str] | None = None, extra_downstream: Iterable[str] = (),
                extra_upstream: Iterable[str] = (),
                sections: dict[str, dict[str, Any]] | None = None,
                downstream_keys: dict[str, Any] | None = None,
                upstream_keys: dict[str, Any] | None = None,
                relay_keys: dict[str, Any] | None = None,
                option82_keys: dict[str, Any] | None = None) -> str:
    """The TOML config of `cdra run` for the lab topology.

    Proxy mode: `proxy` holds `[proxy]` keys (safe_network, max_age, offer_choice,
    probe_timeout, client_lease, ...); `store_path` (absolute) or `store_enabled=False` is
    mandatory there, so that a lab never touches the host's /var/lib/cdra (cdra's default
    store); `control_socket` and `metrics_listen` add `[control]` and `[metrics]`; `user`
    the top-level key. (`exec_prefix` is not configuration: CdraRelay runs cdra behind it.)
    `extra_downstream` adds more `[[downstream]]` interfaces (by name only), `extra_upstream`
    more `[[upstream]]` ones; `sections`
    adds tables of their own, e.g. `{"limits": {"interface_rate": 20}}`;
    `store_keys` adds keys to `[store]` (e.g. `{"backend": "redis", "url": ...}`);
    `downstream_keys`, `upstream_keys`, `relay_keys` and `option82_keys` add keys to the
    first `[[downstream]]`, the first `[[upstream]]`, `[relay]` and `[relay.option82]`
    (e.g. `{"source_interface": "ru0"}`, `{"vrf": "vrf-srv"}`, `{"source_port": 1067}`,
    `{"vss": True}`)."""
    if mode in ("proxy", "spoof", "pool") and store_path is None and store_enabled is not False:
        raise LabError(f"cdra_config(mode={mode!r}) needs store_path (under the lab's temp dir) "
                       "or store_enabled=False: the default store is the host's "
                       "/var/lib/cdra/clients.redb")
    down = [f"interface = {_toml_str(downstream)}"]
    if address:
        down.append(f"address = {_toml_str(address)}")
    if circuit_id:
        down.append(f"circuit_id = {_toml_str(circuit_id)}")
    if trusted is not None:
        down.append(f"trusted = {str(trusted).lower()}")
    down += [f"{k} = {_toml_value(v)}" for k, v in (downstream_keys or {}).items()]
    o82 = [f"insert = {str(option82_insert).lower()}"]
    if remote_id is not None:
        o82.append(f"remote_id = {_toml_str(remote_id)}")
    o82 += [f"policy = {_toml_str(policy)}",
            f"link_selection = {str(link_selection).lower()}",
            f"server_id_override = {str(server_id_override).lower()}"]
    o82 += [f"{k} = {_toml_value(v)}" for k, v in (option82_keys or {}).items()]
    extra: list[str] = []
    if proxy:
        extra += ["[proxy]", *(f"{k} = {_toml_value(v)}" for k, v in proxy.items()), ""]
    if store_path is not None or store_enabled is not None:
        extra.append("[store]")
        if store_enabled is not None:
            extra.append(f"enabled = {str(store_enabled).lower()}")
        if store_path is not None:
            extra.append(f"path = {_toml_str(str(store_path))}")
        extra += [f"{k} = {_toml_value(v)}" for k, v in (store_keys or {}).items()]
        extra.append("")
    if control_socket is not None:
        extra += ["[control]", f"socket = {_toml_str(str(control_socket))}", ""]
    if metrics_listen is not None:
        extra += ["[metrics]", f"listen = {_toml_str(metrics_listen)}", ""]
    for name, table in (sections or {}).items():
        extra += [f"[{name}]", *(f"{k} = {_toml_value(v)}" for k, v in table.items()), ""]
    more_down: list[str] = []
    for d in extra_downstream:
        more_down += ["[[downstream]]", f"interface = {_toml_str(d)}", ""]
    more_up: list[str] = []
    for u in extra_upstream:
        more_up += ["[[upstream]]", f"interface = {_toml_str(u)}", ""]
    return "\n".join([
        f"mode = {_toml_str(mode)}",
        *([f"user = {_toml_str(user)}"] if user is not None else []),
        "servers = [" + ", ".join(_toml_str(s) for s in servers) + "]",
        "",
        "[[downstream]]", *down,
        "",
        *more_down,
        "[[upstream]]", f"interface = {_toml_str(upstream)}",
        *(f"{k} = {_toml_value(v)}" for k, v in (upstream_keys or {}).items()),
        "",
        *more_up,
        "[relay]", f"max_hops = {max_hops}", f"server_selection = {_toml_str(server_selection)}",
        *(f"{k} = {_toml_value(v)}" for k, v in (relay_keys or {}).items()),
        "",
        "[relay.option82]", *o82, "",
        *extra,
    ])


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return str(v)
    return _toml_str(str(v))


METRICS_LISTEN = "127.0.0.1:9167"  # inside the relay namespace (one per lab)


def proxy_relay_kw(lab: "Lab", *, proxy: dict[str, Any] | None = None, store: bool = True,
                   control: bool = True, metrics: bool = True, **kw) -> dict[str, Any]:
    """Keyword arguments for `lab.start_relay(...)` running cdra in proxy mode with the
    lab's own store file, control socket and metrics endpoint (all under the lab temp dir /
    inside the relay namespace)."""
    cfg: dict[str, Any] = {"mode": "proxy", "proxy": dict(proxy or {})}
    if store:
        cfg["store_path"] = str(lab.dir / "cdra-store" / "clients.redb")
    else:
        cfg["store_enabled"] = False
    if control:
        cfg["control_socket"] = str(lab.dir / "cdra-control.sock")
    if metrics:
        cfg["metrics_listen"] = METRICS_LISTEN
    cfg.update(kw)
    return cfg


def http_get(ns: str, hostport: str, path: str = "/metrics", timeout: float = 3) -> str:
    """GET http://hostport/path from inside namespace `ns`; the body (status 200 only)."""
    host, port = hostport.rsplit(":", 1)
    with in_netns(ns):
        s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
                  .encode())
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in status + " ":
        raise LabError(f"GET {hostport}{path}: {status}")
    return body.decode(errors="replace")


def parse_prometheus(text: str) -> dict[str, float]:
    """'name{labels}' (exactly as exposed) -> value."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[key] = float(val)
    return out


class Relay:
    kind = "?"

    def __init__(self, lab: Lab, **cfg):
        self.lab = lab
        self.cfg = cfg
        self.proc: Proc | None = None
        self.exit_checked = False

    def __repr__(self) -> str:
        return f"<relay {self.kind}>"

    def _wait_ready(self) -> None:
        assert self.proc
        def ready():
            if not self.proc.alive():
                self.exit_checked = True
                raise LabError(f"relay {self.kind} exited ({self.proc.popen.returncode}) at "
                               f"start:\n{tail(self.proc.text())}")
            return 67 in udp_ports_in_ns_of(self.proc.pid)
        try:
            wait_until(ready, 3, what=f"relay {self.kind} to bind port 67")
        except LabError:
            if not self.proc.alive():
                raise
            # No UDP socket on port 67 (packet sockets only?): go on, it may still work.
            self.proc._logf.write(b"### lab: no UDP socket on port 67 after 3s\n")
        time.sleep(0.1)

    def alive(self) -> bool:
        return bool(self.proc and self.proc.alive())

    def check_alive(self) -> None:
        if not self.alive():
            rc = self.proc.popen.returncode if self.proc else None
            self.exit_checked = True  # reported here; stop() need not say it again
            raise LabError(f"relay {self.kind} is not running (exit {rc}):\n"
                           f"{tail(self.proc.text()) if self.proc else ''}")

    def acceptable_exit(self, rc: int) -> bool:
        return rc == 0

    def stop(self) -> None:
        """SIGTERM; a nonzero exit (or a crash before) is an error."""
        if not self.proc or self.exit_checked:
            return
        self.exit_checked = True
        was_alive = self.proc.alive()
        rc = self.proc.stop(signal.SIGTERM, timeout=5)
        if not was_alive:
            raise LabError(f"relay {self.kind} had died before the end of the test "
                           f"(exit {rc})")
        if not self.acceptable_exit(rc):
            raise LabError(f"relay {self.kind} exited {rc} on SIGTERM")

    def diagnostics(self) -> str:
        return f"---- relay {self.kind} config: {self.cfg}"


class CdraRelay(Relay):
    kind = "cdra"

    def start(self) -> None:
        b = cdra_bin()
        if not os.access(b, os.X_OK):
            raise LabError(f"cdra binary not found at {b} (set CDRA_BIN, or "
                           "cargo build --release)")
        self.conf = self.lab.dir / "cdra.toml"
        self.conf.write_text(cdra_config(**self.cfg))
        env = {"RUST_BACKTRACE": "1"}
        # `exec_prefix`: a command that runs cdra (setpriv, to start it the way systemd does).
        prefix = list(self.cfg.get("exec_prefix") or [])
        self.proc = self.lab.spawn("relay-cdra", nsexec(self.lab.rly) + prefix + [
            str(b), "run", "--config", str(self.conf)], env=env)
        self._wait_ready()

    def diagnostics(self) -> str:
        out = f"---- cdra config ----\n{self.conf.read_text() if hasattr(self, 'conf') else ''}"
        if self.cfg.get("control_socket") and self.alive():
            with contextlib.suppress(Exception):
                out += "\n---- cdra cache list ----\n" + self.cache("list", check=False)
        return out

    # ---- proxy mode helpers (new; relay-mode tests do not use them)

    def cache(self, *args: str, check: bool = True) -> str:
        """`cdra cache ARGS --socket PATH` (a Unix socket: reachable from any netns)."""
        sock = self.cfg.get("control_socket")
        if not sock:
            raise LabError("cdra has no control socket in this lab (control_socket=...)")
        r = run([str(cdra_bin()), "cache", *args, "--socket", str(sock)], check=False,
                timeout=15)
        if check and r.returncode != 0:
            raise LabError(f"cdra cache {' '.join(args)} exited {r.returncode}:\n"
                           f"{r.stdout}{r.stderr}")
        return r.stdout + r.stderr

    def cache_records(self) -> list[dict[str, str]]:
        """`cache list` parsed: key, interface, address, state and the k=v fields."""
        out = []
        for line in self.cache("list").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            rec = {"key": parts[0], "interface": parts[1] if len(parts) > 1 else "",
                   "address": parts[2] if len(parts) > 2 else "",
                   "state": parts[3] if len(parts) > 3 else "", "line": line}
            for kv in parts[4:]:
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    rec[k] = v
            out.append(rec)
        return out

    def metrics_text(self) -> str:
        listen = self.cfg.get("metrics_listen")
        if not listen:
            raise LabError("cdra has no metrics endpoint in this lab (metrics_listen=...)")
        return http_get(self.lab.rly, listen, "/metrics")

    def metrics(self) -> dict[str, float]:
        return parse_prometheus(self.metrics_text())

    def proxy_event(self, event: str) -> float:
        return self.metrics().get(f'cdra_proxy_events_total{{event="{event}"}}', 0.0)

    def kill(self) -> int:
        """SIGKILL (a crash): no clean shutdown, no last commit of the store."""
        assert self.proc
        rc = self.proc.stop(signal.SIGKILL, timeout=5)
        return rc

    def restart(self) -> None:
        """Start cdra again with the same config (after stop() or kill())."""
        if self.proc and self.proc.alive():
            raise LabError("cdra is still running")
        self.exit_checked = False
        self.start()


class DhcrelayRelay(Relay):
    kind = "dhcrelay"

    def start(self) -> None:
        c = self.cfg
        argv = [sbin("dhcrelay"), "-d", "-4", "--no-pid", "-id", c.get("downstream", DOWN_IF),
                "-iu", c.get("upstream", UP_IF), "-c", str(c.get("max_hops", 4))]
        if c.get("option82_insert"):
            argv.append("-a")
            argv += ["-m", {"forward": "forward", "replace": "replace",
                            "drop": "discard"}[c.get("policy", "forward")]]
        argv += list(c.get("servers", [SERVER_IP]))
        self.proc = self.lab.spawn("relay-dhcrelay", nsexec(self.lab.rly) + argv)
        self._wait_ready()

    def acceptable_exit(self, rc: int) -> bool:
        return rc in (0, -signal.SIGTERM)


def make_relay(lab: Lab, **cfg) -> Relay:
    kind = relay_kind()
    if kind == "cdra":
        return CdraRelay(lab, **cfg)
    if kind == "dhcrelay":
        return DhcrelayRelay(lab, **cfg)
    raise LabError(f"CDRA_E2E_RELAY={kind!r}: expected cdra or dhcrelay")


# --------------------------------------------------------------------------- clients

_MASK2CIDR = r'''
m2c() {
  c=0; IFS=.; set -- $1; unset IFS
  for o in "$@"; do
    case $o in 255) c=$((c+8));; 254) c=$((c+7));; 252) c=$((c+6));; 248) c=$((c+5));;
      240) c=$((c+4));; 224) c=$((c+3));; 192) c=$((c+2));; 128) c=$((c+1));; esac
  done
  echo $c
}
'''

EVENT_MAP = {
    "BOUND": "bound", "REBOOT": "bound", "bound": "bound",
    "RENEW": "renew", "renew": "renew",
    "REBIND": "rebind",
    "RELEASE": "release", "STOPPED": "stop", "STOP": "stop",
    "EXPIRE": "expire", "FAIL": "fail", "TIMEOUT": "fail", "leasefail": "fail",
    "NAK": "nak", "nak": "nak", "deconfig": "deconfig", "PREINIT": "preinit",
}


class Client:
    kind = "?"

    def __init__(self, lab: Lab, cns: ClientNs, *, broadcast: bool = False):
        self.lab = lab
        self.cns = cns
        self.broadcast = broadcast
        self.dir = lab.dir / f"client{cns.index}-{self.kind}"
        self.dir.mkdir()
        self.events_file = self.dir / "events"
        self.events_file.touch()
        self.hook = self.dir / "hook.sh"
        self.proc: Proc | None = None

    def __repr__(self) -> str:
        return f"<{self.kind} in {self.cns.ns}>"

    def write_hook(self, body: str) -> None:
        self.hook.write_text("#!/bin/sh\n# cdra e2e hook: records what the client got and "
                             "configures only this namespace's interface\n"
                             f"REC='{self.events_file}'\n" + body)
        self.hook.chmod(0o755)

    def events(self) -> list[dict[str, str]]:
        out = []
        for line in self.events_file.read_text(errors="replace").splitlines():
            ev = dict(kv.split("=", 1) for kv in line.split("\t") if "=" in kv)
            ev["kind"] = EVENT_MAP.get(ev.get("event", ""), ev.get("event", ""))
            out.append(ev)
        return out

    def wait_event(self, kinds: Iterable[str], after: int = 0, timeout: float = 15,
                   what: str | None = None) -> dict[str, str]:
        kinds = set(kinds)
        def find():
            self.lab.fail_fast()
            for ev in self.events()[after:]:
                if ev["kind"] in kinds:
                    return ev
            return None
        return wait_until(find, timeout, what=what or f"{self.kind} event {sorted(kinds)}")

    def signal_and_wait(self, sig: int, kinds: set[str], timeout: float, what: str) -> dict[str, str]:
        """Signal the client daemon and wait for the next hook event of one of `kinds`."""
        n = len(self.events())
        assert self.proc
        self.proc.send_signal(sig)
        return self.wait_event(kinds, after=n, timeout=timeout, what=what)

    def wait_bound(self, timeout: float = 15, after: int = 0) -> dict[str, str]:
        ev = self.wait_event({"bound"}, after=after, timeout=timeout,
                             what=f"{self.kind} to get a lease")
        self.lease = ev
        ip = ev["ip"]
        wait_until(lambda: ip in self.cns.ipv4_addrs(), 5,
                   what=f"{ip} configured on {self.cns.ns} {self.cns.iface}")
        # the relay's kernel routes the server's unicast ACKs to this address
        pin_neighbor(self.lab.rly, DOWN_IF, ip, self.cns.mac)
        return ev

    def renew(self, timeout: float = 15) -> dict[str, str]:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def restart(self, *, deconfigure: bool = True, sig: int = signal.SIGTERM) -> int:
        """Stop the client without a release (SIGTERM by default: none of the three
        clients releases on it), optionally remove its address (as a reboot would), and
        start it again with what it remembers (dhclient's and dhcpcd's lease files: an
        INIT-REBOOT; udhcpc remembers nothing: a DISCOVER). Returns the event count before
        the restart, for wait_bound(after=...)."""
        if self.proc:
            self.proc.stop(sig)
        if deconfigure:
            self.cns.flush_addrs()
        n = len(self.events())
        self.start()
        return n

    def diagnostics(self) -> str:
        return (f"---- client {self.kind} {self.cns.ns} mac {self.cns.mac} events ----\n"
                + self.events_file.read_text(errors="replace"))


class Udhcpc(Client):
    kind = "udhcpc"

    def start(self) -> None:
        self.write_hook(_MASK2CIDR + r'''
printf 'client=udhcpc\tevent=%s\tip=%s\tmask=%s\trouter=%s\tserver_id=%s\tlease=%s\tmessage=%s\ttime=%s\n' \
  "$1" "$ip" "$subnet" "$router" "$serverid" "$lease" "$message" "$(date +%s.%N)" >>"$REC"
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set dev "$interface" up ;;
  bound|renew)
    ip addr replace "$ip/$(m2c "${subnet:-255.255.255.0}")" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done ;;
esac
exit 0
''')
        argv = [sbin("udhcpc"), "-i", self.cns.iface, "-f", "-t", "5", "-T", "2",
                "-s", str(self.hook), "-x", "hostname:cdra-e2e"]
        if self.broadcast:
            argv.append("-B")
        self.proc = self.lab.spawn(f"udhcpc-c{self.cns.index}", nsexec(self.cns.ns) + argv)

    def renew(self, timeout: float = 15) -> dict[str, str]:
        return self.signal_and_wait(signal.SIGUSR1, {"renew", "bound"}, timeout, "udhcpc renewal")

    def release(self) -> None:
        self.signal_and_wait(signal.SIGUSR2, {"deconfig"}, 5, "udhcpc release")


class Dhclient(Client):
    kind = "dhclient"

    def __init__(self, lab: Lab, cns: ClientNs, *, init_reboot_ip: str | None = None, **kw):
        """init_reboot_ip: start with a lease file naming that address (INIT-REBOOT)."""
        super().__init__(lab, cns, **kw)
        self.init_reboot_ip = init_reboot_ip

    def _write_lease(self, ip: str) -> None:
        far = time.strftime("%w %Y/%m/%d %H:%M:%S", time.gmtime(time.time() + 3600))
        self.leasefile.write_text(textwrap.dedent(f"""\
            lease {{
              interface "{self.cns.iface}";
              fixed-address {ip};
              option subnet-mask 255.255.255.0;
              option routers {ROUTER};
              option dhcp-lease-time 7200;
              option dhcp-message-type 5;
              option dhcp-server-identifier {SERVER_IP};
              renew {far};
              rebind {far};
              expire {far};
            }}
            """))

    def start(self) -> None:
        self.write_hook(_MASK2CIDR + r'''
printf 'client=dhclient\tevent=%s\tip=%s\tmask=%s\trouter=%s\tserver_id=%s\tlease=%s\tt1=%s\told_ip=%s\ttime=%s\n' \
  "$reason" "$new_ip_address" "$new_subnet_mask" "$new_routers" "$new_dhcp_server_identifier" \
  "$new_dhcp_lease_time" "$new_dhcp_renewal_time" "$old_ip_address" "$(date +%s.%N)" >>"$REC"
case "$reason" in
  PREINIT) ip link set dev "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
      ip -4 addr flush dev "$interface"
    fi
    ip addr replace "$new_ip_address/$(m2c "${new_subnet_mask:-255.255.255.0}")" dev "$interface"
    for r in $new_routers; do ip route replace default via "$r" dev "$interface"; break; done ;;
  EXPIRE|FAIL|RELEASE|TIMEOUT) ip -4 addr flush dev "$interface" ;;
esac
exit 0
''')
        self.conf = self.dir / "dhclient.conf"
        self.conf.write_text("# cdra e2e lab\ntimeout 30;\nretry 2;\ninitial-interval 1;\n"
                             "backoff-cutoff 2;\n"
                             "request subnet-mask, broadcast-address, routers, "
                             "dhcp-lease-time, dhcp-renewal-time, dhcp-rebinding-time;\n")
        self.leasefile = self.dir / "dhclient.leases"
        self.pidfile = self.dir / "dhclient.pid"
        if self.init_reboot_ip:
            self._write_lease(self.init_reboot_ip)
        self.proc = self.lab.spawn(f"dhclient-c{self.cns.index}", nsexec(self.cns.ns) + [
            sbin("dhclient"), "-4", "-d", "-v", "-cf", str(self.conf), "-sf", str(self.hook),
            "-lf", str(self.leasefile), "-pf", str(self.pidfile), self.cns.iface])

    def renew(self, timeout: float = 15) -> dict[str, str]:
        """dhclient has no renew signal: the server hands out a short T1 (renew_time)."""
        n = len(self.events())
        return self.wait_event({"renew"}, after=n, timeout=timeout,
                               what="dhclient renewal at T1")

    def wait_bound(self, timeout: float = 15, after: int = 0) -> dict[str, str]:
        ev = super().wait_bound(timeout, after)
        # dhclient writes its lease file only after the hook returns; `dhclient -r` (and a
        # restart) need it.
        wait_until(lambda: f"fixed-address {ev['ip']};" in self.leasefile.read_text(
            errors="replace") if self.leasefile.exists() else False, 5,
            what="dhclient to write its lease file")
        return ev

    def release(self) -> None:
        """Stop the running dhclient (by our PID, no release), then `dhclient -r`."""
        assert self.proc
        self.proc.stop(signal.SIGTERM)
        n = len(self.events())
        r = self.lab.spawn(f"dhclient-r-c{self.cns.index}", nsexec(self.cns.ns) + [
            sbin("dhclient"), "-4", "-r", "-v", "-cf", str(self.conf), "-sf", str(self.hook),
            "-lf", str(self.leasefile), "-pf", str(self.dir / "dhclient-r.pid"),
            self.cns.iface])
        rc = r.wait(15)
        if rc is None:
            r.stop()
            raise LabError("dhclient -r did not finish")
        self.wait_event({"release"}, after=n, timeout=5, what="dhclient RELEASE hook")


class Dhcpcd(Client):
    kind = "dhcpcd"

    def start(self) -> None:
        # dhcpcd configures the address and routes itself (in this namespace only: its
        # netlink socket lives here); the hook only records.
        self.write_hook(r'''
printf 'client=dhcpcd\tevent=%s\tip=%s\tmask=%s\trouter=%s\tserver_id=%s\tlease=%s\told_ip=%s\ttime=%s\n' \
  "$reason" "$new_ip_address" "$new_subnet_mask" "$new_routers" \
  "$new_dhcp_server_identifier" "$new_dhcp_lease_time" "$old_ip_address" "$(date +%s.%N)" >>"$REC"
exit 0
''')
        self.conf = self.dir / "dhcpcd.conf"
        self.conf.write_text("# cdra e2e lab\nipv4only\nnoipv4ll\nduid\n"
                             "option subnet_mask, routers, broadcast_address\n"
                             "option rapid_commit\nrequire dhcp_server_identifier\n")
        state = self.dir / "state"
        state.mkdir(exist_ok=True)  # kept across restart(): dhcpcd's lease file lives here
        Path("/var/lib/dhcpcd").mkdir(parents=True, exist_ok=True)
        script = (f"mount -t tmpfs tmpfs /run && mkdir -p /run/dhcpcd && "
                  f"mount --bind '{state}' /var/lib/dhcpcd && "
                  f"exec {sbin('dhcpcd')} -4 -B -d --noarp --nodelay -t 20 "
                  f"-f '{self.conf}' -c '{self.hook}' {self.cns.iface}")
        self.proc = self.lab.spawn(f"dhcpcd-c{self.cns.index}", nsexec(self.cns.ns) + [
            "unshare", "-m", "--propagation", "private", "sh", "-c", script])

    def renew(self, timeout: float = 15) -> dict[str, str]:
        return self.signal_and_wait(signal.SIGUSR1, {"renew", "bound"}, timeout, "dhcpcd renewal")

    def release(self) -> None:
        self.signal_and_wait(signal.SIGALRM, {"release", "stop"}, 5, "dhcpcd RELEASE hook")


CLIENTS: dict[str, type[Client]] = {"dhclient": Dhclient, "udhcpc": Udhcpc, "dhcpcd": Dhcpcd}


# --------------------------------------------------------------------------- raw packets

def send_frames(cns: ClientNs, frames: Iterable[bytes], burst: int = 0,
                pause: float = 0.002) -> int:
    """Send raw frames from the client namespace; with `burst`, pause after each burst so
    a receiver's socket buffer is not simply overrun (then every frame gets parsed)."""
    s = cns.packet_socket()
    n = 0
    try:
        for fr in frames:
            try:
                s.send(fr)
                n += 1
            except OSError:
                time.sleep(0.001)
            if burst and n % burst == 0:
                time.sleep(pause)
    finally:
        s.close()
    return n


def client_broadcast_frame(cns: ClientNs, payload: bytes) -> bytes:
    return dp.udp_ip_frame(payload, src_mac=cns.mac)


def raw_exchange(cns: ClientNs, payload: bytes, xid: int, want: Callable[[dp.Dhcp], bool],
                 timeout: float = 6, retransmit: float = 2.0) -> list[dp.Frame]:
    """Broadcast `payload` from the client ns, collect DHCP replies with `xid` until
    `want(reply)` or timeout (retransmitting every `retransmit` s)."""
    s = cns.packet_socket(timeout=0.1)
    got: list[dp.Frame] = []
    try:
        frame = client_broadcast_frame(cns, payload)
        s.send(frame)
        last = now()
        deadline = now() + timeout
        while now() < deadline:
            if now() - last > retransmit:
                s.send(frame)
                last = now()
            try:
                data, addr = s.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            f = dp.parse_frame(time.time(), data)
            if f and f.dhcp and f.dport == 68 and f.dhcp.op == 2 and f.dhcp.xid == xid:
                got.append(f)
                if want(f.dhcp):
                    return got
    finally:
        s.close()
    return got


def new_xid() -> int:
    return int.from_bytes(os.urandom(4), "big")


# --------------------------------------------------------------------------- proxy mode

def start_proxy(lab: Lab, server: str, *, server_kw: dict | None = None,
                proxy: dict[str, Any] | None = None,
                **relay_kw) -> tuple["Server", Capture, Capture]:
    """Server (with a capture on its interface), a capture on the relay's client side, and
    cdra in proxy mode (lab-local store, control socket, metrics). Returns the server, the
    server-side capture and the relay's downstream capture."""
    srv = lab.start_server(server, **(server_kw or {}))
    scap = lab.capture(lab.srv, SERVER_IF, "server")
    rcap = lab.capture(lab.rly, DOWN_IF, "relay-rd0")
    lab.start_relay(**proxy_relay_kw(lab, proxy=proxy, **relay_kw))
    return srv, scap, rcap


def proxy_bound_client(lab: Lab, kind: str, cns: ClientNs | None = None, timeout: float = 20,
                       **kw) -> tuple["Client", Capture, str]:
    """A client (with a capture in its namespace) bound through cdra in proxy mode: its
    server identifier must be cdra's downstream address."""
    cns = cns or lab.add_client()
    ccap = lab.capture(cns.ns, cns.iface, f"client{cns.index}")
    cl = lab.start_client(kind, cns, **kw)
    ev = cl.wait_bound(timeout=timeout)
    ip = ev.get("ip", "")
    if not dp.ip_in(ip, POOL_START, POOL_END):
        raise LabError(f"{kind}: address {ip!r} not in the pool: {ev}")
    if ev.get("server_id") != RELAY_DOWN_IP:
        raise LabError(f"{kind}: server identifier {ev.get('server_id')!r}, expected cdra's "
                       f"{RELAY_DOWN_IP}: {ev}")
    return cl, ccap, ip


def from_client(cap: Capture, mac: str, since: float = 0.0) -> list[dp.Frame]:
    """Requests (op 1) for client `mac` in `cap` at or after wall time `since`."""
    return cap.dhcp(lambda f: f.dhcp.op == 1 and f.dhcp.chaddr == mac and f.ts >= since)


def to_client(cap: Capture, mac: str, since: float = 0.0) -> list[dp.Frame]:
    """Replies (op 2, to port 68) for client `mac` in `cap` at or after `since`."""
    return cap.dhcp(lambda f: f.dhcp.op == 2 and f.dport == 68 and f.dhcp.chaddr == mac
                    and f.ts >= since)


def describe_frames(frames: Iterable[dp.Frame]) -> str:
    return "\n".join(f.describe() for f in frames) or "(none)"


# --------------------------------------------------------------------------- a pair of relays

# A pair of cdra relays sharing one table in Redis (issue 15 item 3, test_pair.py):
#
#   client ns eth0 --veth-- pN |              | up0 -- rd0 relay A (10.77.1.2) ru0 (10.77.0.2) -- sa0 |
#                              | seg ns br0   |                                                     | srv ns bridge sv0
#                              |              | up1 -- rd0 relay B (10.77.1.3) ru0 (10.77.0.3) -- sb0 | 10.77.0.1 (Kea)
#                                                                     redis ns eth0 (10.77.0.9) -- sr0 |
#
# keepalived in both relay namespaces moves two VRRP addresses together (one sync group):
# 10.77.1.1 (RELAY_DOWN_IP, the clients' router and server identifier, giaddr) on rd0 and
# PAIR_UP_VIP on ru0 (the server's route to the client net). VRRP adverts are unicast to the
# peer's address (no multicast needed inside the namespaces). A has the higher priority and
# preempts: when it comes back, the address moves back to it.
PAIR_A_DOWN = "10.77.1.2"
PAIR_B_DOWN = "10.77.1.3"
PAIR_A_UP = "10.77.0.2"
PAIR_B_UP = "10.77.0.3"
PAIR_UP_VIP = "10.77.0.4"
REDIS_IP = "10.77.0.9"
REDIS_PORT = 6379
REDIS_PREFIX = "cdra:pair"


class PairLab(Lab):
    """Two relay namespaces (`rly`: relay A, `rly2`: relay B) on one client segment and one
    server segment, Redis in a namespace of its own on the server segment."""

    def __init__(self, name: str = "pair"):
        super().__init__(name)
        self.rly2 = f"{self.prefix}-rly2"
        self.rds = f"{self.prefix}-rds"
        self.relays: dict[str, PairRelay] = {}
        self.keepalived: dict[str, Proc] = {}
        self.redis: Proc | None = None

    def relay_ns(self, which: str) -> str:
        return {"A": self.rly, "B": self.rly2}[which]

    def setup(self) -> "PairLab":
        if os.geteuid() != 0:
            raise LabError("the e2e lab needs root (network namespaces)")
        sweep_stale()
        self.arp_fulls_at_start = arp_table_fulls()
        for ns in (self.srv, self.rly, self.rly2, self.seg, self.rds):
            self._add_ns(ns)
        ip = ["ip"]
        for rns, srv_port, seg_port in ((self.rly, "sa0", "up0"), (self.rly2, "sb0", "up1")):
            run(nsexec(rns) + ["sh", "-c", "echo 1 >/proc/sys/net/ipv4/ip_forward"])
            run(ip + ["link", "add", UP_IF, "netns", rns, "type", "veth", "peer", "name",
                      srv_port, "netns", self.srv])
            run(ip + ["link", "add", DOWN_IF, "netns", rns, "type", "veth", "peer", "name",
                      seg_port, "netns", self.seg])
        run(ip + ["link", "add", "eth0", "netns", self.rds, "type", "veth", "peer", "name",
                  "sr0", "netns", self.srv])
        batch = {
            self.seg: ["link add br0 type bridge stp_state 0 forward_delay 0",
                       "link set up0 master br0", "link set up1 master br0",
                       "link set up0 up", "link set up1 up", "link set br0 up"],
            self.srv: ["link add sv0 type bridge stp_state 0 forward_delay 0",
                       "link set sa0 master sv0", "link set sb0 master sv0",
                       "link set sr0 master sv0", "link set sa0 up", "link set sb0 up",
                       "link set sr0 up", "link set sv0 up",
                       f"addr add {SERVER_IP}/24 dev sv0",
                       f"route add {CLIENT_NET} via {PAIR_UP_VIP}"],
            self.rly: [f"addr add {PAIR_A_DOWN}/24 dev {DOWN_IF}",
                       f"addr add {PAIR_A_UP}/24 dev {UP_IF}",
                       f"link set {DOWN_IF} up", f"link set {UP_IF} up"],
            self.rly2: [f"addr add {PAIR_B_DOWN}/24 dev {DOWN_IF}",
                        f"addr add {PAIR_B_UP}/24 dev {UP_IF}",
                        f"link set {DOWN_IF} up", f"link set {UP_IF} up"],
            self.rds: [f"addr add {REDIS_IP}/24 dev eth0", "link set eth0 up"],
        }
        for ns, cmds in batch.items():
            run(["ip", "-n", ns, "-batch", "-"], input="\n".join(cmds) + "\n")
        for ns, dev in ((self.srv, "sv0"), (self.rly, UP_IF), (self.rly, DOWN_IF),
                        (self.rly2, UP_IF), (self.rly2, DOWN_IF), (self.rds, "eth0")):
            wait_link_up(ns, dev)
        self.relay_down_mac = self.mac_of(self.rly, DOWN_IF)
        self.mac = {"A": self.relay_down_mac, "B": self.mac_of(self.rly2, DOWN_IF)}
        return self

    def add_client(self, mac: str | None = None) -> ClientNs:
        """A client on the shared segment. Its router's MAC is not pinned: it moves with the
        virtual address (keepalived's gratuitous ARPs)."""
        return self._client_on_segment(mac, "79")

    # ---- Redis

    def start_redis(self) -> Proc:
        """redis-server in its namespace, listening on REDIS_IP; no snapshots unless asked
        (`redis_cli("SHUTDOWN", "SAVE")`), its files under the lab dir."""
        d = self.dir / "redis"
        d.mkdir(exist_ok=True)
        p = self.spawn("redis", nsexec(self.rds) + [
            "redis-server", "--bind", REDIS_IP, "--port", str(REDIS_PORT),
            "--protected-mode", "no", "--save", "", "--appendonly", "no",
            "--dir", str(d), "--daemonize", "no", "--logfile", ""])
        self.redis = p
        wait_until(lambda: self.redis_cli("PING", check=False) == "PONG", 10,
                   what="redis-server to answer")
        return p

    def stop_redis(self, save: bool = False) -> None:
        if self.redis and self.redis.alive():
            if save:
                self.redis_cli("SHUTDOWN", "SAVE", check=False)
                self.redis.wait(5)
            self.redis.stop()

    def redis_cli(self, *args: str, check: bool = True) -> str:
        r = run(nsexec(self.rds) + ["redis-cli", "-h", REDIS_IP, "-p", str(REDIS_PORT), *args],
                check=check, timeout=10)
        return r.stdout.strip()

    def stored_records(self) -> int:
        """Client records in Redis: the hash's fields but the shared reply templates (record
        format 3, paper 5.7: fields 0xFF + id)."""
        keys = self.redis_cli("--no-raw", "HKEYS", f"{REDIS_PREFIX}:records")
        fields = [line.split(") ", 1)[1] for line in keys.splitlines() if ") " in line]
        return sum(1 for f in fields if not f.startswith('"\\xff'))

    # ---- keepalived

    def start_keepalived(self, which: str, *, track_cdra: bool = False) -> Proc:
        """keepalived (VRRP only) in relay `which`'s namespace: A priority 150, B 100.
        `track_cdra`: a check script (`pgrep` of that relay's cdra, every second) takes the
        addresses away from a router whose cdra is not running."""
        ns = self.relay_ns(which)
        a, b = (PAIR_A_DOWN, PAIR_A_UP), (PAIR_B_DOWN, PAIR_B_UP)
        me, peer = (a, b) if which == "A" else (b, a)
        prio = 150 if which == "A" else 100
        conf = self.dir / f"keepalived-{which}.conf"
        check, track = "", ""
        if track_cdra:
            check = textwrap.dedent(f"""\
                vrrp_script cdra_running {{
                    script "/usr/bin/pgrep -f -- {self.dir / f'cdra-{which}.toml'}"
                    interval 1
                    fall 1
                    rise 1
                }}
                """)
            track = "track_script {\n        cdra_running\n    }"
        conf.write_text(check + textwrap.dedent(f"""\
            global_defs {{
                router_id cdra-pair-{which}
                script_user root
                vrrp_garp_master_delay 1
                vrrp_garp_master_repeat 3
            }}
            vrrp_sync_group pair {{
                group {{
                    down
                    up
                }}
            }}
            vrrp_instance down {{
                state BACKUP
                interface {DOWN_IF}
                virtual_router_id 51
                priority {prio}
                advert_int 1
                unicast_src_ip {me[0]}
                unicast_peer {{
                    {peer[0]}
                }}
                virtual_ipaddress {{
                    {RELAY_DOWN_IP}/24 dev {DOWN_IF}
                }}
                {track}
            }}
            vrrp_instance up {{
                state BACKUP
                interface {UP_IF}
                virtual_router_id 52
                priority {prio}
                advert_int 1
                unicast_src_ip {me[1]}
                unicast_peer {{
                    {peer[1]}
                }}
                virtual_ipaddress {{
                    {PAIR_UP_VIP}/24 dev {UP_IF}
                }}
            }}
            """))
        d = self.dir
        p = self.spawn(f"keepalived-{which}", nsexec(ns) + [
            sbin("keepalived"), "--dont-fork", "--log-console", "--vrrp", "--use-file", str(conf),
            "--pid", str(d / f"ka-{which}.pid"), "--vrrp_pid", str(d / f"ka-{which}-vrrp.pid"),
            "--checkers_pid", str(d / f"ka-{which}-check.pid")])
        self.keepalived[which] = p
        return p

    def holds_vip(self, which: str) -> bool:
        out = run(["ip", "-n", self.relay_ns(which), "-o", "-4", "addr", "show", "dev", DOWN_IF]).stdout
        return f" {RELAY_DOWN_IP}/" in out

    # ---- cdra

    def start_pair_relay(self, which: str, **kw) -> "PairRelay":
        r = PairRelay(self, which, **kw)
        self.components.append(r)
        self.relays[which] = r
        if which == "A":
            self.relay = r
        r.start()
        return r


def pair_relay_kw(lab: PairLab, which: str, *, proxy: dict[str, Any] | None = None,
                  **kw) -> dict[str, Any]:
    """cdra in proxy mode as one of the pair: downstream address the virtual one, the table
    in the lab's Redis, `[ha] virtual_address`."""
    cfg: dict[str, Any] = {
        "mode": "proxy", "proxy": dict(proxy or {}), "address": RELAY_DOWN_IP,
        "store_path": str(lab.dir / f"unused-{which}.redb"),
        "store_keys": {"backend": "redis", "url": f"redis://{REDIS_IP}:{REDIS_PORT}/0",
                       "key_prefix": REDIS_PREFIX, "timeout": "1s",
                       "retry_interval": "1s", "retry_max_interval": "2s"},
        "sections": {"ha": {"virtual_address": RELAY_DOWN_IP}},
        "control_socket": str(lab.dir / f"cdra-{which}.sock"),
        "metrics_listen": METRICS_LISTEN,
    }
    cfg.update(kw)
    return cfg


class PairRelay(CdraRelay):
    """cdra in relay `which`'s namespace of a PairLab."""

    def __init__(self, lab: PairLab, which: str, **cfg):
        super().__init__(lab, **cfg)
        self.which = which
        self.ns = lab.relay_ns(which)

    def __repr__(self) -> str:
        return f"<cdra relay {self.which}>"

    def start(self) -> None:
        b = cdra_bin()
        if not os.access(b, os.X_OK):
            raise LabError(f"cdra binary not found at {b} (set CDRA_BIN, or "
                           "cargo build --release)")
        self.conf = self.lab.dir / f"cdra-{self.which}.toml"
        self.conf.write_text(cdra_config(**self.cfg))
        self.proc = self.lab.spawn(f"relay-cdra-{self.which}", nsexec(self.ns) + [
            str(b), "run", "--config", str(self.conf)], env={"RUST_BACKTRACE": "1"})
        self._wait_ready()

    def metrics_text(self) -> str:
        return http_get(self.ns, self.cfg["metrics_listen"], "/metrics")
