"""test_lifecycle.py - the supervisor's care of its workers and of itself (SPEC §4,
§6): a SIGKILLed worker is replaced and service goes on; SIGTERM stops everything
with exit 0 and leaves no process behind; 10,000 connections leave no zombie and no
fd growth."""

import os
import signal
import socket
import time

import harness as h
from harness import check, test


def ready_pids(sv, fn, n):
    return h.wait_until(lambda: len(sv.workers(fn)) >= n and sv.workers(fn), 10,
                        "%d ready workers of %s" % (n, fn))


@test
def killed_worker_is_replaced():
    with h.Supervisor([h.function("hello", workers=2)], name="kill") as sv:
        before = ready_pids(sv, "hello", 2)
        wid, victim = sorted(before.items())[0]
        check(victim in h.children(sv.pid), "worker %d is not the supervisor's child" % victim)
        os.kill(victim, signal.SIGKILL)
        sv.wait_event("worker_state", pid=victim, to="crashed")
        ex = sv.wait_event("worker_exit", pid=victim)
        check(ex.get("signal") == "9", "worker_exit of %d says %r, want signal=9" % (victim, ex))
        after = h.wait_until(lambda: (lambda w: len(w) == 2 and victim not in w.values() and w)
                             (sv.workers("hello")), 10, "a replacement worker ready")
        new = set(after.values()) - set(before.values())
        check(len(new) == 1, "want one new worker pid, got %r -> %r" % (before, after))
        h.wait_until(lambda: not h.alive(victim) and victim not in h.children(sv.pid), 5,
                     "the killed worker to be reaped")
        check(not h.zombies(sv.pid), "zombies: %r" % h.zombies(sv.pid))
        for i in range(20):
            r = h.request(sv.port(), "/after-kill/%d" % i)
            check(r.status == 200, "request %d after the kill: %d" % (i, r.status))


@test
def sigterm_exits_0_and_leaves_nothing():
    sv = h.Supervisor([h.function("hello", workers=2), h.function("echo", workers=1)],
                      name="term")
    try:
        sv.start()
        ready_pids(sv, "hello", 2)
        ready_pids(sv, "echo", 1)
        check(h.request(sv.port("hello")).status == 200, "hello did not answer")
        kids = h.children(sv.pid)
        workers = sv.worker_pids_seen()
        check(len(kids) >= 3, "want >= 3 worker children, have %r" % kids)
        code = sv.stop(signal.SIGTERM, timeout=30)
        check(code == 0, "exit code %r after SIGTERM, want 0" % code)
        check(not sv.leftovers, "left behind after exit: %r" % sv.leftovers)
        alive = [p for p in set(kids) | workers if h.alive(p)]
        check(not alive, "worker processes still alive: %r" % alive)
        check(sv.events("exit", code="0"), "no ev=exit code=0 line")
        check(sv.events("summary"), "no ev=summary line at exit")
        s = socket.socket()
        try:
            check(s.connect_ex(("127.0.0.1", sv.port("hello"))) != 0,
                  "the listening port still accepts after exit")
        finally:
            s.close()
    finally:
        sv.cleanup()


def hammer(port, n, threads=4):
    """N Connection: close requests over THREADS threads; returns the failures."""
    req = b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

    def run(t):
        bad = []
        for i in range(n // threads):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                try:
                    s.sendall(req)
                    raw = h.read_until_close(s)
                finally:
                    s.close()
                if not raw.startswith(b"HTTP/1.1 200") or not raw.endswith(b"hello\n"):
                    bad.append(raw[:60])
            except OSError as e:
                bad.append(repr(e))
        return bad

    out = []
    for r in h.parallel(threads, run):
        out += r if isinstance(r, list) else [repr(r)]
    return out


@test
def no_zombie_or_fd_growth_after_10000_connections():
    with h.Supervisor([h.function("hello", workers=2)], name="leak") as sv:
        workers = ready_pids(sv, "hello", 2)
        bad = hammer(sv.port(), 200)
        check(not bad, "warm-up failures: %r" % bad[:3])
        sv_fds = h.settled_fd_count(sv.pid)
        wk_fds = {p: h.settled_fd_count(p) for p in workers.values()}
        t0 = time.monotonic()
        bad = hammer(sv.port(), 10000)
        took = time.monotonic() - t0
        check(not bad, "%d of 10000 failed, e.g. %r" % (len(bad), bad[:3]))
        check(sv.workers("hello") == workers, "workers changed during the run: %r -> %r"
              % (workers, sv.workers("hello")))
        h.wait_until(lambda: h.fd_count(sv.pid) <= sv_fds + 2, 5,
                     "supervisor fds back to %d (now %d)" % (sv_fds, h.fd_count(sv.pid)))
        for p, n in wk_fds.items():
            h.wait_until(lambda: h.fd_count(p) <= n + 2, 5,
                         "worker %d fds back to %d (now %d)" % (p, n, h.fd_count(p)))
        check(not h.zombies(sv.pid), "zombies: %r" % h.zombies(sv.pid))
        print("#   10000 connections in %.1fs; supervisor fds %d -> %d"
              % (took, sv_fds, h.fd_count(sv.pid)))


if __name__ == "__main__":
    h.main()
