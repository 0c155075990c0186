"""`mpconv status --json` answers during a transfer."""
import time

import pytest

from checks import MB, assert_transfer_ok

pytestmark = pytest.mark.e2e_timeout(120)


def test_status_during_transfer(bed, daemon, mptcp_server):
    bed.shape("20mbit")
    try:
        before = {u["name"]: u for u in daemon.status()["uplinks"]}
        cl = bed.client("get", 16 * MB, background=True, timeout=30)   # ~3.4 s at 40 Mbit/s
        time.sleep(2.0)
        st = daemon.status()
        res = bed.client_result(cl, timeout=90)
    finally:
        bed.unshape()
    assert_transfer_ok(res)
    names = sorted(u.get("name") for u in st.get("uplinks", []))
    assert names == ["dsl", "lte"], "status uplinks: %s" % st.get("uplinks")
    busy = {u.get("name"): u.get("subflows") for u in st["uplinks"]}
    assert all(isinstance(v, int) and v >= 1 for v in busy.values()), \
        "an uplink carries no subflow during a converted transfer: %s" % busy
    assert isinstance(st.get("counters"), dict) and st["counters"], "no counters: %s" % st
    assert st["counters"].get("MPCapableSYNTX", 0) >= 1, st["counters"]
    assert isinstance(st.get("connections"), list) and len(st["connections"]) >= 1, \
        "no connection listed during the transfer: %s" % st
    assert "io" in st, st
    # Per-uplink traffic: both uplinks bring part of the download, at a rate within the shaping,
    # and the router's data on each has a measured RTT.
    st3 = daemon.status()
    got = {u["name"]: u["rx_bytes"] - before[u["name"]]["rx_bytes"] for u in st3["uplinks"]}
    assert sum(got.values()) >= 16 * MB and min(got.values()) >= 2 * MB, got
    for u in st["uplinks"]:
        assert 1e6 <= u["rx_bps"] <= 25e6, "rate of %s mid-transfer: %s" % (u["name"], u)
        assert u["tx_bytes"] > 0, u
    # and it still answers afterwards
    st2 = daemon.status()
    assert sorted(u.get("name") for u in st2["uplinks"]) == ["dsl", "lte"]
