"""test_ondemand.py - pools that size themselves: a function at min_workers 0 has no
process until its first request, is served through a cold start held in the
supervisor, shrinks back to zero when idle (never while a background task is
pending), grows under a burst no further than max_workers, and its cgroup exists only
while it has workers. Real supervisor, workers and cgroups."""

import json
import os
import signal
import socket
import threading

import harness as h
from harness import check, test
from test_admin import ctl, fn_status, status
from test_isolation import base_dirs, host_version, parent_name, remove_cgroups


def live_workers(sv):
    return [p for p in h.children(sv.pid) if h.alive(p) and p not in h.zombies(sv.pid)]


@test
def scale_to_zero_cold_start_and_back():
    fn = h.function("zero", library="hello")
    del fn["workers"]
    fn.update(min_workers=0, max_workers=2, scale_idle_ms=400)
    parent = parent_name("ondemand")
    try:
        with h.Supervisor([fn], name="ondemand-zero", cgroups="auto", cgroup_parent=parent) as sv:
            dirs = base_dirs(host_version(), parent)
            fn_dirs = [os.path.join(d, "zero") for d in dirs.values()]
            check(sv.events("ready"), "not ready with min_workers 0")
            check(live_workers(sv) == [], "a worker before any request: %r" % live_workers(sv))
            check(not any(os.path.exists(d) for d in fn_dirs),
                  "the function's cgroup exists before it has a worker")
            st = fn_status(status(sv), "zero")
            check(st["state"] == "cold" and st["scaling"]["min_workers"] == 0, "status %r" % st)

            check(h.status_line(sv.port()) == "HTTP/1.1 200 OK", "first request")
            pids = live_workers(sv)
            check(len(pids) == 1, "workers after the first request: %r" % pids)
            check(all(os.path.exists(d) for d in fn_dirs), "no function cgroup with a worker")
            st = fn_status(status(sv), "zero")
            check(st["scaling"]["cold_starts"] == 1, "cold starts %r" % st["scaling"])
            check(st["state"] == "ready", "state %r" % st["state"])

            # Idle past scale_idle_ms: retired through the normal drain, back to zero.
            sv.wait_event("scale_down", fn="zero", timeout=10)
            h.wait_until(lambda: live_workers(sv) == [], 10, "the pool back at zero")
            h.wait_until(lambda: not any(os.path.exists(d) for d in fn_dirs), 10,
                         "the function's cgroup removed at zero")
            ex = sv.wait_event("worker_state", fn="zero", to="exited")
            check(ex["from"] == "drained", "scaled-down worker exited from %s" % ex["from"])
            st = fn_status(status(sv), "zero")
            check(st["state"] == "cold" and st["scaling"]["scale_downs"] == 1, "status %r" % st)
            # And it comes back.
            check(h.status_line(sv.port()) == "HTTP/1.1 200 OK", "request after scaling to zero")
            check(fn_status(status(sv), "zero")["scaling"]["cold_starts"] == 2, "second cold start")
    finally:
        remove_cgroups(parent)


@test
def pending_task_keeps_an_idle_worker():
    fn = h.function("bgz", library="background")
    del fn["workers"]
    fn.update(min_workers=0, max_workers=1, scale_idle_ms=300)
    with h.Supervisor([fn], name="ondemand-task") as sv:
        check(h.status_line(sv.port(), "/?ms=2000") == "HTTP/1.1 200 OK", "request with a 2 s task")
        down = sv.wait_event("scale_down", fn="bgz", timeout=15)
        # Retired only once its task was done: the drain started with nothing pending.
        leave = sv.wait_event("worker_state", fn="bgz", to="draining")
        check(leave["pending"] == "0", "retired with %s task(s) pending" % leave["pending"])
        h.wait_until(lambda: live_workers(sv) == [], 10, "the pool back at zero")
        tot = fn_status(status(sv), "bgz")["totals"]
        check(tot["tasks_lost"] == 0, "tasks lost %r" % tot)
        check(tot["tasks_completed"] == tot["tasks_started"] >= 2, "tasks %r" % tot)
        check(down, "no scale_down")


@test
def burst_on_a_cold_function_stays_within_max_workers():
    fn = h.function("burst", library="hello")
    del fn["workers"]
    fn.update(min_workers=0, max_workers=4, scale_target=1, scale_idle_ms=60000)
    with h.Supervisor([fn], name="ondemand-burst") as sv:
        results = []
        lock = threading.Lock()

        def one():
            try:
                r = h.status_line(sv.port())
            except OSError as e:
                r = repr(e)
            with lock:
                results.append(r)

        threads = [threading.Thread(target=one) for _ in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        bad = [r for r in results if r != "HTTP/1.1 200 OK"]
        check(len(results) == 200 and not bad, "%d answers, bad %r" % (len(results), bad[:3]))
        started = sv.events("worker_state", fn="burst", to="starting")
        started += [r for r in sv.events("worker_state", fn="burst") if r.get("from") == "none"]
        spawned = {r["pid"] for r in started}
        check(1 <= len(spawned) <= 4, "%d workers started for a max of 4" % len(spawned))
        print("#   200 concurrent on a cold function: %d workers, %d cold starts"
              % (len(spawned), fn_status(status(sv), "burst")["scaling"]["cold_starts"]))


@test
def workers_key_is_a_fixed_pool():
    """The old "workers" key means min = max: the pool never shrinks for idleness."""
    fn = h.function("fixed", library="hello", workers=2)
    with h.Supervisor([fn], name="ondemand-fixed") as sv:
        st = fn_status(status(sv), "fixed")["scaling"]
        check(st["min_workers"] == 2 and st["max_workers"] == 2, "sizing %r" % st)
        check(len(sv.workers("fixed")) == 2, "two ready workers")


@test
def a_thousand_functions_at_zero():
    """1,000 functions with min_workers 0: start, hold no worker, reload, wake some and
    fall back to zero; generous deadlines (the exact figures are the bench's)."""
    n = 1000
    socks, fns = [], []
    for i in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        fns.append({"name": "t%d" % i, "library": h.lib("hello"), "min_workers": 0,
                    "max_workers": 1, "scale_idle_ms": 500,
                    "listen": ["127.0.0.1:%d" % s.getsockname()[1]],
                    "port": s.getsockname()[1]})
    for s in socks:
        s.close()
    with h.Supervisor(fns, name="ondemand-1000") as sv:
        check(live_workers(sv) == [], "workers at start: %d" % len(live_workers(sv)))
        rss = int(h.proc_status(sv.pid)["VmRSS"][0])
        # ASan's shadow memory and quarantine make its RSS no measure of ours.
        check(rss < (256 if h.ASAN else 64) * 1024,
              "supervisor RSS %d KiB with 1,000 functions" % rss)
        for fn in fns[:50]:
            check(h.status_line(fn["port"]) == "HTTP/1.1 200 OK", "%s did not answer" % fn["name"])
        sv.send(signal.SIGHUP)
        done = sv.wait_event("reload_done", gen="2", timeout=30)
        check(done["kept"] == str(n), "reload of 1,000 unchanged: %r" % done)
        h.wait_until(lambda: live_workers(sv) == [], 30, "the 50 woken functions back at zero")
        print("#   1,000 functions: supervisor RSS %d KiB; 50 woken and back to zero" % rss)


def write_fn(d, fn):
    """functions.d/NAME.json for FN (its test-only "port" stripped)."""
    os.makedirs(os.path.join(d, "functions.d"), exist_ok=True)
    with open(os.path.join(d, "functions.d", fn["name"] + ".json"), "w") as f:
        json.dump({k: v for k, v in fn.items() if k != "port"}, f, indent=2)
        f.write("\n")


@test
def deploy_one_function_file():
    """One file per function: changing, adding, removing or breaking one file and
    reloading touches only that function."""
    fns = [h.function(n, library="hello") for n in ("alpha", "beta", "gamma")]
    conf = {"cgroups": "off", "log_level": "info", "include": "functions.d/*.json"}
    sv = h.Supervisor(fns, name="ondemand-deploy", raw_config="{}")
    conf["admin"] = sv.admin
    with open(sv.conf_path, "w") as f:
        json.dump(conf, f)
    for fn in fns:
        write_fn(sv.dir, fn)
    sv.start()
    with sv:
        before = {n: sv.workers(n) for n in ("alpha", "beta", "gamma")}
        check(all(len(v) == 1 for v in before.values()), "workers %r" % before)
        # Change one file: only beta rolls.
        fns[1]["limits"] = {"request_timeout_ms": 12345}
        write_fn(sv.dir, fns[1])
        sv.send(signal.SIGHUP)
        done = sv.wait_event("reload_done", gen="2", timeout=20)
        check(done["kept"] == "2" and done["rolled"] == "1" and done["rolled_fns"] == "beta",
              "reload_done %r" % done)
        h.wait_until(lambda: sv.workers("beta") and sv.workers("beta") != before["beta"], 10,
                     "beta's new worker")
        check(sv.workers("alpha") == before["alpha"] and sv.workers("gamma") == before["gamma"],
              "an unchanged function's worker was replaced")
        # A bad file refuses the whole reload, names the file, and changes nothing.
        with open(os.path.join(sv.dir, "functions.d", "delta.json"), "w") as f:
            f.write('{"name": "delta", "library": "%s",\n "listen": ["127.0.0.1:%d"],\n'
                    ' "workers": "many"}\n' % (h.lib("hello"), h.free_port()))
        now = {n: sv.workers(n) for n in ("alpha", "beta", "gamma")}
        sv.send(signal.SIGHUP)
        bad = sv.wait_event("reload_failed", timeout=10)
        check("functions.d/delta.json:3:" in bad["msg"] and "workers" in bad["msg"],
              "error %r" % bad["msg"])
        check({n: sv.workers(n) for n in ("alpha", "beta", "gamma")} == now, "a bad file changed workers")
        # Fixed, it is added alone; then removing gamma's file drains gamma alone.
        os.unlink(os.path.join(sv.dir, "functions.d", "delta.json"))
        delta = h.function("delta", library="hello")
        write_fn(sv.dir, delta)
        os.unlink(os.path.join(sv.dir, "functions.d", "gamma.json"))
        sv.send(signal.SIGHUP)
        done = sv.wait_event("reload_done", gen="3", timeout=20)
        check(done["added_fns"] == "delta" and done["removed_fns"] == "gamma" and
              done["kept"] == "2", "reload_done %r" % done)
        check(h.get_ok(delta["port"]), "the added function does not answer")
        sv.wait_event("worker_state", fn="gamma", to="exited", timeout=10)
        check(sv.workers("alpha") == now["alpha"] and sv.workers("beta") == now["beta"],
              "kept functions' workers changed")


@test
def ctl_deploy_and_functions():
    """edgevisorctl deploy NAME waits for NAME's new workers (or says why not);
    edgevisorctl functions lists every function with its state and generation."""
    fns = [h.function("web", library="hello"), h.function("lazy", library="hello")]
    del fns[1]["workers"]
    fns[1].update(min_workers=0, max_workers=2)
    with h.Supervisor(fns, name="ondemand-ctl") as sv:
        rc, out, err = ctl("-s", sv.admin, "functions")
        check(rc == 0, "functions: %d %r" % (rc, err))
        rows = {l.split()[0]: l.split() for l in out.splitlines()[1:] if l.strip()}
        check(rows["web"][1] == "ready" and rows["lazy"][1] == "cold", "functions %r" % rows)
        check(rows["lazy"][3] == "0/2" and rows["web"][3] == "1/1", "min/max %r" % rows)
        # Unchanged: nothing to wait for.
        rc, out, err = ctl("-s", sv.admin, "deploy", "web")
        check(rc == 0 and "unchanged" in out, "deploy unchanged: %d %r %r" % (rc, out, err))
        old = sv.workers("web")
        sv.rewrite_config(lambda c: c["functions"][0].setdefault("limits", {})
                          .update(request_timeout_ms=20000))
        rc, out, err = ctl("-s", sv.admin, "deploy", "web", timeout=60)
        check(rc == 0 and "ready" in out, "deploy web: %d %r %r" % (rc, out, err))
        check(sv.workers("web") and sv.workers("web") != old, "web was not rolled")
        st = fn_status(status(sv), "web")
        gen = int(out.split("generation ")[-1].split()[0])
        check(st["generation"] == gen == status(sv)["supervisor"]["ready_generation"] and
              st["state"] == "ready", "web after deploy (%r) %r" % (out, st))
        # A version whose init fails: deploy says so, exit 1, the old worker serves.
        now = sv.workers("web")
        sv.rewrite_config(lambda c: c["functions"][0].update(library=h.lib("initfail")))
        rc, out, err = ctl("-s", sv.admin, "deploy", "web", timeout=60)
        check(rc == 1 and "fail to start" in err, "deploy initfail: %d %r %r" % (rc, out, err))
        check(sv.workers("web") == now and h.get_ok(fns[0]["port"]), "old web worker gone")
        rc, out, err = ctl("-s", sv.admin, "deploy", "nosuch")
        check(rc == 1 and "no function nosuch" in err, "deploy nosuch: %d %r" % (rc, err))


if __name__ == "__main__":
    h.main()
