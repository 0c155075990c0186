#!/usr/bin/env python3
"""Re-record tests/luci/fixtures/status*.json and handover.json from the real daemon (root only).

Starts the e2e bed (tests/e2e/bed.py: five namespaces, uplinks dsl=up1, lte=up2, each probed
with ICMP at its ISP's gateway), runs three parallel GET/PUT transfers through mpconv and
samples `mpconv status --json` every 0.7 s. Writes the samples with "running": true
prepended, as the rpcd plugin (openwrt/mpconv/files/mpconv.rpcd) returns them. During the
transfer it also asks the rpcd plugin for a handover to lte (`call handover`) and writes its
answer to handover.json.
    sudo python3 tests/luci/record_status.py            (MPCONV_BIN: the daemon to record)
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import bed as bedmod  # noqa: E402
from checks import MB  # noqa: E402

PLUGIN = os.path.join(HERE, "..", "..", "openwrt", "mpconv", "files", "mpconv.rpcd")
UPLINKS = (
    ("dsl", {"device": "up1", "gateway": "100.64.1.1", "gateway6": "fd00:64:1::1",
             "probe": "icmp", "probe_target": "100.64.1.1"}),
    ("lte", {"device": "up2", "gateway": "100.64.2.1", "gateway6": "fd00:64:2::1",
             "probe": "icmp", "probe_target": "100.64.2.1", "probe_interval": "0.5"}),
)


def plugin(st):
    return dict([("running", True)] + list(st.items()))


def handover(b, d, name):
    binary = os.path.abspath(d.binary)
    env = ["MPCONV_SOCKET=%s" % d.socket, "MPCONV=%s" % binary]
    p = b.exec("rtr", ["env"] + env + ["sh", PLUGIN, "call", "handover"],
               input=json.dumps({"uplink": name}), check=False)
    return json.loads(p.stdout)


def main():
    samples = []
    with bedmod.Bed() as b:
        d = b.daemon(uplinks=UPLINKS)
        srv = b.server("mptcp")
        b.shape("20mbit")
        try:
            cl = b.client("mix", 24 * MB, conns=3, parallel=3, background=True, timeout=60)
            for i in range(8):
                time.sleep(0.7)
                samples.append(plugin(d.status()))
                if i == 5:
                    answer = handover(b, d, "lte")
            res = b.client_result(cl, timeout=120)
        finally:
            b.unshape()
        samples.append(plugin(d.status()))
        srv.stop()
        d.stop()
    if not res.get("ok"):
        sys.exit("transfer failed: %s" % res)
    fx = os.path.join(HERE, "fixtures")
    with open(os.path.join(fx, "status-series.json"), "w") as f:
        json.dump(samples, f, indent=1)
        f.write("\n")
    with open(os.path.join(fx, "status.json"), "w") as f:
        json.dump(samples[3], f, indent=1)
        f.write("\n")
    with open(os.path.join(fx, "handover.json"), "w") as f:
        json.dump(answer, f, separators=(",", ":"))
        f.write("\n")
    print("wrote %d samples; handover answer: %s" % (len(samples), json.dumps(answer)))


if __name__ == "__main__":
    main()
