"""Explicit (off-path) mode: the router sends every LAN TCP connection to a concentrator.

    cli ── rtr (mpconv run, mode explicit) ─up1─ isp1 ─┐
                                          └─up2─ isp2 ─ srv: concentrator 203.0.113.10:5124
                                                (CGN)     └─d0─ dst: plain TCP servers
                                                                198.18.0.10, 2001:db8:18::10

The destinations live in the bed's optional `dst` namespace (Bed(dst=True)): only srv routes
to it, so a client in cli can reach 198.18.0.10 only through the concentrator (checked first,
without the daemon). A LAN client's plain TCP connection to D:P goes as MPTCP to the
concentrator (initial subflow via up1, a join via up2, the RFC 8803 Convert message with a
Connect TLV = D:P, and a Cookie TLV when a secret is set, in the SYN); the concentrator opens
plain TCP to D:P and relays. Error replies must turn into a prompt RST for the client.
Excluded destinations/ports are forwarded plainly (masqueraded via up1); the target for that
is srv's second service address 198.51.100.10 (routed by the ISPs, and a denied destination
for the concentrator, so a conversion of it would be refused).

The concentrator sees the router's initial subflow from 100.64.1.2 and the join from isp2's
CGN address 172.16.2.1 (allowed explicitly; the allow check applies to the initial subflow).
"""
import contextlib
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bed as bedmod  # noqa: E402
from checks import MB, assert_counters, assert_transfer_ok, brief, server_reports  # noqa: E402

CONC = bedmod.SRV4
CPORT = bedmod.CONC_PORT           # open concentrator (allow list, no secret)
SPORT = bedmod.CONC_PORT + 1       # concentrator with a secret
SECRET = "a long shared secret, at least 16 chars"
DPORT = 8080                       # served in dst (plain TCP)
CLOSED = 9999                      # nothing listens there in dst: RST
ALLOW = ["100.64.0.0/16", bedmod.ISP2_NAT4 + "/32"]
UP1_ADDR = "100.64.1.2"            # the router's up1 address = its masquerade address

RESET_ERRORS = ("ConnectionResetError", "ConnectionRefusedError", "BrokenPipeError")


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def bed():
    with bedmod.Bed(dst=True) as b:
        yield b


@pytest.fixture(scope="module")
def conc(bed):
    c = bed.concentrator(name="conc", listen="%s:%d" % (CONC, CPORT), allow=ALLOW,
                         deny_dest=["198.51.100.0/24"], connect_timeout="3")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def conc_secret(bed):
    c = bed.concentrator(name="conc_secret", listen="%s:%d" % (CONC, SPORT), allow=ALLOW,
                         secret=SECRET, connect_timeout="3")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def dst_server(bed):
    s = bed.server("tcp", role="dst", port=DPORT, bind=(bedmod.DST4, bedmod.DST6))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def alt_servers(bed):
    """Plain TCP servers on srv's second address, ports 8080 and 8081."""
    s = {p: bed.server("tcp", port=p, bind=(bedmod.SRV_ALT4,)) for p in (8080, 8081)}
    yield s
    for x in s.values():
        x.stop()


# ------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def explicit(bed, port=CPORT, secret=None, exclude=None, exclude_port=None, scheduler=None,
             uplinks=None):
    """mpconv in explicit mode for the duration of the block; it must still be alive at the end."""
    extra = {"concentrator": "%s:%d" % (CONC, port), "log_level": "debug"}
    if secret is not None:
        extra["secret"] = secret
    if exclude:
        extra["exclude"] = list(exclude)
    if exclude_port:
        extra["exclude_port"] = [str(p) for p in exclude_port]
    if scheduler:
        extra["scheduler"] = scheduler
    d = bed.daemon(mode="explicit", extra_main=extra, uplinks=uplinks)
    try:
        yield d
        assert d.alive(), "mpconv died; log:\n" + d.log_text()[-3000:]
    finally:
        d.stop()


def one(res):
    assert res["conns"] == 1 and len(res["results"]) == 1, brief(res)
    return res["results"][0]


def assert_reset(res, within=3.0, what=""):
    """The client's connection failed by a RST (refused or reset), promptly."""
    r = one(res)
    assert not r["ok"], "%s: transfer unexpectedly succeeded: %s" % (what, brief(r))
    err = r.get("error", "")
    assert any(e in err for e in RESET_ERRORS), \
        "%s: client did not get a RST (error %r, want one of %s): %s" % (what, err, RESET_ERRORS, brief(r))
    assert r["secs"] < within, "%s: RST took %.2f s (want < %.1f s): %s" % (what, r["secs"], within, brief(r))


def new_reports(server, n0, n, timeout=20):
    """Wait for n reports after the first n0; return them (all ok)."""
    reps = server_reports(server, n0 + n, timeout)
    return reps[n0:]


def subflow_peers(bed, proc, port=CPORT, poll=0.05):
    """While a background client runs: the peer addresses of established TCP sockets (MPTCP
    subflows) on the concentrator's port in srv."""
    peers = set()
    while proc.alive():
        p = bed.exec("srv", ["ss", "-Htn", "state", "established", "( sport = :%d )" % port],
                     check=False)
        for line in p.stdout.splitlines():
            f = line.split()
            if f:
                peers.add(f[-1].rsplit(":", 1)[0].strip("[]"))
        time.sleep(poll)
    return peers


def ctr(conc):
    st = conc.status()
    return dict(st["counters"], **{"rej_" + k: v for k, v in st["rejections"].items()})


def goodput(res):
    r = one(res)
    return 8 * r["size"] / r["secs"] / 1e6


# ------------------------------------------------------------------------------ 0. the bed
def test_dst_unreachable_without_conversion(bed, dst_server, alt_servers):
    """Without the daemon: cli cannot reach dst at all (no route beyond srv), srv can; srv's
    second address is reachable by plain forwarding (masqueraded by the router via up1)."""
    assert not bed.daemons or not any(d.alive() for d in bed.daemons)
    for fam, addr in ((4, bedmod.DST4), (6, bedmod.DST6)):
        res = bed.client("get", 1000, family=fam, server=addr, port=DPORT, timeout=5)
        r = one(res)
        assert not r["ok"], "cli reached %s without conversion: %s" % (addr, brief(r))
        assert r["secs"] < 4, "expected an ICMP unreachable, not a timeout: %s" % brief(r)
        res = bed.client("get", 1000, family=fam, server=addr, port=DPORT, timeout=5, role="srv")
        assert_transfer_ok(res)
    n0 = len(alt_servers[8080].reports())
    res = bed.client("get", 100000, server=bedmod.SRV_ALT4, port=8080, timeout=10)
    assert_transfer_ok(res)
    (rep,) = new_reports(alt_servers[8080], n0, 1)
    assert rep["peer"][0] == UP1_ADDR, brief(rep)


# ------------------------------------------------------------------------------ 1 + 6. relay
@pytest.mark.e2e_timeout(90)
@pytest.mark.parametrize("family", [4, 6])
def test_relay_16mb_both_ways(bed, conc, dst_server, family):
    """16 MB down and 16 MB up, byte-exact, through the concentrator; dst sees plain TCP from
    the concentrator's link address; the concentrator's socket is MPTCP with a join via up2."""
    size = 16 * MB
    dst = bedmod.DST4 if family == 4 else bedmod.DST6
    want_peer = bedmod.SRV_TO_DST4 if family == 4 else bedmod.SRV_TO_DST6
    n0 = len(dst_server.reports())
    c0, s0 = ctr(conc), bed.nstat("srv")
    peers = {}
    with explicit(bed):
        for mode in ("get", "put"):
            proc = bed.client(mode, size, family=family, server=dst, port=DPORT, timeout=30,
                              background=True)
            peers[mode] = subflow_peers(bed, proc)
            res = bed.client_result(proc, timeout=90)
            assert_transfer_ok(res)
    c1, s1 = ctr(conc), bed.nstat("srv")
    reps = new_reports(dst_server, n0, 2)
    for rep in reps:
        # plain TCP from the concentrator (srv's d0 address), not from the client or router
        assert rep["peer"][0] == want_peer, "dst saw peer %s, want %s: %s" % (rep["peer"][0], want_peer, brief(rep))
        assert not rep["info"].get("mptcp"), brief(rep)
        assert rep["local"][0] == dst, brief(rep)
    assert sorted(r["mode"] for r in reps) == ["GET", "PUT"] and all(r["n"] == size for r in reps), brief(reps)
    # the concentrator relayed exactly these two connections, and all their bytes
    d = {k: c1[k] - c0.get(k, 0) for k in c1}
    assert d["accepted"] == 2 and d["relayed"] == 2, "concentrator counter deltas: %s" % d
    assert d["bytes_down"] >= size and d["bytes_up"] >= size, "concentrator counter deltas: %s" % d
    assert not any(v for k, v in d.items() if k.startswith("rej_")), "concentrator rejected: %s" % d
    # MPTCP at the concentrator: MP_CAPABLE + an MP_JOIN per connection, clean counters,
    # subflows seen from the router's up1 address and from isp2's CGN address (via up2)
    assert_counters(s0, s1, conns=2, joins=True)
    for mode, p in peers.items():
        assert {UP1_ADDR, bedmod.ISP2_NAT4} <= p, \
            "%s: concentrator subflow peers %s, want both %s (up1) and %s (up2 via CGN)" % (
                mode, sorted(p), UP1_ADDR, bedmod.ISP2_NAT4)
    # the Convert message travelled in the SYN (TFO data accepted by the concentrator)
    tfo = s1.get("TcpExtTCPFastOpenPassive", 0) - s0.get("TcpExtTCPFastOpenPassive", 0)
    assert tfo >= 2, "TcpExtTCPFastOpenPassive rose by %d, want >= 2 (Convert in the SYN)" % tfo


# ------------------------------------------------------------------------------ 2. secret
@pytest.mark.e2e_timeout(90)
def test_secret_right_wrong_missing(bed, conc_secret, dst_server):
    n0 = len(dst_server.reports())
    c0 = ctr(conc_secret)
    with explicit(bed, port=SPORT, secret=SECRET):
        res = bed.client("get", 1 * MB, server=bedmod.DST4, port=DPORT, timeout=10)
        assert_transfer_ok(res)
        res = bed.client("put", 1 * MB, server=bedmod.DST4, port=DPORT, timeout=10)
        assert_transfer_ok(res)
    new_reports(dst_server, n0, 2)
    n1 = len(dst_server.reports())
    c1 = ctr(conc_secret)
    assert c1["relayed"] - c0["relayed"] == 2, (c0, c1)

    with explicit(bed, port=SPORT, secret="not the secret, but long enough"):
        res = bed.client("get", 1 * MB, server=bedmod.DST4, port=DPORT, timeout=10)
        assert_reset(res, what="wrong secret")
    c2 = ctr(conc_secret)
    assert c2["rej_bad_cookie"] - c1["rej_bad_cookie"] == 1, "concentrator: %s -> %s" % (c1, c2)

    with explicit(bed, port=SPORT):              # no secret on the router at all
        res = bed.client("get", 1 * MB, server=bedmod.DST4, port=DPORT, timeout=10)
        assert_reset(res, what="missing secret")
    c3 = ctr(conc_secret)
    assert c3["rej_missing_cookie"] - c2["rej_missing_cookie"] == 1, "concentrator: %s -> %s" % (c2, c3)
    assert c3["relayed"] == c1["relayed"], "concentrator relayed a rejected connection: %s" % c3
    time.sleep(1)
    assert len(dst_server.reports()) == n1, "dst got a connection although the cookie was bad: %s" % \
        brief(dst_server.reports()[n1:])


# ------------------------------------------------------------------------------ 3. refused
@pytest.mark.e2e_timeout(60)
def test_destination_refuses(bed, conc, dst_server):
    c0 = ctr(conc)
    with explicit(bed):
        for fam, addr in ((4, bedmod.DST4), (6, bedmod.DST6)):
            res = bed.client("get", 1000, family=fam, server=addr, port=CLOSED, timeout=10)
            assert_reset(res, what="refused by %s" % addr)
        # and the daemon still converts afterwards
        res = bed.client("get", 1 * MB, server=bedmod.DST4, port=DPORT, timeout=10)
        assert_transfer_ok(res)
    c1 = ctr(conc)
    assert c1["rej_destination_refused"] - c0["rej_destination_refused"] == 2, (c0, c1)


# ------------------------------------------------------------------------------ 4. exclusions
@pytest.mark.e2e_timeout(90)
def test_exclude_prefix_forwards_plainly(bed, conc, dst_server, alt_servers):
    n0 = len(alt_servers[8080].reports())
    with explicit(bed, exclude=["198.51.100.0/24"]):
        c0, s0 = ctr(conc), bed.nstat("srv")
        res = bed.client("get", 2 * MB, server=bedmod.SRV_ALT4, port=8080, timeout=10)
        assert_transfer_ok(res)
        res = bed.client("put", 2 * MB, server=bedmod.SRV_ALT4, port=8080, timeout=10)
        assert_transfer_ok(res)
        c1, s1 = ctr(conc), bed.nstat("srv")
        # a non-excluded destination is still converted by the same daemon
        res = bed.client("get", 1 * MB, server=bedmod.DST4, port=DPORT, timeout=10)
        assert_transfer_ok(res)
    for rep in new_reports(alt_servers[8080], n0, 2):
        assert rep["peer"][0] == UP1_ADDR, "excluded destination not masqueraded via up1: %s" % brief(rep)
    assert c1["accepted"] == c0["accepted"], "the concentrator saw an excluded connection: %s -> %s" % (c0, c1)
    d = bedmod.Bed.delta(s0, s1, ["MPTcpExtMPCapableSYNRX"])
    assert d["MPTcpExtMPCapableSYNRX"] == 0, "MPTCP reached srv for an excluded destination: %s" % d


@pytest.mark.e2e_timeout(90)
def test_exclude_port_forwards_plainly(bed, conc, alt_servers):
    n0 = len(alt_servers[8081].reports())
    with explicit(bed, exclude_port=[8081]):
        c0 = ctr(conc)
        res = bed.client("get", 2 * MB, server=bedmod.SRV_ALT4, port=8081, timeout=10)
        assert_transfer_ok(res)
        c1 = ctr(conc)
        # same address, port not excluded: converted, and the concentrator refuses it
        # (198.51.100.0/24 is a denied destination there) -> RST
        res = bed.client("get", 1000, server=bedmod.SRV_ALT4, port=8080, timeout=10)
        assert_reset(res, what="converted connection to a denied destination")
        c2 = ctr(conc)
    (rep,) = new_reports(alt_servers[8081], n0, 1)
    assert rep["peer"][0] == UP1_ADDR, "excluded port not masqueraded via up1: %s" % brief(rep)
    assert c1["accepted"] == c0["accepted"], "the concentrator saw an excluded port: %s -> %s" % (c0, c1)
    assert c2["rej_denied_destination"] - c1["rej_denied_destination"] == 1, \
        "non-excluded port did not go to the concentrator: %s -> %s" % (c1, c2)


# ------------------------------------------------------------------------------ 5. aggregation
RATES = {"up1": "20mbit", "up2": "10mbit"}
AGG = 30.0                      # Mbit/s, the sum
AGG_SIZE = 24 * MB              # ~7 s at 28 Mbit/s
ONE_SIZE = 12 * MB              # ~5 s at 20 Mbit/s


def _shaped_transfer(bed, mode, size, d, conc):
    dev_i = 0 if mode == "get" else 1          # rx on the router for downloads, tx for uploads
    a1, a2 = bed.iface_bytes("rtr", "up1")[dev_i], bed.iface_bytes("rtr", "up2")[dev_i]
    k0 = bed.nstat(conc.role)
    res = bed.client(mode, size, server=bedmod.DST4, port=DPORT, timeout=40)
    b1, b2 = bed.iface_bytes("rtr", "up1")[dev_i], bed.iface_bytes("rtr", "up2")[dev_i]
    if not all(r["ok"] for r in res["results"]):
        # what a stall leaves behind: the router's view of the connection and the
        # concentrator kernel's MPTCP counters over the transfer
        k = {n: v for n, v in bed.delta(k0, bed.nstat(conc.role)).items()
             if n.startswith("MPTcp") and v}
        raise AssertionError(
            "%s %d B not byte-exact: %s\nrouter up1 %d B, up2 %d B\nconcentrator MPTCP "
            "counters: %s\nrouter status: %s" % (mode, size, brief(res["results"]), b1 - a1,
                                                 b2 - a2, brief(k), brief(d.status(), limit=6000)))
    assert_transfer_ok(res)
    g = goodput(res)
    return g, b1 - a1, b2 - a2, "%s %d B: %.2f Mbit/s in %.2f s, up1 %d B, up2 %d B" % (
        mode, size, g, one(res)["secs"], b1 - a1, b2 - a2)


def _shaped(bed, conc, mode, size):
    bed.shape(RATES)
    try:
        with explicit(bed) as d:                # default scheduler in explicit mode: weighted
            return _shaped_transfer(bed, mode, size, d, conc)
    finally:
        bed.unshape()


def _best_of(bed, conc, mode, size, runs, check):
    """Up to `runs` byte-exact shaped transfers until one reaches 90 % of the summed rate
    (the machine is shared by client, router, ISPs, concentrator and the Python peers, and a
    run now and then loses a few percent to it); every run must pass `check`."""
    want = 0.9 * AGG
    seen = []
    for _ in range(runs):
        g, b1, b2, msg = _shaped(bed, conc, mode, size)
        print(msg)
        check(size, b1, b2, msg)
        seen.append((g, msg))
        if g >= want:
            break
    best = max(seen)
    assert best[0] >= want, "%s goodput below %.1f Mbit/s (90 %% of %.0f) in %d runs: %s" % (
        mode, want, AGG, len(seen), "; ".join(m for _, m in seen))


def _uses_up2(size, b1, b2, msg):
    assert b2 >= 0.2 * size, "up2 carried less than 20 %% of the bytes: " + msg


@pytest.mark.e2e_timeout(240)
def test_download_aggregation(bed, conc, dst_server):
    """The concentrator's kernel MPTCP scheduler spreads a download over both subflows, and the
    goodput reaches 90 % of the summed rate (27 of 30 Mbit/s). That is 96 % of what the links
    can carry as payload (every 1514-byte frame of the concentrator's data carries 1420 bytes:
    Ethernet 14, IP 20, TCP 20, timestamps 12, DSS), so a bulk transfer of 48 MiB (~15 s)
    makes slow start and the close weigh little."""
    _best_of(bed, conc, "get", 2 * AGG_SIZE, 5, _uses_up2)


@pytest.mark.e2e_timeout(180)
def test_upload_aggregation(bed, conc, dst_server):
    """The router's 'weighted' scheduler (the default in explicit mode) spreads the client's
    data over both uplinks, earliest completion first, and the upload reaches 90 % of the
    summed rate (byte-exact: the concentrator's relay answers with the SHA-256 of the data)."""
    _best_of(bed, conc, "put", 2 * AGG_SIZE, 3, _uses_up2)


@pytest.mark.e2e_timeout(90)
def test_one_uplink_and_single_scheduler(bed, conc, dst_server):
    """Controls: with only 'dsl' configured a download is capped by up1 (20 Mbit/s); with
    scheduler 'single' an upload stays on the initial subflow (up1)."""
    bed.shape(RATES)
    try:
        with explicit(bed, uplinks=bedmod.Daemon.DEFAULT_UPLINKS[:1]) as d:
            down, d1, d2, dmsg = _shaped_transfer(bed, "get", ONE_SIZE, d, conc)
        with explicit(bed, scheduler="single") as d:
            up, u1, u2, umsg = _shaped_transfer(bed, "put", ONE_SIZE, d, conc)
    finally:
        bed.unshape()
    print(dmsg)
    print(umsg)
    assert down <= 20 * 1.05, "one uplink but download at more than 20 Mbit/s: " + dmsg
    assert d2 < 0.01 * ONE_SIZE, "download used up2 although only 'dsl' is configured: " + dmsg
    assert u2 < 0.05 * ONE_SIZE, "scheduler 'single' but the upload used up2: " + umsg
    assert up <= 20 * 1.05, "scheduler 'single' but upload at more than 20 Mbit/s: " + umsg
