"""pytest fixtures for the mpconv e2e bed (needs root; see bed.py for the topology).

Fixtures (module scope unless noted):
  bed      a fresh Bed (five namespaces) per test module, torn down even on failure
  daemon   mpconv running in the bed's router (default config: uplinks dsl=up1, lte=up2)
  mptcp_server / tcp_server   peers.py server in srv on port 8080 (function scope)
Marker:
  @pytest.mark.e2e_timeout(SECONDS)  per-test wall-clock limit (default 180 s, SIGALRM)
On failure, the daemon's stderr log(s) are attached to the report ("mpconv log").
"""
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bed as bedmod  # noqa: E402

DEFAULT_TIMEOUT = int(os.environ.get("MPC_E2E_TIMEOUT", "180"))


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e_timeout(seconds): per-test wall-clock limit")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="e2e tests need root (network namespaces)")
        for it in items:
            it.add_marker(skip)


@pytest.fixture(autouse=True)
def _e2e_timeout(request):
    m = request.node.get_closest_marker("e2e_timeout")
    secs = int(m.args[0]) if m else DEFAULT_TIMEOUT

    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded its %d s limit" % secs)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(secs)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    b = getattr(item, "funcargs", {}).get("bed")
    if b is None:
        return
    logs = b.daemon_logs()
    if logs:
        rep.sections.append(("mpconv log", logs[-30000:]))


@pytest.fixture(scope="module")
def bed():
    with bedmod.Bed() as b:
        yield b


@pytest.fixture(scope="module")
def daemon(bed):
    d = bed.daemon()
    yield d
    d.stop()


@pytest.fixture
def mptcp_server(bed):
    s = bed.server("mptcp")
    yield s
    s.stop()


@pytest.fixture
def tcp_server(bed):
    s = bed.server("tcp")
    yield s
    s.stop()
