"""Many simultaneous connections through the converter."""
import pytest

from checks import assert_converted, assert_transfer_ok, server_reports, wait_curr_estab_zero

pytestmark = pytest.mark.e2e_timeout(240)

CONNS = 100
SIZE = 256 * 1024


def test_100_concurrent_mixed(bed, daemon, mptcp_server):
    res = bed.client("mix", SIZE, conns=CONNS, parallel=CONNS, timeout=60)
    assert_transfer_ok(res, n=CONNS)
    reps = server_reports(mptcp_server, CONNS, timeout=30)
    assert len(reps) == CONNS
    plain = [r for r in reps if not r["info"].get("mptcp") or r["info"].get("fallback")]
    assert not plain, "%d of %d server sockets not converted" % (len(plain), CONNS)
    for r in reps:
        assert_converted(r, min_subflows=1)
    wait_curr_estab_zero(bed, timeout=15)
    assert daemon.alive(), "daemon died"
