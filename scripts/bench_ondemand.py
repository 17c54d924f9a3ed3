#!/usr/bin/env python3
"""bench_ondemand.py - the on-demand figures of scripts/bench.sh: cold starts and
density. Progress goes to stderr; each figure is one line on stdout in bench.sh's
figure format ("name unit ours nginx ratio target met min max nmin nmax"), or, with
--alone, as bench.sh's `bench name=...` lines.

  cold_start_*   a function at zero workers: connection made -> first response byte,
                 one fresh function per sample (each sample is a real cold start:
                 fork + exec + dlopen + init + hand-off), for hello and for a function
                 whose init works 10 ms (tests/functions/init10ms.so).
  density1000_*  1,000 functions at min_workers 0: supervisor start (launch -> ready),
                 its RSS with no worker, its RSS after a burst woke all 1,000 once and
                 they scaled back to zero; and 1,000 at min_workers 1: the idle
                 supervisor's CPU over 5 s.

Loopback only, bounded; every process it starts is stopped.
env: COLD_N (samples, default 200), DENSITY_N (default 1000).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
                        else "build")
ALONE = "--alone" in sys.argv
COLD_N = int(os.environ.get("COLD_N", "200"))
DENSITY_N = int(os.environ.get("DENSITY_N", "1000"))
HZ = os.sysconf("SC_CLK_TCK")
figs = []


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def fig(name, unit, value, target="-", met="-", lo="-", hi="-"):
    figs.append((name, unit, value, target, met, lo, hi))


def free_ports(n):
    """N loopback ports free a moment ago (held open together, so distinct)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Sv:
    def __init__(self, d, fns, **top):
        self.dir = d
        conf = {"cgroups": "off", "admin": None, "log_level": "info", "functions": fns}
        conf.update(top)
        self.conf = os.path.join(d, "c.json")
        self.log = os.path.join(d, "log")
        with open(self.conf, "w") as f:
            json.dump(conf, f)
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([os.path.join(BUILD, "edgevisor"), "-c", self.conf],
                                  stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait(self, what, timeout=60):
        end = time.monotonic() + timeout
        while what not in self.text():
            if self.p.poll() is not None or time.monotonic() > end:
                raise SystemExit("bench_ondemand: no %r (log %s)" % (what, self.log))
            time.sleep(0.01)
        return time.monotonic()

    def rss_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self):
        with open("/proc/%d/stat" % self.p.pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / HZ

    def workers(self):
        out = subprocess.run(["pgrep", "-P", str(self.p.pid)], capture_output=True, text=True)
        return len(out.stdout.split())

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


def first_byte_ms(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        t = time.perf_counter()
        s.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        d = s.recv(64)
        ms = (time.perf_counter() - t) * 1000
        if not d.startswith(b"HTTP/1.1 200"):
            raise SystemExit("bench_ondemand: bad answer %r" % d)
        while s.recv(4096):
            pass
        return ms
    finally:
        s.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def cold(tag, lib, p50_target, p99_target):
    d = tempfile.mkdtemp(prefix="ev-bench-cold-")
    ports = free_ports(COLD_N)
    fns = [{"name": "c%d" % i, "library": lib, "listen": ["127.0.0.1:%d" % p],
            "min_workers": 0, "max_workers": 1} for i, p in enumerate(ports)]
    sv = Sv(d, fns)
    try:
        sv.wait("ev=ready")
        lat = [first_byte_ms(p) for p in ports]
    finally:
        sv.stop()
    p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
    say("  %s: %d cold starts, p50 %.2f ms, p99 %.2f ms, max %.2f ms"
        % (tag, len(lat), p50, p99, max(lat)))
    suffix = "" if tag == "hello" else "_" + tag
    fig("cold_start_p50_ms" + suffix, "ms", "%.2f" % p50,
        "<=%gms" % p50_target if p50_target else "-",
        ("yes" if p50 <= p50_target else "no") if p50_target else "-", "%.2f" % min(lat),
        "%.2f" % max(lat))
    fig("cold_start_p99_ms" + suffix, "ms", "%.2f" % p99,
        "<=%gms" % p99_target if p99_target else "-",
        ("yes" if p99 <= p99_target else "no") if p99_target else "-")


def density():
    hello = os.path.join(BUILD, "examples", "hello.so")
    d = tempfile.mkdtemp(prefix="ev-bench-density-")
    ports = free_ports(DENSITY_N)
    fns = [{"name": "d%d" % i, "library": hello, "listen": ["127.0.0.1:%d" % p],
            "min_workers": 0, "max_workers": 1, "scale_idle_ms": 1000}
           for i, p in enumerate(ports)]
    sv = Sv(d, fns)
    try:
        t = sv.wait("ev=ready", 120)
        start_ms = (t - sv.t0) * 1000
        time.sleep(0.5)
        rss0, nw = sv.rss_kib(), sv.workers()
        say("  %d functions at zero: ready in %.0f ms, supervisor RSS %d KiB, %d workers"
            % (DENSITY_N, start_ms, rss0, nw))
        # Wake every one once, 32 at a time.
        errors = []
        it = iter(ports)
        lock = threading.Lock()

        def waker():
            while True:
                with lock:
                    p = next(it, None)
                if p is None:
                    return
                try:
                    first_byte_ms(p)
                except (OSError, SystemExit) as e:
                    errors.append(repr(e))
        th = [threading.Thread(target=waker) for _ in range(32)]
        t0 = time.monotonic()
        for x in th:
            x.start()
        for x in th:
            x.join()
        say("  woke %d functions in %.1f s (%d errors); peak workers %d"
            % (DENSITY_N, time.monotonic() - t0, len(errors), sv.workers()))
        end = time.monotonic() + 120
        while sv.workers() > 0 and time.monotonic() < end:
            time.sleep(0.2)
        time.sleep(5.5)     # one status tick: the supervisor trims its heap then
        rss1, left = sv.rss_kib(), sv.workers()
        say("  back at zero: %d workers, supervisor RSS %d KiB (%+.1f%%)"
            % (left, rss1, 100.0 * (rss1 - rss0) / rss0))
    finally:
        sv.stop()
    fig("density1000_start_ms", "ms", "%.0f" % start_ms, "<=1000ms",
        "yes" if start_ms <= 1000 else "no")
    fig("density1000_supervisor_rss_kib", "KiB", rss0, "<=32768KiB",
        "yes" if rss0 <= 32768 and nw == 0 else "no")
    fig("density1000_rss_after_kib", "KiB", rss1, "<=+10%",
        "yes" if rss1 <= rss0 * 1.1 and left == 0 and not errors else "no")

    # All warm at once: what the idle supervisor costs.
    d = tempfile.mkdtemp(prefix="ev-bench-warm-")
    for f in fns:
        f.update(min_workers=1)
    sv = Sv(d, fns)
    try:
        sv.wait("ev=ready", 180)
        time.sleep(2)
        c0, t0 = sv.cpu_s(), time.monotonic()
        time.sleep(5)
        pct_cpu = 100.0 * (sv.cpu_s() - c0) / (time.monotonic() - t0)
        say("  %d warm workers: idle supervisor %.2f%% of a core" % (sv.workers(), pct_cpu))
    finally:
        sv.stop()
    fig("density1000_idle_cpu_pct", "%", "%.2f" % pct_cpu, "<=1%",
        "yes" if pct_cpu <= 1.0 else "no")


def main():
    say("== on-demand pools: cold starts (%d samples) and density (%d functions)"
        % (COLD_N, DENSITY_N))
    cold("hello", os.path.join(BUILD, "examples", "hello.so"), 3, 10)
    cold("init10ms", os.path.join(BUILD, "tests", "functions", "init10ms.so"), None, None)
    density()
    for name, unit, v, tgt, met, lo, hi in figs:
        if ALONE:
            line = "bench name=%s value=%s unit=%s" % (name, v, unit)
            if lo != "-":
                line += " min=%s max=%s" % (lo, hi)
            if tgt != "-":
                line += " target=%s met=%s" % (tgt, met)
            print(line)
        else:
            print(name, unit, v, "-", "-", tgt, met, lo, hi, "-", "-")


if __name__ == "__main__":
    main()
