"""test_load.py - the supervisor under wrk (SPEC: "anyone load-testing it with wrk"):
zero errors with keep-alive and with Connection: close, and a worker SIGKILLed under
load is replaced while the others keep serving."""

import os
import signal
import subprocess

import harness as h
from harness import check, test


def check_clean(name, res):
    check(res["requests"] > 1000, "%s: only %d requests in 5s" % (name, res["requests"]))
    check(not res["socket_errors"], "%s: socket errors %r\n%s"
          % (name, res["socket_errors"], res["text"]))
    check(res["non2xx"] == 0, "%s: %d non-2xx responses\n%s"
          % (name, res["non2xx"], res["text"]))


def hello_sv():
    return h.Supervisor([h.function("hello", workers=2)], name="load")


@test
def wrk_keepalive_no_errors():
    with hello_sv() as sv:
        res = h.wrk(sv.port(), threads=2, conns=64, duration=5)
        check_clean("keep-alive", res)
        check(not h.zombies(sv.pid), "zombies after wrk: %r" % h.zombies(sv.pid))
        print("#   keep-alive: %d requests, %.0f req/s" % (res["requests"], res["rps"]))


@test
def wrk_connection_close_no_errors():
    with hello_sv() as sv:
        res = h.wrk(sv.port(), threads=2, conns=64, duration=5,
                    headers=["Connection: close"])
        check_clean("Connection: close", res)
        check(not h.zombies(sv.pid), "zombies after wrk: %r" % h.zombies(sv.pid))
        print("#   close: %d requests, %.0f req/s" % (res["requests"], res["rps"]))


@test
def worker_killed_under_load_is_replaced():
    with hello_sv() as sv:
        before = h.wait_until(lambda: len(sv.workers("hello")) == 2 and sv.workers("hello"),
                              10, "2 ready workers")
        victim = sorted(before.values())[0]
        idle_fds = h.fd_count(victim)
        p = subprocess.Popen(h.wrk_cmd(sv.port(), threads=2, conns=64, duration=6),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            # Kill once the victim holds a share of wrk's connections.
            h.wait_until(lambda: h.fd_count(victim) >= idle_fds + 8, 5,
                         "the victim to hold wrk connections")
            os.kill(victim, signal.SIGKILL)
            sv.wait_event("worker_state", pid=victim, to="crashed", timeout=5)
            h.wait_until(lambda: (lambda w: len(w) == 2 and victim not in w.values())
                         (sv.workers("hello")), 10, "a replacement worker ready")
            # While wrk still runs: fresh connections all succeed.
            for i in range(50):
                r = h.request(sv.port(), "/probe/%d" % i, timeout=5)
                check(r.status == 200, "probe %d after the kill: %d" % (i, r.status))
            out, _ = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        res = h.parse_wrk(out.decode(errors="replace"))
        errs = sum(res["socket_errors"].values())
        # Only the killed worker's connections (at most wrk's 64) may fail.
        check(errs <= 64, "%d socket errors, more than the 64 connections\n%s"
              % (errs, res["text"]))
        check(res["non2xx"] == 0, "%d non-2xx responses\n%s" % (res["non2xx"], res["text"]))
        check(res["requests"] > 1000, "only %d requests" % res["requests"])
        # After the kill, a new run is clean again.
        after = h.wrk(sv.port(), threads=2, conns=64, duration=2)
        check(not after["socket_errors"] and after["non2xx"] == 0,
              "wrk after the replacement: %r %d\n%s"
              % (after["socket_errors"], after["non2xx"], after["text"]))
        check(not h.zombies(sv.pid), "zombies: %r" % h.zombies(sv.pid))
        print("#   kill under load: %d requests, %d socket errors; after: %d requests"
              % (res["requests"], errs, after["requests"]))


if __name__ == "__main__":
    h.main()
