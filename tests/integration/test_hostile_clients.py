"""test_hostile_clients.py - hostile clients against the real supervisor (SPEC §7).

malformed_corpus: every case in tests/corpus/http/ (NAME.req: raw bytes sent in one
write; NAME.expect: what must come back) is sent on a fresh connection to the echo
function. Each must get exactly the expected statuses (the echo's 200s naming the
expected paths, so nothing is smuggled in or merged), then the close or, for a
connection that must stay usable, a correct answer to one more request. No response
may carry a header the function did not set (no injection); no worker may crash;
the worker's fds come back to where they were.

slow_clients: slowhttptest opens 1,000 slowloris (-H) and 1,000 slow-body (-B)
connections at once against one function with a 5 s request timeout, while this
file measures `GET /` latency (a fresh connection each time) on another function
and on the attacked one. The p99 must stay under 100 ms, the server must close
the slow connections (slowhttptest ends with none left open), and the attacked
worker's fds must come back down.

.expect syntax, one key per line ('#' comments):
  responses: 400            final statuses in order; alternatives with '|'; '-' none
  paths: /a /b              what the echo's 200s say the paths were, in order
  body-has: TEXT            some 200's body contains TEXT
  then: close | open        the server closes, or answers GET /next on it afterwards
"""

import csv
import glob
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time

import harness as h
from harness import check, test

CORPUS = os.path.join(h.ROOT, "tests", "corpus", "http")
LIMITS = {"max_header_bytes": 4096, "max_body_bytes": 1024, "request_timeout_ms": 2000,
          "idle_timeout_ms": 3000}
# Every header the runtime or the echo function writes; anything else was injected.
KNOWN_HEADERS = {"server", "date", "content-type", "content-length", "connection",
                 "x-body-length"}


# ---- the corpus -----------------------------------------------------------------

def load_cases():
    cases = []
    for req in sorted(glob.glob(os.path.join(CORPUS, "*.req"))):
        name = os.path.basename(req)[:-4]
        exp = {"responses": None, "paths": [], "body-has": None, "then": None}
        with open(os.path.join(CORPUS, name + ".expect")) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                check(k in exp, "%s.expect: unknown key %r" % (name, k))
                if k == "responses":
                    v = [[] if a.strip() == "-" else [int(s) for s in a.split()]
                         for a in v.split("|")]
                elif k == "paths":
                    v = v.split()
                exp[k] = v
        check(exp["responses"] is not None and exp["then"] in ("close", "open"),
              "%s.expect needs responses: and then: close|open" % name)
        with open(req, "rb") as f:
            cases.append((name, f.read(), exp))
    return cases


class Reader:
    """Reads raw responses from a socket, with one deadline for the whole case."""

    def __init__(self, sock, deadline):
        self.s = sock
        self.buf = b""
        self.deadline = deadline
        self.eof = False

    def _more(self):
        left = self.deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.s.settimeout(left)
        try:
            b = self.s.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            b = b""
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def response(self):
        """(status, headers, body) of the next final response, or None at EOF or
        deadline. A 100 Continue is skipped."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._more():
                    check(not self.buf, "a partial response head: %r" % self.buf[:200])
                    return None
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
            check(m, "bad status line %r" % lines[0])
            status = int(m.group(1))
            hdrs = {}
            for ln in lines[1:]:
                k, sep, v = ln.partition(":")
                check(sep and k == k.strip(), "bad response header line %r" % ln)
                hdrs[k.lower()] = v.strip()
            self.buf = rest
            if status == 100:
                check(not hdrs, "100 Continue with headers %r" % hdrs)
                continue
            n = int(hdrs.get("content-length", "0"))
            while len(self.buf) < n:
                check(self._more(), "body cut short (%d of %d)" % (len(self.buf), n))
            body, self.buf = self.buf[:n], self.buf[n:]
            return status, hdrs, body


def run_case(port, name, data, exp):
    s = h.connect(port, timeout=5)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass                    # refused mid-send: the answer is still readable
    rd = Reader(s, time.monotonic() + 6)
    try:
        got = []
        while True:
            r = rd.response()
            if r is None:
                break
            got.append(r)
            for k in r[1]:
                check(k in KNOWN_HEADERS, "%s: injected response header %r" % (name, k))
            if r[1].get("connection") == "close":
                break
            if exp["then"] == "open" and len(got) == max(len(a) for a in exp["responses"]):
                break
        statuses = [g[0] for g in got]
        check(statuses in exp["responses"], "%s: got %s, want %s" % (
            name, statuses, " or ".join(str(a) for a in exp["responses"])))
        paths = [re.search(rb"path=(\S*)", b).group(1).decode("latin-1")
                 for st, _, b in got if st == 200]
        check(paths == exp["paths"], "%s: echo paths %s, want %s (smuggled or lost)"
              % (name, paths, exp["paths"]))
        if exp["body-has"]:
            check(any(exp["body-has"].encode() in b for _, _, b in got),
                  "%s: no answer body has %r" % (name, exp["body-has"]))
        if exp["then"] == "close":
            r = rd.response()
            check(r is None, "%s: an answer after the last one: %r" % (name, r))
            check(rd.eof, "%s: the connection is still open after 6 s" % name)
        else:
            s.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            r = rd.response()
            check(r is not None and r[0] == 200 and b"path=/next\n" in r[2],
                  "%s: the connection is out of step: GET /next got %r" % (name, r))
        return statuses
    finally:
        s.close()


@test
def malformed_corpus():
    cases = load_cases()
    check(len(cases) >= 40, "only %d corpus cases in %s" % (len(cases), CORPUS))
    with h.Supervisor([h.function("echo", limits=LIMITS)], name="hostile") as sv:
        pid = list(sv.workers("echo").values())[0]
        h.request(sv.port(), "/warm")
        fds = h.settled_fd_count(pid)
        failures = []
        for name, data, exp in cases:
            try:
                run_case(sv.port(), name, data, exp)
            except AssertionError as e:
                failures.append(str(e).splitlines()[0])
        check(not failures, "%d of %d cases failed:\n%s" % (
            len(failures), len(cases), "\n".join(failures)))
        check(not sv.events("worker_state", to="crashed"), "a worker crashed")
        check(h.alive(pid) and list(sv.workers("echo").values()) == [pid],
              "the echo worker changed: %r (was %d)" % (sv.workers("echo"), pid))
        h.wait_until(lambda: h.fd_count(pid) <= fds, 10,
                     "echo worker fds back to %d (now %d)" % (fds, h.fd_count(pid)))
        check(h.request(sv.port(), "/after").status == 200, "echo no longer answers")
        print("#   %d corpus cases, %d http_error lines" % (
            len(cases), len(sv.events("http_error"))))


# ---- slow clients -------------------------------------------------------------------

def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        want = min(n, hard) if hard != resource.RLIM_INFINITY else n
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, n), max(hard, n)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Prober(threading.Thread):
    """GET / on a fresh connection every 20 ms; keeps every latency in ms."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.lat = []
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        req = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                s.sendall(req)
                data = h.read_until_close(s)
                s.close()
                if not data.startswith(b"HTTP/1.1 200 "):
                    self.errors.append(data[:60])
                else:
                    self.lat.append((time.monotonic() - t0) * 1000)
            except OSError as e:
                self.errors.append(repr(e))
            self.stop.wait(0.02)

    def p(self, q):
        v = sorted(self.lat)
        return v[min(len(v) - 1, int(len(v) * q))] if v else float("inf")


def slowhttptest(mode, port, conns, seconds, prefix):
    # -i 1: a header line / body chunk each second, so a 2 s request timeout bites
    # well inside the run; -r: all connections open within the first seconds.
    cmd = ["slowhttptest", mode, "-c", str(conns), "-r", "500", "-i", "1", "-l",
           str(seconds), "-s", "65536", "-x", "10", "-p", "3", "-g", "-o", prefix,
           "-u", "http://127.0.0.1:%d/" % port]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def read_csv(path):
    """slowhttptest's -g statistics: one dict per second."""
    with open(path) as f:
        return [{k.strip().lower(): v.strip() for k, v in row.items() if k}
                for row in csv.DictReader(f)]


@test
def slow_clients():
    if shutil.which("slowhttptest") is None:
        check(False, "slowhttptest is not installed (scripts/deps.sh installs it)")
    conns, seconds = 1000, 20
    raise_nofile(3 * conns + 1000)
    # 5 s: long enough that all 2,000 slow connections are held at once for a while,
    # short enough that slowhttptest sees every one closed well before its -l.
    lim = {"request_timeout_ms": 5000, "idle_timeout_ms": 2000, "nofile": 4 * conns}
    fns = [h.function("target", library="hello", limits=lim),
           h.function("hello", limits={"nofile": 1024})]
    with h.Supervisor(fns, name="slow") as sv:
        tpid = list(sv.workers("target").values())[0]
        h.request(sv.port("target"), "/warm")
        fds = h.settled_fd_count(tpid)
        probes = [Prober(sv.port("hello")), Prober(sv.port("target"))]
        for p in probes:
            p.start()
        procs = []
        outs = {}
        try:
            time.sleep(1)       # a baseline before the attack
            for mode in ("-H", "-B"):
                procs.append((mode, slowhttptest(mode, sv.port("target"), conns, seconds,
                                                 os.path.join(sv.dir, "slow" + mode))))
            peak = 0
            deadline = time.monotonic() + seconds + 30
            while any(p.poll() is None for _, p in procs):
                check(time.monotonic() < deadline, "slowhttptest did not finish")
                peak = max(peak, h.fd_count(tpid))
                time.sleep(0.2)
            for mode, p in procs:
                outs[mode] = p.stdout.read().decode(errors="replace")
                p.stdout.close()
        finally:
            for _, p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, 9)
                    p.wait()
            for p in probes:
                p.stop.set()
            for p in probes:
                p.join(10)
        other, same = probes
        for mode, text in outs.items():
            rows = read_csv(os.path.join(sv.dir, "slow%s.csv" % mode))
            check(rows, "no statistics from slowhttptest %s:\n%s" % (mode, text[-2000:]))
            # Every connection was opened, and the server closed them all before the
            # test's time limit (slowhttptest stops when none is left open).
            check("No open connections left" in text,
                  "slowhttptest %s: the server did not close every slow connection"
                  "\n%s" % (mode, text[-1500:]))
            check(all(r.get("service available", "0") != "0" for r in rows),
                  "slowhttptest %s: its own probe found the service unavailable" % mode)
            print("#   slowhttptest %s: %s" % (mode, " ".join(
                ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).splitlines()
                if ln.strip().startswith(("Test ended", "Exit status")))))
        check(peak > fds + conns // 2, "the attack never reached the worker (peak %d fds)"
              % peak)
        h.wait_until(lambda: h.fd_count(tpid) <= fds + 2, 10,
                     "target worker fds back to %d (now %d)" % (fds, h.fd_count(tpid)))
        # Both attacks' connections reached the worker and met the request timeout.
        timeouts = len(sv.events("http_error", reason="request_timeout"))
        check(timeouts >= 2 * conns * 0.95, "only %d request_timeout closes logged for %d"
              " slow connections" % (timeouts, 2 * conns))
        for name, p in (("hello (other function)", other), ("target (attacked)", same)):
            print("#   %s: %d probes, p50 %.1f ms, p99 %.1f ms, max %.1f ms, errors %d"
                  % (name, len(p.lat), p.p(0.5), p.p(0.99), max(p.lat or [0]),
                     len(p.errors)))
            check(len(p.lat) >= 100, "%s: only %d probes answered" % (name, len(p.lat)))
            check(not p.errors, "%s: probe errors %r" % (name, p.errors[:5]))
            check(p.p(0.99) < 100, "%s: p99 %.1f ms during the attack" % (name, p.p(0.99)))
        check(not sv.events("worker_state", to="crashed"), "a worker crashed")
        check(list(sv.workers("target").values()) == [tpid], "the target worker was replaced")


if __name__ == "__main__":
    h.main()
