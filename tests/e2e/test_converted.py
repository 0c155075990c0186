"""Converted connections: the LAN client speaks plain TCP, the server sees MPTCP with
>= 2 subflows (first via up1, MP_JOIN via up2), byte-exact, clean server counters."""
import pytest

from checks import (MB, assert_converted, assert_counters, assert_transfer_ok,
                    server_reports, wait_curr_estab_zero)

pytestmark = pytest.mark.e2e_timeout(180)

SIZE = 16 * MB

CASES = [
    pytest.param(4, False, id="v4"),
    pytest.param(4, True, id="v4-csum"),
    pytest.param(6, False, id="v6"),
    pytest.param(6, True, id="v6-csum"),
]


@pytest.mark.parametrize("mode", ["get", "put"])
@pytest.mark.parametrize("family,csum", CASES)
def test_converted(bed, daemon, mode, family, csum):
    bed.set_server_checksum(csum)
    server = bed.server("mptcp")
    try:
        before = bed.nstat("srv")
        fc0 = daemon.status()["counters"]["MPFastcloseTx"]
        res = bed.client(mode, SIZE, family=family, timeout=30)
        assert_transfer_ok(res)
        (rep,) = server_reports(server, 1)
        assert_converted(rep, min_subflows=2, csum=1 if csum else None)
        wait_curr_estab_zero(bed)
        assert_counters(before, bed.nstat("srv"), conns=1, joins=True, csum=csum)
        # A clean close stays clean: the host never answers a duplicate ACK of its FIN with
        # a RST, so the converter sends no MP_FASTCLOSE.
        assert daemon.status()["counters"]["MPFastcloseTx"] == fc0, "connection ended in a reset"
        assert daemon.alive(), "daemon died"
    finally:
        server.stop()
        bed.set_server_checksum(False)
