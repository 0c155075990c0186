"""Network-namespace test bed for mpconv (stdlib only, needs root).

Topology (all inside namespaces named ``mpc<pid>-<role>``; nothing routes out)::

    cli ──lan0── rtr ──up1── isp1 ──s1──┐
     10.10.0.2      10.10.0.1             srv  203.0.113.10/32, 2001:db8:5::10/128 (on lo)
                    └──up2── isp2 ──s2──┘
                                 (CGN: MASQUERADE towards srv)

    link          rtr/cli side                   isp/srv side
    cli-rtr       cli eth0 10.10.0.2 fd00:10::2    rtr lan0 10.10.0.1 fd00:10::1
    rtr-isp1      rtr up1 100.64.1.2 fd00:64:1::2  isp1 cpe  100.64.1.1 fd00:64:1::1
    rtr-isp2      rtr up2 100.64.2.2 fd00:64:2::2  isp2 cpe  100.64.2.1 fd00:64:2::1
    isp1-srv      isp1 s1 172.16.1.1 fd00:1::1     srv s1 172.16.1.2 fd00:1::2
    isp2-srv      isp2 s2 172.16.2.1 fd00:2::1     srv s2 172.16.2.2 fd00:2::2

The router has an OpenWrt-fw4-like iptables/ip6tables firewall (FORWARD/INPUT policy
DROP, ct established/related accept, invalid drop, lan0 -> up+ accept, MASQUERADE out of
up1/up2) and its main-table default route via isp1.

Optional ``dst`` namespace (``Bed(dst=True)`` or ``bed.add_dst()``), reachable only from srv
(destinations for a concentrator in srv; nothing else routes to it, and it routes nowhere)::

    srv d0 198.18.1.1/24 fd00:18::1/64 ── dst eth0 198.18.1.2/24 fd00:18::2/64,
                                           service 198.18.0.10/32, 2001:db8:18::10/128 (on lo)

and with it a second srv service address 198.51.100.10/32 (lo), routed by isp1/isp2 like srv's.

Use as a context manager (``with Bed() as bed: ...``) or via the pytest fixtures in
conftest.py.  Teardown kills every process the bed started and deletes its namespaces,
also on failure.
"""
import atexit
import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
PEERS = os.path.join(HERE, "peers.py")
PYTHON = sys.executable or "python3"

ROLES = ("cli", "rtr", "isp1", "isp2", "srv")
SRV4 = "203.0.113.10"
SRV6 = "2001:db8:5::10"
PORT = 8080
ISP2_NAT4 = "172.16.2.1"   # what the server sees for traffic through isp2 (CGN)
ISP2_NAT6 = "fd00:2::1"
# optional dst namespace (Bed(dst=True) / bed.add_dst()): only srv routes to it
DST4 = "198.18.0.10"
DST6 = "2001:db8:18::10"
SRV_TO_DST4 = "198.18.1.1"   # srv's address on the srv-dst link (what dst's servers see)
SRV_TO_DST6 = "fd00:18::1"
SRV_ALT4 = "198.51.100.10"  # extra srv service address (with dst): reachable by plain forwarding
CONC_PORT = 5124

# Counters that must stay unchanged on the server for a correct conversion.
MUST_STAY_ZERO = (
    "MPTcpExtMPCapableFallbackACK", "MPTcpExtMPJoinAckHMacFailure",
    "MPTcpExtMPJoinNoTokenFound", "MPTcpExtDSSNotMatching", "MPTcpExtDSSNoMatchTCP",
    "MPTcpExtDSSCorruptionFallback", "MPTcpExtDssFallback", "MPTcpExtInfiniteMapRx",
)


class BedError(RuntimeError):
    pass


def _run(argv, check=True, timeout=30, input=None, env=None):
    try:
        p = subprocess.run(argv, input=input, capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise BedError("timed out after %ss: %s" % (timeout, " ".join(argv))) from e
    if check and p.returncode != 0:
        raise BedError("command failed (rc=%d): %s\nstdout: %s\nstderr: %s"
                       % (p.returncode, " ".join(argv), p.stdout.strip(), p.stderr.strip()))
    return p


def ns_exec(ns, argv, check=True, timeout=30, input=None, env=None):
    """Run argv inside netns `ns` (``ip netns exec``; also remounts /sys for that ns)."""
    if isinstance(argv, str):
        argv = ["sh", "-c", argv]
    return _run(["ip", "netns", "exec", ns] + list(argv), check=check, timeout=timeout,
                input=input, env=env)


def ns_list():
    p = _run(["ip", "netns", "list"], check=False)
    return [l.split()[0] for l in p.stdout.splitlines() if l.strip()]


def cleanup_stale():
    """Delete namespaces of earlier runs (mpc<pid>-*) whose pid is gone."""
    for ns in ns_list():
        m = re.match(r"^mpc(\d+)-[a-z0-9]+$", ns)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists("/proc/%d" % pid):
            continue
        _kill_ns_pids(ns)
        _run(["ip", "netns", "del", ns], check=False)


def _kill_ns_pids(ns):
    p = _run(["ip", "netns", "pids", ns], check=False)
    for tok in p.stdout.split():
        with contextlib.suppress(Exception):
            os.kill(int(tok), signal.SIGKILL)


def strip_counters(text):
    """Normalise iptables-save / nft output: drop comments and packet/byte counters, and
    sort the tables (iptables-nft lists them in creation order, which a flush changes)."""
    blocks, cur = [], []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        line = re.sub(r"\[\d+:\d+\]", "[0:0]", line)
        line = re.sub(r"counter packets \d+ bytes \d+", "counter", line)
        if (line.startswith("*") or line.startswith("table ")) and cur:
            blocks.append(cur)
            cur = []
        cur.append(line)
    if cur:
        blocks.append(cur)
    return "\n".join("\n".join(b) for b in sorted(blocks))


class Proc:
    """A subprocess in a namespace, killed at bed teardown."""

    def __init__(self, bed, role, argv, stdout_path=None, stderr_path=None, stdin=None):
        self.bed, self.role, self.argv = bed, role, argv
        self.stderr_path = stderr_path
        self._err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        self._out = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
        self.p = subprocess.Popen(["ip", "netns", "exec", bed.ns[role]] + list(argv),
                                  stdin=stdin or subprocess.DEVNULL, stdout=self._out,
                                  stderr=self._err, start_new_session=True)
        bed._procs.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def wait_line(self, want, timeout=10):
        """Wait (bounded) for a stdout line equal to `want`."""
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.p.stdout.fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                d = os.read(fd, 4096)
                if not d:
                    break
                buf += d
                if want.encode() in buf.split(b"\n"):
                    return True
            elif not self.alive():
                break
        raise BedError("%s did not print %r within %ss (rc=%s); stderr:\n%s"
                       % (self.argv, want, timeout, self.p.poll(), self.stderr_text()))

    def stderr_text(self):
        if self.stderr_path and os.path.exists(self.stderr_path):
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        return ""

    def send_signal(self, sig):
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.p.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal, wait (bounded), SIGKILL if needed. Returns the exit code."""
        if self.alive():
            self.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.p.returncode

    def kill(self):
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGKILL)
            self.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.p.wait(5)

    def close_files(self):
        for f in (self._err, self._out):
            if hasattr(f, "close"):
                with contextlib.suppress(Exception):
                    f.close()
        if self.p.stdout:
            with contextlib.suppress(Exception):
                self.p.stdout.close()


class PeerServer:
    """peers.py server running in srv; reports accepted connections as JSON lines."""

    def __init__(self, bed, proto="mptcp", port=PORT, bind=(SRV4, SRV6), timeout=60, role="srv"):
        self.bed = bed
        n = bed._next_id()
        self.report = os.path.join(bed.tmp, "server%d.jsonl" % n)
        open(self.report, "w").close()
        argv = [PYTHON, PEERS, "server", "--proto", proto, "--port", str(port),
                "--report", self.report, "--timeout", str(timeout)]
        for b in bind:
            argv += ["--bind", b]
        self.proc = Proc(bed, role, argv, stderr_path=os.path.join(bed.tmp, "server%d.err" % n))
        self.proc.wait_line("READY", timeout=10)

    def reports(self):
        with open(self.report) as f:
            return [json.loads(l) for l in f if l.strip()]

    def wait_reports(self, n, timeout=20):
        """Wait (bounded) until at least n connections were reported; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.reports()
            if len(r) >= n or time.monotonic() > deadline:
                return r
            time.sleep(0.1)

    def stop(self):
        self.proc.kill()


class Daemon:
    """mpconv run --config FILE inside rtr."""

    DEFAULT_UPLINKS = (
        ("dsl", {"device": "up1", "gateway": "100.64.1.1", "gateway6": "fd00:64:1::1"}),
        ("lte", {"device": "up2", "gateway": "100.64.2.1", "gateway6": "fd00:64:2::1"}),
    )

    def __init__(self, bed, mode="implicit", queue=0, checksum=0, uplinks=None,
                 extra_main=None, binary=None, ready_timeout=10, env=None, uplink_opts=None):
        """uplink_opts {name: {key: value}} adds or overrides options of the uplinks (default
        ones or `uplinks`), e.g. {"lte": {"backup": 1}} or {"dsl": {"probe": "icmp", ...}}."""
        self.bed = bed
        n = bed._next_id()
        self.dir = os.path.join(bed.tmp, "daemon%d" % n)
        os.makedirs(self.dir, exist_ok=True)
        self.socket = os.path.join(self.dir, "mpconv.sock")
        self.config = os.path.join(self.dir, "mpconv.conf")
        self.log = os.path.join(self.dir, "mpconv.log")
        self.binary = binary or mpconv_bin()
        uplinks = uplinks if uplinks is not None else self.DEFAULT_UPLINKS
        if uplink_opts:
            unknown = set(uplink_opts) - {n for n, _ in uplinks}
            if unknown:
                raise BedError("uplink_opts for unknown uplinks %s" % sorted(unknown))
            uplinks = [(n, dict(o, **uplink_opts.get(n, {}))) for n, o in uplinks]
        lines = ["config mpconv 'main'",
                 "\toption mode '%s'" % mode,
                 "\tlist lan 'lan0'",
                 "\toption queue '%d'" % queue,
                 "\toption socket '%s'" % self.socket,
                 "\toption checksum '%d'" % checksum]
        for k, v in (extra_main or {}).items():
            if isinstance(v, (list, tuple)):   # a UCI list: one `list KEY 'ITEM'` per item
                lines.extend("\tlist %s '%s'" % (k, item) for item in v)
            else:
                lines.append("\toption %s '%s'" % (k, v))
        for name, opts in uplinks:
            lines.append("config uplink '%s'" % name)
            for k, v in opts.items():
                if isinstance(v, (list, tuple)):   # a UCI list, e.g. probe_target
                    lines.extend("\tlist %s '%s'" % (k, item) for item in v)
                else:
                    lines.append("\toption %s '%s'" % (k, v))
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        if not os.access(self.binary, os.X_OK):
            raise BedError("mpconv binary not found at %s (build it, or set MPCONV_BIN)" % self.binary)
        argv = [self.binary, "run", "--config", self.config]
        if env:
            argv = ["env"] + ["%s=%s" % kv for kv in env.items()] + argv
        self.proc = Proc(bed, "rtr", argv, stdout_path=self.log + ".stdout", stderr_path=self.log)
        bed.daemons.append(self)
        deadline = time.monotonic() + ready_timeout
        while not os.path.exists(self.socket):
            if not self.proc.alive():
                raise BedError("mpconv exited early (rc=%s); log:\n%s" % (self.proc.p.returncode, self.log_text()))
            if time.monotonic() > deadline:
                self.proc.kill()
                raise BedError("mpconv socket %s did not appear within %ss; log:\n%s"
                               % (self.socket, ready_timeout, self.log_text()))
            time.sleep(0.05)

    def log_text(self):
        return self.proc.stderr_text()

    def alive(self):
        return self.proc.alive()

    def status_raw(self, timeout=10):
        return self.bed.exec("rtr", [self.binary, "status", "--socket", self.socket, "--json"],
                             timeout=timeout, check=False)

    def status(self, timeout=10):
        p = self.status_raw(timeout)
        if p.returncode != 0:
            raise BedError("mpconv status failed (rc=%d): %s" % (p.returncode, p.stderr.strip()))
        return json.loads(p.stdout)

    def handover(self, uplink, timeout=10):
        """`mpconv handover UPLINK --json`: (returncode, parsed JSON or None, raw stdout+stderr)."""
        p = self.bed.exec("rtr", [self.binary, "handover", uplink, "--json", "--socket", self.socket],
                          timeout=timeout, check=False)
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            doc = None
        return p.returncode, doc, (p.stdout + p.stderr).strip()

    def stop(self, timeout=10):
        """SIGTERM, bounded wait (then SIGKILL). Returns the exit code."""
        return self.proc.stop(signal.SIGTERM, timeout)

    def kill(self):
        self.proc.kill()


class Concentrator:
    """`mpconv concentrator -c FILE` in srv (RFC 8803 converter), listening on ADDR:PORT.
    `opts` become UCI lines: a list value gives `list KEY 'ITEM'` lines, others `option`."""

    def __init__(self, bed, name=None, listen=None, role="srv", ready_timeout=10, **opts):
        self.bed = bed
        n = bed._next_id()
        name = name or "conc%d" % n
        self.listen = listen or "%s:%d" % (SRV4, CONC_PORT)
        self.config = os.path.join(bed.tmp, name + ".conf")
        self.socket = os.path.join(bed.tmp, name + ".sock")
        self.log = os.path.join(bed.tmp, name + ".log")
        self.role = role
        lines = ["config concentrator 'main'",
                 "\toption listen '%s'" % self.listen,
                 "\toption socket '%s'" % self.socket]
        opts.setdefault("log_level", "debug")
        for k, v in opts.items():
            for item in (v if isinstance(v, (list, tuple)) else [v]):
                lines.append("\t%s %s '%s'" % ("list" if isinstance(v, (list, tuple)) else "option", k, item))
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = Proc(bed, role, [mpconv_bin(), "concentrator", "-c", self.config],
                         stdout_path=self.log + ".out", stderr_path=self.log)
        bed.concentrators.append(self)
        deadline = time.monotonic() + ready_timeout
        while not os.path.exists(self.socket):
            if not self.proc.alive() or time.monotonic() > deadline:
                self.proc.kill()
                raise BedError("concentrator did not start (rc=%s):\n%s"
                               % (self.proc.p.returncode, self.log_text()))
            time.sleep(0.05)

    def log_text(self):
        return self.proc.stderr_text()

    def alive(self):
        return self.proc.alive()

    def status(self, timeout=10):
        p = self.bed.exec(self.role, [mpconv_bin(), "status", "--json", "-s", self.socket],
                          timeout=timeout)
        return json.loads(p.stdout)

    def stop(self, timeout=10):
        return self.proc.stop(signal.SIGTERM, timeout)


def mpconv_bin():
    return os.environ.get("MPCONV_BIN") or os.path.join(REPO, "target", "debug", "mpconv")


def nfq_delay_bin():
    """The NFQUEUE delayer (examples/nfq_delay.rs): $MPCONV_NFQ_DELAY, else next to the
    daemon binary's directory (TARGET/release/examples/), else target/release/examples/."""
    if os.environ.get("MPCONV_NFQ_DELAY"):
        return os.environ["MPCONV_NFQ_DELAY"]
    cand = os.path.join(os.path.dirname(os.path.abspath(mpconv_bin())), "examples", "nfq_delay")
    if os.access(cand, os.X_OK):
        return cand
    return os.path.join(REPO, "target", "release", "examples", "nfq_delay")


def gap_after(samples, t, until=None):
    """Longest interval without new bytes in a client timeline (`samples`: [(time, bytes)],
    time.monotonic() seconds, as peers.py --timeline records them) among the intervals that
    end after time `t` (and, with `until`, start before `until`). Returns (secs, start, end);
    (0, t, t) when no interval qualifies."""
    best = (0.0, t, t)
    prev = None
    for ts, nb in samples:
        if prev is not None and nb > prev[1]:
            if ts > t and (until is None or prev[0] < until) and ts - prev[0] > best[0]:
                best = (ts - prev[0], prev[0], ts)
            prev = (ts, nb)
        elif prev is None:
            prev = (ts, nb)
    return best


class Bed:
    def __init__(self, prefix=None, tmpdir=None, keep_tmp=False, dst=False):
        self.prefix = prefix or "mpc%d-" % os.getpid()
        self._own_tmp = tmpdir is None
        self.tmp = tmpdir or tempfile.mkdtemp(prefix="mpconv-e2e-")
        self.keep_tmp = keep_tmp
        self.ns = {r: self.prefix + r for r in ROLES}
        self.roles = list(ROLES)
        self._want_dst = dst
        self._procs = []
        self.daemons = []
        self.concentrators = []
        self._delays = {}       # uplink -> (Proc of nfq_delay, [(cmd, table, rule argv)])
        self._blackholes = {}   # uplink -> [(cmd, rule argv)]
        self._n = 0
        self._built = False
        self._nstat_dir = os.path.join(self.tmp, "nstat")
        os.makedirs(self._nstat_dir, exist_ok=True)

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self):
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()
        return False

    def _next_id(self):
        self._n += 1
        return self._n

    def build(self):
        if os.geteuid() != 0:
            raise BedError("the e2e bed needs root")
        cleanup_stale()
        for r in ROLES:
            if self.ns[r] in ns_list():
                raise BedError("namespace %s already exists" % self.ns[r])
        atexit.register(self.teardown)
        self._built = True
        for r in ROLES:
            _run(["ip", "netns", "add", self.ns[r]])
            self.exec(r, ["ip", "link", "set", "lo", "up"])
            self.sysctl(r, {
                "net.ipv6.conf.all.accept_dad": 0, "net.ipv6.conf.default.accept_dad": 0,
                "net.ipv6.conf.all.accept_ra": 0, "net.ipv6.conf.default.accept_ra": 0,
                "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
            })
        self._veth("cli", "eth0", "rtr", "lan0")
        self._veth("rtr", "up1", "isp1", "cpe")
        self._veth("rtr", "up2", "isp2", "cpe")
        self._veth("isp1", "s1", "srv", "s1")
        self._veth("isp2", "s2", "srv", "s2")
        self._addr("cli", "eth0", "10.10.0.2/24", "fd00:10::2/64")
        self._addr("rtr", "lan0", "10.10.0.1/24", "fd00:10::1/64")
        self._addr("rtr", "up1", "100.64.1.2/24", "fd00:64:1::2/64")
        self._addr("rtr", "up2", "100.64.2.2/24", "fd00:64:2::2/64")
        self._addr("isp1", "cpe", "100.64.1.1/24", "fd00:64:1::1/64")
        self._addr("isp2", "cpe", "100.64.2.1/24", "fd00:64:2::1/64")
        self._addr("isp1", "s1", "172.16.1.1/24", "fd00:1::1/64")
        self._addr("isp2", "s2", "172.16.2.1/24", "fd00:2::1/64")
        self._addr("srv", "s1", "172.16.1.2/24", "fd00:1::2/64")
        self._addr("srv", "s2", "172.16.2.2/24", "fd00:2::2/64")
        # service addresses on lo (no dummy module in this kernel)
        self._addr("srv", "lo", SRV4 + "/32", SRV6 + "/128")

        # routing: the only default routes are cli -> rtr and rtr -> isp1 (inside the bed)
        self.exec("cli", "ip route add default via 10.10.0.1 && ip -6 route add default via fd00:10::1")
        self.exec("rtr", "ip route add default via 100.64.1.1 dev up1 && "
                         "ip -6 route add default via fd00:64:1::1 dev up1")
        for isp, i in (("isp1", 1), ("isp2", 2)):
            self.exec(isp, "ip route add %s/32 via 172.16.%d.2 && ip -6 route add %s/128 via fd00:%d::2"
                      % (SRV4, i, SRV6, i))
        self.exec("srv", "ip route add 100.64.1.0/24 via 172.16.1.1 && "
                         "ip route add 100.64.2.0/24 via 172.16.2.1 && "
                         "ip -6 route add fd00:64:1::/64 via fd00:1::1 && "
                         "ip -6 route add fd00:64:2::/64 via fd00:2::1")
        for r in ("rtr", "isp1", "isp2"):
            self.sysctl(r, {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1})
        self._firewall()
        # CGN in isp2
        self.exec("isp2", "iptables -t nat -A POSTROUTING -o s2 -j MASQUERADE && "
                          "ip6tables -t nat -A POSTROUTING -o s2 -j MASQUERADE")
        # kernel MPTCP on the server
        self.sysctl("srv", {"net.mptcp.enabled": 1, "net.mptcp.checksum_enabled": 0})
        self.exec("srv", ["ip", "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8"])
        if self._want_dst:
            self.add_dst()

    def add_dst(self):
        """Create the optional `dst` namespace hanging off srv (see the module docstring):
        srv routes DST4/DST6 to it; dst has no default route, srv does not forward, so only
        processes in srv (e.g. a concentrator) can talk to dst's servers."""
        if "dst" in self.roles:
            return
        ns = self.prefix + "dst"
        if ns in ns_list():
            raise BedError("namespace %s already exists" % ns)
        self.ns["dst"] = ns
        self.roles.append("dst")
        _run(["ip", "netns", "add", ns])
        self.exec("dst", ["ip", "link", "set", "lo", "up"])
        self.sysctl("dst", {
            "net.ipv6.conf.all.accept_dad": 0, "net.ipv6.conf.default.accept_dad": 0,
            "net.ipv6.conf.all.accept_ra": 0, "net.ipv6.conf.default.accept_ra": 0,
            "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
        })
        self._veth("srv", "d0", "dst", "eth0")
        self._addr("srv", "d0", SRV_TO_DST4 + "/24", SRV_TO_DST6 + "/64")
        self._addr("dst", "eth0", "198.18.1.2/24", "fd00:18::2/64")
        self._addr("dst", "lo", DST4 + "/32", DST6 + "/128")
        self.exec("srv", "ip route add %s/32 via 198.18.1.2 dev d0 && "
                         "ip -6 route add %s/128 via fd00:18::2 dev d0" % (DST4, DST6))
        # A second srv service address, routed by both ISPs like SRV4 (plain-forwarding target
        # that is neither the concentrator's listening address nor in dst).
        self.exec("srv", ["ip", "addr", "add", SRV_ALT4 + "/32", "dev", "lo"])
        for isp, i in (("isp1", 1), ("isp2", 2)):
            self.exec(isp, "ip route add %s/32 via 172.16.%d.2" % (SRV_ALT4, i))

    def _veth(self, a, ifa, b, ifb):
        self.exec(a, ["ip", "link", "add", ifa, "type", "veth", "peer", "name", ifb,
                      "netns", self.ns[b]])
        self.exec(a, ["ip", "link", "set", "dev", ifa, "up"])
        self.exec(b, ["ip", "link", "set", "dev", ifb, "up"])

    def _addr(self, r, dev, a4, a6):
        self.exec(r, ["ip", "addr", "add", a4, "dev", dev])
        self.exec(r, ["ip", "-6", "addr", "add", a6, "dev", dev, "nodad"])

    def _firewall(self):
        """OpenWrt-fw4-like router firewall (iptables + ip6tables), loaded with *-restore
        so every table (raw, mangle, nat, filter) and built-in chain exists from the start:
        with iptables-nft, later rule deletions then leave exactly this state again."""
        for ipt, icmp in (("iptables", "-p icmp --icmp-type echo-request"),
                          ("ip6tables", "-p ipv6-icmp")):
            text = "\n".join([
                "*raw", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", "COMMIT",
                "*mangle", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]",
                ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", "COMMIT",
                "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                ":POSTROUTING ACCEPT [0:0]",
                "-A POSTROUTING -o up1 -j MASQUERADE",
                "-A POSTROUTING -o up2 -j MASQUERADE",
                "COMMIT",
                "*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
                "-A INPUT -i lo -j ACCEPT",
                "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A INPUT -m conntrack --ctstate INVALID -j DROP",
                "-A INPUT -i lan0 -j ACCEPT",
                "-A INPUT %s -j ACCEPT" % icmp,
                "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
                "-A FORWARD -i lan0 -o up+ -j ACCEPT",
                "-A FORWARD %s -j ACCEPT" % icmp,
                "COMMIT", ""])
            self.exec("rtr", [ipt + "-restore", "-w"], input=text)

    def teardown(self):
        if not self._built:
            return
        self._built = False
        for up in list(self._blackholes):
            with contextlib.suppress(Exception):
                self.restore_path(up)
        for up in list(self._delays):
            with contextlib.suppress(Exception):
                self.undelay((up,))
        for p in reversed(self._procs):
            with contextlib.suppress(Exception):
                p.kill()
            p.close_files()
        for r in self.roles:
            ns = self.ns[r]
            if ns in ns_list():
                _kill_ns_pids(ns)
                _run(["ip", "netns", "del", ns], check=False)
        if self._own_tmp and not self.keep_tmp and not os.environ.get("MPC_E2E_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---------------------------------------------------------------- helpers
    def exec(self, role, argv, check=True, timeout=30, input=None, env=None):
        return ns_exec(self.ns[role], argv, check=check, timeout=timeout, input=input, env=env)

    def sysctl(self, role, values):
        for k, v in values.items():
            self.exec(role, ["sysctl", "-q", "-w", "%s=%s" % (k, v)])

    def popen(self, role, argv, **kw):
        return Proc(self, role, argv, **kw)

    def nstat(self, role):
        """Absolute kernel counters of the namespace as {name: int}."""
        env = dict(os.environ, NSTAT_HISTORY=os.path.join(self._nstat_dir, role))
        p = self.exec(role, ["nstat", "-asz"], env=env)
        out = {}
        for line in p.stdout.splitlines():
            f = line.split()
            if len(f) >= 2 and not line.startswith("#") and f[1].isdigit():
                out[f[0]] = int(f[1])
        return out

    @staticmethod
    def delta(before, after, names=None):
        names = names or sorted(set(before) | set(after))
        return {n: after.get(n, 0) - before.get(n, 0) for n in names}

    def iface_bytes(self, role, dev):
        """(rx_bytes, tx_bytes) of dev in role's namespace (sysfs via ip netns exec)."""
        base = "/sys/class/net/%s/statistics" % dev
        p = self.exec(role, ["cat", base + "/rx_bytes", base + "/tx_bytes"])
        rx, tx = (int(x) for x in p.stdout.split())
        return rx, tx

    def shape(self, rate="20mbit", uplinks=("up1", "up2"), burst="16kb", latency="50ms"):
        """tbf on the router's uplink egress (upload) and the ISP side towards it (download).
        `rate` is one rate for all, or a dict {uplink: rate}."""
        for up in uplinks:
            r = rate[up] if isinstance(rate, dict) else rate
            isp = {"up1": "isp1", "up2": "isp2"}[up]
            for role, dev in (("rtr", up), (isp, "cpe")):
                self.exec(role, ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", r,
                                 "burst", burst, "latency", latency])

    def unshape(self, uplinks=("up1", "up2")):
        for up in uplinks:
            isp = {"up1": "isp1", "up2": "isp2"}[up]
            for role, dev in (("rtr", up), (isp, "cpe")):
                self.exec(role, ["tc", "qdisc", "del", "dev", dev, "root"], check=False)

    # ---------------------------------------------------------------- path delay and cuts
    ISP_OF = {"up1": "isp1", "up2": "isp2"}
    ISP_SRV_DEV = {"up1": "s1", "up2": "s2"}
    DELAY_QUEUE = {"up1": 101, "up2": 102}

    def delay(self, ms, uplinks=("up1", "up2")):
        """Delay every packet on the path of each uplink by `ms` milliseconds in EACH direction
        (so the path's RTT grows by 2*ms): an nfq_delay process in the ISP's namespace holds
        what enters the ISP from the router (cpe) and from the server (s1/s2), FIFO (no
        reordering). The queue rules have no --queue-bypass: if the delayer dies, the path
        goes dead, loudly. Undone by undelay() and at teardown."""
        binary = nfq_delay_bin()
        if not os.access(binary, os.X_OK):
            raise BedError("nfq_delay not found at %s (cargo build --release --examples, or set "
                           "MPCONV_NFQ_DELAY)" % binary)
        for up in uplinks:
            if up in self._delays:
                self.undelay((up,))
            isp, q = self.ISP_OF[up], self.DELAY_QUEUE[up]
            n = self._next_id()
            proc = Proc(self, isp, [binary, str(q), str(ms)],
                        stderr_path=os.path.join(self.tmp, "delay%d-%s.err" % (n, up)))
            proc.wait_line("READY", timeout=10)
            rules = []
            for ipt in ("iptables", "ip6tables"):
                for dev in ("cpe", self.ISP_SRV_DEV[up]):
                    rule = ["PREROUTING", "-i", dev, "-j", "NFQUEUE", "--queue-num", str(q)]
                    self.exec(isp, [ipt, "-w", "-t", "mangle", "-A"] + rule)
                    rules.append((ipt, rule))
            self._delays[up] = (proc, rules)

    def undelay(self, uplinks=("up1", "up2")):
        """Remove the delay rules of the uplinks, then stop their delayers (which accept
        whatever they still hold). Returns {uplink: the delayer's final statistics line}."""
        out = {}
        for up in uplinks:
            ent = self._delays.pop(up, None)
            if ent is None:
                continue
            proc, rules = ent
            isp = self.ISP_OF[up]
            for ipt, rule in rules:
                self.exec(isp, [ipt, "-w", "-t", "mangle", "-D"] + rule, check=False)
            proc.stop(signal.SIGTERM, timeout=5)
            try:
                out[up] = proc.p.stdout.read().decode(errors="replace").strip().splitlines()[-1]
            except Exception:
                out[up] = ""
        return out

    def queue_drops(self, uplinks=("up1", "up2")):
        """{uplink: (queue_dropped, user_dropped)} of the delayers' queues, from
        /proc/net/netfilter/nfnetlink_queue in the ISP namespaces (0s if not delayed)."""
        out = {}
        for up in uplinks:
            out[up] = (0, 0)
            p = self.exec(self.ISP_OF[up], ["cat", "/proc/net/netfilter/nfnetlink_queue"], check=False)
            for line in p.stdout.splitlines():
                f = line.split()
                # queue portid waiting copy_mode copy_range queue_dropped user_dropped id 1
                if len(f) >= 7 and f[0] == str(self.DELAY_QUEUE[up]):
                    out[up] = (int(f[5]), int(f[6]))
        return out

    def link(self, uplink, up):
        """Cut (up=False) or restore the uplink's line at the ISP end: `ip link set cpe down`
        in the ISP's namespace, so the router's interface sees NO-CARRIER."""
        self.exec(self.ISP_OF[uplink], ["ip", "link", "set", "cpe", "up" if up else "down"])

    def blackhole(self, uplink):
        """Silently drop everything on the uplink's path inside the ISP (both directions, raw
        PREROUTING, before the delayer); the link stays up and ARP/ND still work."""
        if uplink in self._blackholes:
            return
        isp, rules = self.ISP_OF[uplink], []
        for ipt in ("iptables", "ip6tables"):
            for dev in ("cpe", self.ISP_SRV_DEV[uplink]):
                rule = ["PREROUTING", "-i", dev, "-j", "DROP"]
                self.exec(isp, [ipt, "-w", "-t", "raw", "-I"] + rule)
                rules.append((ipt, rule))
        self._blackholes[uplink] = rules

    def restore_path(self, uplink):
        """Undo blackhole()."""
        for ipt, rule in self._blackholes.pop(uplink, []):
            self.exec(self.ISP_OF[uplink], [ipt, "-w", "-t", "raw", "-D"] + rule, check=False)

    def set_offloads(self, role, dev, on):
        """GSO/GRO/TSO on or off (ethtool) for one device."""
        v = "on" if on else "off"
        self.exec(role, ["ethtool", "-K", dev, "gro", v, "gso", v, "tso", v], check=False)

    def set_server_checksum(self, on):
        self.sysctl("srv", {"net.mptcp.checksum_enabled": 1 if on else 0})

    def server(self, proto="mptcp", **kw):
        return PeerServer(self, proto=proto, **kw)

    def client(self, mode="get", size=1 << 20, family=4, conns=1, parallel=1, mptcp=False,
               timeout=30, server=None, port=PORT, run_timeout=None, background=False, role="cli",
               timeline=False, gap_after=None):
        """Run peers.py client in `role` (default cli). Returns the parsed JSON result (or a Proc if background).
        mode: get | put | mix.
        timeline: each GET result gets `timeline` [[time.monotonic(), bytes received], ...] (one
        sample per recv; the first is the request) and `max_gap` {secs, start, end}, the longest
        interval without new bytes; with `gap_after` (a time.monotonic() value, or "+S" for S s
        after the request) also `gap_after` {at, secs, start, end} over the intervals that end
        after that moment (see gap_after() here to compute it from the samples afterwards)."""
        server = server or (SRV4 if family == 4 else SRV6)
        argv = [PYTHON, PEERS, "client", "--server", server, "--port", str(port), "--mode", mode,
                "--size", str(size), "--conns", str(conns), "--parallel", str(parallel),
                "--timeout", str(timeout)]
        if mptcp:
            argv.append("--mptcp")
        if timeline:
            argv.append("--timeline")
        if gap_after is not None:
            argv += ["--gap-after", str(gap_after)]
        if background:
            n = self._next_id()
            return Proc(self, role, argv, stdout_path=os.path.join(self.tmp, "client%d.json" % n),
                        stderr_path=os.path.join(self.tmp, "client%d.err" % n))
        rt = run_timeout or (timeout * (2 + conns // max(1, parallel)) + 15)
        p = self.exec(role, argv, check=False, timeout=rt)
        try:
            return json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise BedError("client produced no JSON (rc=%d)\nstdout: %s\nstderr: %s"
                           % (p.returncode, p.stdout, p.stderr))

    @staticmethod
    def client_result(proc, timeout=60):
        """Wait for a background client Proc and parse its JSON."""
        try:
            proc.p.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise BedError("background client did not finish within %ss" % timeout)
        path = proc._out.name
        proc._out.close()
        with open(path) as f:
            txt = f.read().strip()
        if not txt:
            raise BedError("background client produced no JSON; stderr:\n" + proc.stderr_text())
        return json.loads(txt.splitlines()[-1])

    def daemon(self, **kw):
        return Daemon(self, **kw)

    def concentrator(self, **kw):
        return Concentrator(self, **kw)

    def daemon_logs(self):
        return "\n".join(["==== mpconv log (%s) ====\n%s" % (d.config, d.log_text()) for d in self.daemons] +
                         ["==== concentrator log (%s) ====\n%s" % (c.config, c.log_text())
                          for c in self.concentrators])

    # ---------------------------------------------------------------- state snapshots
    def snapshot(self, role="rtr"):
        """Firewall and routing state, counters stripped, for before/after comparisons."""
        cmds = {
            "iptables-save": ["iptables-save"],
            "ip6tables-save": ["ip6tables-save"],
            "nft list ruleset": ["nft", "list", "ruleset"],
            "ip rule": ["ip", "rule"],
            "ip -6 rule": ["ip", "-6", "rule"],
            "ip route show table all": ["ip", "route", "show", "table", "all"],
            "ip -6 route show table all": ["ip", "-6", "route", "show", "table", "all"],
        }
        out = {}
        for k, argv in cmds.items():
            p = self.exec(role, argv, check=False)
            out[k] = strip_counters(p.stdout) if "save" in k or "nft" in k else p.stdout.strip()
        return out

    def restore(self, snap, role="rtr"):
        """Undo leftovers (e.g. of a SIGKILLed daemon): firewall tables, ip rules, routes."""
        # drop nft tables that were not there before (e.g. a daemon's own table)
        before_tables = set(re.findall(r"^table (\S+ \S+)", snap["nft list ruleset"], re.M))
        now = self.exec(role, ["nft", "list", "tables"], check=False).stdout
        for t in re.findall(r"^table (\S+ \S+)", now, re.M):
            if t not in before_tables:
                self.exec(role, ["nft", "delete", "table"] + t.split(), check=False)
        for ipt in ("iptables", "ip6tables"):
            self.exec(role, [ipt + "-restore", "-w"], input=snap[ipt + "-save"] + "\n", check=False)
        for fam, key in (("-4", "ip rule"), ("-6", "ip -6 rule")):
            want = set(snap[key].splitlines())
            cur = self.exec(role, ["ip", fam, "rule"], check=False).stdout.splitlines()
            for line in cur:
                if line not in want:
                    pref = line.split(":")[0]
                    self.exec(role, ["ip", fam, "rule", "del", "pref", pref], check=False)
            key_r = "ip route show table all" if fam == "-4" else "ip -6 route show table all"
            want_r = set(snap[key_r].splitlines())
            cur_r = self.exec(role, ["ip", fam, "route", "show", "table", "all"], check=False).stdout.splitlines()
            for line in cur_r:
                if line not in want_r:
                    self.exec(role, ["ip", fam, "route", "del"] + line.split(), check=False)


@contextlib.contextmanager
def bed():
    with Bed() as b:
        yield b
