#!/usr/bin/env python3
"""Re-record tests/luci/fixtures/status*.json from the real daemon (root only).

Starts the e2e bed (tests/e2e/bed.py: five namespaces, uplinks dsl=up1, lte=up2), runs
three parallel GET/PUT transfers through mpconv and samples `mpconv status --json`
every 0.7 s. Writes the samples with "running": true prepended, as the rpcd plugin
(openwrt/mpconv/files/mpconv.rpcd) returns them.
    sudo python3 tests/luci/record_status.py
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import bed as bedmod  # noqa: E402
from checks import MB  # noqa: E402


def plugin(st):
    return dict([("running", True)] + list(st.items()))


def main():
    samples = []
    with bedmod.Bed() as b:
        d = b.daemon()
        srv = b.server("mptcp")
        b.shape("20mbit")
        try:
            cl = b.client("mix", 24 * MB, conns=3, parallel=3, background=True, timeout=60)
            for _ in range(8):
                time.sleep(0.7)
                samples.append(plugin(d.status()))
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
    print("wrote %d samples" % len(samples))


if __name__ == "__main__":
    main()
