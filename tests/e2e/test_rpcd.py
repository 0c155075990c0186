"""The rpcd exec plugin (openwrt/mpconv/files/mpconv.rpcd) against the running daemon."""
import json
import os

import pytest

from bed import REPO

pytestmark = pytest.mark.e2e_timeout(60)

PLUGIN = os.path.join(REPO, "openwrt", "mpconv", "files", "mpconv.rpcd")


def plugin_env(daemon, socket):
    """`env` arguments: the daemon's binary as `mpconv` on PATH (or MPCONV when it has
    another name, e.g. MPCONV_BIN=null_daemon.py), and the control socket."""
    binary = os.path.abspath(daemon.binary)
    env = ["MPCONV_SOCKET=%s" % socket]
    if os.path.basename(binary) == "mpconv":
        env.append("PATH=%s:%s" % (os.path.dirname(binary), os.environ.get("PATH", "/usr/bin:/bin")))
    else:
        env.append("MPCONV=%s" % binary)
    return env


def call(bed, daemon, method, socket, args="{}"):
    p = bed.exec("rtr", ["env"] + plugin_env(daemon, socket) + ["sh", PLUGIN, "call", method],
                 input=args, check=False)
    assert p.returncode == 0, p.stderr
    v = json.loads(p.stdout)
    assert isinstance(v, dict), p.stdout
    return v


def test_rpcd_status(bed, daemon):
    v = call(bed, daemon, "status", daemon.socket)
    assert v.get("running") is True, v
    names = sorted(u.get("name") for u in v.get("uplinks", []))
    assert names == ["dsl", "lte"], v
    assert isinstance(v.get("counters"), dict), v


def test_rpcd_status_no_daemon(bed, daemon):
    v = call(bed, daemon, "status", os.path.join(os.path.dirname(daemon.socket), "nobody.sock"))
    assert v.get("running") is False, v
    assert isinstance(v.get("error"), str) and v["error"], v


def test_rpcd_list_and_handover(bed, daemon):
    p = bed.exec("rtr", ["sh", PLUGIN, "list"])
    assert json.loads(p.stdout) == {"status": {}, "handover": {"uplink": "str"}}
    v = call(bed, daemon, "handover", daemon.socket, '{"uplink":"dsl"}')
    assert v.get("ok") is True and v.get("uplink") == "dsl", v
    assert isinstance(v.get("connections"), int) and v["connections"] >= 0, v
    # an uplink the daemon does not have, a name the plugin refuses, no daemon: error objects
    for args, sock in [('{"uplink":"nosuch"}', daemon.socket),
                       ('{"uplink":"dsl; true"}', daemon.socket),
                       ('{"uplink":"dsl"}', os.path.join(os.path.dirname(daemon.socket), "nobody.sock"))]:
        v = call(bed, daemon, "handover", sock, args)
        assert list(v) == ["error"] and isinstance(v["error"], str) and v["error"], (args, v)
