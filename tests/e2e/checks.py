"""Assertion helpers shared by the e2e tests."""
import json
import time

import bed as bedmod

MB = 1 << 20


def brief(obj, limit=3000):
    s = json.dumps(obj, sort_keys=True)
    return s if len(s) <= limit else s[:limit] + "..."


def assert_transfer_ok(res, n=1):
    """Client result: every connection byte-exact."""
    bad = [r for r in res["results"] if not r["ok"]]
    assert not bad, "%d/%d transfers failed: %s" % (len(bad), res["conns"], brief(bad))
    assert res["conns"] == n


def server_reports(server, n, timeout=20):
    reps = server.wait_reports(n, timeout)
    assert len(reps) >= n, "server reported %d of %d connections: %s" % (len(reps), n, brief(reps))
    bad = [r for r in reps if not r["ok"]]
    assert not bad, "server side failed: %s" % brief(bad)
    return reps


def assert_not_converted(rep):
    info = rep["info"]
    assert not info.get("mptcp") or info.get("fallback"), \
        "server socket unexpectedly MPTCP: %s" % brief(rep)


def assert_converted(rep, min_subflows=2, csum=None):
    info = rep["info"]
    assert info.get("mptcp"), "server socket is not MPTCP (MPTCP_INFO failed): %s" % brief(rep)
    assert not info.get("fallback"), "server MPTCP socket fell back to TCP: %s" % brief(rep)
    assert info["max_subflows_total"] >= min_subflows, \
        "server saw at most %d subflow(s), want >= %d: %s" % (info["max_subflows_total"], min_subflows, brief(rep))
    if csum is not None:
        assert info.get("csum_enabled") == csum, "csum_enabled=%s, want %s" % (info.get("csum_enabled"), csum)


def assert_counters(before, after, conns, joins=True, csum=False):
    d = bedmod.Bed.delta(before, after)
    assert d.get("MPTcpExtMPCapableSYNRX", 0) >= conns, "MPCapableSYNRX delta %s < %d" % (d.get("MPTcpExtMPCapableSYNRX"), conns)
    if joins:
        assert d.get("MPTcpExtMPJoinAckRx", 0) >= conns, "MPJoinAckRx delta %s < %d" % (d.get("MPTcpExtMPJoinAckRx"), conns)
    names = list(bedmod.MUST_STAY_ZERO) + (["MPTcpExtDataCsumErr"] if csum else [])
    bad = {n: d.get(n, 0) for n in names if d.get(n, 0) != 0}
    assert not bad, "server error counters rose: %s (all MPTcpExt deltas: %s)" % (
        bad, {k: v for k, v in d.items() if k.startswith("MPTcpExt") and v})


def wait_curr_estab_zero(b, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        v = b.nstat("srv").get("MPTcpExtMPCurrEstab", 0)
        if v == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError("server MPTcpExtMPCurrEstab still %d after %ss" % (v, timeout))
        time.sleep(0.2)
