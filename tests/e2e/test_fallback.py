"""Through the running daemon, connections to servers that do not speak MPTCP (or behind
middleboxes stripping option 30) must stay plain TCP and byte-exact."""
import pytest

from checks import MB, assert_not_converted, assert_transfer_ok, server_reports

pytestmark = pytest.mark.e2e_timeout(180)

SIZE = 16 * MB


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("mode", ["get", "put"])
def test_plain_server(bed, daemon, tcp_server, mode, family):
    res = bed.client(mode, SIZE, family=family, timeout=30)
    assert_transfer_ok(res)
    (rep,) = server_reports(tcp_server, 1)
    assert rep["listen_proto"] == "tcp"
    assert_not_converted(rep)
    assert daemon.alive(), "daemon died"


@pytest.fixture
def strip_mptcp(bed):
    rule = ["-t", "mangle", "-A", "FORWARD", "-p", "tcp", "-j", "TCPOPTSTRIP", "--strip-options", "30"]
    for isp in ("isp1", "isp2"):
        for ipt in ("iptables", "ip6tables"):
            bed.exec(isp, [ipt, "-w"] + rule)
    yield
    for isp in ("isp1", "isp2"):
        for ipt in ("iptables", "ip6tables"):
            bed.exec(isp, [ipt, "-w"] + [("-D" if x == "-A" else x) for x in rule], check=False)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("mode", ["get", "put"])
def test_option_stripping_middlebox(bed, daemon, strip_mptcp, mptcp_server, mode, family):
    res = bed.client(mode, SIZE, family=family, timeout=30)
    assert_transfer_ok(res)
    (rep,) = server_reports(mptcp_server, 1)
    assert_not_converted(rep)
    assert daemon.alive(), "daemon died"
