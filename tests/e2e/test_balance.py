"""Bonding: with both uplinks shaped to the same rate, a download uses both."""
import pytest

from checks import MB, assert_converted, assert_transfer_ok, server_reports

pytestmark = pytest.mark.e2e_timeout(120)

RATE = "40mbit"
SIZE = 24 * MB   # ~2.5 s at 80 Mbit/s summed, ~5 s over one uplink


@pytest.mark.parametrize("family", [4, 6])
def test_download_uses_both_uplinks(bed, daemon, mptcp_server, family):
    bed.shape(RATE)
    try:
        up1_0 = bed.iface_bytes("rtr", "up1")[0]
        up2_0 = bed.iface_bytes("rtr", "up2")[0]
        res = bed.client("get", SIZE, family=family, timeout=30)
        up1 = bed.iface_bytes("rtr", "up1")[0] - up1_0
        up2 = bed.iface_bytes("rtr", "up2")[0] - up2_0
    finally:
        bed.unshape()
    assert_transfer_ok(res)
    (rep,) = server_reports(mptcp_server, 1)
    assert_converted(rep, min_subflows=2)
    secs = res["results"][0]["secs"]
    msg = "up1 rx %d B, up2 rx %d B for %d B downloaded in %.2fs" % (up1, up2, SIZE, secs)
    assert up1 >= 0.2 * SIZE, msg
    assert up2 >= 0.2 * SIZE, msg
