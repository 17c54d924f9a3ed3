"""test_admin_render.py - /status and /metrics are rendered on a thread, off the
supervisor's loop (supervisor/admin_job.c): clients that send a request and leave at
once (a close, or a reset) cost nothing that stays (no fd, no thread) and never
crash it (the ASan run aborts on a use after free), the endpoint keeps answering;
many clients at once all get whole pages of the same shape. How long the loop
stalls for one /status is the bench's (reload500_status_probe_max_ms)."""

import json
import os
import socket
import struct

import harness as h
from harness import check, test


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def threads(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def unix_get(path, page, timeout=10):
    """(status, headers text, body) of GET PAGE on the admin unix socket PATH."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % page).encode())
        data = h.read_until_close(s, limit=16 << 20)
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 "), "no answer to %s: %r" % (page, data[:200]))
    return int(head.split()[1]), head.decode("latin-1"), body


def leave_at_once(connect, page, reset):
    """Sends GET PAGE and closes without reading (RESET: with an RST, SO_LINGER 0)."""
    s = connect()
    try:
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % page).encode())
    finally:
        s.close()


@test
def clients_that_leave_at_once_leave_nothing():
    maddr = "127.0.0.1:%d" % h.free_port()
    mport = int(maddr.rsplit(":", 1)[1])
    fns = [h.function("hello", workers=2), h.function("echo", workers=2)]
    with h.Supervisor(fns, name="leave", metrics=maddr) as sv:
        sock = sv.admin[len("unix:"):]
        h.wait_until(lambda: len(sv.workers("hello")) == 2 and len(sv.workers("echo")) == 2,
                     20, "4 ready workers")
        code, _, body = unix_get(sock, "/status")
        check(code == 200, "/status: %d" % code)
        base_fds, base_threads = fd_count(sv.pid), threads(sv.pid)

        def unix_connect():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(sock)
            return s

        def tcp_connect():
            return h.connect(mport)

        for i in range(200):
            page = "/status" if i % 2 == 0 else "/metrics"
            if i % 5 == 4:
                leave_at_once(tcp_connect, "/metrics", reset=i % 10 == 9)
            else:
                leave_at_once(unix_connect, page, reset=i % 4 == 3)
        sv._check_running()
        # Still answering, whole pages, and what the leavers cost is given back. Their
        # requests wait like any other (evhttp reads no more from a connection until
        # it is answered, so a close is seen only then): while more than 64 of them
        # wait, a request is told 503 and Retry-After, until the renders catch up.
        def status_ok():
            code, head, body = unix_get(sock, "/status")
            check(code in (200, 503), "/status after the leavers: %d %r" % (code, body[:200]))
            check(code == 200 or "Retry-After: 1" in head, "a 503 without Retry-After: %s" % head)
            return body if code == 200 else None
        body = h.wait_until(status_ok, 20, "/status to answer 200 after the leavers")
        st = json.loads(body)
        check(len(st["workers"]) == 4, "workers in /status: %r" % st["workers"])
        r = h.request(mport, "/metrics", timeout=10)
        check(r.status == 200 and b"edgevisor_worker_memory_bytes" in r.body,
              "/metrics on the listener: %d" % r.status)
        h.wait_until(lambda: fd_count(sv.pid) <= base_fds, 10,
                     "the supervisor's fds back to %d (now %d)" % (base_fds, fd_count(sv.pid)))
        h.wait_until(lambda: threads(sv.pid) <= base_threads, 10,
                     "the supervisor's threads back to %d (now %d)"
                     % (base_threads, threads(sv.pid)))
        check(not sv.events("admin_job_failed"), "admin_job_failed: %r" % sv.events("admin_job_failed"))
        check(h.get_ok(sv.port("hello")), "hello does not answer")


@test
def many_clients_at_once_get_whole_pages():
    fns = [h.function("hello", workers=3), h.function("echo", workers=1)]
    with h.Supervisor(fns, name="many") as sv:
        sock = sv.admin[len("unix:"):]
        h.wait_until(lambda: len(sv.workers("hello")) == 3, 20, "3 ready hello workers")
        for i in range(10):
            check(h.request(sv.port("hello"), "/x%d" % i).status == 200, "hello %d" % i)

        def one(i):
            return unix_get(sock, "/status" if i % 3 else "/metrics", timeout=20)

        got = h.parallel(40, one)
        errors = [g for g in got if isinstance(g, Exception)]
        check(not errors, "clients failed: %r" % errors[:3])
        for i, (code, head, body) in enumerate(got):
            # Fewer than the 64 that may wait: every one is answered in full.
            check(code == 200, "client %d: %d %r" % (i, code, body[:200]))
            check("Cache-Control: no-store" in head, "client %d headers: %s" % (i, head))
            if i % 3:
                st = json.loads(body)
                check([f["name"] for f in st["functions"]] == ["hello", "echo"],
                      "client %d functions: %r" % (i, st["functions"]))
                check(len(st["workers"]) == 4, "client %d workers: %d" % (i, len(st["workers"])))
                hello = st["functions"][0]
                check(hello["totals"]["requests"] >= 10,
                      "client %d: hello's requests %r, 10 were answered before it asked"
                      % (i, hello["totals"]))
            else:
                check(body.endswith(b"\n") and b'edgevisor_requests_total{function="hello"}' in body,
                      "client %d /metrics: %r" % (i, body[-200:]))
        check(h.get_ok(sv.port("hello")), "hello does not answer")


if __name__ == "__main__":
    h.main()
