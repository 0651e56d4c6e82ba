"""pytest glue for the e2e lab: fixtures, per-test timeout, diagnostics, interrupt safety."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lab as L  # noqa: E402

TEST_TIMEOUT = int(os.environ.get("CDRA_E2E_TEST_TIMEOUT", "90"))
ARTIFACTS = os.environ.get("CDRA_E2E_ARTIFACTS", str(L.REPO_ROOT / "target" / "e2e-artifacts"))
NEEDED = ["ip", "unshare", "tcpdump", "kea-dhcp4", "dhcpd", "dnsmasq", "dhclient", "udhcpc",
          "dhcpcd", "tc", "yersinia", "dhcpstarv", "nft"]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    config.addinivalue_line("markers", "relay_only(kind): runs only against that relay")
    config.addinivalue_line("markers", "e2e_timeout(seconds): this test's own time limit "
                            "(at least CDRA_E2E_TEST_TIMEOUT)")
    # SIGTERM/SIGHUP behave like Ctrl-C: pytest unwinds and every fixture cleans up.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)


def _version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        out = (r.stdout + r.stderr).strip().splitlines()
        return out[0] if out else "?"
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


def pytest_report_header(config):
    kind = L.relay_kind()
    lines = [f"cdra e2e: relay under test = {kind}"]
    if kind == "cdra":
        lines.append(f"cdra e2e: CDRA_BIN = {L.cdra_bin()}")
    return lines


@pytest.fixture(scope="session", autouse=True)
def _preflight():
    if os.geteuid() != 0:
        pytest.exit("the e2e suite needs root (network namespaces)", returncode=3)
    missing = []
    for b in NEEDED + (["dhcrelay"] if L.relay_kind() == "dhcrelay" else []):
        try:
            L.sbin(b)
        except L.LabError:
            missing.append(b)
    if missing:
        pytest.exit(f"missing {', '.join(missing)}: run scripts/e2e-deps", returncode=3)
    if L.relay_kind() not in ("cdra", "dhcrelay"):
        pytest.exit(f"CDRA_E2E_RELAY={L.relay_kind()!r}: expected cdra or dhcrelay", returncode=3)
    if L.relay_kind() == "cdra" and not os.access(L.cdra_bin(), os.X_OK):
        pytest.exit(f"cdra binary not found at {L.cdra_bin()}: build it "
                    "(cargo build --release) or set CDRA_BIN", returncode=3)
    L.sweep_stale()
    if ARTIFACTS:  # artifacts of an earlier run would be confusing
        for old in Path(ARTIFACTS).glob("test_*"):
            shutil.rmtree(old, ignore_errors=True)
    yield
    L.cleanup_all(remove_dirs=False)  # the last test's report still needs its dir


def pytest_sessionfinish(session, exitstatus):
    L.cleanup_all(remove_dirs=True)


def fresh_lab(request, lab_class=L.Lab):
    """A fresh topology of `lab_class` per test; everything in it is stopped and deleted
    afterwards (a generator for a fixture to `yield from`)."""
    lb = lab_class(request.node.name)
    request.node._cdra_lab = lb
    try:
        lb.setup()
        yield lb
    finally:
        problems = lb.cleanup()
        if problems:
            pytest.fail("lab teardown: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def lab(request):
    """A fresh topology per test; everything in it is stopped and deleted afterwards."""
    yield from fresh_lab(request)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("e2e_timeout")
    limit = max(TEST_TIMEOUT, int(marker.args[0])) if marker else TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded its time limit ({limit}s; CDRA_E2E_TEST_TIMEOUT="
                           f"{TEST_TIMEOUT}s)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    lb: L.Lab | None = getattr(item, "_cdra_lab", None)
    if lb is None:
        return
    dest = Path(ARTIFACTS) / item.name.replace("/", "_") if ARTIFACTS else None
    if rep.failed:
        item._cdra_failed = True
        if not getattr(item, "_cdra_diag_done", False):
            item._cdra_diag_done = True
            try:
                text = lb.diagnostics()
            except Exception as e:  # noqa: BLE001
                text = f"(failed: {e})"
            if dest:
                text += f"\n==== logs, configs and pcaps will be kept in {dest}"
            rep.sections.append(("cdra e2e lab diagnostics", text))
    if rep.when == "teardown":
        if getattr(item, "_cdra_failed", False) and dest:
            try:
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(lb.dir, dest)
                rep.sections.append(("cdra e2e artifacts", f"logs, configs and pcaps: {dest}"))
            except OSError as e:
                rep.sections.append(("cdra e2e artifacts", f"(copy failed: {e})"))
        lb.remove_dir()
