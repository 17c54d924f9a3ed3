"""test_upload.py - streamed request bodies (edge_stream_bodies, the upload example)
behind the real supervisor: pieces arrive as they are read, Content-Length and
chunked, far above max_body_bytes; a 1 GiB upload both ways through one worker in
bounded memory; a function that pauses gets backpressure (the client's send blocks,
the worker's memory stays put) and carries on when resumed; keep-alive and pipelining
after a streamed body; an answer before the body's end closes the connection; a
client that leaves mid-body is contained; the buffered mode still answers 413."""

import hashlib
import json
import os
import select
import socket
import subprocess
import threading
import time

import harness as h
from harness import check, test

MIB = 1 << 20
# max_body_bytes far below every upload: a streamed body is not capped by it.
LIMITS = {"max_body_bytes": 1024, "request_timeout_ms": 10000}
PIECE = (bytes(range(256)) * 4096)  # 1 MiB


def upload_sv():
    return h.Supervisor([h.function("upload", limits=LIMITS)], name="upload")


def vm_kib(pid, key):
    """VmRSS / VmHWM of PID in KiB."""
    return int(h.proc_status(pid)[key][0])


def read_response(f):
    """(status, headers, body) of one Content-Length response from F."""
    status, hdrs = h.read_status_line(f)
    body = f.read(int(hdrs.get("content-length", "0")))
    return status, hdrs, body


def chunked(data, sizes):
    """DATA in chunks cycling through SIZES, with the last chunk."""
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        out.append(b"%x\r\n%s\r\n" % (len(data[i:i + n]), data[i:i + n]))
        i += n
        k += 1
    return b"".join(out) + b"0\r\n\r\n"


@test
def upload_pieces_hash_keepalive_pipelining():
    """8 MiB with Content-Length, then a chunked body of odd chunk sizes with a GET
    pipelined right behind it, then an empty POST, all on one connection: each is
    hashed right (sha256 of the pieces = of what was sent), and arrived in pieces."""
    data = os.urandom(8 * MIB)
    with upload_sv() as sv:
        s = h.connect(sv.port(), timeout=30)
        f = s.makefile("rb")
        s.sendall(b"POST /?hash=1 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" %
                  len(data) + data)
        status, hdrs, body = read_response(f)
        r = json.loads(body)
        check(status == 200 and r["bytes"] == len(data) and
              r["sha256"] == hashlib.sha256(data).hexdigest(), "Content-Length: %d %r" % (
                  status, body))
        check(r["pieces"] > 1, "8 MiB arrived in %d piece(s)" % r["pieces"])
        check(hdrs.get("connection") != "close", "closed after a streamed body")
        small = data[:300000]
        s.sendall(b"POST /?hash=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + chunked(small, [1, 4093, 65536, 7, 100000]) +
                  b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        status, _, body = read_response(f)
        r = json.loads(body)
        check(status == 200 and r["bytes"] == len(small) and
              r["sha256"] == hashlib.sha256(small).hexdigest(), "chunked: %d %r" % (
                  status, body))
        status, _, body = read_response(f)
        check(status == 200 and json.loads(body)["bytes"] == 0,
              "the GET pipelined behind the chunked body: %d %r" % (status, body))
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        status, _, body = read_response(f)
        check(status == 200 and json.loads(body)["bytes"] == 0, "empty POST: %r" % body)
        s.close()
        # curl offers Expect: 100-continue for a large upload: answered when taken.
        p = subprocess.run(["curl", "-sS", "--max-time", "20", "-H",
                            "Expect: 100-continue", "--data-binary", "@-",
                            "http://127.0.0.1:%d/?hash=1" % sv.port()],
                           input=data[:2 * MIB], capture_output=True, timeout=30)
        r = json.loads(p.stdout or b"{}")
        check(p.returncode == 0 and r.get("sha256") == hashlib.sha256(
            data[:2 * MIB]).hexdigest(), "curl with 100-continue: %r %r" % (
                p.stdout, p.stderr))


def send_content_length(port, total):
    """POSTs TOTAL bytes with Content-Length from a python socket; the JSON answer."""
    s = h.connect(port, timeout=60)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
        left = total
        while left > 0:
            n = min(left, len(PIECE))
            s.sendall(PIECE[:n])
            left -= n
        f = s.makefile("rb")
        status, _, body = read_response(f)
        check(status == 200, "Content-Length upload answered %d %r" % (status, body))
        return json.loads(body)
    finally:
        s.close()


def send_chunked_curl(port, total):
    """Pipes TOTAL bytes into `curl -T -` (chunked); the JSON answer."""
    p = subprocess.Popen(["curl", "-sS", "--max-time", "120", "-T", "-",
                          "http://127.0.0.1:%d/" % port],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)

    def feed():
        left = total
        try:
            while left > 0:
                n = min(left, len(PIECE))
                p.stdin.write(PIECE[:n])
                left -= n
        finally:
            p.stdin.close()

    t = threading.Thread(target=feed)
    t.start()
    # Not communicate(): it would close curl's stdin under the feeding thread.
    out = p.stdout.read()
    err = p.stderr.read()
    p.wait(timeout=130)
    t.join()
    check(p.returncode == 0, "curl -T - exited %d: %r" % (p.returncode, err[-200:]))
    return json.loads(out)


@test
def upload_1gib_both_framings_in_bounded_memory():
    """A 1 GiB upload with Content-Length (python socket) and a 1 GiB chunked one
    (curl -T -) through one worker: every byte counted, and the worker's peak RSS
    grows by less than 16 MiB (max_body_bytes is 1 KiB: nothing was buffered)."""
    with upload_sv() as sv:
        pid = list(sv.workers("upload").values())[0]
        send_content_length(sv.port(), MIB)   # warm: buffers at their working size
        hwm0 = vm_kib(pid, "VmHWM")
        t0 = time.monotonic()
        r = send_content_length(sv.port(), 1024 * MIB)
        t1 = time.monotonic()
        check(r["bytes"] == 1024 * MIB, "Content-Length 1 GiB: %r" % r)
        r = send_chunked_curl(sv.port(), 1024 * MIB)
        t2 = time.monotonic()
        check(r["bytes"] == 1024 * MIB, "chunked 1 GiB: %r" % r)
        growth = vm_kib(pid, "VmHWM") - hwm0
        print("#   1 GiB Content-Length in %.2f s, chunked in %.2f s; worker peak RSS "
              "%d KiB -> +%d KiB" % (t1 - t0, t2 - t1, hwm0, growth))
        check(growth < 16 * 1024, "worker peak RSS grew by %d KiB" % growth)
        check(not sv.events("worker_state", to="crashed"), "a worker crashed")


def push_until_blocked(s, limit, quiet=1.0):
    """Sends from a non-blocking socket until LIMIT bytes are sent or the socket
    stays unwritable for QUIET seconds; returns (sent, blocked)."""
    sent = 0
    s.setblocking(False)
    while sent < limit:
        try:
            sent += s.send(PIECE[:min(len(PIECE), limit - sent)])
            continue
        except BlockingIOError:
            pass
        _, w, _ = select.select([], [s], [], quiet)
        if not w:
            return sent, True
    return sent, False


@test
def upload_paused_function_gets_backpressure():
    """POST /hold pauses after its first piece: the client's send blocks after a few
    MiB (socket buffers), the worker's memory does not grow, while a second client
    is served meanwhile; GET /release resumes it and all 256 MiB are counted."""
    total = 256 * MIB
    with upload_sv() as sv:
        pid = list(sv.workers("upload").values())[0]
        send_content_length(sv.port(), MIB)
        hwm0 = vm_kib(pid, "VmHWM")
        s = h.connect(sv.port(), timeout=30)
        s.sendall(b"POST /hold HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
        sent, blocked = push_until_blocked(s, total)
        growth = vm_kib(pid, "VmHWM") - hwm0
        print("#   paused upload: the client's send blocked after %.1f MiB; worker peak "
              "RSS +%d KiB" % (sent / MIB, growth))
        check(blocked and sent < 64 * MIB, "the client sent %d bytes without blocking "
              "(blocked: %s)" % (sent, blocked))
        check(growth < 4 * 1024, "worker peak RSS grew by %d KiB while paused" % growth)
        # Another client is served while the upload is paused.
        check(send_content_length(sv.port(), MIB)["bytes"] == MIB, "a second upload")
        r = h.request(sv.port(), "/release")
        check(r.status == 200 and json.loads(r.body)["released"] == 1,
              "/release: %r" % r)
        s.setblocking(True)
        s.settimeout(60)
        left = total - sent
        while left > 0:
            n = min(left, len(PIECE))
            s.sendall(PIECE[:n])
            left -= n
        status, _, body = read_response(s.makefile("rb"))
        s.close()
        check(status == 200 and json.loads(body)["bytes"] == total,
              "the resumed upload: %d %r" % (status, body))


@test
def upload_early_answer_and_client_abort():
    """An answer before the body's end (/release does not take its body) says
    Connection: close and the client reads it; a client that leaves mid-body is
    logged, its function hears ABORT, and the worker serves on."""
    with upload_sv() as sv:
        s = h.connect(sv.port(), timeout=10)
        s.sendall(b"POST /release HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" %
                  (64 * MIB) + PIECE)
        status, hdrs, body = read_response(s.makefile("rb"))
        s.close()
        check(status == 200 and hdrs.get("connection") == "close",
              "early answer: %d %r" % (status, hdrs))
        s = h.connect(sv.port(), timeout=10)
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" %
                  (64 * MIB) + PIECE)
        s.close()
        sv.wait_event("http_body_cut", timeout=10)
        # A chunked body with a bad chunk size mid-way: 400, and ABORT.
        s = h.connect(sv.port(), timeout=10)
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"4\r\nabcd\r\nzz\r\n")
        status, _, _ = read_response(s.makefile("rb"))
        s.close()
        check(status == 400, "bad chunk mid-body answered %d" % status)
        check(send_content_length(sv.port(), MIB)["bytes"] == MIB, "serves on")
        check(not sv.events("worker_state", to="crashed"), "a worker crashed")


@test
def buffered_mode_still_refuses_over_max_body_bytes():
    """A function that did not opt in keeps the cap: 413 for Content-Length and for
    a chunked body over max_body_bytes."""
    with h.Supervisor([h.function("echo", limits={"max_body_bytes": 1024})],
                      name="upload") as sv:
        r = h.request(sv.port(), "/", method="POST", body=b"x" * 2048)
        check(r.status == 413, "Content-Length over the cap: %d" % r.status)
        s = h.connect(sv.port(), timeout=10)
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  chunked(b"y" * 4096, [1000]))
        status, _, _ = read_response(s.makefile("rb"))
        s.close()
        check(status == 413, "chunked over the cap: %d" % status)
        r = h.request(sv.port(), "/", method="POST", body=b"z" * 1000)
        check(r.status == 200, "under the cap: %d" % r.status)


if __name__ == "__main__":
    h.main()
