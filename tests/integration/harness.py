"""harness.py - what every integration test shares: start the real supervisor, read
its logfmt log, talk HTTP to it over loopback, inspect its processes, and report.

Python standard library only. A test file imports it, registers scenarios with
@test, and ends with main(). Each scenario prints `ok - NAME`, `not ok - NAME: why`
or, when it calls skip(why) because it cannot run here, `skip - NAME: why` (a skip
is never printed as a pass); main() exits 1 if any failed. A scenario that raises
SystemExit (or any other exception) fails; the scenarios after it still run. Every process a test starts runs in its own session,
so whatever is left of it (supervisor, workers) is killed at the end, even when the
test fails or the file is killed by tests/run.sh's timeout (SIGTERM).
"""

import atexit
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _build_dir():
    if len(sys.argv) > 1 and os.path.isdir(sys.argv[1]):
        return os.path.abspath(sys.argv.pop(1))
    return os.path.abspath(os.path.join(ROOT, os.environ.get("EDGEVISOR_BUILD", "build")))


BUILD = _build_dir()
EDGEVISOR = os.path.join(BUILD, "edgevisor")
WORKER = os.path.join(BUILD, "edgevisor-worker")


def _is_asan():
    try:
        with open(EDGEVISOR, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# An ASan+UBSan build (make asan-test): correct, but several times slower and bigger,
# so time and memory bounds meant for the real build are reported, not judged.
ASAN = _is_asan()


class Failure(AssertionError):
    pass


class Skip(Exception):
    """Raised by skip(): the running scenario cannot run here (not a pass)."""


def skip(why):
    """Ends the running scenario as `skip - NAME: WHY`: say what is missing here."""
    raise Skip(why)


def check(cond, msg):
    """Fails the current test with MSG unless COND holds."""
    if not cond:
        raise Failure(msg)


# ---- waiting -------------------------------------------------------------------

def wait_until(pred, timeout=10.0, what="condition", interval=0.02):
    """Polls PRED until it returns a true value (returned) or TIMEOUT seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Failure("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- config --------------------------------------------------------------------

def lib(name):
    """Path of a function .so: an example, or a test function."""
    for d in ("examples", "tests/functions"):
        p = os.path.join(BUILD, d, name + ".so")
        if os.path.exists(p):
            return p
    return os.path.join(BUILD, "examples", name + ".so")


_given_ports = set()


def free_port():
    """A loopback port that was free a moment ago (bind to 0, then close), never one
    this process was given before: the kernel may pick a closed port again, and two
    functions of one config given the same port made a scenario's config invalid
    (33 ports out of ~28,000 collide about once in 50 runs)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n, floor=10000):
    """N distinct loopback ports, each bindable a moment ago, taken from below the
    kernel's ephemeral range (ip_local_port_range) from a random start: a port the
    kernel hands out to client connections (free_port()'s kind) can be taken by one of
    them before the supervisor binds it, and with hundreds of functions it binds them
    only after seconds of start-up. Never one this process was given before (by
    either function): a second call's ports would otherwise collide with a first's
    that nothing has bound yet (a reload scenario's added function got the port of
    one of its 200 others, about once in 100 runs)."""
    top = _ephemeral_low()
    span = top - floor
    if span < 4 * n:
        raise Failure("no room for %d ports between %d and the ephemeral range at %d"
                      % (n, floor, top))
    start = random.randrange(span)
    ports = []
    for i in range(span):
        port = floor + (start + i) % span
        if port in _given_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            _given_ports.update(ports)
            return ports
    raise Failure("only %d free ports below %d" % (len(ports), top))


def function(name, library=None, workers=1, policy="per_worker", limits=None, port=None,
             **extra):
    """One functions[] entry listening on a fresh loopback port (fn["port"] is kept
    for the test and stripped before the config is written)."""
    port = port or free_port()
    fn = {"name": name, "library": lib(library or name),
          "listen": ["127.0.0.1:%d" % port], "policy": policy, "workers": workers}
    if limits:
        fn["limits"] = dict(limits)
    fn.update(extra)
    fn["port"] = port
    return fn


# ---- logfmt --------------------------------------------------------------------

_LOGFMT = re.compile(r'([A-Za-z_][\w.\-\[\]/]*)=("(?:[^"\\]|\\.)*"|\S*)')


_UNESCAPE = re.compile(r'\\(x[0-9a-f]{2}|.)')
_ESCAPES = {'n': b"\n", 'r': b"\r", 't': b"\t", '"': b'"', '\\': b"\\"}


def logfmt_unquote(v):
    """The value a quoted logfmt value stands for: exactly what common/log.c's
    log_quote() escapes (\\" \\\\ \\n \\r \\t \\xNN), the bytes read as UTF-8."""
    out, pos = bytearray(), 0
    for m in _UNESCAPE.finditer(v):
        out += v[pos:m.start()].encode()
        e = m.group(1)
        out += bytes([int(e[1:], 16)]) if len(e) == 3 else _ESCAPES.get(e, b"\\" + e.encode())
        pos = m.end()
    out += v[pos:].encode()
    return out.decode(errors="replace")


def parse_logfmt(line):
    """A logfmt line as a dict; quoted values are unescaped."""
    d = {}
    for k, v in _LOGFMT.findall(line):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = logfmt_unquote(v[1:-1])
        d[k] = v
    return d


def _match(rec, filters):
    for k, want in filters.items():
        got = rec.get(k)
        if callable(want):
            if got is None or not want(got):
                return False
        elif got != str(want):
            return False
    return True


# ---- processes ---------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid, pgrp, session) of PID, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2]), int(rest[3])


def _all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children(pid):
    """PIDs whose parent is PID (zombies included)."""
    out = []
    for p in _all_pids():
        st = proc_stat(p)
        if st and st[1] == pid:
            out.append(p)
    return out


def zombies(pid):
    """Children of PID that are zombies (exited, not reaped)."""
    return [c for c in children(pid) if (proc_stat(c) or ("?",))[0] == "Z"]


def session_pids(sid):
    """Live (non-zombie) processes of session SID."""
    out = []
    for p in _all_pids():
        st = proc_stat(p)
        if st and st[3] == sid and st[0] != "Z":
            out.append(p)
    return out


def kill_session(sid, pause=0.05):
    """SIGKILLs every live process of session SID (a few rounds: a dying parent can
    still fork)."""
    for _ in range(3):
        pids = session_pids(sid)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(pause)


def proc_status(pid):
    """/proc/PID/status as {field: [words]}."""
    st = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            st[k] = v.split()
    return st


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def settled_fd_count(pid, timeout=3.0):
    """PID's fd count once it reads the same twice 50 ms apart (closes have landed)."""
    last = [fd_count(pid)]

    def same():
        time.sleep(0.05)
        n = fd_count(pid)
        if n == last[0]:
            return True
        last[0] = n
        return False
    try:
        wait_until(same, timeout, "fd count of %d to settle" % pid, interval=0)
    except Failure:
        pass
    return last[0]


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


# ---- the supervisor ---------------------------------------------------------------

_live = []          # every Supervisor started and not yet cleaned up
_dirs = []          # their temp dirs, removed at the end of main()
_started = []       # every Supervisor started, for the logs of a failed test


def tmpdir(name="t"):
    """A fresh temp dir, removed when main() ends."""
    d = tempfile.mkdtemp(prefix="ev-%s-" % name)
    _dirs.append(d)
    return d


class Supervisor:
    """The real supervisor with its own temp dir, config and log file.

    Use as a context manager: it starts (and waits for ev=ready) on enter; on a clean
    exit it stops with SIGTERM and checks exit code 0; whatever happens, its session is
    killed at the end."""

    def __init__(self, functions, name="sv", raw_config=None, **top):
        self.dir = tmpdir(name)
        self.functions = functions
        self.ports = {f["name"]: f.get("port") for f in functions}
        self.conf_path = os.path.join(self.dir, "edgevisor.conf")
        self.log_path = os.path.join(self.dir, "edgevisor.log")
        if raw_config is not None:
            text = raw_config
        else:
            # The admin socket defaults to a system path: keep each test's in its dir.
            # ... and the dynamic-users record (a root supervisor gives functions
            # without "user" a recorded uid): a test passes its own to share one.
            conf = {"cgroups": "off", "log_level": "info",
                    "admin": "unix:" + os.path.join(self.dir, "admin.sock"),
                    "state_directory": os.path.join(self.dir, "state")}
            conf.update(top)
            if conf["admin"] is None:
                del conf["admin"]
            conf["functions"] = [{k: v for k, v in f.items() if k != "port"}
                                 for f in functions]
            text = json.dumps(conf, indent=2) + "\n"
        with open(self.conf_path, "w") as f:
            f.write(text)
        self.admin = top.get("admin", "unix:" + os.path.join(self.dir, "admin.sock"))
        self.proc = None
        self.pid = None
        self._log_off = 0
        self._log_part = b""
        self._records = []
        self._lines = []
        self.leftovers = []

    # -- life --

    def start(self, wait=True, args=(), timeout=20):
        check(os.access(EDGEVISOR, os.X_OK), "%s is not built" % EDGEVISOR)
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([EDGEVISOR, *args, "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, cwd=self.dir,
                                         start_new_session=True)
        finally:
            logf.close()
        self.pid = self.proc.pid
        _live.append(self)
        _started.append(self)
        if wait:
            self.wait_ready(timeout=timeout)
        return self

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, etype, evalue, tb):
        try:
            if etype is None and self.running():
                code = self.stop()
                check(code == 0, "supervisor exited %s after SIGTERM, not 0" % code)
        finally:
            self.cleanup()
        return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _check_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise Failure("supervisor exited early with %s; log tail:\n%s"
                          % (self.proc.returncode, self.tail(15)))

    def wait_ready(self, n=1, timeout=20):
        """Waits until the log holds N `ev=ready` lines (N-1 reloads after the start)."""
        def ready():
            self._check_running()
            return len(self.events("ready")) >= n
        wait_until(ready, timeout, "ev=ready #%d from the supervisor" % n)

    def send(self, sig):
        os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends SIG and waits for the exit; returns the exit code (negative for a
        signal). Fails (after killing the session) if it hangs past TIMEOUT. Any
        process of its session still alive after it exits is recorded in
        self.leftovers, then killed."""
        if not self.running():
            return self.proc.returncode
        os.kill(self.pid, sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.cleanup()
            raise Failure("supervisor still running %ds after signal %d" % (timeout, sig))
        # Workers die with the supervisor (PDEATHSIG) but may take a moment.
        try:
            wait_until(lambda: not session_pids(self.pid), 2.0, "session to empty")
        except Failure:
            pass
        self.leftovers = [(p, cmdline(p)) for p in session_pids(self.pid)]
        self._kill_session()
        return code

    def _kill_session(self):
        if self.pid is not None:
            kill_session(self.pid)

    def cleanup(self):
        """Kills the supervisor and every process of its session; idempotent."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except OSError:
                    pass
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            self._kill_session()
        if self in _live:
            _live.remove(self)

    # -- log --

    def _read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_off)
                data = f.read()
        except OSError:
            return
        if not data:
            return
        self._log_off += len(data)
        data = self._log_part + data
        lines = data.split(b"\n")
        self._log_part = lines.pop()
        for raw in lines:
            line = raw.decode(errors="replace")
            self._lines.append(line)
            self._records.append(parse_logfmt(line))

    def records(self):
        self._read_log()
        return self._records

    def lines(self):
        self._read_log()
        return self._lines

    def events(self, ev=None, **filters):
        """Log records with ev=EV whose fields equal FILTERS (or satisfy a callable)."""
        if ev is not None:
            filters["ev"] = ev
        return [r for r in self.records() if _match(r, filters)]

    def wait_event(self, ev, timeout=10, count=1, **filters):
        """Waits for COUNT matching records; returns the COUNT-th."""
        def found():
            got = self.events(ev, **filters)
            if len(got) >= count:
                return got[count - 1]
            self._check_running()
            return None
        desc = "ev=%s %s" % (ev, " ".join("%s=%s" % kv for kv in filters.items()))
        return wait_until(found, timeout, "log line " + desc.strip())

    def tail(self, n=30):
        return "\n".join(self.lines()[-n:])

    # -- workers --

    def workers(self, fn=None):
        """{wid: pid} of the workers whose last worker_state says ready."""
        last = {}
        for r in self.events("worker_state"):
            if fn is not None and r.get("fn") != fn:
                continue
            last[(r.get("fn"), r.get("wid"))] = r
        return {k[1] if fn else k: int(r["pid"]) for k, r in last.items()
                if r.get("to") == "ready" and r.get("pid", "").isdigit()}

    def worker_pids_seen(self):
        return {int(r["pid"]) for r in self.events("worker_state")
                if r.get("pid", "").isdigit() and int(r["pid"]) > 0}

    def rewrite_config(self, mutate):
        """Loads the config file, lets MUTATE change the dict, writes it back (a
        reload then picks it up)."""
        with open(self.conf_path) as f:
            conf = json.load(f)
        mutate(conf)
        with open(self.conf_path, "w") as f:
            json.dump(conf, f, indent=2)

    def port(self, fn=None):
        if fn is None:
            fn = self.functions[0]["name"]
        return self.ports[fn]


def check_config(path, timeout=10):
    """Runs `edgevisor -t -c PATH`; returns (exit code, stderr text)."""
    check(os.access(EDGEVISOR, os.X_OK), "%s is not built" % EDGEVISOR)
    p = subprocess.run([EDGEVISOR, "-t", "-c", path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace")


# ---- HTTP ------------------------------------------------------------------------

class Resp:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers      # lower-case name -> value (last one wins)
        self.body = body

    def __repr__(self):
        return "<Resp %d %r %r>" % (self.status, self.headers, self.body[:80])


def _resp(r, body):
    return Resp(r.status, r.reason, {k.lower(): v for k, v in r.getheaders()}, body)


def request(port, path="/", method="GET", headers=None, body=None, timeout=5,
            host="127.0.0.1"):
    """One request on a fresh http.client connection."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return _resp(r, r.read())
    finally:
        conn.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the admin endpoint's default)."""
    def __init__(self, path, timeout=5):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def admin_status(sv, timeout=10):
    """GET /status on SV's admin endpoint (unix:/path or host:port), as JSON."""
    addr = sv.admin
    if addr.startswith("unix:"):
        conn = UnixHTTPConnection(addr[5:], timeout=timeout)
    else:
        host, port = addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/status")
        r = conn.getresponse()
        body = r.read()
        check(r.status == 200, "GET /status answered %d: %r" % (r.status, body[:200]))
        return json.loads(body)
    finally:
        conn.close()


def get_ok(port, path="/", timeout=5):
    """True if a GET answers 200 (False on any error): for wait_until."""
    try:
        return request(port, path, timeout=timeout).status == 200
    except OSError:
        return False
    except http.client.HTTPException:
        return False


def connect(port, timeout=5, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class _KeepOpen:
    """F, except that close() does nothing: http.client closes its reader after
    each response, and pipelined responses must all come from the same buffer."""

    def __init__(self, f):
        self._f = f

    def __getattr__(self, name):
        return getattr(self._f, name)

    def close(self):
        pass


class _FileSock:
    """Lets http.client parse responses from one buffered reader, so several
    pipelined responses can be read from the same stream."""

    def __init__(self, f):
        self.f = _KeepOpen(f)

    def makefile(self, *a, **k):
        return self.f


def read_response(f, method="GET"):
    """Reads one response from the buffered reader F (from sock.makefile('rb'))."""
    r = http.client.HTTPResponse(_FileSock(f), method=method)
    r.begin()
    body = r.read()
    return _resp(r, body)


def read_status_line(f):
    """Reads one raw status line and its header block; returns (status, headers)."""
    line = f.readline(65537)
    check(line, "connection closed before a status line")
    parts = line.decode("latin-1").split(None, 2)
    check(len(parts) >= 2 and parts[0].startswith("HTTP/1."),
          "bad status line %r" % line)
    hdrs = {}
    while True:
        h = f.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(parts[1]), hdrs


def read_to_eof(s):
    """Everything socket S sends until it closes."""
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            return data
        data += d


def status_line(port, path="/", timeout=15, ip="127.0.0.1"):
    """One Connection: close GET on a fresh connection: its status line."""
    s = socket.create_connection((ip, port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path).encode())
        return read_to_eof(s).split(b"\r\n", 1)[0].decode(errors="replace")
    finally:
        s.close()


def raw_exchange(port, data, nresp=1, method="GET", timeout=5):
    """Sends DATA in one write on a fresh socket and reads NRESP responses."""
    s = connect(port, timeout)
    try:
        s.sendall(data)
        f = s.makefile("rb")
        return [read_response(f, method) for _ in range(nresp)]
    finally:
        s.close()


def read_until_close(sock, limit=1 << 20):
    """Everything the peer sends until it closes (or LIMIT bytes)."""
    out = b""
    while len(out) < limit:
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    return out


def parallel(n, fn):
    """Runs FN(i) for i in range(N) on N threads; returns results (exceptions kept)."""
    res = [None] * n

    def run(i):
        try:
            res[i] = fn(i)
        except Exception as e:      # reported by the caller
            res[i] = e

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return res


class Prober:
    """GETs PATH on PORT with a fresh connection every INTERVAL until stopped; keeps
    (time, ok, what) for every attempt in results and (time, seconds taken) in
    latencies. HEADERS go with every request (e.g. {"Connection": "close"})."""

    def __init__(self, port, path="/", interval=0.02, timeout=5, headers=None):
        self.port, self.path, self.interval, self.timeout = port, path, interval, timeout
        self.headers = headers
        self.results = []
        self.latencies = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                r = request(self.port, self.path, headers=self.headers, timeout=self.timeout)
                self.results.append((t, r.status == 200, "status %d" % r.status))
            except (OSError, http.client.HTTPException) as e:
                self.results.append((t, False, "%s: %s" % (type(e).__name__, e)))
            self.latencies.append((t, time.monotonic() - t))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(15)
        return False

    def _refresh(self):
        pass

    def failures(self, since=0.0):
        self._refresh()
        return [(t, w) for t, ok, w in self.results if not ok and t >= since]

    def ok(self, since=0.0):
        self._refresh()
        return sum(1 for t, ok, _ in self.results if ok and t >= since)

    def during(self, since=0.0, until=float("inf")):
        """(start time, seconds taken, ok, what) of every finished attempt that was
        under way at some moment of [SINCE, UNTIL] (one started before SINCE and still
        waiting at SINCE counts)."""
        self._refresh()
        n = min(len(self.results), len(self.latencies))
        return [(t, d, ok, w) for (t, ok, w), (_, d) in zip(self.results[:n], self.latencies[:n])
                if t <= until and t + d >= since]

    def slowest(self, since=0.0, until=float("inf")):
        """(seconds, start time) of the slowest attempt under way in [SINCE, UNTIL], or
        (0.0, None) if there was none."""
        got = [(d, t) for t, d, _, _ in self.during(since, until)]
        return max(got) if got else (0.0, None)

    def count(self, since=0.0, until=float("inf")):
        """Finished attempts that started in [SINCE, UNTIL]."""
        self._refresh()
        return sum(1 for t, _ in list(self.latencies) if since <= t <= until)

    def check(self, what, min_ok=10):
        """Fails if any probe failed or fewer than MIN_OK answered."""
        bad = self.failures()
        check(not bad, "%s: %d failed requests: %r" % (what, len(bad), [w for _, w in bad][:3]))
        check(self.ok() >= min_ok, "%s: only %d answers" % (what, self.ok()))


_PROBE_CHILD = r"""
import http.client, json, os, sys, time
port, path, interval, timeout = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
headers, parent = json.loads(sys.argv[5]), os.getppid()
out = open(sys.argv[6], "w", buffering=1)
while os.getppid() == parent:          # the test is gone: so is its probe
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            r.read()
            ok, what = r.status == 200, "status %d" % r.status
        finally:
            c.close()
    except (OSError, http.client.HTTPException) as e:
        ok, what = False, "%s: %s" % (type(e).__name__, e)
    out.write(json.dumps([t, time.monotonic() - t, ok, what]) + "\n")
    time.sleep(interval)
"""


class ProbeProcess(Prober):
    """A Prober that runs in a process of its own, so that what the test does meanwhile
    (parsing a large /status, say) cannot hold the probe up on the interpreter lock
    and show as latency. Same methods; times are CLOCK_MONOTONIC, as in the test."""

    def __init__(self, port, path="/", interval=0.02, timeout=5, headers=None, nice=0):
        super().__init__(port, path, interval, timeout, headers)
        self.nice = nice
        self._path = os.path.join(tmpdir("probe"), "probe.jsonl")
        self._off = 0
        self._proc = None

    def _refresh(self):
        try:
            with open(self._path, "rb") as f:
                f.seek(self._off)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self._off += end
        for line in data[:end].splitlines():
            t, d, ok, what = json.loads(line)
            self.results.append((t, ok, what))
            self.latencies.append((t, d))

    def __enter__(self):
        open(self._path, "w").close()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROBE_CHILD, str(self.port), self.path,
             str(self.interval), str(self.timeout), json.dumps(self.headers or {}),
             self._path], stdin=subprocess.DEVNULL,
            preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None)
        return self

    def __exit__(self, *exc):
        self._proc.terminate()
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._refresh()
        return False


# ---- wrk -----------------------------------------------------------------------

def parse_wrk(text):
    """wrk's report as a dict: requests, rps, socket_errors (dict or {}), non2xx."""
    out = {"requests": 0, "rps": 0.0, "socket_errors": {}, "non2xx": 0, "text": text}
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                        map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    return out


def wrk_cmd(port, threads=2, conns=64, duration=5, path="/", headers=()):
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration]
    for h in headers:
        cmd += ["-H", h]
    return cmd + ["http://127.0.0.1:%d%s" % (port, path)]


def wrk(port, **kw):
    """Runs wrk to completion; returns parse_wrk() of its output."""
    cmd = wrk_cmd(port, **kw)
    p = subprocess.run(cmd, capture_output=True, timeout=kw.get("duration", 5) + 30)
    text = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    check(p.returncode == 0, "wrk exited %d: %s" % (p.returncode, text))
    return parse_wrk(text)


# ---- registry and runner ----------------------------------------------------------

_tests = []


def test(fn):
    """Registers FN as a scenario; its name is the function's name. Only the file
    being run registers: another test file imported for its helpers adds none."""
    if fn.__module__ == "__main__":
        _tests.append(fn)
    return fn


_cleanups = []      # at_cleanup() callables (e.g. a test's PostgreSQL server)


def at_cleanup(fn):
    """Runs FN (once) when the running scenario ends, however it ends, also when the
    file is killed: for servers a test starts besides the supervisor."""
    _cleanups.append(fn)


def _cleanup_all():
    for sv in list(_live):
        sv.cleanup()
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception:
            pass


def _on_term(signum, frame):
    # tests/run.sh's timeout sends SIGTERM: unwind so everything is cleaned up.
    _cleanup_all()
    print("not ok - killed by signal %d" % signum, flush=True)
    os._exit(1)


def main():
    """Runs the registered scenarios (or those named in argv) and exits 1 on failure."""
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    atexit.register(_cleanup_all)
    names = sys.argv[1:]
    failed = 0
    skipped = 0
    for name in names:
        if name not in [fn.__name__ for fn in _tests]:
            failed += 1
            print("not ok - %s: no such scenario in %s" % (name, os.path.basename(sys.argv[0])),
                  flush=True)
    for fn in _tests:
        if names and fn.__name__ not in names:
            continue
        started = len(_started)
        t0 = time.monotonic()
        try:
            try:
                fn()
            except SystemExit as e:
                # sys.exit() inside a scenario must not end the file and drop the
                # scenarios after it: it is this scenario's failure.
                raise Failure("the scenario raised SystemExit(%r)" % (e.code,)) from e
            print("ok - %s" % fn.__name__, flush=True)
            dirs = []
        except Skip as e:
            skipped += 1
            print("skip - %s: %s" % (fn.__name__, e), flush=True)
        except Exception as e:
            failed += 1
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            if not isinstance(e, AssertionError):
                why = "%s: %s" % (type(e).__name__, why)
            print("not ok - %s: %s" % (fn.__name__, why), flush=True)
            for line in str(e).splitlines()[1:]:
                print("#   " + line)
            tb = traceback.extract_tb(e.__traceback__)
            for fr in tb[-4:]:
                print("#   at %s:%d in %s: %s" % (os.path.basename(fr.filename),
                                              fr.lineno, fr.name, fr.line))
            for sv in _started[started:]:
                print("#   --- log of the supervisor started in %s (%s):" % (fn.__name__, sv.dir))
                for line in sv.tail(25).splitlines():
                    print("#   " + line)
            sys.stdout.flush()
        print("#   %s took %.1fs" % (fn.__name__, time.monotonic() - t0), flush=True)
        _cleanup_all()
    # Temp dirs go unless asked to keep them (EDGEVISOR_KEEP_TMP=1) for a post-mortem.
    if not os.environ.get("EDGEVISOR_KEEP_TMP"):
        for d in _dirs:
            shutil.rmtree(d, ignore_errors=True)
    sys.exit(1 if failed else 0)
