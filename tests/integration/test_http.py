"""test_http.py - HTTP/1.1 behaviour of a worker behind the real supervisor (SPEC §7):
keep-alive, pipelining, a concurrent burst, chunked bodies, HEAD, Expect:
100-continue, the 400/413/431 answers to bad input, and curl offering an h2c or
WebSocket upgrade (ignored: answered as HTTP/1.1), and streamed responses (the sse
and download examples: events arrive one by one, a 1 GiB download in bounded memory,
a client that stops reading closed by the stall timer, a drain that ends an SSE
stream cleanly, HEAD, pipelining, HTTP/1.0), over loopback. The framing cases
(Host, versions, bare LF) are in tests/corpus/http, run by test_hostile_clients.py."""

import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time

import harness as h
from harness import check, test

CAPS = {"max_header_bytes": 4096, "max_body_bytes": 1024}


def hello_sv(workers=1):
    return h.Supervisor([h.function("hello", workers=workers)], name="http")


def echo_sv():
    return h.Supervisor([h.function("echo", limits=CAPS)], name="http")


def still_serves(sv, fn_path="/"):
    r = h.request(sv.port(), fn_path)
    check(r.status == 200, "after the bad request the function answers %d" % r.status)


@test
def hello_answers():
    with hello_sv() as sv:
        r = h.request(sv.port(), "/")
        check(r.status == 200, "status %d, want 200" % r.status)
        check(r.body == b"hello\n", "body %r, want 'hello\\n'" % r.body)
        check(r.headers.get("content-length") == "6",
              "Content-Length %r, want 6" % r.headers.get("content-length"))
        r = h.request(sv.port(), "/any/path?x=1", method="POST", body=b"abc")
        check(r.status == 200 and r.body == b"hello\n", "POST got %r" % r)


@test
def keep_alive_reuses_connection():
    with hello_sv() as sv:
        conn = http.client.HTTPConnection("127.0.0.1", sv.port(), timeout=5)
        try:
            first = None
            for i in range(5):
                conn.request("GET", "/ka/%d" % i)
                r = conn.getresponse()
                body = r.read()
                check(r.status == 200 and body == b"hello\n",
                      "request %d: %d %r" % (i, r.status, body))
                check((r.getheader("connection") or "").lower() != "close",
                      "request %d answered Connection: close" % i)
                check(conn.sock is not None, "server closed after request %d" % i)
                local = conn.sock.getsockname()
                if first is None:
                    first = (conn.sock, local)
                check(conn.sock is first[0] and local == first[1],
                      "request %d used a new connection" % i)
        finally:
            conn.close()


@test
def pipelined_requests_answer_in_order():
    with echo_sv() as sv:
        paths = ["/first-a", "/second-b", "/third-c"]
        data = b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p.encode() for p in paths)
        resps = h.raw_exchange(sv.port(), data, nresp=3)
        for p, r in zip(paths, resps):
            check(r.status == 200, "%s: status %d" % (p, r.status))
            others = [q for q in paths if q != p]
            check(p.encode() in r.body and not any(q.encode() in r.body for q in others),
                  "response for %s out of order or wrong: %r" % (p, r.body))


@test
def burst_of_100_concurrent_connections():
    with hello_sv(workers=2) as sv:
        port = sv.port()
        gate = threading.Barrier(100)

        def one(i):
            gate.wait(10)
            return h.request(port, "/burst/%d" % i, timeout=15)

        res = h.parallel(100, one)
        bad = [(i, r) for i, r in enumerate(res)
               if not isinstance(r, h.Resp) or r.status != 200 or r.body != b"hello\n"]
        check(not bad, "%d of 100 failed, e.g. %r" % (len(bad), bad[:3]))


@test
def chunked_request_body_is_echoed():
    with echo_sv() as sv:
        s = h.connect(sv.port())
        try:
            s.sendall(b"POST /chunked HTTP/1.1\r\nHost: t\r\n"
                      b"Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
            for part in (b"hello-", b"chunked-", b"world"):
                s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            s.sendall(b"0\r\n\r\n")
            r = h.read_response(s.makefile("rb"))
        finally:
            s.close()
        check(r.status == 200, "status %d" % r.status)
        check(b"hello-chunked-world" in r.body, "body not echoed de-chunked: %r" % r.body)
        check(b"POST" in r.body, "method not echoed: %r" % r.body)


@test
def echo_shows_method_path_query_header_body():
    with echo_sv() as sv:
        r = h.request(sv.port(), "/p/q?k=v1", method="PUT",
                      headers={"X-Echo": "marker-42"}, body=b"payload-xyz")
        check(r.status == 200, "status %d" % r.status)
        for want in (b"PUT", b"/p/q", b"k=v1", b"marker-42", b"payload-xyz"):
            check(want in r.body, "%r missing from echo %r" % (want, r.body))


@test
def head_has_length_and_no_body():
    with hello_sv() as sv:
        s = h.connect(sv.port())
        try:
            # HEAD then GET on one connection: a body after HEAD would be read as the
            # GET's status line and break the second parse.
            s.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
            f = s.makefile("rb")
            head = h.read_response(f, method="HEAD")
            get = h.read_response(f)
        finally:
            s.close()
        check(head.status == 200, "HEAD status %d" % head.status)
        check(head.headers.get("content-length") == "6",
              "HEAD Content-Length %r, want 6" % head.headers.get("content-length"))
        check(get.status == 200 and get.body == b"hello\n",
              "GET after HEAD got %r (a body after HEAD?)" % get)


@test
def oversized_header_gets_431():
    with echo_sv() as sv:
        data = (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        r = h.raw_exchange(sv.port(), data)[0]
        check(r.status == 431, "status %d, want 431" % r.status)
        still_serves(sv)


@test
def oversized_body_gets_413():
    with echo_sv() as sv:
        [(wid, pid)] = h.wait_until(lambda: sv.workers("echo"), 10, "the echo worker").items()
        r = h.request(sv.port(), "/", method="POST", body=b"x" * 4096)
        check(r.status == 413, "Content-Length body: status %d, want 413" % r.status)
        s = h.connect(sv.port())
        try:
            try:
                s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in range(4):
                    s.sendall(b"400\r\n" + b"y" * 1024 + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            except (ConnectionResetError, BrokenPipeError):
                pass    # the worker may answer and close before the rest is sent
            # The answer is read (the worker reads and discards before closing): a
            # reset or a close without a 413 is a failure, e.g. a worker that died.
            try:
                r = h.read_response(s.makefile("rb"))
            except (OSError, http.client.HTTPException) as e:
                raise h.Failure("chunked body over the cap: no 413 but %s: %s"
                                % (type(e).__name__, e))
        finally:
            s.close()
        check(r.status == 413, "chunked body: status %d, want 413" % r.status)
        ok = h.request(sv.port(), "/", method="POST", body=b"z" * 1000)
        check(ok.status == 200, "a body under the cap got %d" % ok.status)
        # The same worker answered both refusals and the request after them: a
        # worker that crashed on the body and was replaced would pass the above.
        check(not sv.events("worker_exit") and not sv.events("worker_state", to="crashed"),
              "a worker exited: %r" % (sv.events("worker_exit") or
                                       sv.events("worker_state", to="crashed")))
        check(sv.workers("echo") == {wid: pid} and h.alive(pid),
              "echo workers %r, want the same worker %s=%d" % (sv.workers("echo"), wid, pid))


@test
def malformed_request_gets_400():
    with echo_sv() as sv:
        for data in (b"GET / HTTP/1.1\r\nHost t\r\n\r\n",
                     b"\x01\x02garbage\r\n\r\n",
                     b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"):
            s = h.connect(sv.port())
            try:
                s.sendall(data)
                status, _ = h.read_status_line(s.makefile("rb"))
            finally:
                s.close()
            check(status == 400, "%r answered %d, want 400" % (data[:30], status))
        still_serves(sv)


def curl(args, timeout=10):
    """curl -sS ARGS; returns (exit code, stdout bytes, stderr text)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "5"] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


@test
def curl_http2_upgrade_gets_http11():
    """curl --http2 on http:// offers h2c (Upgrade: h2c, HTTP2-Settings): the offer is
    ignored (RFC 9110 7.8) and the answer is the function's, in HTTP/1.1."""
    with hello_sv() as sv:
        url = "http://127.0.0.1:%d/" % sv.port()
        rc, out, err = curl(["--http2", "-v", url])
        check(rc == 0 and out == b"hello\n", "curl --http2: rc %d, body %r, %s" % (
            rc, out, err[-300:]))
        check("Upgrade: h2c" in err, "curl did not offer h2c: %s" % err[-500:])
        check("< HTTP/1.1 200" in err and "HTTP/2" not in err.split("Upgrade: h2c")[1],
              "not an HTTP/1.1 200: %s" % err[-500:])
        # Two URLs on one connection: the connection stays HTTP/1.1 and keeps serving.
        rc, out, err = curl(["--http2", "-v", url + "a", url + "b"])
        check(rc == 0 and out == b"hello\nhello\n", "two requests: rc %d %r" % (rc, out))
        check("Re-using existing connection" in err or "Reusing existing connection" in err,
              "the second request did not reuse the connection: %s" % err[-600:])
        # A WebSocket handshake is not spoken yet: answered as plain HTTP/1.1 too.
        rc, out, err = curl(["-v", "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
                             "-H", "Sec-WebSocket-Version: 13",
                             "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", url])
        check(rc == 0 and out == b"hello\n" and "< HTTP/1.1 200" in err,
              "websocket offer: rc %d %r %s" % (rc, out, err[-300:]))
        check(not sv.events("http_error"), "http_error logged: %r" % sv.events("http_error"))


@test
def framing_errors_with_real_clients():
    """The issue-13 framing cases with real clients: no Host or an invalid one in
    HTTP/1.1 gets 400 (curl; two Hosts, which curl will not send, are in the corpus),
    HTTP/9.9 gets 505; an empty Host and HTTP/1.0 without Host are served; a chunk
    extension with a bare LF gets 400 and Connection: close at once, before the
    request_timeout_ms 408 (10 s here, the socket gives up at 5 s), while the client
    keeps its side open."""
    lim = dict(CAPS, request_timeout_ms=10000)
    with h.Supervisor([h.function("echo", limits=lim)], name="http") as sv:
        url = "http://127.0.0.1:%d/f" % sv.port()
        for args, want in ((["-H", "Host:"], "400"),     # curl: "Host:" drops its Host
                           (["-H", "Host: a@b"], "400"),   # a userinfo: invalid value
                           (["-H", "Host;"], "200"),       # an empty Host is valid
                           (["--http1.0", "-H", "Host:"], "200"),
                           ([], "200")):
            rc, out, err = curl(["-o", "/dev/null", "-w", "%{http_code}"] + args + [url])
            check(out.decode() == want, "curl %s: %r (rc %d %s), want %s" % (
                " ".join(args), out, rc, err[-200:], want))
        s = h.connect(sv.port(), timeout=5)
        try:
            s.sendall(b"GET / HTTP/9.9\r\nHost: a\r\n\r\n")
            status, _ = h.read_status_line(s.makefile("rb"))
        finally:
            s.close()
        check(status == 505, "HTTP/9.9 answered %d, want 505" % status)
        s = h.connect(sv.port(), timeout=5)
        try:
            s.sendall(b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3;ext\nabc\r\n")
            f = s.makefile("rb")
            # No deadline beyond the socket's 5 s: the 408 would come only at 10 s.
            status, hdrs = h.read_status_line(f)
            rest = f.read()         # up to the server's close
        finally:
            s.close()
        check(status == 400, "bare LF in a chunk extension answered %d, want 400" % status)
        check(hdrs.get("connection") == "close", "the 400 says Connection: %r" %
              hdrs.get("connection"))
        check(rest == b"400 Bad Request\n", "after the 400: %r" % rest[:200])
        check(sv.events("http_error", reason="bare_lf"), "no http_error reason=bare_lf")


@test
def expect_100_continue():
    with echo_sv() as sv:
        s = h.connect(sv.port())
        try:
            s.sendall(b"POST /exp HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            f = s.makefile("rb")
            status, _ = h.read_status_line(f)
            check(status == 100, "interim status %d, want 100" % status)
            s.sendall(b"body-after!")
            r = h.read_response(f, method="POST")
        finally:
            s.close()
        check(r.status == 200, "final status %d" % r.status)
        check(b"body-after!" in r.body, "body not echoed: %r" % r.body)


@test
def unix_and_ipv6_listeners():
    """One function on three listeners: IPv4, [::1] and a unix socket."""
    sock_dir = h.tmpdir("unixl")
    path = os.path.join(sock_dir, "hello.sock")
    v6 = h.free_port()
    fn = h.function("hello", workers=1)
    fn["listen"] += ["[::1]:%d" % v6, "unix:" + path]
    with h.Supervisor([fn], name="listeners") as sv:
        check(h.request(sv.port()).body == b"hello\n", "IPv4 listener")
        r = h.request(v6, host="::1")
        check(r.status == 200 and r.body == b"hello\n", "[::1] listener: %r" % r)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(path)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = h.read_until_close(s)
        s.close()
        check(data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hello\n"),
              "unix listener: %r" % data[:80])
    check(not os.path.exists(path), "the unix socket file was left behind")


# ---- streamed responses ------------------------------------------------------------

MIB = 1 << 20
CTL = os.path.join(h.BUILD, "edgevisorctl")


def vm_kib(pid, key):
    """VmRSS / VmHWM of PID in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def read_chunked(f):
    """Reads a chunked body from F; returns (body, complete): complete means the
    terminating zero chunk came, not just the connection's close."""
    body = b""
    while True:
        line = f.readline(100)
        if not line:
            return body, False
        size = int(line.split(b";")[0], 16)
        if size == 0:
            f.readline(100)
            return body, True
        body += f.read(size)
        check(f.read(2) == b"\r\n", "chunk data not followed by CRLF")


@test
def stream_sse_events_arrive_one_by_one():
    """curl -N on the sse example: each event is read as it is produced, the first
    before the last one is produced (the events carry their production time)."""
    with h.Supervisor([h.function("sse")], name="http") as sv:
        p = subprocess.Popen(["curl", "-sSN", "--max-time", "20",
                              "http://127.0.0.1:%d/?ms=300&n=5" % sv.port()],
                             stdout=subprocess.PIPE)
        events = []
        for line in p.stdout:
            if line.startswith(b"data: "):
                events.append((time.time() * 1000, json.loads(line[6:])))
        rc = p.wait()
        check(rc == 0, "curl -N exited %d (the chunked body did not end cleanly)" % rc)
        check([e["n"] for _, e in events] == [1, 2, 3, 4, 5], "events %r" % events)
        first_seen, last_made = events[0][0], events[-1][1]["ms"]
        print("#   first event read %d ms before the last was produced" %
              (last_made - first_seen))
        check(first_seen < last_made, "the first event was read at %d, after the last was"
              " produced at %d: buffered, not streamed" % (first_seen, last_made))


@test
def stream_download_1gib_in_bounded_memory():
    """A 1 GiB streamed download through one worker: all of it arrives, chunked, and
    the worker's peak RSS grows by less than 16 MiB."""
    with h.Supervisor([h.function("download")], name="http") as sv:
        pid = list(sv.workers("download").values())[0]
        url = "http://127.0.0.1:%d/" % sv.port()
        r = h.request(sv.port(), "/?mb=1")
        want = (b"0123456789abcdef" * (65536 // 16))[:-1] + b"\n"
        check(r.status == 200 and r.body == want * 16, "1 MiB download: %r" % r)
        hwm0 = vm_kib(pid, "VmHWM")
        t0 = time.monotonic()
        rc, out, err = curl(["-o", "/dev/null", "-w", "%{size_download} %{http_code}",
                             "--max-time", "120", url + "?mb=1024"], timeout=130)
        secs = time.monotonic() - t0
        check(rc == 0 and out == b"%d 200" % (1024 * MIB), "1 GiB: rc %d %r %s" % (
            rc, out, err[-200:]))
        growth = vm_kib(pid, "VmHWM") - hwm0
        print("#   1 GiB in %.2f s, worker peak RSS %d KiB -> +%d KiB" % (secs, hwm0, growth))
        check(growth < 16 * 1024, "worker peak RSS grew by %d KiB" % growth)


@test
def stream_stalls_are_closed_by_the_timer():
    """A client that stops reading a 1 GiB download is closed by request_timeout_ms
    (the worker holds at most its stream buffer meanwhile), and so is a stream whose
    function produces nothing for that long; a stream that moves is never cut."""
    lim = {"request_timeout_ms": 1500}
    fns = [h.function("download", limits=lim), h.function("sse", limits=lim)]
    with h.Supervisor(fns, name="http") as sv:
        pid = list(sv.workers("download").values())[0]
        h.request(sv.port("download"), "/?mb=1")
        hwm0 = vm_kib(pid, "VmHWM")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", sv.port("download")))
        s.sendall(b"GET /?mb=1024 HTTP/1.1\r\nHost: a\r\n\r\n")
        # An SSE stream with an event every 300 ms outlives the timeout by far.
        live = subprocess.Popen(["curl", "-sSN", "--max-time", "20",
                                 "http://127.0.0.1:%d/?ms=300&n=12" % sv.port("sse")],
                                stdout=subprocess.PIPE)
        sv.wait_event("http_stream_stalled", timeout=15)
        growth = vm_kib(pid, "VmHWM") - hwm0
        s.settimeout(10)
        got = h.read_until_close(s, limit=1 << 31)
        s.close()
        check(len(got) < 64 * MIB and not got.endswith(b"0\r\n\r\n"),
              "the stalled reader got %d bytes, ending %r" % (len(got), got[-10:]))
        check(growth < 16 * 1024, "worker peak RSS grew by %d KiB while stalled" % growth)
        print("#   stalled reader closed after %d bytes; worker peak RSS +%d KiB" %
              (len(got), growth))
        # The function goes silent for 5 s: closed at the 1.5 s stall, without the end.
        s = h.connect(sv.port("sse"), timeout=10)
        s.sendall(b"GET /?ms=5000 HTTP/1.1\r\nHost: a\r\n\r\n")
        f = s.makefile("rb")
        status, hdrs = h.read_status_line(f)
        t0 = time.monotonic()
        body, complete = read_chunked(f)
        s.close()
        check(status == 200 and hdrs.get("transfer-encoding") == "chunked" and
              not complete and body == b"", "silent stream: %d %r %r %r" % (
                  status, hdrs, body, complete))
        check(time.monotonic() - t0 < 4.5, "the silent stream was not cut at the stall")
        out, _ = live.communicate(timeout=30)
        check(live.returncode == 0 and out.count(b"data: ") == 12,
              "the moving stream: rc %d, %d events" % (live.returncode,
                                                      out.count(b"data: ")))
        check(len(sv.events("http_stream_stalled")) == 2, "stalls logged: %r" %
              sv.events("http_stream_stalled"))
        check(h.request(sv.port("download"), "/?mb=1").status == 200, "download after")
        check(not sv.events("worker_state", to="crashed"), "a worker crashed")


@test
def stream_drain_ends_sse_cleanly():
    """A drain during an open SSE stream: the stream counts as work in flight, the
    function is told DRAINING, says goodbye and ends it; the client sees a complete
    chunked body, and the worker drains and exits without being terminated."""
    with h.Supervisor([h.function("sse")], name="http") as sv:
        pid = list(sv.workers("sse").values())[0]
        s = h.connect(sv.port(), timeout=10)
        s.sendall(b"GET /?ms=100 HTTP/1.1\r\nHost: a\r\n\r\n")
        f = s.makefile("rb")
        status, hdrs = h.read_status_line(f)
        check(status == 200 and hdrs.get("content-type") == "text/event-stream",
              "SSE head: %d %r" % (status, hdrs))
        size = int(f.readline(100).split(b";")[0] or b"0", 16)
        check(size > 0 and b"data: " in f.read(size + 2), "no first event")
        rc = subprocess.run([CTL, "-s", sv.admin, "drain", "sse"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=20).returncode
        check(rc == 0, "edgevisorctl drain sse exited %d" % rc)
        body, complete = read_chunked(f)
        rest = f.read()
        s.close()
        check(complete and b"event: bye\n" in body, "the stream did not end cleanly: "
              "complete=%r, tail %r" % (complete, body[-120:]))
        check(rest == b"", "bytes after the end: %r" % rest[:80])
        check(hdrs.get("connection") is None, "keep-alive stream said %r" % hdrs)
        sv.wait_event("worker_state", pid=pid, to="drained", timeout=20)
        sv.wait_event("worker_state", pid=pid, to="exited", timeout=20)
        check(not sv.events("worker_state", pid=pid, to="terminating"),
              "the draining worker was terminated")


@test
def stream_head_pipelining_and_http10():
    """HEAD on a stream gets the head only and the connection stays in step; pipelined
    streamed responses come whole and in order; HTTP/1.0 gets a close-delimited body."""
    with h.Supervisor([h.function("download")], name="http") as sv:
        piece = (b"0123456789abcdef" * (65536 // 16))[:-1] + b"\n"
        data = (b"HEAD /?mb=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                b"GET /?mb=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                b"GET /?mb=2 HTTP/1.1\r\nHost: a\r\n\r\n")
        s = h.connect(sv.port(), timeout=10)
        try:
            s.sendall(data)
            f = s.makefile("rb")
            head = h.read_response(f, method="HEAD")
            one = h.read_response(f)
            two = h.read_response(f)
        finally:
            s.close()
        check(head.status == 200 and head.body == b"" and
              head.headers.get("transfer-encoding") == "chunked", "HEAD: %r" % head)
        check(one.status == 200 and one.body == piece * 16, "first GET: %d bytes" %
              len(one.body))
        check(two.status == 200 and two.body == piece * 32, "second GET: %d bytes" %
              len(two.body))
        s = h.connect(sv.port(), timeout=10)
        s.sendall(b"GET /?mb=1 HTTP/1.0\r\n\r\n")
        raw = h.read_until_close(s, limit=4 * MIB)
        s.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200 ") and b"Transfer-Encoding" not in head and
              b"Content-Length" not in head and b"Connection: close" in head,
              "HTTP/1.0 head: %r" % head)
        check(body == piece * 16, "HTTP/1.0 body: %d bytes" % len(body))


@test
def stream_client_that_leaves_frees_the_stream():
    """Clients that reset an SSE stream or a download mid-way: the function hears
    GONE and ends the stream, the worker's fds come back, and it keeps serving."""
    with h.Supervisor([h.function("sse"), h.function("download")], name="http") as sv:
        pids = [list(sv.workers(n).values())[0] for n in ("sse", "download")]
        h.request(sv.port("download"), "/?mb=1")
        fds = [h.settled_fd_count(p) for p in pids]
        for i in range(20):
            for name, path in (("sse", "/?ms=20"), ("download", "/?mb=64")):
                s = h.connect(sv.port(name), timeout=5)
                s.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())
                check(s.recv(4096).startswith(b"HTTP/1.1 200 "), "%s: no stream" % name)
                # SO_LINGER 0: the close is a reset, as when a client dies.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                s.close()
        for p, n in zip(pids, fds):
            h.wait_until(lambda: h.fd_count(p) <= n, 10,
                         "worker %d fds back to %d (now %d)" % (p, n, h.fd_count(p)))
        check(h.request(sv.port("download"), "/?mb=1").status == 200, "download after")
        check(not sv.events("worker_state", to="crashed"), "a worker crashed")
        check([list(sv.workers(n).values())[0] for n in ("sse", "download")] == pids,
              "a worker was replaced")


if __name__ == "__main__":
    h.main()
