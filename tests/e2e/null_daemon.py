#!/usr/bin/env python3
"""Harness self-check: a do-nothing stand-in for the mpconv CLI (NOT a converter).

    MPCONV_BIN=tests/e2e/null_daemon.py python3 -m pytest -v tests/e2e

`run --config FILE` installs rules shaped like the daemon's (raw-table NFQUEUE with
--queue-bypass for LAN TCP SYNs, one ip rule + route table per uplink), never binds the
queue (so the kernel bypasses it), serves `status` JSON on the config's socket, and on
SIGTERM removes exactly what it added. `status --socket P --json` prints that JSON.
With it, tests that need no conversion (fallback, option stripping, lifecycle) must pass
and the conversion tests must fail: that checks the bed, not mpconv.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys


def parse_uci(path):
    sections, cur = [], None
    for line in open(path):
        f = re.findall(r"'[^']*'|\S+", line.strip())
        f = [x.strip("'") for x in f]
        if not f or f[0].startswith("#"):
            continue
        if f[0] == "config":
            cur = {"_type": f[1], "_name": f[2] if len(f) > 2 else "", "lan": []}
            sections.append(cur)
        elif f[0] == "option" and cur is not None:
            cur[f[1]] = f[2]
        elif f[0] == "list" and cur is not None:
            cur.setdefault(f[1], []).append(f[2])
    return sections


def sh(argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def run(config):
    secs = parse_uci(config)
    main = next(s for s in secs if s["_type"] == "mpconv")
    ups = [s for s in secs if s["_type"] == "uplink"]
    q = main.get("queue", "0")
    undo = []
    for ipt in ("iptables", "ip6tables"):
        for lan in main.get("lan", []):
            rule = ["-t", "raw", "-I", "PREROUTING", "-i", lan, "-p", "tcp", "--syn",
                    "-j", "NFQUEUE", "--queue-num", q, "--queue-bypass"]
            sh([ipt, "-w"] + rule)
            undo.append([ipt, "-w"] + ["-D" if x == "-I" else x for x in rule])
    for i, u in enumerate(ups):
        table = str(200 + i)
        for fam, gw in (("-4", u.get("gateway")), ("-6", u.get("gateway6"))):
            if not gw:
                continue
            sh(["ip", fam, "route", "add", "default", "via", gw, "dev", u["device"], "table", table])
            undo.append(["ip", fam, "route", "del", "default", "via", gw, "dev", u["device"], "table", table])
            sh(["ip", fam, "rule", "add", "fwmark", hex(0x4d50 + i), "table", table, "pref", str(9000 + i)])
            undo.append(["ip", fam, "rule", "del", "pref", str(9000 + i)])
    path = main["socket"]
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)

    def stop(signum, frame):
        for argv in reversed(undo):
            sh(argv, check=False)
        srv.close()
        if os.path.exists(path):
            os.unlink(path)
        print("null_daemon: stopped", file=sys.stderr, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("null_daemon: ready on %s" % path, file=sys.stderr, flush=True)
    status = {"uplinks": [{"name": u["_name"], "device": u["device"], "subflows": 0} for u in ups],
              "connections": [], "counters": {"NullDaemon": 1}, "io": {}}
    while True:
        c, _ = srv.accept()
        with c:
            c.sendall(json.dumps(status).encode() + b"\n")


def status(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    print(data.decode().strip())


def main(argv):
    if len(argv) >= 3 and argv[0] == "run" and argv[1] == "--config":
        run(argv[2])
    elif len(argv) >= 3 and argv[0] == "status" and argv[1] == "--socket":
        status(argv[2])
    else:
        print("usage: null_daemon.py run --config FILE | status --socket PATH --json", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
