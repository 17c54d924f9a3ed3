"""test_tenants.py - hostile tenants (README "Reliability"): a function that forks,
leaks fds, leaks memory, spins or calls exit() is contained to its own worker, cgroup
and uid - its children die with its worker, every event is logged, and a neighbour
function's latency stays within 2x of its baseline; and two tenants running as two
uids can neither read each other's files, signal each other's workers or the
supervisor, nor reach the admin socket; and a tenant on the host's loopback gets
only /metrics and /health from the TCP admin and metrics ports.

Runs with cgroups "auto" under a cgroup_parent of its own. EDGEVISOR_SOAK=N repeats
the hostile sequence N times.
"""

import http.client
import os
import pwd
import re
import resource
import signal
import socket
import subprocess
import threading
import time

import harness as h
from harness import check, test

SOAK = int(os.environ.get("EDGEVISOR_SOAK", "1") or 1)
_latency = []       # hostile_tenant_is_contained's samples, judged by the next test
_seq = [0]
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parent_name(tag):
    _seq[0] += 1
    return "edgevisor-ten-%s-%d-%d" % (tag, os.getpid(), _seq[0])


def proc_cgroup(pid, ctrl="memory"):
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrl in ctrls.split(",") or (ctrls == "" and ctrl == ""):
                return path
    return None


def uid_of(pid):
    return int(h.proc_status(pid)["Uid"][0])


def latency(port, duration=1):
    """(p75, p99) of wrk --latency against PORT, in seconds (a clean run required)."""
    cmd = ["wrk", "-t1", "-c8", "-d%ds" % duration, "--latency", "http://127.0.0.1:%d/" % port]
    p = subprocess.run(cmd, capture_output=True, timeout=duration + 30)
    text = p.stdout.decode(errors="replace")
    w = h.parse_wrk(text)
    check(w["requests"] > 100 and not w["non2xx"] and not any(w["socket_errors"].values()),
          "neighbour wrk not clean: %s" % text)
    out = []
    for pct in ("75", "99"):
        m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
        check(m, "no %s%% line in %s" % (pct, text))
        out.append(float(m.group(1)) * _UNIT[m.group(2)])
    return tuple(out)


def worse(a, b):
    """Element-wise max of two (p75, p99) pairs."""
    return tuple(max(x, y) for x, y in zip(a, b))


class Latency:
    """The neighbour's latency while the tenant misbehaves, against its baseline.

    What is judged (README "Hostile tenants"): while the tenant misbehaves the
    neighbour's p75 stays within 2x of its baseline p75, and, through the steps that
    do not burn CPU (P99_STEPS: forked children, the fd leak, exit() and respawn), its
    p99 within 2x of its baseline p99. The tenant's CPU-burning steps (leaking memory
    is page faults and memset, spinning) cost a neighbour that shares their CPU a
    scheduler slice per wakeup at p99 (measured 0.09 -> 2.3 ms spinning, 0.5 ms
    leaking): printed, not promised; the spinner is judged by its throttling. The machine is shared (2 cores,
    other test runs, wrk on the same host): a figure is the best of the one-second wrk
    runs taken, which filters out bursts that have nothing to do with the tenant; the
    baseline is the worse of one taken before and one taken after the hostile
    sequence (a machine that got busier meanwhile raises both). A sample is taken
    while the misbehaviour goes on: `with lat.sampling(what):` runs wrk back to back
    in a thread for as long as its body runs (at least MIN_RUNS runs), so the runs
    overlap the misbehaviour itself, not the calm after the worker was replaced.
    When a step is above a bound and other work than ours (the supervisor's session
    and wrk) used half a core or more during it, the verdict is a skip naming the
    step, not a pass."""

    MIN_RUNS = 3
    P99_STEPS = ("forked children", "fd leak", "exit() and respawn")

    def __init__(self, port, sid):
        self.port = port
        self.sid = sid
        self.base = self._measure()
        self.seen = {}
        self.others = {}

    def _measure(self):
        runs = [latency(self.port) for _ in range(3)]
        return min(r[0] for r in runs), min(r[1] for r in runs)

    def rebase(self):
        """A fresh baseline just before a step (the machine may be busier now)."""
        self.base = worse(self.base, self._measure())

    def over(self, what, base):
        """The percentiles of step WHAT above 2x BASE's, as text (empty: within)."""
        v = self.seen[what]
        out = []
        if v[0] > 2 * base[0]:
            out.append("p75 %.2f ms > 2x %.2f" % (v[0] * 1e3, base[0] * 1e3))
        if what in self.P99_STEPS and v[1] > 2 * base[1]:
            out.append("p99 %.2f ms > 2x %.2f" % (v[1] * 1e3, base[1] * 1e3))
        return ", ".join(out)

    class _Sampler:
        def __init__(self, lat, what, min_runs):
            self.lat, self.what, self.min_runs = lat, what, min_runs
            self.runs, self.errors = [], []
            self._stop = threading.Event()
            self._t = threading.Thread(target=self._run, daemon=True)

        def _run(self):
            while not self._stop.is_set() or len(self.runs) < self.min_runs:
                try:
                    self.runs.append(latency(self.lat.port))
                except Exception as e:      # reported by __exit__
                    self.errors.append(e)
                    return

        def __enter__(self):
            self._busy0, self._t0 = cpu_task_s(), time.monotonic()
            self._ours0 = our_cpu_s(self.lat.sid)
            self._t.start()
            return self

        def __exit__(self, etype, *rest):
            self._stop.set()
            self._t.join(60)
            if etype is not None:
                return False
            check(not self.errors, "neighbour during %s: %s" % (self.what, self.errors[:1]))
            check(self.runs, "no neighbour sample during %s" % self.what)
            self.lat.seen[self.what] = (min(r[0] for r in self.runs),
                                        min(r[1] for r in self.runs))
            wall = time.monotonic() - self._t0
            busy = cpu_task_s() - self._busy0
            # Others' CPU: all tasks' time but ours (processes of ours that exited in
            # the window are missed, so this errs towards "busy"; interrupt time,
            # loopback's softirq for wrk among it, is no process's and not counted).
            self.lat.others[self.what] = max(0.0, busy - (our_cpu_s(self.lat.sid) -
                                                          self._ours0)) / wall
            return False

        def fine(self):
            return not self.lat.over(self.what, self.lat.base)

    def sampling(self, what, min_runs=None):
        return self._Sampler(self, what, self.MIN_RUNS if min_runs is None else min_runs)

    def finish(self):
        """The baseline after the sequence (the supervisor still running)."""
        self.after = self._measure()

    def verdict(self):
        after = self.after
        base = worse(self.base, after)
        bad = ["%s: %s (others used %.2f cores)" % (k, self.over(k, base), self.others[k])
               for k in self.seen if self.over(k, base)]
        busy = [k for k in self.seen if self.over(k, base) and self.others[k] >= 0.5]
        text = ("neighbour above 2x its baseline p75/p99 %.2f/%.2f ms (before %.2f/%.2f, "
                "after %.2f/%.2f): %s" % (base[0] * 1e3, base[1] * 1e3, self.base[0] * 1e3,
                                         self.base[1] * 1e3, after[0] * 1e3,
                                         after[1] * 1e3, "; ".join(bad)))
        if bad and len(busy) == len(bad):
            return base, text
        check(not bad, text)
        return base, None


def our_cpu_s(sid):
    """CPU seconds used by session SID's live processes (the supervisor and its
    workers) plus our waited-for children (wrk)."""
    t = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = t.ru_utime + t.ru_stime
    for p in h.session_pids(sid):
        try:
            with open("/proc/%d/stat" % p) as f:
                v = f.read().rsplit(")", 1)[1].split()
            total += (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_task_s():
    """Seconds all CPUs spent running tasks since boot (user + nice + system in
    /proc/stat; not irq or softirq, which no process's own times include)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    return (int(v[1]) + int(v[2]) + int(v[3])) / os.sysconf("SC_CLK_TCK")


def cpu_idle_s():
    """Seconds all CPUs spent idle since boot (idle + iowait in /proc/stat)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    return (int(v[4]) + int(v[5])) / os.sysconf("SC_CLK_TCK")


def cpu_stat(pid):
    """(CPU seconds used, nr_throttled) of worker PID's cgroup (v1 cpu/cpuacct or v2)."""
    cgs = {}
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                cgs[c] = path
    root = "/sys/fs/cgroup"

    def kv(path):
        with open(path) as f:
            return {k: int(v) for k, v in (l.split() for l in f if len(l.split()) == 2)}
    if "cpu" in cgs and os.path.exists(os.path.join(root, "cpu") + cgs["cpu"]):
        st = kv(os.path.join(root, "cpu") + cgs["cpu"] + "/cpu.stat")
        with open(os.path.join(root, "cpuacct") + cgs["cpuacct"] + "/cpuacct.usage") as f:
            return int(f.read()) / 1e9, st["nr_throttled"]
    st = kv(root + cgs[""] + "/cpu.stat")
    return st["usage_usec"] / 1e6, st["nr_throttled"]


def hostile_ready(sv, old=None):
    def found():
        w = [p for p in sv.workers("hostile").values() if p != old and h.alive(p)]
        return w and w[0]
    return h.wait_until(found, 15, "a ready hostile worker other than %s" % old)


def background_get(port, path, timeout=15):
    """GETs PATH in a thread (for a request that never answers); returns the thread."""
    def run():
        try:
            h.request(port, path, timeout=timeout)
        except (OSError, http.client.HTTPException):
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@test
def hostile_tenant_is_contained():
    neighbour = h.function("hello", workers=1, user="daemon", group="daemon")
    hostile = h.function("hostile", workers=1, user="nobody", group="nogroup", limits={
        "cpu_percent": 20, "memory_mb": 64, "nofile": 128, "request_timeout_ms": 1500,
        "beforeunload_grace_ms": 500})
    sv = h.Supervisor([neighbour, hostile], name="hostile", cgroups="auto",
                      cgroup_parent=parent_name("hostile"))
    with sv:
        nb = list(h.wait_until(lambda: sv.workers("hello"), 10, "neighbour").values())[0]
        hw = hostile_ready(sv)
        lat = Latency(sv.port("hello"), sv.pid)
        hp = sv.port("hostile")
        spun = []
        for rnd in range(SOAK):
            # fork: the children live in the worker's cgroup, as its uid, and die with it.
            r = h.request(hp, "/?do=fork&n=4")
            kids = [int(x) for x in r.body.split()[1:]]
            check(r.status == 200 and len(kids) == 4, "fork: %r" % r)
            for k in kids:
                check(proc_cgroup(k) == proc_cgroup(hw) and uid_of(k) == 65534,
                      "child %d: cgroup %s uid %s, worker %s" % (k, proc_cgroup(k), uid_of(k),
                                                                 proc_cgroup(hw)))
            check(proc_cgroup(hw) != proc_cgroup(nb), "tenants share a cgroup")
            with lat.sampling("forked children"):
                pass    # the children live (and ignore SIGTERM) while it samples
            os.kill(hw, signal.SIGKILL)
            h.wait_until(lambda: not [k for k in kids if h.alive(k)], 5,
                         "the tenant's children to die with its worker")
            sv.wait_event("worker_exit", pid=hw, signal="9")
            hw = hostile_ready(sv, hw)

            # fdleak: capped by its nofile; hand-offs it cannot take are reported and
            # the worker is replaced.
            r = h.request(hp, "/?do=fdleak&n=100000")
            m = re.match(rb"fds (\d+) errno (\d+)", r.body)
            check(m and int(m.group(1)) < 128 and int(m.group(2)) == 24, "fdleak: %r" % r)
            held = []
            with lat.sampling("fd leak"):
                # While it holds every fd it may have, and while hand-offs get lost.
                try:
                    for _ in range(8):      # at once: more than its one free fd
                        s = h.connect(hp)
                        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        held.append(s)
                    sv.wait_event("handoff_lost", count=rnd + 1, timeout=10)
                finally:
                    for s in held:
                        s.close()
                hw2 = hostile_ready(sv, hw)
                h.wait_until(lambda: not h.alive(hw), 10, "the fd-leaking worker to go")
            hw = hw2
            check(h.request(hp, "/").status == 200, "hostile not served after fdleak")

            # leak: memory cap -> retired at the soft limit or OOM-killed; reported.
            n_mem = len(sv.events("limit_soft", reason="memory")) + len(sv.events("worker_oom"))
            with lat.sampling("memory leak", min_runs=1):
                for _ in range(32):
                    try:
                        h.request(hp, "/?do=leak&mb=4", timeout=5)
                    except (OSError, http.client.HTTPException):
                        pass
                    if len(sv.events("limit_soft", reason="memory")) + \
                            len(sv.events("worker_oom")) > n_mem:
                        break
                h.wait_until(lambda: len(sv.events("limit_soft", reason="memory")) +
                             len(sv.events("worker_oom")) > n_mem, 5, "a memory event")
                h.wait_until(lambda: not h.alive(hw), 10, "the leaking worker to go")
                hw = hostile_ready(sv, hw)

            # spin: CPU-capped while it spins; hung once hand-offs queue; SIGKILLed.
            # The samples are taken while it spins, and the spinner must have been
            # throttled to its 20% over that time. (Up to 3 tries when the neighbour
            # looks slow: one busy second of a shared machine must not decide it; a
            # real effect shows every time.)
            for attempt in range(3):
                lat.rebase()
                background_get(hp, "/?do=spin")
                h.wait_until(lambda: h.proc_stat(hw) and h.proc_stat(hw)[0] == "R", 5,
                             "the spinner to run")
                (u0, thr0), t0, idle0 = cpu_stat(hw), time.monotonic(), cpu_idle_s()
                with lat.sampling("spinning tenant") as smp:
                    pass
                (u1, thr1), t1, idle1 = cpu_stat(hw), time.monotonic(), cpu_idle_s()
                share = (u1 - u0) / (t1 - t0) * 100
                idle = (idle1 - idle0) / (t1 - t0)
                spun.append("%.1f%% of a core, nr_throttled +%d, %.2f cores idle"
                            % (share, thr1 - thr0, idle))
                # On a machine other work keeps busy the spinner may get less than its
                # quota for a while; it still meets it before long (uncapped, never).
                if thr1 <= thr0:
                    try:
                        h.wait_until(lambda: cpu_stat(hw)[1] > thr0, 10, "throttling")
                    except h.Failure:
                        raise h.Failure("the spinning tenant was not throttled (nr_throttled "
                                        "%d -> %d over %.1f s plus 10 s, %.1f%% of a core)"
                                        % (thr0, cpu_stat(hw)[1], t1 - t0, share))
                check(share <= 25, "the spinning tenant used %.1f%% of a core over %.1f s "
                      "(cpu_percent 20)" % (share, t1 - t0))
                check(share >= 15 or idle < 0.5, "the spinning tenant used only %.1f%% of "
                      "a core with %.2f cores idle (cpu_percent 20)" % (share, idle))
                background_get(hp, "/")
                sv.wait_event("worker_hung", pid=hw, timeout=10)
                sv.wait_event("worker_kill", pid=hw, timeout=5)
                h.wait_until(lambda: not h.alive(hw), 5, "the spinner to die")
                hw = hostile_ready(sv, hw)
                if smp.fine():
                    break

            # exit(): a crash; its pending tasks are counted lost and named.
            with lat.sampling("exit() and respawn", min_runs=1):
                try:
                    h.request(hp, "/?do=exit&tasks=3", timeout=5)
                except (OSError, http.client.HTTPException):
                    pass
                ex = sv.wait_event("worker_exit", pid=hw)
                old = hw
                hw = hostile_ready(sv, hw)
            check(ex.get("code") == "0" and ex.get("lost") == "3", "exit(): %r" % ex)
            check(sv.events("worker_state", pid=old, to="crashed"), "exit() not a crash")
            named = sv.events("task_lost", pid=old)
            check(len(named) == 3 and all(t.get("task_name") == "doomed" for t in named),
                  "lost tasks named: %r" % named)
            check(h.request(hp, "/").status == 200, "hostile not served after exit()")

        check(list(sv.workers("hello").values()) == [nb] and
              not sv.events("worker_exit", fn="hello"), "the neighbour's worker was disturbed")
        lat.finish()
        print("#   spinning tenant: %s" % "; ".join(spun))
        _latency.append(lat)


@test
def hostile_tenant_neighbour_latency():
    """The neighbour's latency through hostile_tenant_is_contained's sequence (judged
    here, so that a skip for a busy machine does not hide that containment passed)."""
    check(_latency, "hostile_tenant_is_contained did not get to sample the neighbour")
    lat = _latency[-1]
    if h.ASAN:
        # An instrumented worker's exit and respawn cost the machine several times
        # what the real one does: the 2x promise is the real build's.
        h.skip("an ASan build: the neighbour's latency is judged by make test")
    base, busy = lat.verdict()
    print("#   neighbour p75/p99 baseline %.2f/%.2f ms (before %.2f/%.2f, after %.2f/%.2f); "
          "%s" % (base[0] * 1e3, base[1] * 1e3, lat.base[0] * 1e3, lat.base[1] * 1e3,
                  lat.after[0] * 1e3, lat.after[1] * 1e3, ", ".join(
                      "%s %.2f/%.2f ms (others %.2f cores)" % (k, v[0] * 1e3, v[1] * 1e3,
                                                             lat.others[k])
                      for k, v in lat.seen.items())))
    if busy:
        h.skip("latency not judged, other work used >= 0.5 cores: " + busy)


def peek(port, **q):
    r = h.request(port, "/?" + "&".join("%s=%s" % kv for kv in q.items()))
    check(r.status == 200, "peek answered %d" % r.status)
    return dict(line.split(" ", 1) for line in r.body.decode().splitlines())


@test
def two_tenants_cannot_reach_each_other():
    a = h.function("tenant_a", library="peek", workers=1, user="nobody", group="nogroup")
    b = h.function("tenant_b", library="peek", workers=1, user="daemon", group="daemon")
    sv = h.Supervisor([a, b], name="uids", cgroups="auto", cgroup_parent=parent_name("uids"))
    # Traversable by everyone: only the files' and the socket's own modes protect them.
    os.chmod(sv.dir, 0o755)
    files = {}
    for name, user in (("a", "nobody"), ("b", "daemon")):
        path = os.path.join(sv.dir, "%s-secret" % name)
        with open(path, "w") as f:
            f.write("secret of %s\n" % name)
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, 0o600)
        files[name] = path
    with sv:
        pa = list(h.wait_until(lambda: sv.workers("tenant_a"), 10, "a").values())[0]
        pb = list(h.wait_until(lambda: sv.workers("tenant_b"), 10, "b").values())[0]
        sock = sv.admin[len("unix:"):]
        check(os.stat(sock).st_mode & 0o777 == 0o600, "admin socket mode")
        for me, port, mine, other, other_pid in (("a", sv.port("tenant_a"), "a", "b", pb),
                                                  ("b", sv.port("tenant_b"), "b", "a", pa)):
            own = peek(port, file=files[mine])
            check(own.get("read") == "ok", "%s cannot read its own file: %r" % (me, own))
            got = peek(port, file=files[other], pid=sv.pid, pid2=other_pid, sock=sock)
            want = {"read": "EACCES", "kill": "EPERM", "kill2": "EPERM", "admin": "EACCES"}
            for k, v in want.items():
                check(got.get(k) == v, "tenant %s: %s is %r, want %s (%r)"
                      % (me, k, got.get(k), v, got))
            env = peek(port, file="/proc/%d/environ" % sv.pid)
            check(env.get("read") == "EACCES", "tenant %s reads the supervisor's environ: %r"
                  % (me, env))
        check(h.alive(pa) and h.alive(pb) and sv.running(), "someone died")
        check(uid_of(pa) == 65534 and uid_of(pb) == 1, "uids %r %r" % (uid_of(pa), uid_of(pb)))


def probe_admin(fn_port, port, token=None):
    """What the adminprobe tenant got from 127.0.0.1:PORT: {"POST /stop": "401", ...}."""
    q = "/?port=%d" % port + ("&token=%s" % token if token else "")
    r = h.request(fn_port, q, timeout=30)
    check(r.status == 200, "adminprobe answered %d" % r.status)
    lines = r.body.decode().splitlines()
    got = {" ".join(l.split()[:2]): l.split()[2] for l in lines if not l.startswith("uid ")}
    check(("uid 65534") in lines, "the probe did not run as nobody: %r" % lines)
    return got


@test
def tenant_cannot_use_the_tcp_admin():
    """A worker running as a tenant uid reaches loopback like anyone: over the TCP
    admin it gets /metrics and /health, and a refusal for everything that changes or
    names the host's state, with no token or a wrong one; the metrics listener serves
    nothing else at all. The supervisor and the other tenant never notice."""
    d = h.tmpdir("ten-admin")
    token = "tenants-never-see-" + os.urandom(8).hex()
    tf = os.path.join(d, "admin.token")
    with open(tf, "w") as f:
        f.write(token + "\n")
    os.chmod(tf, 0o600)
    aport, mport = h.free_port(), h.free_port()
    probe = h.function("probe", library="adminprobe", workers=1, user="nobody", group="nogroup")
    other = h.function("hello", workers=1, user="daemon", group="daemon")
    private = ("POST /stop", "POST /reload", "POST /drain/probe", "GET /status")
    for tok_file in (None, tf):
        top = {"admin": "127.0.0.1:%d" % aport, "metrics": "127.0.0.1:%d" % mport}
        if tok_file:
            top["admin_token_file"] = tok_file
        with h.Supervisor([probe, other], name="ten-admin", cgroups="auto",
                          cgroup_parent=parent_name("admin"), **top) as sv:
            pw = list(h.wait_until(lambda: sv.workers("probe"), 10, "probe").values())[0]
            hw = list(h.wait_until(lambda: sv.workers("hello"), 10, "hello").values())[0]
            want = "401" if tok_file else "403"
            for tok in (None, "wrong-" + token[6:]):
                got = probe_admin(sv.port("probe"), aport, tok)
                for k in private:
                    check(got.get(k) == want, "token file %s, tenant token %r: %s over the TCP "
                          "admin got %r, want %s (%r)" % (tok_file, tok, k, got.get(k), want, got))
                for k in ("GET /metrics", "GET /health"):
                    check(got.get(k) == "200", "%s over the TCP admin: %r" % (k, got))
            got = probe_admin(sv.port("probe"), mport)
            for k in private:
                check(got.get(k) == "404", "%s on the metrics listener: %r" % (k, got))
            for k in ("GET /metrics", "GET /health"):
                check(got.get(k) == "200", "%s on the metrics listener: %r" % (k, got))
            check(sv.running() and not sv.events("stop") and not sv.events("reload") and
                  not sv.events("drain_function"), "the tenant changed the host:\n%s" % sv.tail(10))
            check(sv.workers("probe") and list(sv.workers("probe").values()) == [pw] and
                  list(sv.workers("hello").values()) == [hw], "a worker was replaced")
            check(h.request(sv.port("hello")).status == 200, "the neighbour stopped answering")
            check(uid_of(pw) == 65534, "probe worker uid %d" % uid_of(pw))


if __name__ == "__main__":
    h.main()
