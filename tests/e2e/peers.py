#!/usr/bin/env python3
"""Traffic peers for the mpconv end-to-end bed (stdlib only).

Run inside a network namespace (``ip netns exec NS python3 peers.py ...``).

Wire protocol (one request per connection)::

    client -> server:  b"GET <n>\\n"              server sends n pattern bytes, then FIN
    client -> server:  b"PUT <n>\\n" + n bytes    server answers b"<sha256 hex>\\n", then FIN

The payload is a deterministic pattern: byte i of the stream is PATTERN[i % PERIOD]
(PERIOD is a prime-ish length that does not align with segment/window sizes), so the
receiver can check every byte at its offset and report the first mismatch.

server: listens (MPTCP or plain TCP) on the given addresses, prints ``READY`` on stdout
once listening, and appends one JSON line per finished connection to --report with the
MPTCP_INFO view of the accepted socket (converted or not, subflow counts).

client: plain TCP by default (``--mptcp`` for a kernel MPTCP client), runs --conns
connections (--parallel at once), prints one JSON object on stdout. With ``--timeline`` a GET
also records ``[time.monotonic(), bytes received so far]`` at every recv (CLOCK_MONOTONIC is
the same in every namespace, so a test can relate it to the moment it cut a link) and reports
the longest interval without new bytes (``max_gap``; ``gap_after`` for the intervals that end
after ``--gap-after``).
"""
import argparse
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
MPTCP_INFO_FLAG_FALLBACK = 1 << 0
MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED = 1 << 1

PERIOD = 1_000_003
CHUNK = 256 * 1024
SAMPLE_EVERY = 1 << 20

_PAT = None


def pattern():
    """The doubled pattern buffer (so any window of <= PERIOD bytes is one slice)."""
    global _PAT
    if _PAT is None:
        p = random.Random(0x6D70636F6E76).randbytes(PERIOD)
        _PAT = memoryview(p + p)
    return _PAT


def pattern_slice(offset, length):
    assert length <= PERIOD
    o = offset % PERIOD
    return pattern()[o:o + length]


def pattern_sha256(n):
    h = hashlib.sha256()
    off = 0
    while off < n:
        k = min(CHUNK, n - off)
        h.update(pattern_slice(off, k))
        off += k
    return h.hexdigest()


def mptcp_info(sock):
    """Parse struct mptcp_info (include/uapi/linux/mptcp.h).

    Layout (native endianness): u8 subflows@0 (additional subflows, not counting the
    initial one), u8 add_addr_signal@1, u8 add_addr_accepted@2, u8 subflows_max@3,
    u8 add_addr_signal_max@4, u8 add_addr_accepted_max@5, u32 flags@8, u32 token@12,
    u64 write_seq@16, u64 snd_una@24, u64 rcv_nxt@32, u8 local_addr_used@40,
    u8 local_addr_max@41, u8 csum_enabled@42, u32 retransmits@44, u64 bytes_retrans@48,
    u64 bytes_sent@56, u64 bytes_received@64, u64 bytes_acked@72,
    u8 subflows_total@80 (v6.8+, includes the initial subflow).
    Fails with EOPNOTSUPP on a plain TCP socket or a fallen-back MPTCP one.
    """
    try:
        raw = sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 256)
    except OSError as e:
        return {"mptcp": False, "errno": e.errno, "error": os.strerror(e.errno)}
    d = {"mptcp": True, "len": len(raw)}
    if len(raw) >= 1:
        d["subflows"] = raw[0]
    if len(raw) >= 12:
        flags = struct.unpack_from("=I", raw, 8)[0]
        d["flags"] = flags
        d["fallback"] = bool(flags & MPTCP_INFO_FLAG_FALLBACK)
        d["remote_key_received"] = bool(flags & MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED)
    if len(raw) >= 16:
        d["token"] = struct.unpack_from("=I", raw, 12)[0]
    if len(raw) >= 43:
        d["csum_enabled"] = raw[42]
    if len(raw) >= 80:
        d["retransmits"] = struct.unpack_from("=I", raw, 44)[0]
        d["bytes_sent"], d["bytes_received"] = struct.unpack_from("=QQ", raw, 56)
    if len(raw) >= 81:
        d["subflows_total"] = raw[80]
    else:
        d["subflows_total"] = d.get("subflows", 0) + 1
    return d


def _merge_info(acc, info):
    """Keep the last info, plus the maximum subflow counts seen over time."""
    if acc is None:
        acc = dict(info)
        acc["max_subflows_total"] = info.get("subflows_total", 0) if info.get("mptcp") else 0
        acc["max_subflows"] = info.get("subflows", 0) if info.get("mptcp") else 0
        acc["samples"] = 1
        return acc
    keep = {k: acc[k] for k in ("max_subflows_total", "max_subflows", "samples")}
    acc = dict(info)
    acc.update(keep)
    acc["samples"] += 1
    if info.get("mptcp"):
        acc["max_subflows_total"] = max(acc["max_subflows_total"], info.get("subflows_total", 0))
        acc["max_subflows"] = max(acc["max_subflows"], info.get("subflows", 0))
    return acc


# ----------------------------------------------------------------------------- server

class Server:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.report = open(args.report, "a", buffering=1) if args.report else None
        self.socks = []

    def emit(self, rec):
        line = json.dumps(rec, sort_keys=True)
        with self.lock:
            if self.report:
                self.report.write(line + "\n")
                self.report.flush()
            if self.args.verbose:
                print(line, file=sys.stderr, flush=True)

    def listen(self):
        proto = IPPROTO_MPTCP if self.args.proto == "mptcp" else socket.IPPROTO_TCP
        for addr in self.args.bind:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM, proto)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, self.args.port))
            s.listen(512)
            self.socks.append(s)

    def serve_forever(self):
        for s in self.socks:
            threading.Thread(target=self.accept_loop, args=(s,), daemon=True).start()
        print("READY", flush=True)
        deadline = time.monotonic() + self.args.lifetime
        while time.monotonic() < deadline:
            time.sleep(0.5)
        print("lifetime exceeded, exiting", file=sys.stderr, flush=True)
        os._exit(0)

    def accept_loop(self, ls):
        while True:
            try:
                c, peer = ls.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c, peer), daemon=True).start()

    def handle(self, c, peer):
        t0 = time.monotonic()
        rec = {"peer": list(peer[:2]), "local": list(c.getsockname()[:2]),
               "listen_proto": self.args.proto, "ok": False}
        info = _merge_info(None, mptcp_info(c))
        try:
            c.settimeout(self.args.timeout)
            buf = b""
            while b"\n" not in buf:
                d = c.recv(4096)
                if not d:
                    raise ConnectionError("EOF before request line")
                buf += d
                if b"\n" not in buf and len(buf) > 128:
                    raise ValueError("request line too long")
            line, rest = buf.split(b"\n", 1)
            verb, n = line.decode().split()
            n = int(n)
            rec["mode"], rec["n"] = verb, n
            if verb == "GET":
                off, next_sample = 0, SAMPLE_EVERY
                while off < n:
                    k = min(CHUNK, n - off)
                    c.sendall(pattern_slice(off, k))
                    off += k
                    if off >= next_sample:
                        info = _merge_info(info, mptcp_info(c))
                        next_sample += SAMPLE_EVERY
                rec["sent"] = off
                info = _merge_info(info, mptcp_info(c))
                c.shutdown(socket.SHUT_WR)
            elif verb == "PUT":
                h = hashlib.sha256()
                got = 0
                if rest:
                    h.update(rest)
                    got = len(rest)
                next_sample = SAMPLE_EVERY
                while got < n:
                    d = c.recv(min(CHUNK, n - got))
                    if not d:
                        break
                    h.update(d)
                    got += len(d)
                    if got >= next_sample:
                        info = _merge_info(info, mptcp_info(c))
                        next_sample += SAMPLE_EVERY
                rec["received"] = got
                rec["sha256"] = h.hexdigest()
                info = _merge_info(info, mptcp_info(c))
                c.sendall((rec["sha256"] + "\n").encode())
                c.shutdown(socket.SHUT_WR)
            else:
                raise ValueError("bad verb %r" % verb)
            # wait for the client's FIN (bounded by the socket timeout)
            while c.recv(65536):
                pass
            rec["ok"] = True
        except Exception as e:  # report, never crash the server
            rec["error"] = "%s: %s" % (type(e).__name__, e)
            try:
                info = _merge_info(info, mptcp_info(c))
            except Exception:
                pass
        finally:
            rec["info"] = info
            rec["secs"] = round(time.monotonic() - t0, 3)
            try:
                c.close()
            except OSError:
                pass
            self.emit(rec)


# ----------------------------------------------------------------------------- client

def longest_gap(samples, after=None):
    """Longest interval between consecutive samples with new bytes, among the intervals that
    end after `after` (all when None). samples: [(time, cumulative bytes)]."""
    best = {"secs": 0.0, "start": None, "end": None}
    prev = None
    for ts, nb in samples:
        if prev is None:
            prev = (ts, nb)
            continue
        if nb <= prev[1]:
            continue
        if (after is None or ts > after) and ts - prev[0] > best["secs"]:
            best = {"secs": round(ts - prev[0], 6), "start": prev[0], "end": ts}
        prev = (ts, nb)
    return best


def one_transfer(server, port, mode, size, use_mptcp, timeout, idx=0, timeline=False,
                 gap_after=None):
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    proto = IPPROTO_MPTCP if use_mptcp else socket.IPPROTO_TCP
    r = {"idx": idx, "mode": mode, "size": size, "server": server, "ok": False}
    t0 = time.monotonic()
    samples = None
    s = socket.socket(fam, socket.SOCK_STREAM, proto)
    try:
        s.settimeout(timeout)
        s.connect((server, port))
        r["local"] = list(s.getsockname()[:2])
        if mode == "GET":
            s.sendall(b"GET %d\n" % size)
            h = hashlib.sha256()
            off = 0
            mismatch = None
            samples = [(round(time.monotonic(), 6), 0)] if timeline else None
            while True:
                d = s.recv(CHUNK)
                if not d:
                    break
                if samples is not None:
                    samples.append((round(time.monotonic(), 6), off + len(d)))
                if mismatch is None:
                    good = min(len(d), max(0, size - off))
                    exp = pattern_slice(off, good)
                    if d[:good] != exp:
                        i = next(j for j in range(good) if d[j] != exp[j])
                        mismatch = off + i
                    elif len(d) > good:
                        mismatch = off + good  # more bytes than requested
                h.update(d)
                off += len(d)
            r["received"] = off
            r["sha256"] = h.hexdigest()
            if samples is not None:
                r["timeline"] = samples
                r["max_gap"] = longest_gap(samples)
                if gap_after is not None:
                    at = (samples[0][0] + float(gap_after[1:])) if str(gap_after).startswith("+") \
                        else float(gap_after)
                    r["gap_after"] = dict(longest_gap(samples, at), at=at)
            if mismatch is not None:
                r["first_mismatch"] = mismatch
            r["ok"] = (off == size and mismatch is None)
            if off != size:
                r["error"] = "received %d of %d bytes" % (off, size)
            elif mismatch is not None:
                r["error"] = "content mismatch at offset %d" % mismatch
        elif mode == "PUT":
            s.sendall(b"PUT %d\n" % size)
            h = hashlib.sha256()
            off = 0
            while off < size:
                k = min(CHUNK, size - off)
                chunk = pattern_slice(off, k)
                s.sendall(chunk)
                h.update(chunk)
                off += k
            s.shutdown(socket.SHUT_WR)
            want = h.hexdigest()
            reply = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                reply += d
            got = reply.decode(errors="replace").strip()
            r["sent"] = off
            r["sha256"] = want
            r["server_sha256"] = got
            r["ok"] = (got == want)
            if not r["ok"]:
                r["error"] = "server hash %r != sent hash %s" % (got, want)
        else:
            raise ValueError(mode)
    except Exception as e:
        r["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        if samples is not None and "timeline" not in r:   # failed mid-transfer
            r["timeline"] = samples
            r["max_gap"] = longest_gap(samples)
        r["secs"] = round(time.monotonic() - t0, 3)
        if r["secs"] > 0 and r.get("received", r.get("sent")):
            r["mbit_s"] = round(8 * r.get("received", r.get("sent", 0)) / r["secs"] / 1e6, 2)
        s.close()
    return r


def run_client(args):
    modes = []
    for i in range(args.conns):
        if args.mode == "mix":
            modes.append("GET" if i % 2 == 0 else "PUT")
        else:
            modes.append(args.mode.upper())
    results = [None] * args.conns
    sem = threading.Semaphore(args.parallel)

    def worker(i):
        with sem:
            results[i] = one_transfer(args.server, args.port, modes[i], args.size,
                                      args.mptcp, args.timeout, i, args.timeline, args.gap_after)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    deadline = t0 + args.timeout * (1 + args.conns // max(1, args.parallel)) + 5
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    for i, r in enumerate(results):
        if r is None:
            results[i] = {"idx": i, "mode": modes[i], "ok": False, "error": "client thread timed out"}
    out = {"ok": all(r["ok"] for r in results), "conns": args.conns,
           "failed": sum(1 for r in results if not r["ok"]),
           "secs": round(time.monotonic() - t0, 3), "results": results}
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--proto", choices=("mptcp", "tcp"), default="mptcp")
    s.add_argument("--bind", action="append", default=None)
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--report", default=None)
    s.add_argument("--timeout", type=float, default=60.0, help="per-socket timeout")
    s.add_argument("--lifetime", type=float, default=1800.0, help="exit after this many seconds")
    s.add_argument("--verbose", action="store_true")
    c = sub.add_parser("client")
    c.add_argument("--server", required=True)
    c.add_argument("--port", type=int, default=8080)
    c.add_argument("--mode", choices=("get", "put", "mix", "GET", "PUT"), default="get")
    c.add_argument("--size", type=int, default=1 << 20)
    c.add_argument("--conns", type=int, default=1)
    c.add_argument("--parallel", type=int, default=1)
    c.add_argument("--timeout", type=float, default=30.0, help="per-socket timeout")
    c.add_argument("--mptcp", action="store_true", help="use a kernel MPTCP client socket")
    c.add_argument("--timeline", action="store_true",
                   help="GET: record [time.monotonic(), bytes received] at every recv "
                        "(result keys timeline, max_gap)")
    c.add_argument("--gap-after", default=None,
                   help="with --timeline: also report the longest interval without new bytes "
                        "that ends after this moment (time.monotonic() value, or +S: S s after "
                        "the request) as gap_after")
    args = ap.parse_args(argv)
    if args.cmd == "server":
        if not args.bind:
            args.bind = ["203.0.113.10", "2001:db8:5::10"]
        srv = Server(args)
        srv.listen()
        srv.serve_forever()
        return 0
    return run_client(args)


if __name__ == "__main__":
    sys.exit(main())
