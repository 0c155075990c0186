"""Sanity of the bed itself, WITHOUT the daemon: routing, fw4-like NAT, both ISP paths,
shaping, counters, and a kernel-MPTCP positive control for the server-side checks."""
import socket

import pytest

import bed as bedmod
from checks import (MB, assert_converted, assert_counters, assert_not_converted,
                    assert_transfer_ok, server_reports, wait_curr_estab_zero)

pytestmark = pytest.mark.e2e_timeout(90)


def test_no_route_out(bed):
    """Only cli and rtr have default routes, and they point into the bed."""
    expect = {"cli": ("10.10.0.1", "fd00:10::1"), "rtr": ("100.64.1.1", "fd00:64:1::1")}
    for role in bedmod.ROLES:
        d4 = bed.exec(role, ["ip", "route", "show", "default"]).stdout.strip()
        d6 = bed.exec(role, ["ip", "-6", "route", "show", "default"]).stdout.strip()
        if role in expect:
            assert d4.startswith("default via %s " % expect[role][0]) and "\n" not in d4, (role, d4)
            assert d6.startswith("default via %s " % expect[role][1]) and "\n" not in d6, (role, d6)
        else:
            assert d4 == "" and d6 == "", (role, d4, d6)
        links = bed.exec(role, ["ip", "-o", "link", "show"]).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            assert name == "lo" or "veth" in line or "link/ether" in line, line


@pytest.mark.parametrize("family", [4, 6])
def test_plain_tcp_through_router(bed, tcp_server, family):
    for mode in ("get", "put"):
        res = bed.client(mode, 4 * MB, family=family)
        assert_transfer_ok(res)
    reps = server_reports(tcp_server, 2)
    want_peer = "100.64.1.2" if family == 4 else "fd00:64:1::2"
    for r in reps:
        assert r["peer"][0] == want_peer, "not masqueraded via up1: %s" % r
        assert_not_converted(r)


@pytest.mark.parametrize("family", [4, 6])
def test_isp2_path_cgn(bed, tcp_server, family):
    """Forced through up2/isp2 by a temporary route: the server sees isp2's CGN address."""
    if family == 4:
        route = ["ip", "route", "add", bedmod.SRV4 + "/32", "via", "100.64.2.1", "dev", "up2"]
        want_peer = bedmod.ISP2_NAT4
    else:
        route = ["ip", "-6", "route", "add", bedmod.SRV6 + "/128", "via", "fd00:64:2::1", "dev", "up2"]
        want_peer = bedmod.ISP2_NAT6
    rx0, _ = bed.iface_bytes("rtr", "up2")
    bed.exec("rtr", route)
    try:
        res = bed.client("get", 2 * MB, family=family)
    finally:
        route[route.index("add")] = "del"
        bed.exec("rtr", route, check=False)
    assert_transfer_ok(res)
    rx1, _ = bed.iface_bytes("rtr", "up2")
    assert rx1 - rx0 >= 2 * MB, "up2 rx grew by only %d" % (rx1 - rx0)
    (rep,) = server_reports(tcp_server, 1)
    assert rep["peer"][0] == want_peer, rep


def test_router_drops_unsolicited(bed):
    """fw4-like INPUT policy: a SYN from the WAN side to the router gets no answer (DROP)."""
    code = ("import socket,sys\n"
            "s=socket.socket(); s.settimeout(1.5)\n"
            "try:\n s.connect(('100.64.1.2', 22)); print('open')\n"
            "except socket.timeout: print('timeout')\n"
            "except OSError as e: print('error', e)\n")
    out = bed.exec("isp1", [bedmod.PYTHON, "-c", code]).stdout.strip()
    assert out == "timeout", out


def test_shaping_and_counters(bed, tcp_server):
    bed.shape("20mbit", uplinks=("up1",))
    try:
        rx0, tx0 = bed.iface_bytes("rtr", "up1")
        res = bed.client("get", 2 * MB)
    finally:
        bed.unshape(("up1",))
    assert_transfer_ok(res)
    secs = res["results"][0]["secs"]
    # 2 MiB at 20 Mbit/s needs >= 0.84 s
    assert 0.7 <= secs <= 10, "shaped download took %.2fs" % secs
    rx1, tx1 = bed.iface_bytes("rtr", "up1")
    assert rx1 - rx0 >= 2 * MB and tx1 > tx0
    ns = bed.nstat("srv")
    assert "MPTcpExtMPCapableSYNRX" in ns and "TcpActiveOpens" in ns


@pytest.mark.parametrize("family", [4, 6])
def test_kernel_mptcp_control_single_subflow(bed, mptcp_server, family):
    """Positive control: a kernel MPTCP client in cli passes the router (NAT) as MPTCP."""
    bed.set_server_checksum(True)
    try:
        res = bed.client("get", 2 * MB, family=family, mptcp=True)
    finally:
        bed.set_server_checksum(False)
    assert_transfer_ok(res)
    (rep,) = server_reports(mptcp_server, 1)
    assert_converted(rep, min_subflows=1, csum=1)


@pytest.mark.parametrize("family", [4, 6])
def test_kernel_mptcp_control_two_subflows(bed, mptcp_server, family):
    """Positive control for the converted-test checks: a kernel MPTCP client in rtr with a
    second endpoint on up2 (policy-routed) gives >= 2 subflows and clean server counters."""
    snap = bed.snapshot("rtr")
    if family == 4:
        ep, gw, fam = "100.64.2.2", "100.64.2.1", "-4"
    else:
        ep, gw, fam = "fd00:64:2::2", "fd00:64:2::1", "-6"
    before = bed.nstat("srv")
    try:
        bed.exec("rtr", ["ip", "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "2"])
        bed.exec("rtr", ["ip", "mptcp", "endpoint", "add", ep, "dev", "up2", "subflow"])
        bed.exec("rtr", ["ip", fam, "rule", "add", "from", ep, "table", "102", "pref", "1002"])
        bed.exec("rtr", ["ip", fam, "route", "add", "default", "via", gw, "dev", "up2", "table", "102"])
        res = bed.client("get", 8 * MB, family=family, mptcp=True, role="rtr")
    finally:
        bed.exec("rtr", ["ip", "mptcp", "endpoint", "flush"], check=False)
        bed.restore(snap, "rtr")
    assert_transfer_ok(res)
    (rep,) = server_reports(mptcp_server, 1)
    assert_converted(rep, min_subflows=2)
    assert_counters(before, bed.nstat("srv"), conns=1)
    wait_curr_estab_zero(bed)
    assert bed.snapshot("rtr") == snap
