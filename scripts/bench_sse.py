#!/usr/bin/env python3
"""bench_sse.py - SSE stream density (bench.sh phase sse): one worker running
examples/sse.so holds SSE_N (10,000) idle-ish streams (one event every SSE_MS, 5 s),
opened by one python client (epoll, non-blocking sockets, RLIMIT_NOFILE raised). It
waits until every stream got its head and then its first event (so each is live on
the worker, timer armed), and reports the worker's RSS growth per stream over a
baseline taken with one warm stream. Prints bench.sh figure lines (`--alone`:
`bench name=...` lines)."""

import os
import resource
import select
import socket
import sys
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
                        else "build")
os.environ["EDGEVISOR_BUILD"] = BUILD
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness as h  # noqa: E402

N = int(os.environ.get("SSE_N", "10000"))
MS = int(os.environ.get("SSE_MS", "5000"))
BATCH = 500


def vm_kib(pid, key):
    return int(h.proc_status(pid)[key][0])


def uss_kib(pid):
    s = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                s += int(line.split()[1])
    return s


class Streams:
    """N SSE client connections on one epoll: each counts the bytes it read and
    whether its head and its first event arrived."""

    def __init__(self, port):
        self.port = port
        self.ep = select.epoll()
        self.socks = {}
        self.buf = {}

    def open(self, n):
        req = b"GET /?ms=%d HTTP/1.1\r\nHost: b\r\n\r\n" % MS
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            s.sendall(req)
            s.setblocking(False)
            self.socks[s.fileno()] = s
            self.buf[s.fileno()] = b""
            self.ep.register(s.fileno(), select.EPOLLIN)

    def count(self, marker):
        return sum(1 for b in self.buf.values() if marker in b)

    def pump(self, until, deadline):
        """Reads until UNTIL() holds or DEADLINE passes; returns UNTIL()."""
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return until()
            for fd, _ in self.ep.poll(min(left, 0.5)):
                try:
                    d = self.socks[fd].recv(65536)
                except BlockingIOError:
                    continue
                if not d:
                    raise SystemExit("bench_sse: a stream was closed by the server")
                # The head and a few events are all we look at: keep the start only.
                if len(self.buf[fd]) < 4096:
                    self.buf[fd] += d
        return True

    def close(self):
        for s in self.socks.values():
            s.close()
        self.ep.close()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = N + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    lim = {"nofile": N + 1024, "max_connections": N + 100, "request_timeout_ms": 60000}
    with h.Supervisor([h.function("sse", limits=lim)], name="benchsse") as sv:
        pid = list(sv.workers("sse").values())[0]
        st = Streams(sv.port())
        st.open(1)
        if not st.pump(lambda: st.count(b"data: ") == 1, time.monotonic() + MS / 1000 + 10):
            raise SystemExit("bench_sse: the warm-up stream got no event")
        rss0, uss0 = vm_kib(pid, "VmRSS"), uss_kib(pid)
        t0 = time.monotonic()
        opened = 1
        while opened < N + 1:
            k = min(BATCH, N + 1 - opened)
            st.open(k)
            opened += k
            want_heads = opened
            if not st.pump(lambda: st.count(b"\r\n\r\n") == want_heads,
                           time.monotonic() + 30):
                raise SystemExit("bench_sse: %d of %d streams started" %
                                 (st.count(b"\r\n\r\n"), want_heads))
        t_open = time.monotonic() - t0
        if not st.pump(lambda: st.count(b"data: ") == N + 1, time.monotonic() + MS / 1000 + 30):
            raise SystemExit("bench_sse: %d of %d streams got an event" %
                             (st.count(b"data: "), N + 1))
        rss1, uss1 = vm_kib(pid, "VmRSS"), uss_kib(pid)
        st.close()
    per = (rss1 - rss0) * 1024 // N
    uper = (uss1 - uss0) * 1024 // N
    print("== sse: %d streams opened in %.1f s, all live; worker RSS %d -> %d KiB (%d B per "
          "stream), USS %d -> %d KiB (%d B per stream)" % (N, t_open, rss0, rss1, per, uss0,
                                                          uss1, uper), file=sys.stderr)
    if "--alone" in sys.argv:
        print("bench name=sse_streams_held value=%d unit=count" % N)
        print("bench name=sse_rss_per_stream value=%d unit=B" % per)
        print("bench name=sse_worker_rss value=%d unit=KiB" % rss1)
    else:
        print("sse_streams_held count %d - - - - - - - -" % N)
        print("sse_rss_per_stream B %d - - - - - - - -" % per)
        print("sse_worker_rss KiB %d - - - - - - - -" % rss1)


if __name__ == "__main__":
    main()
