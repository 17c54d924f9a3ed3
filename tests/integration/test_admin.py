"""test_admin.py - operating edgevisor (SPEC §6): the admin endpoint's /status and
/metrics agree with the traffic the test sent and with each other, edgevisorctl
status/reload/drain/stop do what they say, the admin socket is 0600, and systemd
hears READY / RELOADING / STOPPING on its notify socket."""

import http.client
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import time

import harness as h
from harness import check, test

CTL = os.path.join(h.BUILD, "edgevisorctl")


# ---- talking to the admin endpoint ---------------------------------------------

def admin_request(addr, path, method="GET"):
    """(status, content-type, body text) of one request to ADDR (unix:/p or host:port)."""
    if addr.startswith("unix:"):
        conn = h.UnixHTTPConnection(addr[5:])
    else:
        host, port = addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read().decode()
    finally:
        conn.close()


def status(sv):
    code, ctype, body = admin_request(sv.admin, "/status")
    check(code == 200, "GET /status: %d %s" % (code, body))
    check(ctype.startswith("application/json"), "/status Content-Type %r" % ctype)
    return json.loads(body)


def fn_status(st, name):
    for f in st["functions"]:
        if f["name"] == name:
            return f
    raise h.Failure("function %s not in /status: %r" % (name, [f["name"] for f in st["functions"]]))


def ctl(*args, env=None, timeout=20):
    """Runs edgevisorctl; returns (exit code, stdout, stderr)."""
    check(os.access(CTL, os.X_OK), "%s is not built" % CTL)
    e = dict(os.environ)
    e.pop("EDGEVISOR_ADMIN", None)
    e.update(env or {})
    p = subprocess.run([CTL, *args], capture_output=True, timeout=timeout, env=e,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


# ---- a strict Prometheus text (0.0.4) reader -------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?,?\})? (\S+)(?: (-?\d+))?$" % (_NAME, _LABEL, _LABEL))
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_prometheus(text):
    """{name: {"type": t, "samples": {frozenset(labels): value}}}; fails on anything
    the exposition format does not allow: a sample before its TYPE, a family split
    in two, a bad name, label or value, a duplicate sample, a counter not ending in
    _total."""
    check(text.endswith("\n"), "metrics text does not end with a newline")
    fams = {}
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r" % (n, line)
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                check(len(parts) >= 3 and re.fullmatch(_NAME, parts[2]), "bad comment: " + where)
                name = parts[2]
                if parts[1] == "TYPE":
                    check(len(parts) == 4 and parts[3] in _TYPES, "bad TYPE: " + where)
                    check(name not in fams, "second TYPE (or TYPE after samples) for %s: %s"
                          % (name, where))
                    fams[name] = {"type": parts[3], "samples": {}}
                    current = name
                    if parts[3] == "counter":
                        check(name.endswith("_total"), "counter %s does not end in _total" % name)
                else:
                    check(name not in fams or current == name, "HELP for %s away from its family"
                          % name)
            continue
        m = _SAMPLE.match(line)
        check(m, "not a sample line: " + where)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        # A histogram's samples are its name with _bucket (le label), _sum, _count.
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base != name and base in fams and fams[base]["type"] == "histogram":
            check(name.endswith("_bucket") == ('le="' in labels),
                  "histogram sample with/without le: " + where)
            name = base
            labels = labels + ("," if labels else "") + 'series="%s"' % m.group(1)
        check(name in fams, "sample before its TYPE line: " + where)
        check(name == current, "family %s split (sample after another family): %s"
              % (name, where))
        try:
            v = float(value)
        except ValueError:
            raise h.Failure("value is not a float: " + where)
        key = frozenset(_LABEL_RE.findall(labels))
        check(len(key) == len(_LABEL_RE.findall(labels)), "repeated label: " + where)
        check(key not in fams[name]["samples"], "duplicate sample: " + where)
        if fams[name]["type"] == "counter":
            check(v >= 0, "negative counter: " + where)
        fams[name]["samples"][key] = v
    return fams


def sample(fams, name, **labels):
    check(name in fams, "metric %s missing" % name)
    key = frozenset((k, str(v)) for k, v in labels.items())
    check(key in fams[name]["samples"], "no sample %s%r; have %r"
          % (name, labels, list(fams[name]["samples"])[:6]))
    return fams[name]["samples"][key]


def metrics(sv):
    code, ctype, body = admin_request(sv.admin, "/metrics")
    check(code == 200, "GET /metrics: %d" % code)
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          "/metrics Content-Type %r" % ctype)
    return parse_prometheus(body)


# ---- helpers -----------------------------------------------------------------------

def fn_logs(sv, needle):
    """function_log lines (the function's edge_log) containing NEEDLE."""
    return [r for r in sv.events("function_log") if needle in r.get("msg", "")]


def ready_pids(sv, fn, n):
    return h.wait_until(lambda: len(sv.workers(fn)) >= n and sv.workers(fn), 15,
                        "%d ready workers of %s" % (n, fn))


def totals_settle(sv, fn, pred, what, timeout=15):
    """Polls /status until PRED(totals of FN) holds; returns the totals."""
    last = [None]

    def ok():
        last[0] = fn_status(status(sv), fn)["totals"]
        return pred(last[0])
    try:
        h.wait_until(ok, timeout, what, interval=0.05)
    except h.Failure as e:
        raise h.Failure("%s; last totals %r" % (e, last[0]))
    return last[0]


def drained_then_exited(sv, pid):
    """Waits for PID's worker_state to=drained and then to=exited in the log."""
    d = sv.wait_event("worker_state", pid=pid, to="drained", timeout=20)
    e = sv.wait_event("worker_state", pid=pid, to="exited", timeout=20)
    recs = sv.events("worker_state", pid=pid)
    check(recs.index(d) < recs.index(e), "worker %d exited before it drained" % pid)


# ---- scenarios -----------------------------------------------------------------------

@test
def status_counts_match_traffic():
    fns = [h.function("hello", workers=2), h.function("bg", library="background", workers=1)]
    t_start = time.monotonic()      # the supervisor starts after this...
    with h.Supervisor(fns, name="adm-status") as sv:
        t_ready = time.monotonic()  # ...and before this

        def uptime_in_bounds(s, t_before, t_after):
            # Its own age: at least since we saw it ready, at most since we started it.
            lo, hi = (t_before - t_ready) * 1000 - 2, (t_after - t_start) * 1000 + 2
            check(lo <= s["uptime_ms"] <= hi, "uptime_ms %r, want %.0f..%.0f"
                  % (s["uptime_ms"], lo, hi))
        ready_pids(sv, "hello", 2)
        ready_pids(sv, "bg", 1)
        t0 = time.monotonic()
        st = status(sv)
        s = st["supervisor"]
        uptime_in_bounds(s, t0, time.monotonic())
        check(s["pid"] == sv.pid, "supervisor.pid %r, want %d" % (s["pid"], sv.pid))
        check(s["generation"] == 1, "generation %r" % s["generation"])
        check(s["config"] == sv.conf_path, "supervisor %r" % s)
        check(s["cgroups"] in ("off", "v1", "v2"), "cgroups %r" % s["cgroups"])
        hello = fn_status(st, "hello")
        check(hello["policy"] == "per_worker" and hello["workers"] == 2, "hello %r" % hello)
        check(hello["totals"]["requests"] == 0, "requests before any traffic: %r" % hello["totals"])

        n = 37
        for i in range(n):
            check(h.request(sv.port("hello"), "/s/%d" % i).status == 200, "request %d" % i)
        totals_settle(sv, "hello", lambda t: t["requests"] == n, "hello requests == %d" % n)

        bg0 = fn_status(status(sv), "bg")["totals"]     # init's warm_cache counts too
        m = 12
        t_first = time.monotonic()      # the oldest task starts after this
        for i in range(m):
            r = h.request(sv.port("bg"), "/?ms=%d" % (1200 + 20 * i))
            check(r.status == 200, "background request %d: %r" % (i, r))
        st = status(sv)
        bg = fn_status(st, "bg")["totals"]
        check(bg["tasks_started"] - bg0["tasks_started"] >= m,
              "tasks_started %d -> %d after %d requests" % (bg0["tasks_started"], bg["tasks_started"], m))
        check(bg["tasks_pending"] >= 1, "no task pending right after the requests: %r" % bg)
        [w] = [w for w in st["workers"] if w["function"] == "bg"]
        old = w["tasks"]["oldest_pending"]
        check(old is not None and old["name"] == "sleep_then_log",
              "oldest_pending %r" % old)
        check(w["tasks"]["pending"] >= 1, "worker tasks %r" % w["tasks"])

        def oldest_age():
            # The first task (1,200 ms) stays the oldest pending one: its age grows
            # with the clock and never exceeds the time since its request was sent.
            t_hi = time.monotonic()
            [w] = [w for w in status(sv)["workers"] if w["function"] == "bg"]
            o = w["tasks"]["oldest_pending"]
            hi = (time.monotonic() - t_first) * 1000 + 2
            check(o is not None and 0 <= o["age_ms"] <= hi, "oldest_pending %r, age at "
                  "most %.0f ms" % (o, hi))
            return o["age_ms"] >= 300 and (t_hi - t_first) < 1.1 and o["age_ms"]
        h.wait_until(oldest_age, 1.0, "the oldest pending task's age_ms to reach 300")
        bg = totals_settle(sv, "bg", lambda t: t["tasks_pending"] == 0 and
                           t["tasks_completed"] - bg0["tasks_completed"] == m,
                           "all %d background tasks completed" % m)
        check(bg["tasks_started"] - bg0["tasks_started"] == m, "started %r" % bg)
        check(bg["tasks_lost"] == 0 and bg["tasks_failed"] == 0, "lost/failed %r" % bg)

        st = status(sv)
        pids = {w["pid"] for w in st["workers"]}
        want = set(sv.workers("hello").values()) | set(sv.workers("bg").values())
        check(pids == want, "/status worker pids %r, the log says %r" % (pids, want))
        for w in st["workers"]:
            check(w["state"] == "ready" and w["generation"] == 1, "worker %r" % w)
            check(w["memory_current"] > 0, "worker memory %r" % w)
            check(w["connections"] == 0, "idle worker with connections: %r" % w)
            check(w["tasks"]["oldest_pending"] is None, "idle worker with a pending task %r" % w)
        check(sum(w["requests"] for w in st["workers"] if w["function"] == "hello") == n,
              "per-worker requests do not add up to %d" % n)
        # More than 1.2 s later (the tasks ran): uptime has followed the clock.
        t0 = time.monotonic()
        uptime_in_bounds(status(sv)["supervisor"], t0, time.monotonic())
        check(t0 - t_ready > 1.2, "the test took only %.2f s" % (t0 - t_ready))


@test
def metrics_parse_and_agree_with_status():
    fns = [h.function("hello", workers=2), h.function("bg", library="background", workers=1)]
    with h.Supervisor(fns, name="adm-metrics") as sv:
        ready_pids(sv, "hello", 2)
        ready_pids(sv, "bg", 1)
        for i in range(9):
            h.request(sv.port("hello"), "/m/%d" % i)
        for i in range(4):
            h.request(sv.port("bg"), "/?ms=10")
        h.request(sv.port("bg"), "/fail")
        totals_settle(sv, "hello", lambda t: t["requests"] == 9, "9 hello requests")
        totals_settle(sv, "bg", lambda t: t["tasks_pending"] == 0 and t["tasks_failed"] == 1,
                      "bg tasks done")
        st = status(sv)
        fams = metrics(sv)
        for name in ("edgevisor_requests_total", "edgevisor_tasks_started_total",
                     "edgevisor_tasks_completed_total", "edgevisor_tasks_failed_total",
                     "edgevisor_tasks_lost_total", "edgevisor_tasks_pending", "edgevisor_workers",
                     "edgevisor_worker_memory_bytes", "edgevisor_worker_cpu_seconds_total",
                     "edgevisor_worker_connections", "edgevisor_uptime_seconds",
                     "edgevisor_generation"):
            check(name in fams, "metric %s missing" % name)
        check(sample(fams, "edgevisor_generation") == 1, "generation")
        check(sample(fams, "edgevisor_uptime_seconds") > 0, "uptime")
        for f in st["functions"]:
            t, fn = f["totals"], f["name"]
            for metric, key in (("edgevisor_requests_total", "requests"),
                                ("edgevisor_tasks_started_total", "tasks_started"),
                                ("edgevisor_tasks_completed_total", "tasks_completed"),
                                ("edgevisor_tasks_failed_total", "tasks_failed"),
                                ("edgevisor_tasks_lost_total", "tasks_lost"),
                                ("edgevisor_tasks_pending", "tasks_pending")):
                got = sample(fams, metric, function=fn)
                check(got == t[key], "%s{function=%s} = %r, /status says %s=%r"
                      % (metric, fn, got, key, t[key]))
            check(sample(fams, "edgevisor_workers", function=fn, state="ready") == f["workers"],
                  "ready workers of %s" % fn)
        check(sample(fams, "edgevisor_requests_total", function="hello") == 9, "hello requests")
        check(sample(fams, "edgevisor_tasks_failed_total", function="bg") == 1, "bg failed task")
        for w in st["workers"]:
            mem = sample(fams, "edgevisor_worker_memory_bytes", function=w["function"],
                         worker=w["id"])
            check(mem > 0, "memory of worker %r" % w)
            sample(fams, "edgevisor_worker_cpu_seconds_total", function=w["function"],
                   worker=w["id"])
        check(len(fams["edgevisor_worker_memory_bytes"]["samples"]) == len(st["workers"]),
              "one memory sample per worker")
        # The checker itself must be able to fail.
        for bad in ("x_total 1\n", "# TYPE a counter\n", "# TYPE a_total counter\na_total{l=\"1\"} z\n",
                    "# TYPE g gauge\ng 1\n# TYPE h gauge\nh 1\ng 2\n", "# TYPE 1x gauge\n1x 1\n"):
            try:
                parse_prometheus(bad)
            except h.Failure:
                continue
            raise h.Failure("the Prometheus checker accepted %r" % bad)


@test
def admin_errors_and_methods():
    with h.Supervisor([h.function("hello", workers=1)], name="adm-err") as sv:
        ready_pids(sv, "hello", 1)
        code, _, body = admin_request(sv.admin, "/nope")
        check(code == 404 and "error" in json.loads(body), "GET /nope: %d %s" % (code, body))
        code, _, _ = admin_request(sv.admin, "/reload", "GET")
        check(code == 405, "GET /reload: %d, want 405" % code)
        code, _, _ = admin_request(sv.admin, "/status", "POST")
        check(code == 405, "POST /status: %d, want 405" % code)
        code, _, body = admin_request(sv.admin, "/drain/nosuch", "POST")
        check(code == 404, "POST /drain/nosuch: %d %s" % (code, body))
        rc, out, err = ctl("-s", sv.admin, "drain", "nosuch")
        check(rc == 1 and "no such function" in err, "ctl drain nosuch: %d %r %r" % (rc, out, err))
        # A reload with a broken file fails loudly and changes nothing.
        with open(sv.conf_path) as f:
            good = f.read()
        with open(sv.conf_path, "w") as f:
            f.write(good.replace('"workers": 1', '"workers": "many"'))
        pids = set(sv.workers("hello").values())
        rc, out, err = ctl("-s", sv.admin, "reload")
        check(rc == 1 and "invalid" in err, "reload of a broken file: %d %r %r" % (rc, out, err))
        sv.wait_event("reload_failed")
        st = status(sv)
        check(st["supervisor"]["generation"] == 1, "generation after a failed reload")
        check({w["pid"] for w in st["workers"]} == pids, "workers changed on a failed reload")
        check(h.request(sv.port("hello")).status == 200, "hello after the admin errors")


@test
def ctl_status_prints_every_worker():
    fns = [h.function("hello", workers=2), h.function("bg", library="background", workers=2)]
    with h.Supervisor(fns, name="adm-ctl") as sv:
        pids = set(ready_pids(sv, "hello", 2).values()) | set(ready_pids(sv, "bg", 2).values())
        for i in range(5):
            h.request(sv.port("hello"), "/c/%d" % i)
        totals_settle(sv, "hello", lambda t: t["requests"] == 5, "5 hello requests")
        rc, out, err = ctl("-s", sv.admin, "status")
        check(rc == 0, "edgevisorctl status exited %d: %s" % (rc, err))
        for p in pids:
            check(re.search(r"\b%d\b" % p, out), "worker pid %d not in:\n%s" % (p, out))
        check(re.search(r"(?m)^hello\s+per_worker\s+2/2\s+5\s", out),
              "no hello totals line with 5 requests:\n%s" % out)
        check("LOST" in out, "no LOST column:\n%s" % out)
        # The address from the environment, from a config file, and --json.
        rc, out2, err = ctl("status", "--json", env={"EDGEVISOR_ADMIN": sv.admin})
        check(rc == 0, "status --json via EDGEVISOR_ADMIN: %d %s" % (rc, err))
        doc = json.loads(out2)
        check({w["pid"] for w in doc["workers"]} == pids, "--json pids %r" % doc["workers"])
        rc, out3, err = ctl("-c", sv.conf_path, "status")
        check(rc == 0 and str(sv.pid) in out3, "status via -c CONFIG: %d %s" % (rc, err))
        # Nobody there: a clear message and exit 1.
        gone = os.path.join(h.tmpdir("adm-none"), "admin.sock")
        rc, out, err = ctl("-s", "unix:" + gone, "status")
        check(rc == 1 and ("cannot connect to unix:%s: No such file or directory" % gone) in err,
              "no supervisor: %d %r" % (rc, err))
        rc, _, err = ctl("-s", sv.admin, "frobnicate")
        check(rc == 2 and "usage" in err, "unknown command: %d %r" % (rc, err))


@test
def ctl_reload_starts_generation_2_and_drains_1():
    fns = [h.function("hello", workers=2), h.function("bg", library="background", workers=1)]
    with h.Supervisor(fns, name="adm-reload") as sv:
        old = set(ready_pids(sv, "hello", 2).values()) | set(ready_pids(sv, "bg", 1).values())
        h.request(sv.port("bg"), "/?ms=800")      # the old bg worker drains this task
        # A reload replaces only what changed: change both functions.
        sv.rewrite_config(lambda c: [f.setdefault("limits", {}).update(request_timeout_ms=29000)
                                     for f in c["functions"]])
        rc, out, err = ctl("-s", sv.admin, "reload")
        check(rc == 0 and "generation 2" in out, "ctl reload: %d %r %r" % (rc, out, err))
        sv.wait_ready(2)
        for p in old:
            drained_then_exited(sv, p)
        st = status(sv)
        check(st["supervisor"]["generation"] == 2, "generation %r" % st["supervisor"])
        new = {w["pid"] for w in st["workers"]}
        check(len(new) == 3 and not (new & old), "workers after reload %r (old %r)" % (new, old))
        check(all(w["generation"] == 2 and w["state"] == "ready" for w in st["workers"]),
              "workers %r" % st["workers"])
        for p in old:
            check(not h.alive(p), "old worker %d still alive" % p)
        bg = fn_status(st, "bg")["totals"]
        check(bg["tasks_lost"] == 0 and bg["tasks_pending"] == 0, "bg totals %r" % bg)
        check(h.request(sv.port("hello")).status == 200, "hello after reload")


@test
def ctl_drain_replaces_one_function():
    fns = [h.function("hello", workers=2), h.function("echo", workers=1)]
    with h.Supervisor(fns, name="adm-drain") as sv:
        old_hello = set(ready_pids(sv, "hello", 2).values())
        echo = set(ready_pids(sv, "echo", 1).values())
        rc, out, err = ctl("-s", sv.admin, "drain", "hello")
        check(rc == 0 and "draining" in out, "ctl drain hello: %d %r %r" % (rc, out, err))
        for p in old_hello:
            drained_then_exited(sv, p)

        def replaced():
            st = status(sv)
            hp = {w["pid"] for w in st["workers"] if w["function"] == "hello" and w["state"] == "ready"}
            return len(hp) == 2 and not (hp & old_hello) and st
        st = h.wait_until(replaced, 15, "two new hello workers")
        ep = {w["pid"] for w in st["workers"] if w["function"] == "echo"}
        check(ep == echo, "echo's workers changed on a hello drain: %r -> %r" % (echo, ep))
        check(st["supervisor"]["generation"] == 1, "drain bumped the generation")
        check(fn_status(st, "hello")["totals"]["unloads"]["early_drop"] == 2,
              "unloads %r" % fn_status(st, "hello")["totals"])
        check(h.request(sv.port("hello")).status == 200, "hello after drain")


@test
def admin_socket_is_0600_and_replaces_a_stale_one():
    d = h.tmpdir("adm-sock")
    path = os.path.join(d, "new", "dir", "admin.sock")    # parents do not exist yet
    sv = h.Supervisor([h.function("hello", workers=1)], name="adm-mode", admin="unix:" + path)
    with sv:
        st = os.stat(path)
        check(stat.S_ISSOCK(st.st_mode), "%s is not a socket" % path)
        check(stat.S_IMODE(st.st_mode) == 0o600, "admin socket mode %o, want 600"
              % stat.S_IMODE(st.st_mode))
        check(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o755, "parent dir mode")
        # A second supervisor on a live socket refuses rather than steal it.
        sv2 = h.Supervisor([h.function("hello", workers=1)], name="adm-mode2",
                           admin="unix:" + path)
        sv2.start(wait=False)
        code = sv2.proc.wait(15)
        sv2.cleanup()
        check(code == 1 and sv2.events("admin_failed"), "second supervisor on a live socket: "
              "exit %r\n%s" % (code, sv2.tail(5)))
        check(status(sv)["supervisor"]["pid"] == sv.pid, "the first one lost its socket")
    check(not os.path.exists(path), "admin socket left behind after a clean stop")

    # A stale socket (nobody listening) is replaced.
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    with h.Supervisor([h.function("hello", workers=1)], name="adm-stale", admin="unix:" + path) as sv:
        check(status(sv)["supervisor"]["pid"] == sv.pid, "no /status over the replaced socket")
    # A regular file in the way is a clear error.
    with open(path, "w") as f:
        f.write("not a socket\n")
    sv = h.Supervisor([h.function("hello", workers=1)], name="adm-file", admin="unix:" + path)
    try:
        sv.start(wait=False)
        code = sv.proc.wait(15)
        check(code == 1, "exit %r with a file in the admin path" % code)
        ev = sv.wait_event("admin_failed")
        check("not a socket" in ev.get("msg", ""), "admin_failed says %r" % ev)
    finally:
        sv.cleanup()


def tcp_get(addr, path, method="GET", token=None):
    """One request to the TCP address ADDR; returns harness.Resp."""
    host, port = addr.rsplit(":", 1)
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    return h.request(int(port), path, method=method, headers=headers, host=host)


def write_token(d, token, mode=0o600, name="admin.token"):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, mode)
    return path


PRIVATE = (("GET", "/status"), ("POST", "/reload"), ("POST", "/stop"), ("POST", "/drain/hello"),
           ("GET", "/nope"))


@test
def tcp_admin_without_token_serves_only_metrics_and_health():
    addr = "127.0.0.1:%d" % h.free_port()
    with h.Supervisor([h.function("hello", workers=1)], name="adm-tcp", admin=addr) as sv:
        pids = set(ready_pids(sv, "hello", 1).values())
        for method, path in PRIVATE:
            r = tcp_get(addr, path, method)
            check(r.status == 403 and "unix socket" in json.loads(r.body)["error"],
                  "%s %s over TCP without a token: %r" % (method, path, r))
        r = tcp_get(addr, "/metrics")
        check(r.status == 200, "GET /metrics over TCP: %r" % r)
        parse_prometheus(r.body.decode())
        r = tcp_get(addr, "/health")
        check(r.status == 200 and json.loads(r.body)["status"] == "serving", "GET /health: %r" % r)
        check(sv.running() and set(sv.workers("hello").values()) == pids and
              not sv.events("stop") and not sv.events("reload"),
              "a refused request changed something:\n%s" % sv.tail(10))
        check(sv.events("admin_denied", why="tcp_without_token"), "no admin_denied line")
        rc, out, err = ctl("-s", addr, "status")
        check(rc == 1 and "HTTP 403" in err and "unix socket" in err,
              "ctl status over TCP without a token: %d %r" % (rc, err))
        rc, out, err = ctl("-s", addr, "metrics")
        check(rc == 0 and "edgevisor_requests_total" in out, "ctl metrics over TCP: %d %r" % (rc, err))
    # The admin itself stays on loopback: a non-loopback address is refused.
    sv = h.Supervisor([h.function("hello", workers=1)], name="adm-tcp-any",
                      admin="0.0.0.0:%d" % h.free_port())
    try:
        sv.start(wait=False)
        code = sv.proc.wait(15)
        check(code == 1 and sv.events("admin_failed"), "0.0.0.0 admin: exit %r" % code)
    finally:
        sv.cleanup()


@test
def tcp_admin_with_bearer_token():
    d = h.tmpdir("adm-tok")
    token = "t0ken-" + os.urandom(12).hex()
    tf = write_token(d, token)
    addr = "127.0.0.1:%d" % h.free_port()
    with h.Supervisor([h.function("hello", workers=1)], name="adm-tok", admin=addr,
                      admin_token_file=tf) as sv:
        ready_pids(sv, "hello", 1)
        for method, path in PRIVATE:
            r = tcp_get(addr, path, method)
            check(r.status == 401 and r.headers.get("www-authenticate", "").startswith("Bearer "),
                  "%s %s without a token: %r" % (method, path, r))
            r = tcp_get(addr, path, method, token=token[:-1] + ("x" if token[-1] != "x" else "y"))
            check(r.status == 401 and 'error="invalid_token"' in r.headers.get("www-authenticate", ""),
                  "%s %s with a wrong token: %r" % (method, path, r))
        for bad in (token + "x", token[:-1], token.upper(), "", "Basic " + token):
            r = tcp_get(addr, "/status", token=bad)
            check(r.status == 401, "token %r accepted: %r" % (bad, r))
        check(sv.running() and not sv.events("stop"), "a refused request stopped it")
        r = tcp_get(addr, "/status", token=token)
        check(r.status == 200 and json.loads(r.body)["supervisor"]["pid"] == sv.pid,
              "/status with the token: %r" % r)
        r = tcp_get(addr, "/drain/hello", "POST", token=token)
        check(r.status == 202, "POST /drain/hello with the token: %r" % r)
        # edgevisorctl: --token-file, or the config's admin_token_file; without: 401.
        rc, out, err = ctl("-s", addr, "--token-file", tf, "status")
        check(rc == 0 and str(sv.pid) in out, "ctl --token-file status: %d %r" % (rc, err))
        rc, out, err = ctl("-c", sv.conf_path, "status")
        check(rc == 0 and str(sv.pid) in out, "ctl -c CONFIG status: %d %r" % (rc, err))
        rc, out, err = ctl("-s", addr, "status")
        check(rc == 1 and "HTTP 401" in err, "ctl status without the token: %d %r" % (rc, err))
        # A new token takes effect with the reload that reads it; the old one is refused.
        token2 = "second-" + os.urandom(12).hex()
        write_token(d, token2)
        rc, out, err = ctl("-c", sv.conf_path, "--token-file", write_token(d, token, name="old"),
                           "reload")
        check(rc == 0, "reload with the old token: %d %r %r" % (rc, out, err))
        sv.wait_ready(2)
        check(tcp_get(addr, "/status", token=token).status == 401, "old token after reload")
        check(tcp_get(addr, "/status", token=token2).status == 200, "new token after reload")
        # A token file others can read fails the reload; the token in use stays.
        os.chmod(tf, 0o644)
        sv.send(signal.SIGHUP)
        ev = sv.wait_event("reload_failed")
        check("permissions 0644 are too open" in ev.get("msg", "") and "admin_token_file" in
              ev.get("msg", ""), "reload_failed says %r" % ev)
        check(tcp_get(addr, "/status", token=token2).status == 200, "token after a failed reload")
        os.chmod(tf, 0o600)
        with open(sv.log_path, "rb") as f:
            log = f.read()
        check(token.encode() not in log and token2.encode() not in log, "a token is in the log")
        check(sv.events("admin_denied", why="bad_token"), "no admin_denied why=bad_token")


@test
def token_file_must_be_private():
    d = h.tmpdir("adm-tokperm")
    good = write_token(d, "x" * 32)
    base = {"admin": "127.0.0.1:%d" % h.free_port(), "functions": [
        {"name": "hello", "library": h.lib("hello"), "listen": ["127.0.0.1:%d" % h.free_port()]}]}
    cases = [(0o644, None, "permissions 0644 are too open"),
             (0o640, None, "permissions 0640 are too open"),
             (0o600, "nobody", "owned by uid 65534"),
             (0o600, None, None)]
    for mode, owner, want in cases:
        os.chmod(good, mode)
        os.chown(good, pwd.getpwnam(owner).pw_uid if owner else 0, 0)
        conf = os.path.join(d, "c.conf")
        with open(conf, "w") as f:
            json.dump(dict(base, admin_token_file=good), f, indent=2)
        rc, text = h.check_config(conf)
        if want is None:
            check(rc == 0, "edgevisor -t with a 0600 root token file: %d %r" % (rc, text))
        else:
            check(rc == 1 and want in text and "admin_token_file" in text and "x" * 16 not in text,
                  "mode %o owner %s: %d %r" % (mode, owner, rc, text))


@test
def metrics_listener_serves_metrics_and_health_only():
    maddr = "127.0.0.1:%d" % h.free_port()
    sv = h.Supervisor([h.function("bg", library="background", workers=1)], name="adm-metrics-l",
                      metrics=maddr)
    try:
        sv.start()
        r = tcp_get(maddr, "/metrics")
        check(r.status == 200 and "version=0.0.4" in r.headers.get("content-type", ""),
              "metrics listener /metrics: %r" % r)
        parse_prometheus(r.body.decode())
        r = tcp_get(maddr, "/health")
        check(r.status == 200 and json.loads(r.body)["status"] == "serving", "/health: %r" % r)
        for method, path in PRIVATE:
            r = tcp_get(maddr, path, method)
            check(r.status == 404, "%s %s on the metrics listener: %r" % (method, path, r))
        check(tcp_get(maddr, "/metrics", "POST").status == 405, "POST /metrics")
        check(status(sv)["supervisor"]["metrics"] == maddr, "/status does not name the listener")
        # Stopping (draining a pending task): /health says so with 503; /metrics stays.
        h.request(sv.port("bg"), "/?ms=1500")
        sv.send(signal.SIGTERM)
        sv.wait_event("stop")
        r = tcp_get(maddr, "/health")
        check(r.status == 503 and json.loads(r.body)["status"] == "stopping",
              "/health while stopping: %r" % r)
        check(tcp_get(maddr, "/metrics").status == 200, "/metrics while stopping")
        check(sv.proc.wait(30) == 0, "exit code after SIGTERM")
    finally:
        sv.cleanup()


@test
def ctl_stop_exits_0_and_removes_the_socket():
    sv = h.Supervisor([h.function("bg", library="background", workers=1)], name="adm-stop")
    try:
        sv.start()
        r = h.request(sv.port("bg"), "/?ms=1500")
        t_task = time.monotonic()
        check(r.status == 200, "background request: %r" % r)
        rc, out, err = ctl("-s", sv.admin, "stop")
        check(rc == 0 and "stopping" in out, "ctl stop: %d %r %r" % (rc, out, err))
        # The admin keeps serving while the workers drain; it closes only at exit.
        st = status(sv)
        check(st["supervisor"]["stopping"] is True, "stopping %r" % st["supervisor"])
        check([w["state"] for w in st["workers"]] == ["draining"], "workers %r" % st["workers"])
        code = sv.proc.wait(30)
        took = time.monotonic() - t_task
        check(code == 0, "exit code %r after ctl stop" % code)
        check(sv.events("stop", mode="graceful"), "no graceful stop in the log")
        # Graceful: the 1,500 ms task ran to its end before the worker went.
        s = sv.events("summary")
        check(s, "no summary line at exit")
        s = s[-1]
        check(int(s["tasks_started"]) >= 2 and s["tasks_completed"] == s["tasks_started"]
              and s["tasks_failed"] == "0" and s["tasks_lost"] == "0",
              "summary %r: want every started task (init's and the 1,500 ms one) completed"
              % s)
        check(fn_logs(sv, "background task done after 1500 ms"),
              "the 1,500 ms task never logged its end")
        check(not sv.events("task_lost"), "a task was lost on a graceful stop")
        check(took >= 1.4, "the supervisor exited %.2f s after the 1,500 ms task began" % took)
        check(not os.path.exists(sv.admin[5:]), "admin socket left behind")
    finally:
        sv.cleanup()


def recv_notify(sock, timeout):
    """One datagram from the notify socket: (text, sender pid)."""
    sock.settimeout(timeout)
    data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = None
    for level, typ, cdata in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = int.from_bytes(cdata[0:4], "little")
    return data.decode(), pid


@test
def sd_notify_ready_reloading_stopping():
    d = h.tmpdir("adm-notify")
    npath = os.path.join(d, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    ns.bind(npath)
    got = []

    def wait_for(word, timeout=20):
        """Reads datagrams until one holds the line WORD; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise h.Failure("no %s on NOTIFY_SOCKET; got %r" % (word, got))
            try:
                text, pid = recv_notify(ns, left)
            except socket.timeout:
                continue
            got.append(text)
            if word in text.split("\n"):
                return text, pid

    sv = h.Supervisor([h.function("hello", workers=2)], name="adm-notify")
    os.environ["NOTIFY_SOCKET"] = npath
    try:
        sv.start(wait=False)
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        text, pid = wait_for("READY=1")
        check(pid == sv.pid, "READY=1 came from pid %r, not the supervisor %d" % (pid, sv.pid))
        check(len(sv.workers("hello")) == 2, "READY=1 before both workers were ready")
        sv.send(signal.SIGHUP)
        text, pid = wait_for("RELOADING=1")
        check(pid == sv.pid, "RELOADING from pid %r" % pid)
        check(re.search(r"(?m)^MONOTONIC_USEC=\d+$", text), "RELOADING=1 without MONOTONIC_USEC: %r" % text)
        wait_for("READY=1")
        sv.wait_ready(2)
        check(len(sv.workers("hello")) == 2, "workers after reload")
        sv.send(signal.SIGTERM)
        text, pid = wait_for("STOPPING=1")
        check(pid == sv.pid, "STOPPING from pid %r" % pid)
        code = sv.proc.wait(30)
        check(code == 0, "exit %r after SIGTERM" % code)
        order = [t for t in got if t.split("\n")[0] in ("READY=1", "RELOADING=1", "STOPPING=1")]
        firsts = [t.split("\n")[0] for t in order]
        check(firsts == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"],
              "notify sequence %r" % firsts)
    finally:
        sv.cleanup()
        ns.close()


if __name__ == "__main__":
    h.main()
