"""test_haproxy.py - three edgevisor hosts behind Debian's HAProxy (docs/fleet.md).

Each host is a whole instance of its own (config, state directory, cgroup parent,
admin socket, log) on 127.0.0.2, .3 and .4, all on the same ports, like a fleet;
HAProxy (`option httpchk GET /health` against each host's metrics listener, checks
every 100 ms) balances them through two backends over the same servers: "strict"
(`retries 0`: a refused connection is the client's error) and "be" (`retries 3`,
`option redispatch`). Under wrk through HAProxy:

- the control: through "strict", a host stopped by SIGTERM without the window
  (`sigterm_health_drain: false`, the graceful stop as it was) costs requests, since
  its listeners close before HAProxy has it DOWN;
- a rolling deploy by scripts/rolling-deploy.sh through "strict" (each host in turn:
  `edgevisorctl drain --all --wait`, start it again with the new version of the
  function, /health 200, HAProxy has it UP again) gives 0 non-2xx and 0 socket
  errors at the client, every host serves v2 afterwards, and no background task is
  lost (every instance's exit summary and the new ones' /status);
- through "be" (`http-reuse never`: a server connection belongs to one client
  connection), SIGKILL of one whole instance (every process of its session:
  supervisor and workers) costs at most the requests that were on it: in flight (one
  per client connection) or sent while it died; the others are retried on another
  host; HAProxy marks it DOWN, and from then on it gets no more traffic while the
  others keep serving; the next wrk run has no error at all. The deploy's duration
  and the time to DOWN are printed (`# ...` lines), and judged by scripts/bench.sh's
  fleet phase, not here.

Real supervisors, workers, HAProxy, wrk and curl; HAProxy runs in the foreground from
the test's dir and is stopped at the end whatever happens."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import harness as h
from harness import check, test
from test_isolation import parent_name, remove_cgroups

HAPROXY = "/usr/sbin/haproxy"
CTL = os.path.join(h.BUILD, "edgevisorctl")
SCRIPT = os.path.join(h.ROOT, "scripts", "rolling-deploy.sh")
IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
INTER_MS, FALL, RISE = 100, 2, 2
WINDOW_MS = 2000            # health_drain_ms: many check intervals, for a loaded machine
WRK_CONNS = 8


def ports_free_on_all(n):
    """N ports free on every host address (a fleet uses the same ports everywhere)."""
    out = []
    for p in h.free_ports(40):
        ok = True
        for ip in IPS + ["127.0.0.1"]:
            with socket.socket() as s:
                try:
                    s.bind((ip, p))
                except OSError:
                    ok = False
                    break
        if ok:
            out.append(p)
        if len(out) == n:
            return out
    raise h.Failure("no %d ports free on %s" % (n, IPS))


class Host:
    """One edgevisor instance: a directory named for its address."""

    def __init__(self, root, ip, port, mport, parent):
        self.ip, self.port, self.mport = ip, port, mport
        self.dir = os.path.join(root, ip)
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "edgevisor.conf")
        self.log = os.path.join(self.dir, "edgevisor.log")
        self.admin = "unix:" + os.path.join(self.dir, "admin.sock")
        self.parent = "%s-%s" % (parent, ip.replace(".", "_"))
        self.pids = set()       # every supervisor pid this host had

    def config(self, version, **top):
        return dict({"cgroups": "auto", "cgroup_parent": self.parent, "log_level": "info",
                "admin": self.admin, "state_directory": os.path.join(self.dir, "state"),
                "metrics": "%s:%d" % (self.ip, self.mport), "health_drain_ms": WINDOW_MS,
                "functions": [{"name": "app", "library": h.lib("fleet_%s" % version),
                               "listen": ["%s:%d" % (self.ip, self.port)], "workers": 2}]},
                    **top)

    def write(self, version, path=None, **top):
        with open(path or self.conf, "w") as f:
            json.dump(self.config(version, **top), f, indent=2)

    def start(self):
        with open(self.log, "ab") as logf:
            p = subprocess.Popen([h.EDGEVISOR, "-c", self.conf], stdin=subprocess.DEVNULL,
                                 stdout=logf, stderr=logf, cwd=self.dir,
                                 start_new_session=True)
        self.pids.add(p.pid)
        return p

    def get(self, path):
        conn = h.UnixHTTPConnection(self.admin[5:], timeout=5)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def status(self):
        code, body = self.get("/status")
        check(code == 200, "%s: /status %d" % (self.ip, code))
        st = json.loads(body)
        self.pids.add(st["supervisor"]["pid"])
        return st

    def healthy(self):
        try:
            conn = http.client.HTTPConnection(self.ip, self.mport, timeout=2)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def records(self):
        try:
            with open(self.log, errors="replace") as f:
                return [h.parse_logfmt(l) for l in f.read().splitlines()]
        except OSError:
            return []

    def events(self, ev):
        return [r for r in self.records() if r.get("ev") == ev]

    def body(self):
        """The body of one Connection: close request straight to this host."""
        s = socket.create_connection((self.ip, self.port), timeout=5)
        try:
            s.sendall(b"GET /?ms=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = h.read_to_eof(s)
        finally:
            s.close()
        return data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")

    def kill(self):
        for pid in self.pids:
            h.kill_session(pid)

    def sigkill_all(self):
        """SIGKILL to every process of the host in one pass (a host that dies: no
        process of it outlives the others by more than the pass)."""
        pids = self.live_pids()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        return pids

    def live_pids(self):
        """Every process of this host's sessions still alive (not a zombie)."""
        return [p for pid in self.pids for p in h.session_pids(pid)]


class HAProxy:
    def __init__(self, root, hosts, port, mport):
        self.stats = h.free_port()
        self.front = h.free_port()          # -> "be": retries and redispatch
        self.front_strict = h.free_port()   # -> "strict": no retry at all
        self.dir = os.path.join(root, "haproxy")
        os.makedirs(self.dir)
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        servers = "\n".join("    server %s %s:%d check port %d" % (x.ip, x.ip, port, mport)
                            for x in hosts)
        with open(self.cfg, "w") as f:
            f.write("""global
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 500ms
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter %(inter)dms fastinter %(inter)dms downinter %(inter)dms fall %(fall)d rise %(rise)d
frontend fe
    bind 127.0.0.1:%(front)d
    default_backend be
frontend fe_strict
    bind 127.0.0.1:%(strict)d
    default_backend strict
frontend stats
    bind 127.0.0.1:%(stats)d
    stats enable
    stats uri /stats
backend be
    retries 3
    option redispatch
    http-reuse never
%(servers)s
backend strict
    retries 0
%(servers)s
""" % {"front": self.front, "strict": self.front_strict, "stats": self.stats,
       "inter": INTER_MS, "fall": FALL, "rise": RISE, "servers": servers})
        self.proc = None
        self.log = os.path.join(self.dir, "haproxy.log")

    def start(self):
        p = subprocess.run([HAPROXY, "-c", "-f", self.cfg], capture_output=True, timeout=10)
        check(p.returncode == 0, "haproxy -c: %s" % (p.stdout + p.stderr).decode(errors="replace"))
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg], cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)

    def servers(self, px="be"):
        """{server: {"status":..., "stot": requests sent to it}} of backend PX, from
        the CSV stats."""
        conn = http.client.HTTPConnection("127.0.0.1", self.stats, timeout=5)
        try:
            conn.request("GET", "/stats;csv")
            text = conn.getresponse().read().decode()
        except OSError:
            self.check_running()
            return {}           # not listening yet
        finally:
            conn.close()
        lines = text.splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for l in lines[1:]:
            row = dict(zip(head, l.split(",")))
            if row.get("pxname") == px and row.get("svname") not in ("FRONTEND", "BACKEND"):
                out[row["svname"]] = {"status": row["status"], "stot": int(row["stot"] or 0)}
        return out

    def check_running(self):
        if self.proc.poll() is not None:
            with open(self.log, errors="replace") as f:
                raise h.Failure("haproxy exited %d: %s" % (self.proc.returncode, f.read()[-2000:]))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            h.kill_session(self.proc.pid)


def start_wrk(port, duration):
    """wrk through HAProxy for at most DURATION s, stopped earlier with SIGINT (it then
    prints its report as at the end of a run)."""
    return subprocess.Popen(["wrk", "-t1", "-c%d" % WRK_CONNS, "-d%ds" % duration,
                             "--timeout", "5s", "http://127.0.0.1:%d/?ms=50" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_wrk(p):
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=15)
    text = out.decode(errors="replace")
    return h.parse_wrk(text)


def traffic_grows(lb, names, by, px="be"):
    """Waits until each server in NAMES of backend PX got BY more requests."""
    base = lb.servers(px)
    h.wait_until(lambda: all(lb.servers(px)[n]["stot"] >= base[n]["stot"] + by
                             for n in names),
                 20, "%d more requests to each of %s" % (by, names))


def all_up(lb):
    return all(len(lb.servers(px)) == 3 and
               all(s["status"] == "UP" for s in lb.servers(px).values())
               for px in ("be", "strict"))


def wrk_errors(w):
    return w["non2xx"] + sum(w["socket_errors"].values())


def summaries(host):
    return [r for r in host.events("summary")]


@test
def rolling_deploy_and_a_killed_host_behind_haproxy():
    for tool in (HAPROXY, shutil.which("wrk"), shutil.which("curl")):
        if tool is None or not os.access(tool, os.X_OK):
            h.skip("haproxy, wrk and curl are needed (scripts/deps.sh)")
    root = h.tmpdir("haproxy")
    port, mport = ports_free_on_all(2)
    parent = parent_name("fleet")
    hosts = [Host(root, ip, port, mport, parent) for ip in IPS]
    lb = HAProxy(root, hosts, port, mport)
    wrks = []
    try:
        for x in hosts:
            # The first host starts as the control: SIGTERM there is the plain stop.
            x.write("v1", **({"sigterm_health_drain": False} if x is hosts[0] else {}))
            x.start()
        for x in hosts:
            h.wait_until(x.healthy, 20, "%s healthy" % x.ip)
        lb.start()
        h.wait_until(lambda: all_up(lb), 10, "HAProxy to see all three hosts UP")

        # ---- the control: the graceful stop without a window ----------------------
        # Through the backend that never retries, a stop that closes the listeners
        # before the balancer knows costs requests (refused connections). This shows
        # that the zero of the deploy below is the window's doing, not HAProxy's.
        ctrl = hosts[0]
        wrks.append(start_wrk(lb.front_strict, 30))
        traffic_grows(lb, IPS, 50, "strict")
        for pid in list(ctrl.pids):
            os.kill(pid, signal.SIGTERM)
        h.wait_until(lambda: not ctrl.live_pids(), 20, "the control host to exit")
        h.wait_until(lambda: lb.servers("strict")[ctrl.ip]["status"].startswith("DOWN"), 10,
                     "HAProxy to mark the stopped host DOWN")
        w = stop_wrk(wrks.pop())
        control_errors = wrk_errors(w)
        check(control_errors > 0 and not ctrl.events("host_drain"),
              "a stop without the window lost nothing through a balancer that does not "
              "retry (%r): the control shows nothing\n%s" % (ctrl.events("host_drain"), w["text"]))
        print("# control: a graceful stop without the window cost %d of %d requests"
              % (control_errors, w["requests"]))
        ctrl.write("v1")
        ctrl.start()
        h.wait_until(lambda: all_up(lb), 20, "HAProxy to see the control host UP again")

        # ---- the rolling deploy under load -------------------------------------
        wrks.append(start_wrk(lb.front_strict, 50))
        traffic_grows(lb, IPS, 50, "strict")
        for x in hosts:
            x.write("v2", os.path.join(x.dir, "v2.conf"))
        env = dict(os.environ)
        env.update({
            "EV_CTL": CTL,
            "EV_DRAIN": "%s -s unix:%s/{}/admin.sock drain --all --wait" % (CTL, root),
            "EV_START": "cp %(r)s/{}/v2.conf %(r)s/{}/edgevisor.conf && cd %(r)s/{} && "
                        "setsid -f %(ev)s -c %(r)s/{}/edgevisor.conf >>%(r)s/{}/edgevisor.log "
                        "2>&1 </dev/null" % {"r": root, "ev": h.EDGEVISOR},
            "EV_HEALTH": "http://{}:%d/health" % mport,
            "EV_LB_UP": "curl -fsS 'http://127.0.0.1:%d/stats;csv' | "
                        "grep -Eq '^strict,{},([^,]*,){15}UP,'" % lb.stats,
            "EV_TIMEOUT": "30",
        })
        t0 = time.monotonic()
        p = subprocess.run([SCRIPT] + IPS, env=env, capture_output=True, timeout=120)
        deploy_s = time.monotonic() - t0
        out = (p.stdout + p.stderr).decode(errors="replace")
        check(p.returncode == 0, "rolling-deploy.sh exited %d:\n%s" % (p.returncode, out))
        for x in hosts:
            x.status()          # the new supervisor's pid, for the cleanup
        # Load after the last host is back, so it is judged serving too.
        traffic_grows(lb, IPS, 50, "strict")
        w = stop_wrk(wrks.pop())
        check(w["requests"] > 0, "wrk made no request: %s" % w["text"])
        check(w["non2xx"] == 0 and not any(w["socket_errors"].values()),
              "errors at the client during the rolling deploy: non2xx=%d socket=%r\n%s\n%s"
              % (w["non2xx"], w["socket_errors"], w["text"], out))
        print("# rolling deploy of 3 hosts: %.1f s, %d requests through HAProxy (%.0f/s), "
              "0 errors" % (deploy_s, w["requests"], w["rps"]))
        for x in hosts:
            # The old instances drained everything they had started, then exited 0.
            old = summaries(x)
            check(len(old) == (2 if x is ctrl else 1) and
                  all(r["tasks_lost"] == "0" and int(r["requests"]) > 0 and
                      r["tasks_started"] == r["tasks_completed"] for r in old),
                  "%s: the v1 instances' exit summaries %r" % (x.ip, old))
            check(not x.events("task_lost"), "%s: tasks lost %r" % (x.ip, x.events("task_lost")))
            drains = [r for r in x.events("host_drain")]
            check([r["phase"] for r in drains] == ["health", "workers"],
                  "%s: host drain phases %r" % (x.ip, drains))
            check(x.body() == "fleet v2\n", "%s serves %r after the deploy" % (x.ip, x.body()))
            st = x.status()
            fn = next(f for f in st["functions"] if f["name"] == "app")
            check(fn["totals"]["tasks_lost"] == 0 and fn["totals"]["requests"] > 0,
                  "%s: v2 totals %r" % (x.ip, fn["totals"]))

        # ---- one whole instance SIGKILLed under load ------------------------------
        victim, others = hosts[1], [IPS[0], IPS[2]]
        wrks.append(start_wrk(lb.front, 30))
        traffic_grows(lb, IPS, 50)
        sent_before = lb.servers()[victim.ip]["stot"]
        killed = victim.sigkill_all()
        t_kill = time.monotonic()
        sent_dying = lb.servers()[victim.ip]["stot"] - sent_before
        check(len(killed) >= 3, "the host had %d processes, not a supervisor and two workers"
              % len(killed))
        h.wait_until(lambda: not victim.live_pids(), 5, "the killed host's processes to go")
        h.wait_until(lambda: lb.servers()[victim.ip]["status"].startswith("DOWN"), 10,
                     "HAProxy to mark the killed host DOWN")
        down_ms = (time.monotonic() - t_kill) * 1000
        sent_at_down = lb.servers()[victim.ip]["stot"]
        traffic_grows(lb, others, 3000)
        check(lb.servers()[victim.ip]["stot"] == sent_at_down,
              "HAProxy kept sending to the dead host: %d -> %d sessions"
              % (sent_at_down, lb.servers()[victim.ip]["stot"]))
        w = stop_wrk(wrks.pop())
        # What the kill costs the client: a 502 for a request HAProxy had sent, or the
        # connection closed (HAProxy leaves the retry to the client when it cannot
        # tell whether the request on a kept connection was processed). Only a request
        # that was on the host can fail so: in flight when it died (with `http-reuse
        # never` a server connection belongs to one client connection, and each of
        # wrk's has one request out: at most WRK_CONNS), or sent to it while it was
        # dying (HAProxy's count of requests to it across the kill). Once it is dead a
        # new connection is refused and the request goes to another host (retries,
        # redispatch).
        lost = wrk_errors(w)
        on_it = WRK_CONNS + sent_dying
        check(w["requests"] > 0 and lost <= on_it,
              "%d failed requests: more than were on the host (%d in flight at most, %d "
              "sent while it died)\n%s" % (lost, WRK_CONNS, sent_dying, w["text"]))
        check(not victim.live_pids(), "processes of the killed host live on: %r"
              % victim.live_pids())
        print("# SIGKILL of one host: %d failed (%d non-2xx, socket %r) of %d requests, "
              "at most %d on it (%d sent while it died), %d sent to it (and retried "
              "elsewhere) until DOWN, HAProxy DOWN after %.0f ms (fall %d x inter %d ms)"
              % (lost, w["non2xx"], w["socket_errors"], w["requests"], on_it, sent_dying,
                 sent_at_down - sent_before, down_ms, FALL, INTER_MS))
        # How soon is HAProxy's own speed, printed here and judged by scripts/bench.sh
        # (PHASES=fleet); what the test holds is that nothing reaches the host after.
        # Afterwards the two hosts left serve everything.
        wrks.append(start_wrk(lb.front, 2))
        out, _ = wrks[-1].communicate(timeout=20)
        wrks.pop()
        w = h.parse_wrk(out.decode(errors="replace"))
        check(w["requests"] > 0 and w["non2xx"] == 0 and not any(w["socket_errors"].values()),
              "errors with one host down: %s" % w["text"])

        # The two left stop with their host drain and lose nothing either.
        for x in (hosts[0], hosts[2]):
            for pid in list(x.pids):
                if h.alive(pid):
                    os.kill(pid, signal.SIGTERM)
        for x in (hosts[0], hosts[2]):
            h.wait_until(lambda: not x.live_pids(), 20, "%s to exit" % x.ip)
            s = summaries(x)
            check(len(s) == (3 if x is ctrl else 2) and all(r["tasks_lost"] == "0" for r in s),
                  "%s: exit summaries %r" % (x.ip, s))
    finally:
        for p in wrks:
            p.kill()
            p.wait()
        lb.stop()
        for x in hosts:
            x.kill()
            remove_cgroups(x.parent)


if __name__ == "__main__":
    h.main()
