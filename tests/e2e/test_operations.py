"""Operations (issue 13 items 1 and 2): interfaces that come and go, and reloads.

- cdra started before its downstream interface exists waits for it (logged, metrics) and
  serves clients within seconds of its creation;
- a link flap (down, up) and an address change are followed; cached clients keep their
  records across the flap and are answered locally after it;
- SIGHUP and `cdra reload` apply a changed configuration, keeping the client table; an
  invalid one is refused with the one-line error `cdra check` gives (naming the key) and
  the old configuration keeps running; `cdra check --running` says what would change.

Skipped for CDRA_E2E_RELAY=dhcrelay.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

import dhcp_packets as dp
import lab as L

pytestmark = pytest.mark.skipif(L.relay_kind() != "cdra", reason="cdra's operations (CDRA_E2E_RELAY=cdra)")


def note(msg: str) -> None:
    print(f"[operations] {msg}")


def delete_downstream(lab: L.Lab) -> None:
    """Remove the relay's rd0 (and its peer up0 on the segment bridge)."""
    L.run(["ip", "-n", lab.rly, "link", "del", L.DOWN_IF])


def create_downstream(lab: L.Lab, address: str = L.RELAY_DOWN_IP) -> None:
    """(Re)create rd0 <-> up0, up0 on the segment bridge, rd0 with `address`/24."""
    L.run(["ip", "link", "add", L.DOWN_IF, "netns", lab.rly, "type", "veth", "peer", "name", "up0",
           "netns", lab.seg])
    L.run(["ip", "-n", lab.seg, "-batch", "-"], input="link set up0 master br0\nlink set up0 up\n")
    L.run(["ip", "-n", lab.rly, "-batch", "-"],
          input=f"addr add {address}/24 dev {L.DOWN_IF}\nlink set {L.DOWN_IF} up\n")
    L.wait_link_up(lab.rly, L.DOWN_IF)
    lab.relay_down_mac = lab.mac_of(lab.rly, L.DOWN_IF)


def metric(relay, name: str) -> str:
    return "\n".join(l for l in relay.metrics_text().splitlines() if l.startswith(name))


def test_started_before_its_interface_exists(lab):
    """cdra starts with rd0 missing: it runs, says it waits for rd0 (log, metrics), and
    once rd0 is created with its address a new client is served within seconds."""
    lab.start_server("kea")
    delete_downstream(lab)
    relay = lab.start_relay(**L.proxy_relay_kw(lab, proxy={}))
    relay.proc.wait_log("downstream interface rd0 does not exist; waiting for it", 5)
    assert 'cdra_interface_up{interface="rd0"} 0' in metric(relay, "cdra_interface_up")
    t0 = time.monotonic()
    create_downstream(lab)
    relay.proc.wait_log("downstream interface rd0 is up (10.77.1.1/24)", 3)
    note(f"rd0 followed after {time.monotonic() - t0:.2f}s")
    assert 'cdra_interface_up{interface="rd0"} 1' in metric(relay, "cdra_interface_up")
    cl, _, ip = L.proxy_bound_client(lab, "dhclient", timeout=15)
    note(f"served after rd0 appeared: {ip} ({time.monotonic() - t0:.1f}s)")
    relay.check_alive()


@pytest.mark.parametrize("client", ["dhclient", "udhcpc", "dhcpcd"])
def test_a_flap_keeps_the_table(lab, client):
    """A bound client; rd0 goes down and up again: cdra logs both, the client's record
    stays, and the client's reboot after the flap is answered from the table (the server
    stopped meanwhile, so only cdra can answer it)."""
    srv, scap, _ = L.start_proxy(lab, "kea", proxy={})
    relay = lab.relay
    cl, _, ip = L.proxy_bound_client(lab, client)
    L.run(["ip", "-n", lab.rly, "link", "set", L.DOWN_IF, "down"])
    relay.proc.wait_log("downstream interface rd0 is down; waiting for it", 3)
    assert any(r["address"] == ip for r in relay.cache_records()), "record kept while the link is down"
    L.run(["ip", "-n", lab.rly, "link", "set", L.DOWN_IF, "up"])
    L.wait_link_up(lab.rly, L.DOWN_IF)
    relay.proc.wait_log("downstream interface rd0 is up (10.77.1.1/24)", 3)
    srv.stop()
    n = cl.restart()
    ev = cl.wait_bound(timeout=20, after=n)
    assert ev.get("ip") == ip, f"{client}: {ev}"
    assert 'cdra_interface_changes_total{change="waiting"} 1' in metric(relay, "cdra_interface_changes_total")
    note(f"{client}: {ip} kept across the flap")


def test_an_address_change_is_followed(lab):
    """rd0's address changes (same subnet, another host address): relayed requests carry
    the new giaddr at once, and clients are still served."""
    lab.start_server("kea")
    relay = lab.start_relay()
    scap = lab.capture(lab.srv, L.SERVER_IF, "server")
    L.run(["ip", "-n", lab.rly, "-batch", "-"],
          input=f"addr del {L.RELAY_DOWN_IP}/24 dev {L.DOWN_IF}\naddr add 10.77.1.2/24 dev {L.DOWN_IF}\n")
    relay.proc.wait_log("downstream interface rd0 is up (10.77.1.2/24)", 3)
    cns = lab.add_client()
    cl = lab.start_client("dhclient", cns)
    ev = cl.wait_bound(timeout=20)
    assert dp.ip_in(ev["ip"], L.POOL_START, L.POOL_END)
    relayed = scap.dhcp(lambda f: f.dhcp.op == 1)
    assert relayed and all(f.dhcp.giaddr == "10.77.1.2" for f in relayed), [f.dhcp.giaddr for f in relayed]


def reload_config(lab, relay, **overrides) -> None:
    cfg = dict(relay.cfg)
    cfg.update(overrides)
    relay.conf.write_text(L.cdra_config(**{k: v for k, v in cfg.items() if k != "exec_prefix"}))


def test_sighup_applies_a_new_configuration_and_keeps_the_table(lab):
    srv, _, _ = L.start_proxy(lab, "kea", proxy={})
    relay = lab.relay
    cl, _, ip = L.proxy_bound_client(lab, "dhclient")
    # A second server address (nobody there) and another max_age.
    reload_config(lab, relay, servers=(L.SERVER_IP, "10.77.0.50"), proxy={"max_age": "5d"})
    r = L.run([str(L.cdra_bin()), "check", "--config", str(relay.conf), "--running",
               "--socket", str(relay.cfg["control_socket"])], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '~ servers: ["10.77.0.1"] -> ["10.77.0.1", "10.77.0.50"]' in r.stdout, r.stdout
    assert '+ proxy.max_age = "5d"' in r.stdout, r.stdout
    relay.proc.send_signal(signal.SIGHUP)
    relay.proc.wait_log("reloaded; servers added: 10.77.0.50", 3)
    assert any(r["address"] == ip for r in relay.cache_records()), "the table survives a reload"
    metrics = relay.metrics_text()
    assert 'server="10.77.0.50"' in metrics, "the new server is in the metrics"
    # Cached clients are still answered, from the table (the servers are down).
    srv.stop()
    n = cl.restart()
    assert cl.wait_bound(timeout=20, after=n)["ip"] == ip
    relay.check_alive()


def test_an_invalid_configuration_is_refused_and_the_old_one_keeps_running(lab):
    srv, _, _ = L.start_proxy(lab, "kea", proxy={})
    relay = lab.relay
    cl, _, ip = L.proxy_bound_client(lab, "udhcpc")
    good = relay.conf.read_text()
    relay.conf.write_text(good.replace("max_hops = 4", "max_hops = 20"))
    check = L.run([str(L.cdra_bin()), "check", "--config", str(relay.conf)], check=False)
    assert check.returncode == 2
    expected = check.stderr.strip().split(": ", 1)[1]  # after "cdra"
    relay.proc.send_signal(signal.SIGHUP)
    relay.proc.wait_log("reload refused, the running configuration stays", 3)
    assert "relay.max_hops: 20 is out of range" in relay.proc.text()
    assert expected.split(": ", 1)[1] in relay.proc.text(), (expected, L.tail(relay.proc.text()))
    # Over the control socket too: exit 2 and the same line.
    r = L.run([str(L.cdra_bin()), "reload", "--socket", str(relay.cfg["control_socket"])], check=False)
    assert r.returncode == 2 and "relay.max_hops: 20 is out of range" in r.stderr, r.stdout + r.stderr
    relay.check_alive()
    srv.stop()
    # The old configuration still answers the cached client.
    assert any(rec["address"] == ip for rec in relay.cache_records())
    relay.conf.write_text(good)
    r = L.run([str(L.cdra_bin()), "reload", "--socket", str(relay.cfg["control_socket"])], check=False)
    assert r.returncode == 0 and r.stdout.startswith("ok: reloaded"), r.stdout + r.stderr


def test_removing_an_interface_drops_its_records(lab):
    """A reload without rd0 (rd1 configured instead): rd0's records go, counted."""
    srv, _, _ = L.start_proxy(lab, "kea", proxy={})
    relay = lab.relay
    cl, _, ip = L.proxy_bound_client(lab, "dhcpcd")
    lab.add_second_link()
    reload_config(lab, relay, downstream=L.DOWN2_IF)
    r = L.run([str(L.cdra_bin()), "reload", "--socket", str(relay.cfg["control_socket"])], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"downstream added: rd1; downstream removed: rd0 \(1 record\(s\) dropped", r.stdout), r.stdout
    assert not any(rec["address"] == ip for rec in relay.cache_records())
    assert 'cdra_records_removed_total{cause="interface_removed"} 1' in relay.metrics_text()
