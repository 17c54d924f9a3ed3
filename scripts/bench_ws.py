#!/usr/bin/env python3
"""bench_ws.py - WebSocket echo messages per second (bench.sh phase ws): one worker
running examples/ws_echo.so, one client (tests/integration/wsclient.py) keeping WINDOW
64-byte text messages in flight for SECONDS, ROUNDS times; prints the median and the
range as one bench.sh figure line (`--alone`: a `bench name=...` line). The client is
python: the figure is a floor set partly by the client, good for comparing builds."""

import os
import statistics
import sys
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
                        else "build")
os.environ["EDGEVISOR_BUILD"] = BUILD
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness as h  # noqa: E402
import wsclient as W  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = float(os.environ.get("WS_SECONDS", "2"))
WINDOW = int(os.environ.get("WS_WINDOW", "256"))
SIZE = 64


def one_round(port):
    ws = W.WS(port, timeout=10)
    frame = W.WS.frame(W.TEXT, b"x" * SIZE)   # one masked frame, sent again and again
    echo_len = 2 + SIZE                        # the server's unmasked echo
    ws.send_raw(frame * WINDOW)
    pending, done, got = WINDOW, 0, len(ws.buf)
    t0 = time.monotonic()
    end = t0 + SECONDS
    while True:
        d = ws.sock.recv(1 << 20)
        if not d:
            raise SystemExit("bench_ws: the server closed the connection")
        got += len(d)
        n, got = got // echo_len, got % echo_len
        done += n
        pending -= n
        if time.monotonic() < end:
            ws.send_raw(frame * n)
            pending += n
        elif pending == 0:
            break
    secs = time.monotonic() - t0
    ws.close()
    ws.expect_close()
    ws.shutdown()
    return done / secs


def main():
    with h.Supervisor([h.function("ws_echo")], name="benchws") as sv:
        rates = [one_round(sv.port()) for _ in range(ROUNDS)]
    med, lo, hi = (int(statistics.median(rates)), int(min(rates)), int(max(rates)))
    print("== ws: %d rounds of %.1fs, %d x %d-byte messages in flight: %s msgs/s"
          % (ROUNDS, SECONDS, WINDOW, SIZE, [int(r) for r in rates]), file=sys.stderr)
    if "--alone" in sys.argv:
        print("bench name=ws_echo_msgs_per_s value=%d unit=msgs/s min=%d max=%d" % (med, lo, hi))
    else:
        print("ws_echo_msgs_per_s msgs/s %d - - - - %d %d - -" % (med, lo, hi))


if __name__ == "__main__":
    main()
