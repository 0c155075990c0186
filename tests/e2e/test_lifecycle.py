"""Daemon start/stop hygiene: SIGTERM leaves the router exactly as before; a SIGKILLed
daemon (rules left behind) does not black-hole traffic (NFQUEUE --queue-bypass)."""
import difflib
import signal

import pytest

import bed as bedmod
from checks import MB, assert_transfer_ok, server_reports

pytestmark = pytest.mark.e2e_timeout(120)


def diff_snapshots(a, b):
    out = []
    for k in a:
        if a[k] != b.get(k):
            out.append("--- %s\n%s" % (k, "\n".join(difflib.unified_diff(
                a[k].splitlines(), b.get(k, "").splitlines(), "before", "after", lineterm=""))))
    return "\n".join(out)


def test_sigterm_restores_router_state(bed, tcp_server):
    before = bed.snapshot("rtr")
    d = bed.daemon()
    try:
        during = bed.snapshot("rtr")
        res = bed.client("get", 1 * MB)
        assert_transfer_ok(res)
        assert d.alive(), "daemon died"
    finally:
        rc = d.stop()
    assert during != before, "daemon installed no rules/routes at all?"
    assert rc == 0, "daemon exit code %s after SIGTERM" % rc
    after = bed.snapshot("rtr")
    assert after == before, "router state differs after SIGTERM:\n" + diff_snapshots(before, after)


def test_port_range_over_local_ports_is_a_clear_start_error(bed):
    """A port_range that overlaps the kernel's local ports (32768-60999 in the router's
    namespace) would have the router's own connections reset as stray subflows: the daemon
    refuses to start, says why, and leaves nothing behind."""
    before = bed.snapshot("rtr")
    with pytest.raises(bedmod.BedError, match=r"mpconv exited early \(rc=1\)"):
        bed.daemon(extra_main={"port_range": "50000-65535"})
    log = bed.daemons[-1].log_text()
    assert "option port_range '50000-65535' overlaps the kernel's local ports 32768-60999" \
        in log, log
    assert bed.snapshot("rtr") == before, "a daemon that refused to start changed the router"


RAW_TABLE = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


def test_sigterm_restores_router_state_without_raw_table(bed, tcp_server):
    """Router whose iptables-nft has no raw table yet: none may be left behind."""
    for fam in ("ip", "ip6"):
        bed.exec("rtr", ["nft", "delete", "table", fam, "raw"])
    try:
        before = bed.snapshot("rtr")
        assert "*raw" not in before["iptables-save"]
        d = bed.daemon()
        try:
            assert_transfer_ok(bed.client("get", 1 * MB))
        finally:
            rc = d.stop()
        assert rc == 0, "daemon exit code %s after SIGTERM" % rc
        after = bed.snapshot("rtr")
        assert after == before, "router state differs after SIGTERM:\n" + diff_snapshots(before, after)
    finally:
        for ipt in ("iptables-restore", "ip6tables-restore"):
            bed.exec("rtr", [ipt, "-w", "--noflush"], input=RAW_TABLE, check=False)


def test_sigkill_queue_bypass(bed, tcp_server):
    before = bed.snapshot("rtr")
    d = bed.daemon()
    try:
        d.proc.send_signal(signal.SIGKILL)
        d.proc.p.wait(5)
        left = bed.snapshot("rtr")
        for mode, fam in (("get", 4), ("put", 4), ("get", 6)):
            res = bed.client(mode, 1 * MB, family=fam, timeout=10)
            assert_transfer_ok(res)
        server_reports(tcp_server, 3)
    finally:
        d.kill()
        bed.restore(before, "rtr")
    after = bed.snapshot("rtr")
    assert after == before, "manual cleanup incomplete:\n" + diff_snapshots(before, after)
    assert left != before, "daemon left nothing behind?"   # sanity: it was actually set up
