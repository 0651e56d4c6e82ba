"""Issue 10, item 6: least privilege in the process itself.

Once its sockets are open, cdra keeps only CAP_NET_RAW (effective, permitted and bounding
sets; nothing inheritable or ambient), whatever started it, and with `user = "NAME"` runs
as that user. DHCP keeps flowing: relay mode, and proxy mode with address probes (ARP and
ICMP) and a store the user can write. Started the way contrib/cdra.service starts it (an
unprivileged user holding only CAP_NET_BIND_SERVICE and CAP_NET_RAW) it starts and serves.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

import dhcp_packets as dp
import lab as L

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra",
                                reason="cdra's own privileges (CDRA_E2E_RELAY=cdra)")

CAP_NET_BIND_SERVICE = 10
CAP_NET_RAW = 13
ONLY_NET_RAW = 1 << CAP_NET_RAW


def note(msg: str) -> None:
    print(f"[privileges] {msg}")


def status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def check_privileges(relay: L.Relay, uid: int, gid: int, bounding: int = ONLY_NET_RAW) -> None:
    """Every thread of cdra: only CAP_NET_RAW, no inheritable or ambient capability, the
    bounding set `bounding` (reduced to CAP_NET_RAW when cdra may: CAP_SETPCAP), and
    `uid`/`gid` (real, effective, saved, fs)."""
    assert relay.proc
    relay.proc.wait_log("privileges dropped", 5)
    pid = relay.proc.pid
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    assert len(tids) >= 1
    for tid in tids:
        st = status(tid)
        caps = {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
        note(f"thread {tid} ({st.get('Name')}): " + " ".join(f"{k}={v:#x}" for k, v in caps.items())
             + f" Uid={st['Uid']} Gid={st['Gid']}")
        assert caps["CapEff"] == ONLY_NET_RAW, st
        assert caps["CapPrm"] == ONLY_NET_RAW, st
        assert caps["CapInh"] == 0 and caps["CapAmb"] == 0, st
        assert caps["CapBnd"] == bounding, st
        assert st["Uid"].split() == [str(uid)] * 4, st
        assert st["Gid"].split() == [str(gid)] * 4, st
        assert st.get("Groups", "") == "", st


@contextlib.contextmanager
def dir_for(user: pwd.struct_passwd):
    """A fresh directory owned by `user` (the lab's own is root's, mode 0700)."""
    d = Path(tempfile.mkdtemp(prefix="cdra-e2e-priv-"))
    try:
        os.chown(d, user.pw_uid, user.pw_gid)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_relay_started_as_root_keeps_only_net_raw(lab):
    """cdra relay started as root (as from a shell or a dhcrelay unit): every thread keeps
    CAP_NET_RAW only and stays uid 0; a client gets its lease."""
    lab.start_server("kea")
    relay = lab.start_relay(metrics_listen=L.METRICS_LISTEN)
    check_privileges(relay, 0, 0)
    cl = lab.start_client("udhcpc")
    ev = cl.wait_bound(timeout=15)
    assert dp.ip_in(ev.get("ip", ""), L.POOL_START, L.POOL_END), ev
    assert relay.metrics().get("cdra_send_errors_total") == 0
    relay.check_alive()


def test_proxy_as_nobody_with_probes(lab):
    """cdra proxy with `user = "nobody"` and address probes on: uid/gid 65534, CAP_NET_RAW
    only (the management thread and the store writer too); the store, in a directory the
    user owns, is open; a client's first lease is relayed, and after a restart (udhcpc:
    DISCOVER, then REQUEST) it is answered by cdra after an ARP + ICMP probe."""
    nobody = pwd.getpwnam("nobody")
    with dir_for(nobody) as store_dir:
        srv, scap, rcap = L.start_proxy(lab, "kea", server_kw={"lease_time": 600},
                                        store_path=str(store_dir / "clients.redb"), user="nobody")
        relay = lab.relay
        check_privileges(relay, nobody.pw_uid, nobody.pw_gid)
        cl, ccap, ip = L.proxy_bound_client(lab, "udhcpc")
        n = cl.restart()
        ev = cl.wait_bound(timeout=15, after=n)
        assert ev.get("ip") == ip, ev
        m = relay.metrics()
        note(f"probe_started={relay.proxy_event('probe_started')} "
             f"local_ack={relay.proxy_event('local_ack')} "
             f"persistence_up={m.get('cdra_persistence_up')}")
        assert relay.proxy_event("probe_started") >= 1, m
        assert relay.proxy_event("local_ack") >= 1, m
        assert m.get("cdra_persistence_up") == 1, "the store is not open as nobody"
        assert (store_dir / "clients.redb").stat().st_uid == nobody.pw_uid
        assert "clients=1" in relay.cache("counters")
        relay.stop()


def test_started_like_the_systemd_unit(lab):
    """Started as an unprivileged user holding only CAP_NET_BIND_SERVICE and CAP_NET_RAW
    (ambient, as contrib/cdra.service does with DynamicUser and AmbientCapabilities), with
    `user` naming that same user: cdra starts, drops CAP_NET_BIND_SERVICE, and relays."""
    nobody = pwd.getpwnam("nobody")
    caps = "+net_bind_service,+net_raw"
    prefix = [shutil.which("setpriv") or "setpriv", f"--reuid={nobody.pw_uid}",
              f"--regid={nobody.pw_gid}", "--clear-groups", f"--inh-caps=-all,{caps}",
              f"--ambient-caps={caps}", f"--bounding-set=-all,{caps}", "--"]
    lab.start_server("kea")
    # cdra reads its configuration as that user: the lab directory must be traversable.
    mode = lab.dir.stat().st_mode & 0o777
    os.chmod(lab.dir, 0o711)
    try:
        with dir_for(nobody) as run_dir:
            relay = lab.start_relay(user="nobody", exec_prefix=prefix,
                                    control_socket=str(run_dir / "control.sock"),
                                    metrics_listen=L.METRICS_LISTEN)
            # Without CAP_SETPCAP the bounding set stays what the starter left.
            check_privileges(relay, nobody.pw_uid, nobody.pw_gid,
                             bounding=ONLY_NET_RAW | 1 << CAP_NET_BIND_SERVICE)
            cl = lab.start_client("udhcpc")
            ev = cl.wait_bound(timeout=15)
            assert dp.ip_in(ev.get("ip", ""), L.POOL_START, L.POOL_END), ev
            assert "send_errors=0" in relay.cache("counters")
            relay.stop()
    finally:
        os.chmod(lab.dir, mode)
