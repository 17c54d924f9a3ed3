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
import signal
import socket
import subprocess
import threading
import time

import harness as h
from harness import check, test

SOAK = int(os.environ.get("EDGEVISOR_SOAK", "1") or 1)
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


class Latency:
    """The neighbour's latency while the tenant misbehaves, against its baseline.

    The machine is shared (2 cores, other test runs): each figure is the best of 3
    one-second wrk runs, which filters out bursts that have nothing to do with the
    tenant; the compared figure is the 75th percentile (p99 is printed); the baseline
    is the worse of one taken before and one taken after the hostile sequence (a
    machine that got busier meanwhile raises both); a floor of 0.5 ms keeps a 100 us
    baseline from turning scheduler noise into a failure."""

    def __init__(self, port):
        self.port = port
        self.base = self._measure()
        self.seen = {}

    def _measure(self):
        runs = [latency(self.port) for _ in range(3)]
        return min(r[0] for r in runs), min(r[1] for r in runs)

    def rebase(self):
        """A fresh baseline just before a step (the machine may be busier now)."""
        self.base = max(self.base, self._measure())

    def during(self, what):
        self.seen[what] = self._measure()
        return self.seen[what][0] <= max(2 * self.base[0], self.base[0] + 0.0005)

    def verdict(self):
        after = self._measure()
        base = max(self.base, after)
        limit = max(2 * base[0], base[0] + 0.0005)
        bad = ["%s %.2f ms" % (k, v[0] * 1e3) for k, v in self.seen.items() if v[0] > limit]
        check(not bad, "neighbour p75 above 2x baseline %.2f ms (before %.2f, after %.2f): %s"
              % (base[0] * 1e3, self.base[0] * 1e3, after[0] * 1e3, ", ".join(bad)))
        return base


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
        lat = Latency(sv.port("hello"))
        hp = sv.port("hostile")
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
            lat.during("forked children")
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
            lat.during("fd leak")

            # leak: memory cap -> retired at the soft limit or OOM-killed; reported.
            n_mem = len(sv.events("limit_soft", reason="memory")) + len(sv.events("worker_oom"))
            for _ in range(6):
                try:
                    h.request(hp, "/?do=leak&mb=20", timeout=5)
                except (OSError, http.client.HTTPException):
                    pass
                if len(sv.events("limit_soft", reason="memory")) + \
                        len(sv.events("worker_oom")) > n_mem:
                    break
            h.wait_until(lambda: len(sv.events("limit_soft", reason="memory")) +
                         len(sv.events("worker_oom")) > n_mem, 5, "a memory event")
            h.wait_until(lambda: not h.alive(hw), 10, "the leaking worker to go")
            hw = hostile_ready(sv, hw)
            lat.during("memory leak")

            # spin: CPU-capped while it spins; hung once hand-offs queue; SIGKILLed.
            # (Up to 3 tries when the neighbour looks slow: one busy second of a
            # shared machine must not decide it; a real effect shows every time.)
            for attempt in range(3):
                lat.rebase()
                background_get(hp, "/?do=spin")
                h.wait_until(lambda: h.proc_stat(hw) and h.proc_stat(hw)[0] == "R", 5,
                             "the spinner to run")
                fine = lat.during("spinning tenant")
                background_get(hp, "/")
                sv.wait_event("worker_hung", pid=hw, timeout=10)
                sv.wait_event("worker_kill", pid=hw, timeout=5)
                h.wait_until(lambda: not h.alive(hw), 5, "the spinner to die")
                hw = hostile_ready(sv, hw)
                if fine:
                    break

            # exit(): a crash; its pending tasks are counted lost and named.
            try:
                h.request(hp, "/?do=exit&tasks=3", timeout=5)
            except (OSError, http.client.HTTPException):
                pass
            ex = sv.wait_event("worker_exit", pid=hw)
            check(ex.get("code") == "0" and ex.get("lost") == "3", "exit(): %r" % ex)
            check(sv.events("worker_state", pid=hw, to="crashed"), "exit() not a crash")
            named = sv.events("task_lost", pid=hw)
            check(len(named) == 3 and all(t.get("task_name") == "doomed" for t in named),
                  "lost tasks named: %r" % named)
            hw = hostile_ready(sv, hw)
            check(h.request(hp, "/").status == 200, "hostile not served after exit()")

        check(list(sv.workers("hello").values()) == [nb] and
              not sv.events("worker_exit", fn="hello"), "the neighbour's worker was disturbed")
        base = lat.verdict()
        print("#   neighbour p75/p99 baseline %.2f/%.2f ms; %s" % (
            base[0] * 1e3, base[1] * 1e3, ", ".join(
                "%s %.2f/%.2f ms" % (k, v[0] * 1e3, v[1] * 1e3) for k, v in lat.seen.items())))


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
