"""test_websocket.py - WebSocket (RFC 6455) through the real supervisor and a worker
running examples/ws_echo.c, with the stdlib-socket client of wsclient.py over
loopback: the handshake and its refusals (400, 426), 10,000 messages echoed in order,
ping/pong, the close handshake with a code, fragments reassembled, frames sent with
the handshake, the close codes of bad frames (unmasked 1002, oversized 1009, bad UTF-8
1007, a bad opcode and a fragmented ping 1002), a message at the cap, the idle timeout
(pings keep a connection open, silence closes it with 1000), and a drain during open
WebSockets (close 1001; the worker drains and exits, with or without the client's
answer)."""

import os
import subprocess

import harness as h
from harness import check, test
import wsclient as W

CTL = os.path.join(h.BUILD, "edgevisorctl")


def echo_sv(**limits):
    return h.Supervisor([h.function("ws_echo", limits=limits or None)], name="ws")


def raw_status(port, data):
    """The status line and headers of the answer to the raw request DATA."""
    s = h.connect(port, timeout=5)
    try:
        s.sendall(data)
        f = s.makefile("rb")
        return h.read_status_line(f)
    finally:
        s.close()


def expect_close_code(ws, want, what):
    code, reason = ws.expect_close()
    check(code == want, "%s: close code %r (%r), want %d" % (what, code, reason, want))
    check(ws.eof(), "%s: the connection stayed open after the close" % what)


@test
def handshake_and_10000_messages_in_order():
    """101 with the right Sec-WebSocket-Accept; 10,000 text and binary messages (in
    windows of 100 in flight) come back in order and intact; a plain request without an
    upgrade offer is still served."""
    with echo_sv() as sv:
        ws = W.WS(sv.port(), timeout=10)
        check(ws.status == 101, "status line %r" % ws.status_line)
        check(ws.accept_ok, "Sec-WebSocket-Accept %r" % ws.headers.get("sec-websocket-accept"))
        check(ws.headers.get("upgrade", "").lower() == "websocket" and
              ws.headers.get("connection", "").lower() == "upgrade", "headers %r" % ws.headers)
        n, window = 10000, 100
        for base in range(0, n, window):
            sent = []
            for i in range(base, base + window):
                msg = ("m%d-" % i) * (i % 7 + 1) if i % 2 else os.urandom(i % 300 + 1)
                sent.append(msg)
                ws.send(msg)
            for i, msg in enumerate(sent):
                op, data = ws.recv()
                want = (W.TEXT, msg.encode()) if isinstance(msg, str) else (W.BINARY, msg)
                check((op, data) == want, "message %d: got %r %r, want %r" % (
                    base + i, op, data[:40], (want[0], want[1][:40])))
        ws.close(1000)
        expect_close_code(ws, 1000, "after 10,000")
        r = h.request(sv.port(), "/")
        check(r.status == 200 and b"WebSocket" in r.body, "plain request: %r" % r)


@test
def bad_handshakes_are_refused():
    """A wrong version gets 426 with Sec-WebSocket-Version: 13; a missing or short key,
    POST, HTTP/1.0 and a missing Connection: upgrade get 400; an h2c offer, which
    ws_echo does not accept, is answered as plain HTTP/1.1 (test_http.py covers hello)."""
    with echo_sv() as sv:
        port = sv.port()
        req, _ = W.handshake_request(version="8")
        st, hdrs = raw_status(port, req)
        check(st == 426 and hdrs.get("sec-websocket-version") == "13",
              "version 8: %d %r" % (st, hdrs))
        for what, data in (
                ("no key", b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"),
                ("short key", W.handshake_request(key="c2hvcnQ=")[0]),
                ("POST", W.handshake_request()[0].replace(b"GET", b"POST", 1)),
                ("HTTP/1.0", W.handshake_request()[0].replace(b"HTTP/1.1", b"HTTP/1.0", 1)),
                ("no Connection: upgrade",
                 W.handshake_request()[0].replace(b"Connection: Upgrade", b"Connection: x"))):
            st, hdrs = raw_status(port, data)
            check(st == 400, "%s: status %d, want 400" % (what, st))
        st, _ = raw_status(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings"
                           b"\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        check(st == 200, "an h2c offer to ws_echo: %d, want 200 (plain HTTP)" % st)
        ws = W.WS(port)
        check(ws.status == 101, "after the refusals: %r" % ws.status_line)
        ws.close()
        expect_close_code(ws, 1000, "after the refusals")


@test
def ping_pong_close_and_fragments():
    """A ping is answered with a pong carrying its payload; a text message in three
    fragments with a ping between them comes back whole (after the pong); a close with
    1000 and a reason is answered with 1000, then the server closes the TCP
    connection."""
    with echo_sv() as sv:
        ws = W.WS(sv.port())
        ws.send_raw(W.WS.frame(W.PING, b"are you there"))
        check(ws.recv() == (W.PONG, b"are you there"), "no pong")
        ws.send_raw(W.WS.frame(W.TEXT, b"Hel", fin=False) +
                    W.WS.frame(W.CONT, b"lo, ", fin=False) +
                    W.WS.frame(W.PING, b"mid") +
                    W.WS.frame(W.CONT, "wörld".encode(), fin=True))
        check(ws.recv() == (W.PONG, b"mid"), "no pong between fragments")
        got = ws.recv()
        check(got == (W.TEXT, "Hello, wörld".encode()), "reassembled: %r" % (got,))
        ws.close(1000, b"bye")
        code, reason = ws.expect_close()
        check(code == 1000 and reason == b"bye", "close answer %r %r" % (code, reason))
        check(ws.eof(), "the server kept the connection after the close handshake")


@test
def frames_sent_with_the_handshake_are_read():
    """A client that sends its first frames in the same write as the handshake (and a
    plain request pipelined before it): the plain answer, the 101, then the echoes."""
    with echo_sv() as sv:
        s = h.connect(sv.port(), timeout=5)
        req, key = W.handshake_request()
        s.sendall(b"GET /plain HTTP/1.1\r\nHost: a\r\n\r\n" + req +
                  W.WS.frame(W.TEXT, b"early one") + W.WS.frame(W.BINARY, b"\x00two"))
        ws = W.WS.attached(s)
        st, _, body = ws.read_response()
        check(st == 200 and body.startswith(b"ws_echo"), "the pipelined plain request: %d %r"
              % (st, body))
        st, hdrs, _ = ws.read_response()
        check(st == 101 and hdrs.get("sec-websocket-accept") == W.accept_of(key),
              "the upgrade: %d %r" % (st, hdrs))
        check(ws.recv() == (W.TEXT, b"early one"), "first early frame")
        check(ws.recv() == (W.BINARY, b"\x00two"), "second early frame")
        s.close()


@test
def bad_frames_get_their_close_codes():
    """An unmasked client frame: 1002; a frame declaring more than the 1 MiB message
    cap: 1009 (before its payload is read); fragments adding up past the cap: 1009;
    text that is not UTF-8 (whole, or split inside a fragment): 1007; a reserved
    opcode and a fragmented ping: 1002. A message of exactly 1 MiB is echoed."""
    cap = 1 << 20
    cases = (
        ("unmasked", W.WS.frame(W.TEXT, b"hi", mask=False), 1002),
        ("oversized", W.WS.frame(W.BINARY, b"", length=cap + 1) + b"x" * 4096, 1009),
        ("fragments past the cap", W.WS.frame(W.BINARY, b"a" * (cap - 10), fin=False) +
         W.WS.frame(W.CONT, b"b" * 20), 1009),
        ("bad utf-8", W.WS.frame(W.TEXT, b"ok \xff\xfe"), 1007),
        ("bad utf-8 across fragments", W.WS.frame(W.TEXT, b"\xe2\x82", fin=False) +
         W.WS.frame(W.CONT, b"\x41"), 1007),
        ("reserved opcode", W.WS.frame(0x3, b"?"), 1002),
        ("fragmented ping", W.WS.frame(W.PING, b"p", fin=False), 1002),
    )
    with echo_sv() as sv:
        for what, data, code in cases:
            ws = W.WS(sv.port(), timeout=10)
            ws.send_raw(data)
            expect_close_code(ws, code, what)
        ws = W.WS(sv.port(), timeout=20)
        big = os.urandom(cap)
        ws.send(big)
        op, data = ws.recv()
        check(op == W.BINARY and data == big, "1 MiB message: %d bytes back" % len(data))
        ws.close()
        expect_close_code(ws, 1000, "after 1 MiB")
        check(not sv.events("worker_state", to="crashed"), "the worker crashed")


@test
def lowered_message_cap_takes_effect():
    """ws_max_message_bytes 1000: a 1000-byte message is echoed, a 1001-byte one gets
    close 1009."""
    with echo_sv(ws_max_message_bytes=1000) as sv:
        ws = W.WS(sv.port(), timeout=10)
        ws.send(b"m" * 1000)
        check(ws.recv() == (W.BINARY, b"m" * 1000), "1000 bytes not echoed")
        ws.send(b"m" * 1001)
        expect_close_code(ws, 1009, "1001 bytes over a cap of 1000")


@test
def idle_timeout_spares_pings_and_closes_silence():
    """With idle_timeout_ms 1000: a client that pings every 200 ms stays open past
    three timeouts (and still echoes); a silent one is sent close 1000 "idle"."""
    with echo_sv(idle_timeout_ms=1000) as sv:
        talker = W.WS(sv.port())
        silent = W.WS(sv.port(), timeout=10)
        # The talker outlives 3 timeouts; meanwhile the silent one's close waits in
        # its socket.
        pongs = 0
        deadline = h.time.monotonic() + 3.0
        while h.time.monotonic() < deadline:
            talker.send_raw(W.WS.frame(W.PING, b"k"))
            check(talker.recv() == (W.PONG, b"k"), "no pong")
            pongs += 1
            h.time.sleep(0.2)
        code, reason = silent.expect_close()
        check(code == 1000 and reason == b"idle", "silent: close %r %r" % (code, reason))
        silent.close(1000)
        check(silent.eof(), "silent: open after the close handshake")
        talker.send("still here")
        check(talker.recv() == (W.TEXT, b"still here"), "the pinging client was closed")
        check(pongs >= 5, "only %d pongs" % pongs)


def drain_and_check(sv, pid):
    rc = subprocess.run([CTL, "-s", sv.admin, "drain", "ws_echo"], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=20).returncode
    check(rc == 0, "edgevisorctl drain ws_echo exited %d" % rc)


@test
def drain_closes_open_websockets_with_1001():
    """A drain during two open WebSockets: both hear close 1001; the one that answers
    is closed at once, the one that does not is dropped after the close wait; the
    worker drains and exits, never terminated."""
    with echo_sv() as sv:
        pid = list(sv.workers("ws_echo").values())[0]
        polite, deaf = W.WS(sv.port(), timeout=15), W.WS(sv.port(), timeout=15)
        for ws in (polite, deaf):
            ws.send("before")
            check(ws.recv() == (W.TEXT, b"before"), "no echo before the drain")
        drain_and_check(sv, pid)
        code, reason = polite.expect_close()
        check(code == 1001, "polite: close %r %r, want 1001" % (code, reason))
        polite.close(1001)
        check(polite.eof(), "polite: open after the close handshake")
        code, _ = deaf.expect_close()
        check(code == 1001, "deaf: close %r, want 1001" % code)
        check(deaf.eof(), "deaf: never dropped")
        sv.wait_event("worker_state", pid=pid, to="drained", timeout=20)
        sv.wait_event("worker_state", pid=pid, to="exited", timeout=20)
        check(not sv.events("worker_state", pid=pid, to="terminating"),
              "the draining worker was terminated")


if __name__ == "__main__":
    h.main()
