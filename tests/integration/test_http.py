"""test_http.py - HTTP/1.1 behaviour of a worker behind the real supervisor (SPEC §7):
keep-alive, pipelining, a concurrent burst, chunked bodies, HEAD, Expect:
100-continue, and the 400/413/431 answers to bad input, over loopback."""

import http.client
import os
import socket
import threading

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


if __name__ == "__main__":
    h.main()
