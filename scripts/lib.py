"""Shared helpers for scripts/bench and scripts/demo (stdlib only, root).

Both build the namespace test bed of tests/e2e/bed.py (imported from there, never copied):
five namespaces, veth links, no route out of the bed, all deleted on exit.
"""
import os
import platform
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
E2E = os.path.join(REPO, "tests", "e2e")
sys.path.insert(0, E2E)

import bed as bedmod  # noqa: E402

MB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")

# One uplink only: the same single path (rtr up1 -> isp1 -> srv) as plain forwarding.
UPLINK_DSL = (("dsl", {"device": "up1", "gateway": "100.64.1.1", "gateway6": "fd00:64:1::1"}),)
UPLINKS_BOTH = bedmod.Daemon.DEFAULT_UPLINKS


def die(msg, code=2):
    print("%s: %s" % (os.path.basename(sys.argv[0]), msg), file=sys.stderr)
    sys.exit(code)


def need_root():
    if os.geteuid() != 0:
        die("needs root (network namespaces, iptables, NFQUEUE)")


def cargo_build(argv, timeout=900):
    """Run a cargo build in the repo (bounded); raise SystemExit on failure."""
    print("+ " + " ".join(argv), flush=True)
    try:
        p = subprocess.run(argv, cwd=REPO, timeout=timeout)
    except subprocess.TimeoutExpired:
        die("build timed out after %ds" % timeout)
    if p.returncode != 0:
        die("build failed (rc=%d)" % p.returncode)


def cpu_seconds(pid):
    """user+sys CPU seconds of a process so far (/proc/PID/stat utime+stime), None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    # fields after the parenthesised comm; utime and stime are fields 14 and 15 (1-based)
    rest = data[data.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def status_field(pid, name):
    """A /proc/PID/status field in kB (e.g. VmHWM), None if unavailable."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"kernel": platform.release(), "cpu": model, "nproc": os.cpu_count()}


def parse_rate(s):
    """tc-style rate ('50mbit', '1gbit', '800kbit', '10mbps') -> bits per second."""
    t = s.strip().lower()
    units = (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("gbps", 8e9), ("mbps", 8e6),
             ("kbps", 8e3), ("bit", 1), ("bps", 8))
    for suf, mul in units:
        if t.endswith(suf):
            try:
                v = float(t[:-len(suf)])
            except ValueError:
                break
            if v > 0:
                return v * mul
            break
    raise ValueError("bad rate %r (examples: 50mbit, 1gbit, 800kbit)" % s)


def uplink_bytes(bed):
    """{'up1': (rx, tx), 'up2': (rx, tx)} of the router's uplinks."""
    return {d: bed.iface_bytes("rtr", d) for d in ("up1", "up2")}


def wait_exit(proc, timeout):
    try:
        proc.p.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def install_signal_teardown():
    """SIGTERM/SIGHUP -> KeyboardInterrupt, so `with Bed()` tears down on those too."""
    def on_sig(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_sig)


def deadline_guard(seconds):
    """Abort the whole script (with teardown) after `seconds` of wall clock."""
    def on_alarm(signum, frame):
        raise TimeoutError("overall time limit of %d s exceeded" % seconds)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(seconds))


def monotonic():
    return time.monotonic()
