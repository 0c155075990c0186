"""Uplinks that come and go (issue 4): failover, backup uplinks, make-before-break handover.

    cli ── rtr (mpconv) ─up1─ isp1 ─┐        delay: examples/nfq_delay in isp1/isp2 (both
                        └─up2─ isp2 ─ srv    directions); shaping: tbf (bed.shape)

Cuts happen at the ISP end: `ip link set cpe down` in the ISP's namespace (the router's
interface loses its carrier), or a silent blackhole (DROP in the ISP's raw PREROUTING, link
up), which only the daemon's probes can notice. The client records its receive timeline
(peers.py --timeline); "gap" is the longest interval without new in-order bytes at the
client among those ending after the event.

Figures are printed (run with -s to see them): FIG9 sack=... gap=..., HANDOVER gap=..., BACKUP
share=...

Implicit mode: the server is kernel MPTCP in srv. Explicit mode: the concentrator in srv
relays to a plain TCP server in dst.
"""
import contextlib
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bed as bedmod  # noqa: E402
from checks import MB, brief  # noqa: E402

DELAY_MS = 30            # per direction on each path: base RTT 60 ms
BASE_RTT = 2 * DELAY_MS / 1000.0
RATE = "10mbit"
# With 30 ms each way, the shapers get a queue of 200 ms at 10 Mbit/s (250 KB, > 2 BDP): the
# server's congestion control (BBR, this host's default) does not overflow it, so a transfer
# sees no congestion losses and the gaps measured are the cut's or the handover's (with the
# bed's default 50 ms queue, loss recoveries alone leave gaps of about 2 x RTT).
QUEUE = "200ms"
CPORT = bedmod.CONC_PORT
ALLOW = ["100.64.0.0/16", bedmod.ISP2_NAT4 + "/32"]
UPLINK_OF = {"dsl": "up1", "lte": "up2"}
NAME_OF = {"up1": "dsl", "up2": "lte"}

# Modes of the cut/restore cycle tests (both by default; MPC_CYCLE_MODES=explicit for one).
CYCLE_MODES = os.environ.get("MPC_CYCLE_MODES", "implicit,explicit").split(",")

# Probes for the blackhole tests: ICMP to the server (reachable through either uplink).
PROBES = {"probe": "icmp", "probe_target": [bedmod.SRV4], "probe_interval": "0.2",
          "probe_timeout": "0.5", "probe_down": "3", "probe_up": "2"}


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def bed():
    with bedmod.Bed(dst=True) as b:
        yield b


@pytest.fixture
def srv(bed):
    s = bed.server("mptcp")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def conc(bed):
    c = bed.concentrator(name="conc", listen="%s:%d" % (bedmod.SRV4, CPORT), allow=ALLOW,
                         connect_timeout="3")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def dst_server(bed):
    s = bed.server("tcp", role="dst", port=8080, bind=(bedmod.DST4,))
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _clean_paths(bed):
    """Every test starts and ends with both lines up, no blackhole, no delay, no shaping,
    SACK on in the client."""
    yield
    for up in ("up1", "up2"):
        bed.restore_path(up)
        with contextlib.suppress(Exception):
            bed.link(up, True)
    bed.undelay()
    bed.unshape()
    bed.sysctl("cli", {"net.ipv4.tcp_sack": 1})


@contextlib.contextmanager
def daemon(bed, mode="implicit", uplink_opts=None):
    extra = {"log_level": "debug"}
    if mode == "explicit":
        extra["concentrator"] = "%s:%d" % (bedmod.SRV4, CPORT)
    d = bed.daemon(mode=mode, extra_main=extra, uplink_opts=uplink_opts)
    try:
        yield d
        assert d.alive(), "mpconv died; log:\n" + d.log_text()[-3000:]
    finally:
        d.stop()


# ------------------------------------------------------------------------------ helpers
def target(mode):
    return bedmod.SRV4 if mode == "implicit" else bedmod.DST4


def uplink_bytes(bed):
    """{up: rx+tx bytes} of the router's uplinks."""
    return {up: sum(bed.iface_bytes("rtr", up)) for up in ("up1", "up2")}


def wait_subflows(d, n, timeout=10):
    """Wait until the daemon's (single) connection has n established subflows; return status."""
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        st = d.status()
        conns = st.get("connections", [])
        if conns and sum(1 for f in conns[0]["subflows"] if f["state"] == "established") >= n:
            return st
        time.sleep(0.05)
    raise AssertionError("no connection with %d established subflows within %ss: %s"
                         % (n, timeout, brief(st)))


def uplink_state(d, name):
    for u in d.status().get("uplinks", []):
        if u["name"] == name:
            return u.get("state")
    return None


def wait_uplink_state(d, name, want, timeout):
    deadline = time.monotonic() + timeout
    s = None
    while time.monotonic() < deadline:
        s = uplink_state(d, name)
        if s == want:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError("uplink %s is %r, not %r, after %ss" % (name, s, want, timeout))


def client_bg(bed, mode, size, dest, timeout=60):
    return bed.client(mode, size, server=dest, background=True, timeline=(mode == "get"),
                      timeout=timeout)


def finish(bed, proc, d, what, timeout=120):
    res = bed.client_result(proc, timeout=timeout)
    r = res["results"][0]
    if not r["ok"]:
        try:
            st = brief(d.status(), limit=6000)
        except Exception as e:  # noqa: BLE001 - the status is only a diagnostic here
            st = "(no status: %s)" % e
        # the server side's kernel view: the MPTCP sockets and their subflows in srv (the
        # concentrator's in explicit mode, the server's in implicit mode)
        ss = bed.exec("srv", ["ss", "-tinmM"], check=False).stdout[-6000:]
        cli = {k: v for k, v in bed.nstat("cli").items()
               if v and any(w in k for w in ("Ofo", "OFO", "Prune", "Drop", "Collapsed", "Reneg"))}
        ss += "\nclient drops: %s" % cli
        raise AssertionError("%s: transfer not byte-exact: %s\nstatus: %s\nsrv sockets:\n%s\n"
                             "mpconv log tail:\n%s"
                             % (what, brief({k: v for k, v in r.items() if k != "timeline"}),
                                st, ss, d.log_text()[-4000:]))
    return r


def assert_no_delay_drops(bed):
    drops = bed.queue_drops()
    assert all(v == (0, 0) for v in drops.values()), "the delayers' queues dropped: %s" % drops


def start_captures(bed):
    """MPC_CAPTURE=1: tcpdump in rtr and srv to /tmp/cap-rtr.pcap and /tmp/cap-srv.pcap (the
    processes to stop); else nothing."""
    caps = []
    if os.environ.get("MPC_CAPTURE"):
        for role in ("rtr", "srv"):
            caps.append(bed.popen(role, ["tcpdump", "-i", "any", "-s", "200", "-U", "-w",
                                         "/tmp/cap-%s.pcap" % role, "tcp"]))
        time.sleep(1)
    return caps


# ------------------------------------------------------------------------------ Figure 9
@pytest.mark.e2e_timeout(150)
@pytest.mark.parametrize("sack", [True, False], ids=["sack", "nosack"])
def test_fig9_cut_active_uplink(bed, srv, sack):
    """Paper Fig. 9: 30 ms each way on both paths, 10 Mbit/s each, a bulk download; up1 (the
    initial subflow's uplink) loses its line mid-transfer. The gap in delivered bytes at the
    client must stay <= 1 s with SACK (printed either way); byte-exact."""
    bed.sysctl("cli", {"net.ipv4.tcp_sack": 1 if sack else 0})
    bed.delay(DELAY_MS)
    bed.shape(RATE, latency=QUEUE)
    with daemon(bed) as d:
        caps = start_captures(bed)
        proc = client_bg(bed, "get", 12 * MB, bedmod.SRV4)
        wait_subflows(d, 2)
        time.sleep(2.5)
        assert proc.alive(), "transfer ended before the cut"
        t_cut = time.monotonic()
        bed.link("up1", False)
        try:
            r = finish(bed, proc, d, "fig9 sack=%s" % sack)
        finally:
            for c in caps:
                c.stop()
        gap, g0, g1 = bedmod.gap_after(r["timeline"], t_cut)
        print("FIG9 sack=%s gap=%.3f s (last byte %.3f s before the cut, next %.3f s after), "
              "transfer %.2f s %.2f Mbit/s, max_gap %s"
              % (sack, gap, t_cut - g0, g1 - t_cut, r["secs"], r.get("mbit_s", 0), r["max_gap"]))
        assert_no_delay_drops(bed)
        if sack:
            assert gap <= 1.0, "gap in delivered bytes after the cut %.3f s > 1 s" % gap


# ------------------------------------------------------------------------------ cycles
def cycle_transfer(bed, d, mode, xfer, dest, cut, restore, settle, cuts=("up1", "up2", "up1", "up2"),
                   down_for=1.5, size=24 * MB):
    """One transfer while the uplinks are cut and restored in turn; byte-exact, and at least
    three cuts fell inside the transfer."""
    caps = start_captures(bed)
    proc = client_bg(bed, xfer, size, dest, timeout=60)
    wait_subflows(d, 2)
    done = []
    for up in cuts:
        time.sleep(1.0)
        if not proc.alive():
            break
        cut(up)
        time.sleep(down_for)
        restore(up)
        done.append(up)
        settle(up)
    try:
        r = finish(bed, proc, d, "%s %s cycles %s" % (mode, xfer, done))
    finally:
        for c in caps:
            c.stop()
    resets = d.status()["counters"].get("SubflowStallReset")
    print("CYCLES mode=%s %s cuts=%s secs=%.2f stall_resets=%s" % (mode, xfer, done, r["secs"], resets))
    assert len(done) >= 3, "only %d cuts happened during the transfer (%.2f s)" % (len(done), r["secs"])
    return r


@pytest.mark.e2e_timeout(170)
@pytest.mark.parametrize("xfer", ["get", "put"])
@pytest.mark.parametrize("mode", CYCLE_MODES)
def test_cycles_link(bed, srv, conc, dst_server, mode, xfer):
    """Repeated link down/up of either uplink during a download / an upload: byte-exact."""
    bed.shape(RATE)
    with daemon(bed, mode=mode) as d:
        def settle(up):
            # the uplink must be back (joins re-established) before the next cut
            wait_subflows(d, 2, timeout=10)
        cycle_transfer(bed, d, mode, xfer, target(mode), lambda up: bed.link(up, False),
                       lambda up: bed.link(up, True), settle)


@pytest.mark.e2e_timeout(170)
@pytest.mark.parametrize("xfer", ["get", "put"])
@pytest.mark.parametrize("mode", CYCLE_MODES)
def test_cycles_blackhole(bed, srv, conc, dst_server, mode, xfer):
    """Repeated silent blackholes (DROP in the ISP, link up) of either uplink; the probes must
    see them: the uplink's state goes down while blackholed, and up again after."""
    bed.shape(RATE)
    with daemon(bed, mode=mode, uplink_opts={"dsl": PROBES, "lte": PROBES}) as d:
        seen_down = []

        def cut(up):
            bed.blackhole(up)
            seen_down.append(up)
            wait_uplink_state(d, NAME_OF[up], "down", timeout=3)

        def settle(up):
            wait_uplink_state(d, NAME_OF[up], "up", timeout=5)
            wait_subflows(d, 2, timeout=10)
        cycle_transfer(bed, d, mode, xfer, target(mode), cut, bed.restore_path, settle,
                       down_for=0.5)


# ------------------------------------------------------------------------------ backup
@pytest.mark.e2e_timeout(150)
@pytest.mark.parametrize("mode", ["implicit", "explicit"])
def test_backup_uplink(bed, srv, conc, dst_server, mode):
    """up2 is a backup uplink: while up1 is up it carries < 5 % of a download's and of an
    upload's bytes; when up1 is cut, the transfer goes on over up2, byte-exact."""
    bed.shape(RATE)
    with daemon(bed, mode=mode, uplink_opts={"lte": {"backup": 1}}) as d:
        for xfer in ("get", "put"):
            b0 = uplink_bytes(bed)
            proc = client_bg(bed, xfer, 6 * MB, target(mode))
            st = wait_subflows(d, 2)
            r = finish(bed, proc, d, "backup %s %s" % (mode, xfer))
            b1 = uplink_bytes(bed)
            used = {up: b1[up] - b0[up] for up in b0}
            share = used["up2"] / max(1, used["up1"] + used["up2"])
            flags = [(f["uplink"], f["backup"]) for f in st["connections"][0]["subflows"]]
            print("BACKUP mode=%s %s up2 share=%.2f %% (up1 %d B, up2 %d B) subflows %s"
                  % (mode, xfer, 100 * share, used["up1"], used["up2"], flags))
            assert share < 0.05, "backup up2 carried %.1f %% of the bytes (%s); subflows %s" % (
                100 * share, used, flags)
        # the active uplink dies mid-transfer: the backup takes over
        for xfer in ("get", "put"):
            proc = client_bg(bed, xfer, 8 * MB, target(mode))
            wait_subflows(d, 2)
            time.sleep(1.5)
            assert proc.alive(), "transfer ended before the cut"
            b0 = uplink_bytes(bed)
            bed.link("up1", False)
            r = finish(bed, proc, d, "backup takeover %s %s" % (mode, xfer))
            b1 = uplink_bytes(bed)
            up2 = b1["up2"] - b0["up2"]
            print("BACKUP takeover mode=%s %s: up2 carried %d B after the cut, %.2f s"
                  % (mode, xfer, up2, r["secs"]))
            assert up2 > 2 * MB, "up2 carried only %d B after up1 was cut" % up2
            bed.link("up1", True)
            wait_uplink_state(d, "dsl", "up", timeout=5)


# ------------------------------------------------------------------------------ handover
@pytest.mark.e2e_timeout(120)
def test_handover_make_before_break(bed, srv):
    """`mpconv handover lte` during a bulk download (30 ms each way, 10 Mbit/s each): no gap in
    delivered bytes longer than 2 x RTT, and afterwards up2 carries the traffic."""
    bed.delay(DELAY_MS)
    bed.shape(RATE, latency=QUEUE)
    with daemon(bed) as d:
        proc = client_bg(bed, "get", 12 * MB, bedmod.SRV4)
        wait_subflows(d, 2)
        time.sleep(2.0)
        assert proc.alive(), "transfer ended before the handover"
        srtt = max(f["srtt_us"] for f in d.status()["connections"][0]["subflows"]) / 1e6
        t_ho = time.monotonic()
        rc, doc, out = d.handover("lte")
        assert rc == 0 and doc and doc.get("ok"), "handover failed: rc=%d %s" % (rc, out)
        time.sleep(1.5)  # what is in flight on up1 drains
        b0 = uplink_bytes(bed)
        time.sleep(1.5)
        b1 = uplink_bytes(bed)
        alive_after = proc.alive()
        r = finish(bed, proc, d, "handover")
        # the switch: intervals ending after the command and starting within 1.5 s of it
        gap, g0, g1 = bedmod.gap_after(r["timeline"], t_ho, until=t_ho + 1.5)
        # for comparison, the same measure over the 1.5 s before the handover
        before, _, _ = bedmod.gap_after(r["timeline"], t_ho - 1.5, until=t_ho - 0.3)
        used = {up: b1[up] - b0[up] for up in b0}
        share2 = used["up2"] / max(1, used["up1"] + used["up2"])
        print("HANDOVER gap=%.3f s from %+.3f s (bound 2 x RTT = %.3f s, base RTT %.3f s, "
              "dsl subflow srtt %.3f s; longest gap in the 1.5 s before: %.3f s), "
              "up2 share after %.1f %% (%s), %s"
              % (gap, g0 - t_ho, 2 * BASE_RTT, BASE_RTT, srtt, before, 100 * share2, used, doc))
        assert_no_delay_drops(bed)
        assert alive_after, "transfer ended before the share after the handover was measured"
        assert gap <= 2 * BASE_RTT, "gap %.3f s after the handover > 2 x RTT (%.3f s)" % (gap, 2 * BASE_RTT)
        assert share2 > 0.9, "after the handover up2 carried only %.1f %% (%s)" % (100 * share2, used)
