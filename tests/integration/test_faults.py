"""test_faults.py - faults under load, each with its assertion (README "Reliability"):
a SIGKILL storm on one function's workers while wrk runs; a SIGSTOPped (hung)
worker; the supervisor stopped for 2 s; the supervisor SIGKILLed; functions whose
init fails or crashes; a missing or wrong-API library; descriptor exhaustion in the
supervisor and in a worker; a log target that is full or unwritable; an admin socket
path taken by a stale file.

EDGEVISOR_SOAK=N (tests/soak/run.sh) multiplies the storm and load durations by N.
"""

import http.client
import json
import os
import random
import resource
import signal
import socket
import subprocess
import threading
import time

import harness as h
from harness import check, test

SOAK = int(os.environ.get("EDGEVISOR_SOAK", "1") or 1)
CG_ROOT = "/sys/fs/cgroup"
_seq = [0]


def parent_name(tag):
    _seq[0] += 1
    return "edgevisor-flt-%s-%d-%d" % (tag, os.getpid(), _seq[0])


def own_cgroup_dirs(parent, version):
    """{hierarchy: <our cgroup>/PARENT dir} where the supervisor (our child, so it
    starts in our cgroups) builds its base: on v1 one per controller line (cpu,
    cpuacct, memory, pids), on v2 the `0::` line (as test_isolation.py reads it)."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if version == "v2":
                if ctrls == "":
                    out["unified"] = os.path.normpath("%s/%s/%s" % (CG_ROOT, path, parent))
                continue
            for c in ctrls.split(",") if ctrls else []:
                if c in ("memory", "cpu", "cpuacct", "pids"):
                    out[c] = os.path.normpath("%s/%s/%s/%s" % (CG_ROOT, c, path, parent))
    check(out, "no %s line in /proc/self/cgroup" % version)
    return out


def rss_kb(pid):
    return int(h.proc_status(pid)["VmRSS"][0])


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def ready(sv, fn, n, timeout=10):
    return h.wait_until(lambda: (lambda w: len(w) >= n and w)(sv.workers(fn)), timeout,
                        "%d ready %s workers" % (n, fn))


def summary(sv, fn):
    recs = sv.events("function_summary", fn=fn)
    check(recs, "no function_summary for %s" % fn)
    return {k: int(v) for k, v in recs[-1].items() if v.isdigit()}


# ---- SIGKILL storm ------------------------------------------------------------------

@test
def sigkill_storm_under_wrk():
    storm_s = 10 * SOAK
    victim = h.function("victim", library="slow", workers=4,
                        limits={"max_pending_tasks": 64, "task_threads": 8})
    bystander = h.function("hello", workers=2)
    with h.Supervisor([victim, bystander], name="storm") as sv:
        ready(sv, "victim", 4)
        spared = ready(sv, "hello", 2)
        # Warm up, then the baseline of the supervisor's fds and memory.
        h.wrk(sv.port("hello"), threads=1, conns=16, duration=1)
        h.wrk(sv.port("victim"), threads=1, conns=8, duration=1, path="/?ms=50&n=1")
        ready(sv, "victim", 4)
        base_fds = h.settled_fd_count(sv.pid)
        base_rss = rss_kb(sv.pid)
        w_hello = subprocess.Popen(h.wrk_cmd(sv.port("hello"), threads=1, conns=16,
                                             duration=storm_s + 2),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        w_victim = subprocess.Popen(h.wrk_cmd(sv.port("victim"), threads=1, conns=8,
                                              duration=storm_s + 2, path="/?ms=50&n=1"),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        killed = []
        try:
            with h.Prober(sv.port("hello"), interval=0.01) as probe:
                time.sleep(0.5)
                t_end = time.monotonic() + storm_s
                while time.monotonic() < t_end:
                    live = [p for p in sv.workers("victim").values()
                            if h.alive(p) and p not in killed]
                    if live:
                        p = random.choice(live)
                        os.kill(p, signal.SIGKILL)
                        killed.append(p)
                    time.sleep(0.2)
            out_h, _ = w_hello.communicate(timeout=60)
            out_v, _ = w_victim.communicate(timeout=60)
        finally:
            for p in (w_hello, w_victim):
                if p.poll() is None:
                    p.kill()
                    p.wait()
        res = h.parse_wrk(out_h.decode(errors="replace"))
        check(len(killed) >= storm_s * 3, "only %d kills in %ds" % (len(killed), storm_s))
        # Untouched workers: every request to them succeeded.
        check(res["requests"] > 1000 and not res["socket_errors"] and not res["non2xx"],
              "bystander wrk not clean: %r non2xx=%d\n%s"
              % (res["socket_errors"], res["non2xx"], res["text"]))
        check(not probe.failures(), "bystander probes failed: %r" % probe.failures()[:3])
        check(sv.workers("hello") == spared, "bystander workers changed: %r -> %r"
              % (spared, sv.workers("hello")))
        # Every killed worker was reaped as a crash and replaced.
        for p in killed:
            ex = sv.wait_event("worker_exit", pid=p, timeout=10)
            check(ex.get("signal") == "9", "worker %d exit %r" % (p, ex))
            check(sv.events("worker_state", pid=p, to="crashed"), "%d not crashed" % p)
        after = ready(sv, "victim", 4, timeout=15)
        check(not set(after.values()) & set(killed), "a killed pid is still listed ready")
        check(not sv.events("function_failed"), "a function was marked failed")
        # Lost tasks: each killed worker's count equals its named task_lost lines.
        lost_total = 0
        for p in killed:
            ex = sv.events("worker_exit", pid=p)[-1]
            named = sv.events("task_lost", pid=p)
            check(int(ex["lost"]) == len(named), "worker %d: lost=%s but %d task_lost lines"
                  % (p, ex["lost"], len(named)))
            check(all(r.get("task_name") == "slow" and r.get("task_id", "0") != "0"
                      for r in named), "task_lost lines without id/name: %r" % named[:2])
            ids = [r["task_id"] for r in named]
            check(len(ids) == len(set(ids)), "worker %d: a task named lost twice" % p)
            lost_total += len(named)
        check(lost_total > 0, "no task was pending in any of %d killed workers" % len(killed))
        check(len(sv.events("task_lost")) == lost_total,
              "task_lost lines from workers that were not killed")
        check(not h.zombies(sv.pid), "zombies: %r" % h.zombies(sv.pid))
        # The supervisor's fds and memory come back to their baseline.
        h.wait_until(lambda: h.fd_count(sv.pid) <= base_fds + 2, 10,
                     "supervisor fds back to %d (now %d)" % (base_fds, h.fd_count(sv.pid)))
        rss = rss_kb(sv.pid)
        check(rss <= base_rss + max(2048, base_rss // 5),
              "supervisor RSS %d KiB after the storm, baseline %d KiB" % (rss, base_rss))
        code = sv.stop()
        check(code == 0, "exit %r" % code)
        # Nothing lost silently: every task started either completed or was named lost.
        s = summary(sv, "victim")
        check(s["tasks_lost"] == lost_total, "summary tasks_lost=%d, named %d"
              % (s["tasks_lost"], lost_total))
        check(s["tasks_started"] == s["tasks_completed"] + s["tasks_failed"] + s["tasks_lost"],
              "tasks do not add up: %r" % s)
        check(summary(sv, "hello")["tasks_lost"] == 0, "bystander lost tasks")
        print("#   %d kills in %ds; %d tasks lost (all named) of %d started; bystander "
              "%d requests clean; fds %d -> %d, RSS %d -> %d KiB"
              % (len(killed), storm_s, lost_total, s["tasks_started"], res["requests"],
                 base_fds, h.fd_count(sv.pid) if sv.running() else base_fds, base_rss, rss))


# ---- hung worker ----------------------------------------------------------------------

@test
def sigstopped_worker_is_found_hung_and_replaced():
    fn = h.function("hello", workers=2, limits={"request_timeout_ms": 1000,
                                                 "beforeunload_grace_ms": 500})
    with h.Supervisor([fn], name="hung") as sv:
        before = ready(sv, "hello", 2)
        victim = sorted(before.values())[0]
        # A silent client on an idle worker is not a hang (its socket was read).
        quiet = [h.connect(sv.port()) for _ in range(4)]
        time.sleep(2.5)
        check(not sv.events("worker_hung"), "idle worker with silent clients called hung")
        for s in quiet:
            s.close()
        with h.Prober(sv.port(), interval=0.02, timeout=8) as probe:
            time.sleep(0.3)
            t_stop = time.monotonic()
            os.kill(victim, signal.SIGSTOP)
            try:
                hung = sv.wait_event("worker_hung", pid=victim, timeout=6)
            finally:
                # The test never leaves a stopped process behind.
                if h.alive(victim):
                    os.kill(victim, signal.SIGCONT)
            t_hung = time.monotonic()
            check(int(hung["stalled_ms"]) >= 1000, "called hung after %sms" % hung["stalled_ms"])
            sv.wait_event("worker_state", pid=victim, to="terminating", timeout=2)
            sv.wait_event("worker_exit", pid=victim, timeout=5)
            new = h.wait_until(lambda: (lambda w: len(w) == 2 and victim not in w.values()
                                        and w)(sv.workers("hello")), 10, "a replacement")
            t_done = time.monotonic()
            time.sleep(1.0)
        lost = probe.failures(since=t_stop)
        late = probe.failures(since=t_done)
        check(not late, "requests failed after the replacement: %r" % late[:3])
        check(not probe.failures(since=0) or all(t >= t_stop for t, _ in probe.failures()),
              "requests failed before the SIGSTOP: %r" % probe.failures()[:3])
        check(probe.ok(since=t_done) > 10, "too few answers after the replacement")
        check(not h.alive(victim), "the hung worker is still alive")
        print("#   hung after %.1fs (stalled_ms=%s); %d requests caught in it failed; "
              "replacement %r" % (t_hung - t_stop, hung["stalled_ms"], len(lost), new))


# ---- the supervisor stopped for 2 s --------------------------------------------------

@test
def supervisor_sigstop_2s_loses_nothing():
    fns = [h.function("hello", workers=2), h.function("slow", workers=2)]
    with h.Supervisor(fns, name="svstop") as sv:
        ready(sv, "hello", 2)
        ready(sv, "slow", 2)
        pids = set(sv.workers("hello").values()) | set(sv.workers("slow").values())
        w = subprocess.Popen(h.wrk_cmd(sv.port("hello"), threads=1, conns=16, duration=6),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            with h.Prober(sv.port("slow"), path="/?ms=200&n=2", interval=0.02,
                        timeout=15) as probe:
                time.sleep(1.5)
                os.kill(sv.pid, signal.SIGSTOP)
                try:
                    time.sleep(2.0)
                finally:
                    os.kill(sv.pid, signal.SIGCONT)
                time.sleep(1.5)
            out, _ = w.communicate(timeout=30)
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
        res = h.parse_wrk(out.decode(errors="replace"))
        check(res["requests"] > 1000 and not res["socket_errors"] and not res["non2xx"],
              "wrk not clean across the stop: %r %d\n%s"
              % (res["socket_errors"], res["non2xx"], res["text"]))
        check(not probe.failures(), "requests failed: %r" % probe.failures()[:3])
        check(probe.ok() > 20, "only %d probe answers" % probe.ok())
        now = set(sv.workers("hello").values()) | set(sv.workers("slow").values())
        check(now == pids, "workers changed: %r -> %r" % (pids, now))
        check(not sv.events("worker_hung") and not sv.events("task_lost"),
              "a worker was called hung or a task lost")
        code = sv.stop()
        check(code == 0, "exit %r" % code)
        s = summary(sv, "slow")
        check(s["tasks_lost"] == 0 and s["tasks_started"] == s["tasks_completed"] ==
              2 * probe.ok(), "tasks: %r, %d requests" % (s, probe.ok()))
        print("#   wrk %d requests clean; %d task requests, %d tasks all completed"
              % (res["requests"], probe.ok(), s["tasks_completed"]))


# ---- the supervisor SIGKILLed ---------------------------------------------------------

@test
def supervisor_sigkill_workers_exit_cgroups_cleaned_next_start():
    parent = parent_name("kill")
    fns = [h.function("hello", workers=2), h.function("hostile", workers=1)]
    sv = h.Supervisor(fns, name="svkill", cgroups="auto", cgroup_parent=parent)
    sv2 = None
    try:
        sv.start()
        rec = sv.wait_event("cgroup_init", timeout=5)
        version = rec.get("version")
        check(version in ("v1", "v2"), "cgroups are not on: %r" % rec)
        dirs = own_cgroup_dirs(parent, version)
        check(rec.get("base") in dirs.values(), "cgroup_init base=%s is none of %r"
              % (rec.get("base"), dirs))
        # test_vm_cgroup_v2.py checks this line to know the VM really ran v2.
        print("#   supervisor_sigkill_workers_exit_cgroups_cleaned_next_start: cgroup %s "
              "base=%s" % (version, rec.get("base")), flush=True)
        ready(sv, "hello", 2)
        ready(sv, "hostile", 1)
        r = h.request(sv.port("hostile"), "/?do=fork&n=3")
        check(r.status == 200, "fork request: %r" % r)
        strays = [int(x) for x in r.body.split()[1:]]
        check(len(strays) == 3 and all(h.alive(p) for p in strays), "strays %r" % strays)
        workers = set(sv.worker_pids_seen())
        live = [p for p in workers if h.alive(p)]
        os.kill(sv.pid, signal.SIGKILL)
        sv.proc.wait(5)
        # PDEATHSIG: every worker goes by itself, and takes the tenant's strays along.
        h.wait_until(lambda: not [p for p in live + strays if h.alive(p)], 10,
                     "workers and their strays to exit after the supervisor's SIGKILL")
        check(not h.session_pids(sv.pid), "orphans: %r" % h.session_pids(sv.pid))
        old = {}
        for d in dirs.values():
            for fn in ("hello", "hostile"):
                fd = os.path.join(d, fn)
                for x in os.listdir(fd) if os.path.isdir(fd) else []:
                    if x.startswith("w"):
                        old[os.path.join(fd, x)] = os.stat(os.path.join(fd, x)).st_ino
        # A worker cannot remove the cgroup it dies in: each leaves its w<N> behind.
        for d in dirs.values():
            for fn, n in (("hello", 2), ("hostile", 1)):
                left = [p for p in old if p.startswith(os.path.join(d, fn) + "/")]
                check(len(left) >= n, "%d stale worker cgroups of %s in %s, want %d (the "
                      "test needs them): %r" % (len(left), fn, d, n, sorted(old)))
        # The next start with the same base removes what the dead one left.
        sv2 = h.Supervisor(fns, name="svkill2", cgroups="auto", cgroup_parent=parent)
        for f in sv2.functions:
            f["port"] = sv.ports[f["name"]]
        sv2.start()
        stale = sv2.events("cgroup_stale")
        check(not old or stale, "no ev=cgroup_stale at the next start")
        ready(sv2, "hello", 2)
        check(h.request(sv2.port("hello")).status == 200, "restarted supervisor does not serve")
        # Same names may come back (worker ids restart at 1), never the same dirs.
        kept = [p for p, ino in old.items()
                if os.path.exists(p) and os.stat(p).st_ino == ino]
        check(not kept, "stale worker cgroups survived the next start: %r" % kept)
        code = sv2.stop()
        check(code == 0 and not sv2.leftovers, "stop: %r %r" % (code, sv2.leftovers))
        for d in dirs.values():
            check(not os.path.exists(d), "cgroup %s left after the clean stop" % d)
        print("#   %d workers + %d strays gone after SIGKILL; %d stale worker cgroups "
              "removed at the next start" % (len(live), len(strays), len(old)))
    finally:
        sv.cleanup()
        if sv2 is not None:
            sv2.cleanup()


# ---- init fails / crashes at start ---------------------------------------------------------

@test
def failing_init_is_reported_throttled_and_contained():
    fns = [h.function("initfail", workers=2), h.function("initcrash", workers=2),
           h.function("hello", workers=1)]
    sv = h.Supervisor(fns, name="initf")
    sv.start(wait=False)
    with sv:
        # Hello serves while the other two crash-loop at start.
        h.wait_until(lambda: h.get_ok(sv.port("hello")), 10, "hello to serve")
        with h.Prober(sv.port("hello"), interval=0.02) as probe:
            sv.wait_ready(timeout=20)
            for fn in ("initfail", "initcrash"):
                sv.wait_event("function_failed", fn=fn, timeout=15)
            time.sleep(2.0)
        check(not probe.failures(), "hello failed meanwhile: %r" % probe.failures()[:3])
        check(probe.ok() > 50, "hello answered only %d" % probe.ok())
        check(len(sv.workers("hello")) == 1 and not sv.events("worker_exit", fn="hello"),
              "hello's worker was disturbed")
        why = [r.get("why", "") for r in sv.events("worker_init_failed", fn="initfail")]
        check(why and all("init returned an error" in w for w in why), "initfail: %r" % why[:2])
        crashes = sv.events("worker_exit", fn="initcrash")
        check(crashes and all(r.get("signal") == "11" for r in crashes),
              "initcrash exits: %r" % crashes[:2])
        for fn in ("initfail", "initcrash"):
            spawns = [r for r in sv.events("worker_state", fn=fn, to="starting")]
            check(8 <= len(spawns) <= 10, "%s: %d spawns (want about 8, no storm)"
                  % (fn, len(spawns)))
            failed = sv.events("function_failed", fn=fn)[0]
            check(not [r for r in spawns if r["ts"] > failed["ts"]],
                  "%s: spawned after function_failed" % fn)
            # One spawn at a time after the first crashes, spaced by the backoff.
            ts = [time.mktime(time.strptime(r["ts"][:19], "%Y-%m-%dT%H:%M:%S")) +
                  float("0." + r["ts"][20:23]) for r in spawns]
            span = ts[-1] - ts[0]
            check(span >= 2.5, "%s: %d spawns within %.2fs: no backoff" % (fn, len(ts), span))
            r = h.request(sv.port(fn), timeout=5)
            check(r.status == 503, "%s answered %d, want 503" % (fn, r.status))
        print("#   initfail %d spawns, initcrash %d spawns; hello %d answers, none failed"
              % (len(sv.events("worker_state", fn="initfail", to="starting")),
                 len(sv.events("worker_state", fn="initcrash", to="starting")), probe.ok()))


# ---- missing or wrong-API library ---------------------------------------------------------

def conf_with(sv_dir, library, port, admin=None):
    path = os.path.join(sv_dir, "bad-%s.conf" % os.path.basename(library))
    with open(path, "w") as f:
        json.dump({"cgroups": "off", "admin": admin, "functions": [
            {"name": "f", "library": library, "listen": ["127.0.0.1:%d" % port]}]}, f)
    return path


@test
def bad_library_refused_at_check_start_and_reload():
    d = h.tmpdir("badlib")
    missing = os.path.join(d, "nothing-here.so")
    cases = [(missing, "No such file"), (h.lib("badapi"), "API version mismatch")]
    for lib, want in cases:
        port = h.free_port()
        path = conf_with(d, lib, port)
        code, out = h.check_config(path)
        check(code == 1 and lib in out and want in out,
              "-t on %s: exit %d, %r" % (lib, code, out))
        p = subprocess.run([h.EDGEVISOR, "-c", path], capture_output=True, timeout=15,
                           stdin=subprocess.DEVNULL, start_new_session=True)
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 1 and lib in err and want in err,
              "start with %s: exit %d, %r" % (lib, p.returncode, err))
        s = socket.socket()
        try:
            check(s.connect_ex(("127.0.0.1", port)) != 0, "port listening after refusal")
        finally:
            s.close()
    with h.Supervisor([h.function("hello", workers=1)], name="badlib") as sv:
        pids = sv.workers("hello")
        good = open(sv.conf_path).read()
        for lib, want in cases:
            conf = json.loads(good)
            conf["functions"][0]["library"] = lib
            with open(sv.conf_path, "w") as f:
                json.dump(conf, f)
            n = len(sv.events("reload_failed"))
            sv.send(signal.SIGHUP)
            rec = sv.wait_event("reload_failed", count=n + 1, timeout=10)
            check(lib in rec.get("msg", "") and want in rec.get("msg", ""),
                  "reload_failed says %r" % rec)
            check(h.request(sv.port()).status == 200, "service stopped after a bad reload")
        check(sv.workers("hello") == pids, "workers changed after refused reloads")
        check(not [r for r in sv.events("worker_state") if r.get("gen") != "1"],
              "a worker of a refused generation was spawned")
        with open(sv.conf_path, "w") as f:
            f.write(good)


# ---- descriptor exhaustion ------------------------------------------------------------------

@test
def supervisor_out_of_fds_pauses_accept_without_spinning():
    with h.Supervisor([h.function("hello", workers=1)], name="emfile") as sv:
        ready(sv, "hello", 1)
        check(h.request(sv.port()).status == 200, "no answer before")
        soft, hard = resource.prlimit(sv.pid, resource.RLIMIT_NOFILE)
        n = h.settled_fd_count(sv.pid)
        resource.prlimit(sv.pid, resource.RLIMIT_NOFILE, (n, hard))
        results = []
        try:
            def one(i):
                return h.request(sv.port(), "/emfile/%d" % i, timeout=20).status
            ts = [threading.Thread(target=lambda i=i: results.append(one(i)))
                  for i in range(30)]
            for t in ts:
                t.start()
            sv.wait_event("accept_paused", timeout=5)
            c0, t0 = cpu_s(sv.pid), time.monotonic()
            time.sleep(2.0)
            used = (cpu_s(sv.pid) - c0) / (time.monotonic() - t0)
            pauses = len(sv.events("accept_paused"))
        finally:
            resource.prlimit(sv.pid, resource.RLIMIT_NOFILE, (soft, hard))
        for t in ts:
            t.join(25)
        sv.wait_event("accept_resumed", timeout=5)
        check(used < 0.10, "supervisor used %.0f%% CPU while out of fds" % (used * 100))
        check(pauses <= 40, "%d accept_paused lines in ~2s" % pauses)
        check(results.count(200) == 30, "after the fds came back: %r" % results)
        check(h.request(sv.port()).status == 200, "no answer after")
        print("#   out of fds: %.1f%% CPU, %d pauses; all 30 held clients answered"
              % (used * 100, pauses))


@test
def worker_out_of_fds_drops_handoffs_reports_and_is_replaced():
    fn = h.function("hello", workers=1, limits={"nofile": 64})
    with h.Supervisor([fn], name="wkfd") as sv:
        old = list(ready(sv, "hello", 1).values())[0]
        held = []
        try:
            for _ in range(150):
                s = h.connect(sv.port())
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                held.append(s)
            sv.wait_event("handoff_lost", timeout=10)
            # It asked to be replaced: a fresh worker takes new connections.
            h.wait_until(lambda: [p for p in sv.workers("hello").values() if p != old], 10,
                         "a replacement worker")
        finally:
            for s in held:
                s.close()
        for i in range(20):
            r = h.request(sv.port(), "/after/%d" % i)
            check(r.status == 200, "request %d after: %d" % (i, r.status))
        sv.wait_event("worker_exit", pid=old, timeout=10)
        print("#   %d handoff_lost lines; replaced worker %d" %
              (len(sv.events("handoff_lost")), old))


# ---- log target, admin socket -------------------------------------------------------------

@test
def full_or_unwritable_log_target():
    # /dev/full: every write fails with ENOSPC. Serving, reload, reopen and a worker
    # crash go on; SIGTERM still exits 0.
    fn = h.function("hello", workers=1)
    sv = h.Supervisor([fn], name="logfull", log_file="/dev/full")
    sv.start(wait=False)
    with sv:
        h.wait_until(lambda: h.get_ok(sv.port()), 10, "service with a full log")
        h.wait_until(lambda: h.children(sv.pid), 5, "a worker")
        first = set(h.children(sv.pid))
        # A reload rolls only a changed function: change it.
        sv.rewrite_config(lambda c: c["functions"][0].setdefault("limits", {})
                          .update(request_timeout_ms=29000))
        for sig in (signal.SIGUSR1, signal.SIGHUP):
            sv.send(sig)
        # The reload's new worker replaces the old one (seen without the log).
        new = h.wait_until(lambda: (lambda k: len(k) == 1 and not set(k) & first and k)
                           ([p for p in h.children(sv.pid) if h.alive(p)]), 10,
                           "the reload's worker alone")
        check(h.get_ok(sv.port()), "no service after the reload")
        os.kill(new[0], signal.SIGKILL)
        h.wait_until(lambda: (lambda k: k and new[0] not in k)
                     ([p for p in h.children(sv.pid) if h.alive(p)]) and
                     h.get_ok(sv.port()), 10, "service after a worker crash with a full log")
        check(sv.running(), "supervisor died")
    # A log file that cannot be opened: one clear line, exit 1, nothing listening.
    port = h.free_port()
    bad = os.path.join(h.tmpdir("logbad"), "no-such-dir", "ev.log")
    sv = h.Supervisor([h.function("hello", port=port)], name="logbad", log_file=bad)
    try:
        sv.start(wait=False)
        code = sv.proc.wait(10)
        text = open(sv.log_path).read()
        check(code == 1 and bad in text and "No such file" in text,
              "unopenable log: exit %r, %r" % (code, text))
        check(h.get_ok(port) is False, "it served anyway")
    finally:
        sv.cleanup()


@test
def admin_path_taken_by_stale_file():
    d = h.tmpdir("adm")
    path = os.path.join(d, "admin.sock")
    with open(path, "w") as f:
        f.write("not a socket\n")
    port = h.free_port()
    sv = h.Supervisor([h.function("hello", port=port)], name="admfile", admin="unix:" + path)
    try:
        sv.start(wait=False)
        code = sv.proc.wait(10)
        text = open(sv.log_path).read()
        check(code == 1 and path in text and "not a socket" in text,
              "regular file at the admin path: exit %r, %r" % (code, text))
        check(open(path).read() == "not a socket\n", "it clobbered the file")
        check(not h.session_pids(sv.pid), "processes left: %r" % h.session_pids(sv.pid))
    finally:
        sv.cleanup()
    # A dead socket (bound, then its owner went away): replaced, and served.
    os.unlink(path)
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    with h.Supervisor([h.function("hello")], name="admstale", admin="unix:" + path):
        check(_unix_get_ok(path, "/status"), "admin did not answer")


def _unix_get_ok(path, target):
    """True when GET TARGET over the unix socket at PATH is answered 200."""
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(path)
        c.sendall(b"GET %s HTTP/1.0\r\n\r\n" % target.encode())
        return b"200" in h.read_until_close(c).split(b"\r\n")[0]
    finally:
        c.close()


def _start_with_unix_listener(name, path):
    """A supervisor serving hello on a fresh port and on unix:PATH (not started)."""
    fn = h.function("hello")
    fn["listen"].append("unix:" + path)
    return h.Supervisor([fn], name=name)


def _refused(name, path):
    """Starts one on unix:PATH that must refuse: (exit code, listen_failed message)."""
    sv = _start_with_unix_listener(name, path)
    try:
        sv.start(wait=False)
        code = sv.proc.wait(15)
        msg = sv.wait_event("listen_failed").get("msg", "")
        check(not h.session_pids(sv.pid), "processes left: %r" % h.session_pids(sv.pid))
        return code, msg
    finally:
        sv.cleanup()


@test
def listen_path_taken():
    """The one stale-socket policy holds for listeners too: a unix listen path held by
    a live process is refused (never stolen), a dead socket is replaced, a file is
    never removed."""
    path = os.path.join(h.tmpdir("lsn"), "fn.sock")
    live = socket.socket(socket.AF_UNIX)
    try:
        live.bind(path)
        live.listen(1)
        ino = os.stat(path).st_ino
        code, msg = _refused("lsnlive", path)
        check(code == 1 and "in use by another process" in msg and path in msg,
              "live socket at a listen path: exit %r, %r" % (code, msg))
        check(os.stat(path).st_ino == ino, "the live socket was replaced")
    finally:
        live.close()
    # Its owner gone, the file left behind: replaced, and served.
    with _start_with_unix_listener("lsnstale", path):
        check(_unix_get_ok(path, "/"), "no answer on the socket")
    check(not os.path.exists(path), "the listen socket was left behind")
    with open(path, "w") as f:
        f.write("keep\n")
    code, msg = _refused("lsnfile", path)
    check(code == 1 and "not a socket" in msg, "file: exit %r, %r" % (code, msg))
    check(open(path).read() == "keep\n", "the file was touched")

if __name__ == "__main__":
    h.main()
