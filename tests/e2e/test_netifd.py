"""Uplinks by OpenWrt interface name (`option interface 'wan'`): the daemon asks netifd
(`ubus call network.interface.NAME status`) for each uplink's device, addresses and gateways.

There is no netifd/ubusd in the bed: a fake `ubus` (a shell script written here, named by
MPCONV_UBUS in the daemon's environment) answers from JSON files shaped like netifd's
replies, describing the bed's real uplinks (wan = up1 100.64.1.2/24 via 100.64.1.1,
wwan = up2 100.64.2.2/24 via 100.64.2.1, with their IPv6 addresses and gateways), and logs
its calls. The daemon's config names only the interfaces: no device, no gateway."""
import json
import os
import re

import pytest

import bed as bedmod
from checks import (MB, assert_converted, assert_transfer_ok, server_reports,
                    wait_curr_estab_zero)

pytestmark = pytest.mark.e2e_timeout(120)

FAKE_UBUS = r"""#!/bin/sh
# fake ubus: `ubus call network.interface.NAME status` -> $DIR/NAME.json
DIR=$(dirname "$0")
echo "$*" >> "$DIR/calls.log"
if [ "$#" -ne 3 ] || [ "$1" != call ] || [ "$3" != status ]; then
	echo "usage: ubus call network.interface.NAME status (got: $*)" >&2
	exit 2
fi
name=${2#network.interface.}
if [ "$name" = "$2" ] || [ ! -f "$DIR/$name.json" ]; then
	echo "Command failed: Not found" >&2
	exit 4
fi
cat "$DIR/$name.json"
"""

EMPTY_INACTIVE = {"ipv4-address": [], "ipv6-address": [], "route": [], "dns-server": [],
                  "dns-search": [], "neighbors": []}


def status_up(l3_device, proto, a4, gw4, a6, gw6, device=None):
    """An interface that is up, in the shape of netifd's `status` reply."""
    st = {"up": True, "pending": False, "available": True, "autostart": True, "dynamic": False,
          "uptime": 1234, "l3_device": l3_device, "proto": proto}
    if device:
        st["device"] = device
    st.update({
        "metric": 0, "dns_metric": 0, "delegation": True,
        "ipv4-address": [{"address": a4, "mask": 24}],
        "ipv6-address": [{"address": a6, "mask": 64, "preferred": 3600, "valid": 7200}],
        "ipv6-prefix": [],
        "ipv6-prefix-assignment": [{"address": "fd00:99::", "mask": 64,
                                    "local-address": {"address": "fd00:99::1", "mask": 64}}],
        "route": [
            {"target": a4.rsplit(".", 1)[0] + ".0", "mask": 24, "nexthop": "0.0.0.0",
             "source": "0.0.0.0/0"},
            {"target": "0.0.0.0", "mask": 0, "nexthop": gw4, "source": a4 + "/32"},
            {"target": "::", "mask": 0, "nexthop": gw6, "metric": 512, "source": "::/0"},
        ],
        "dns-server": [gw4], "dns-search": [], "neighbors": [],
        "inactive": EMPTY_INACTIVE, "data": {},
    })
    return st


WAN = status_up("up1", "dhcp", "100.64.1.2", "100.64.1.1", "fd00:64:1::2", "fd00:64:1::1",
                device="up1")
WWAN = status_up("up2", "qmi", "100.64.2.2", "100.64.2.1", "fd00:64:2::2", "fd00:64:2::1")
DOWN = {"up": False, "pending": False, "available": False, "autostart": True, "dynamic": False,
        "proto": "qmi", "data": {}, "errors": [{"subsystem": "qmi", "code": "NO_DEVICE"}]}

UPLINKS = (("dsl", {"interface": "wan"}), ("lte", {"interface": "wwan"}))


def fake_ubus(bed, name, interfaces):
    """A directory with the fake ubus and one NAME.json per interface; returns the script."""
    d = os.path.join(bed.tmp, name)
    os.makedirs(d, exist_ok=True)
    for iface, st in interfaces.items():
        with open(os.path.join(d, iface + ".json"), "w") as f:
            json.dump(st, f, indent="\t")
    script = os.path.join(d, "ubus")
    with open(script, "w") as f:
        f.write(FAKE_UBUS)
    os.chmod(script, 0o755)
    return script


def calls(script):
    path = os.path.join(os.path.dirname(script), "calls.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().splitlines()


@pytest.fixture(scope="module")
def ubus(bed):
    return fake_ubus(bed, "ubus-up", {"wan": WAN, "wwan": WWAN})


@pytest.fixture(scope="module")
def nf_daemon(bed, ubus):
    d = bed.daemon(uplinks=UPLINKS, env={"MPCONV_UBUS": ubus})
    yield d
    d.stop()


def test_devices_addresses_gateways_from_netifd(bed, ubus, nf_daemon):
    assert calls(ubus) == ["call network.interface.wan status", "call network.interface.wwan status"]
    st = nf_daemon.status()
    ups = {u["name"]: u for u in st["uplinks"]}
    assert sorted(ups) == ["dsl", "lte"], st["uplinks"]
    assert (ups["dsl"]["device"], ups["dsl"]["addr4"]) == ("up1", "100.64.1.2"), ups["dsl"]
    assert (ups["lte"]["device"], ups["lte"]["addr4"]) == ("up2", "100.64.2.2"), ups["lte"]
    assert ups["dsl"].get("addr6") == "fd00:64:1::2", ups["dsl"]
    assert ups["lte"].get("addr6") == "fd00:64:2::2", ups["lte"]
    # The gateways came from netifd's default routes into the uplinks' routing tables.
    for table, gw4, gw6, dev in (("6170", "100.64.1.1", "fd00:64:1::1", "up1"),
                                 ("6171", "100.64.2.1", "fd00:64:2::1", "up2")):
        r4 = bed.exec("rtr", ["ip", "-4", "route", "show", "table", table]).stdout
        r6 = bed.exec("rtr", ["ip", "-6", "route", "show", "table", table]).stdout
        assert re.search(r"^default via %s dev %s\b" % (re.escape(gw4), dev), r4, re.M), r4
        assert re.search(r"^default via %s dev %s\b" % (re.escape(gw6), dev), r6, re.M), r6
    assert "uplink dsl: dev up1" in nf_daemon.log_text(), nf_daemon.log_text()


@pytest.mark.parametrize("family", [4, 6])
def test_converted_transfer(bed, nf_daemon, mptcp_server, family):
    res = bed.client("get", 4 * MB, family=family, timeout=30)
    assert_transfer_ok(res)
    (rep,) = server_reports(mptcp_server, 1)
    assert_converted(rep, min_subflows=2)
    wait_curr_estab_zero(bed)
    assert nf_daemon.alive(), "daemon died"
    busy = {u["name"]: u.get("subflows") for u in nf_daemon.status()["uplinks"]}
    assert set(busy) == {"dsl", "lte"}, busy


def start_fails(bed, interfaces, uplinks):
    """Start a daemon that must exit at once; returns (rc, log)."""
    script = fake_ubus(bed, "ubus-%d" % bed._next_id(), interfaces)
    with pytest.raises(bedmod.BedError) as e:
        bed.daemon(uplinks=uplinks, env={"MPCONV_UBUS": script})
    msg = str(e.value)
    m = re.search(r"mpconv exited early \(rc=(-?\d+)\)", msg)
    assert m, msg
    return int(m.group(1)), bed.daemons[-1].log_text()


def test_down_interface_is_a_clear_start_error(bed, nf_daemon):
    rc, log = start_fails(bed, {"wan": WAN, "wwan": DOWN}, UPLINKS)
    assert rc != 0, log
    assert "uplink 'lte': netifd interface 'wwan' is down" in log, log
    assert nf_daemon.alive(), "the running daemon was disturbed"


def test_unknown_interface_is_a_clear_start_error(bed, nf_daemon):
    rc, log = start_fails(bed, {"wan": WAN}, (("dsl", {"interface": "wan"}),
                                             ("lte", {"interface": "wwan6"})))
    assert rc != 0, log
    assert ("uplink 'lte': netifd interface 'wwan6' unknown (ubus: Command failed: Not found)"
            in log), log


def test_explicit_device_and_gateway_win(bed, nf_daemon, mptcp_server):
    """`device`/`gateway` given next to `interface` override netifd's (here netifd reports a
    wrong gateway for wan, which the config corrects). Runs last: it replaces the module's
    daemon (two daemons cannot share the queue)."""
    wrong = dict(WAN, route=[{"target": "0.0.0.0", "mask": 0, "nexthop": "100.64.1.99"}])
    script = fake_ubus(bed, "ubus-explicit", {"wan": wrong, "wwan": WWAN})
    nf_daemon.stop()
    d = bed.daemon(uplinks=(("dsl", {"interface": "wan", "device": "up1", "gateway": "100.64.1.1"}),
                            ("lte", {"interface": "wwan"})),
                   env={"MPCONV_UBUS": script})
    try:
        r4 = bed.exec("rtr", ["ip", "-4", "route", "show", "table", "6170"]).stdout
        assert re.search(r"^default via 100\.64\.1\.1 dev up1\b", r4, re.M), r4
        assert_transfer_ok(bed.client("get", 1 * MB))
        (rep,) = server_reports(mptcp_server, 1)
        assert_converted(rep, min_subflows=2)
        wait_curr_estab_zero(bed)
    finally:
        assert d.stop() == 0
