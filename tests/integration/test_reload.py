"""test_reload.py - SIGHUP reload under load (SPEC §6): the new generation takes over
without one failed request or lost task, the old one drains under the reaping rule, and
an invalid file changes nothing."""

import os
import signal
import subprocess
import time

import harness as h
from harness import check, test



@test
def five_reloads_under_wrk():
    # A background task per request (wrk does not pace itself: a short task keeps the
    # pool from filling up) so every drain has tasks to finish.
    fn = h.function("slow", workers=2, limits={"task_threads": 64, "max_pending_tasks": 1000000, "drain_timeout_ms": 30000})
    with h.Supervisor([fn], name="reload-load") as sv:
        p = subprocess.Popen(h.wrk_cmd(sv.port(), threads=2, conns=32, duration=10,
                                       path="/?ms=1"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            for i, n in enumerate((3, 1, 4, 2, 3)):
                time.sleep(1.2)
                sv.rewrite_config(lambda c: c["functions"][0].update(workers=n))
                sv.send(signal.SIGHUP)
                sv.wait_ready(n=i + 2, timeout=15)
                gen = str(i + 2)
                h.wait_until(lambda: len([r for r in sv.events("worker_state", to="ready")
                                          if r["gen"] == gen]) == n, 10,
                             "%d workers of generation %s" % (n, gen))
            out, _ = p.communicate(timeout=40)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        res = h.parse_wrk(out.decode(errors="replace"))
        check(res["requests"] > 1000, "only %d requests\n%s" % (res["requests"], res["text"]))
        check(not res["socket_errors"], "socket errors %r\n%s" % (res["socket_errors"], res["text"]))
        check(res["non2xx"] == 0, "%d non-2xx\n%s" % (res["non2xx"], res["text"]))
        code = sv.stop(timeout=60)
        check(code == 0, "exit %r" % code)
    s = sv.events("summary")[-1]
    check(s["tasks_lost"] == "0", "tasks lost: %r" % s)
    check(s["tasks_started"] == s["tasks_completed"], "started != completed: %r" % s)
    check(int(s["tasks_started"]) >= res["requests"] * 0.99,
          "tasks started %s for %d requests" % (s["tasks_started"], res["requests"]))
    # Every old-generation worker drained before it was reaped.
    for r in sv.events("worker_state", to="exited"):
        check(r["from"] in ("drained",), "worker %s of gen %s exited from %s"
              % (r["pid"], r["gen"], r["from"]))
    check(not sv.events("worker_state", to="crashed"), "a worker crashed")


@test
def invalid_reload_keeps_serving():
    with h.Supervisor([h.function("hello", workers=2)], name="reload-bad") as sv:
        before = sorted(sv.workers("hello").values())
        with open(sv.conf_path) as f:
            good = f.read()
        bad = good.replace('"workers": 2', '"workers": 2,\n      "wrokers": 3')
        check(bad != good, "test could not build the invalid file")
        with open(sv.conf_path, "w") as f:
            f.write(bad)
        sv.send(signal.SIGHUP)
        err = sv.wait_event("reload_failed", timeout=10)
        msg = err.get("msg", "")
        check("functions[0].wrokers" in msg and "unknown key" in msg, "error: %r" % msg)
        check(":%d:" % (bad.split("\n").index('      "wrokers": 3') + 1) in msg,
              "no line:column in %r" % msg)
        time.sleep(0.3)  # nothing should start; give it the chance to go wrong
        check(sorted(sv.workers("hello").values()) == before, "workers changed")
        check(len(sv.events("ready")) == 1, "a new generation became ready")
        for i in range(10):
            check(h.request(sv.port(), "/").status == 200, "request %d failed" % i)


@test
def reload_adds_and_removes_functions_and_listeners():
    hello = h.function("hello", workers=1)
    echo = h.function("echo", workers=1)
    with h.Supervisor([hello], name="reload-fns") as sv:
        hello_port, echo_port = hello["port"], echo["port"]
        extra = h.free_port()

        def change(conf):
            # hello gains a second listener; echo arrives with its own.
            conf["functions"][0]["listen"].append("127.0.0.1:%d" % extra)
            conf["functions"].append({k: v for k, v in echo.items() if k != "port"})
        sv.rewrite_config(change)
        sv.send(signal.SIGHUP)
        sv.wait_ready(n=2, timeout=15)
        check(h.request(hello_port).body == b"hello\n", "hello's old listener")
        check(h.request(extra).body == b"hello\n", "hello's added listener")
        r = h.request(echo_port, "/added")
        check(r.status == 200 and b"path=/added" in r.body, "added echo: %r" % r)

        def drop(conf):
            # hello goes away with both its listeners; echo stays.
            conf["functions"] = [f for f in conf["functions"] if f["name"] == "echo"]
        sv.rewrite_config(drop)
        sv.send(signal.SIGHUP)
        sv.wait_ready(n=3, timeout=15)
        h.wait_until(lambda: not h.get_ok(hello_port, timeout=1), 10, "hello's listener to close")
        check(not h.get_ok(extra, timeout=1), "hello's added listener still answers")
        check(h.request(echo_port, "/still").status == 200, "echo after removing hello")
        h.wait_until(lambda: sv.events("worker_exit", fn="hello"), 10, "hello's worker to exit")
        ex = sv.events("worker_exit", fn="hello")[-1]
        check(ex.get("code") == "0", "hello's worker ended %r" % ex)


@test
def sigusr1_reopens_the_log_file():
    d = h.tmpdir("logrot")
    path = os.path.join(d, "edgevisor.log")
    sv = h.Supervisor([h.function("hello", workers=1)], name="logrot", log_file=path)
    try:
        sv.start(wait=False)                 # its log goes to PATH, not to stderr
        h.wait_until(lambda: os.path.exists(path) and b"ev=ready" in open(path, "rb").read(),
                     10, "ev=ready in the log file")
        os.rename(path, path + ".1")          # what logrotate does
        sv.send(signal.SIGUSR1)
        h.wait_until(lambda: os.path.exists(path), 5, "a new log file after SIGUSR1")
        check(h.request(sv.port()).status == 200, "request after the rotation")
        sv.send(signal.SIGHUP)               # something that logs
        h.wait_until(lambda: b"ev=reload_done" in open(path, "rb").read(), 10,
                     "the reload logged into the new file")
        old = open(path + ".1", "rb").read()
        check(b"ev=reload " not in old, "the old file still got new lines")
        check(sv.stop() == 0, "exit code after SIGTERM")
    finally:
        sv.cleanup()


@test
def reload_to_a_failing_generation_keeps_the_old_one_serving():
    """The new generation's init fails (the library loads, so the file is accepted):
    it is marked failed, the old workers keep the function, no request fails."""
    fn = h.function("hello", workers=1)
    with h.Supervisor([fn], name="reload-badinit") as sv:
        old = list(sv.workers("hello").values())
        sv.rewrite_config(lambda c: c["functions"][0].update(library=h.lib("initfail")))
        with h.Prober(sv.port(), interval=0.02) as probe:
            sv.send(signal.SIGHUP)
            sv.wait_event("function_failed", fn="hello", timeout=30)
            sv.wait_event("reload_kept_old", fn="hello", timeout=10)
            time.sleep(0.3)   # traffic after the switch must still reach the old worker
        probe.check("hello across a reload whose workers fail", min_ok=20)
        check(list(sv.workers("hello").values()) == old, "the old worker was replaced")
        # A later good reload recovers the function.
        sv.rewrite_config(lambda c: c["functions"][0].update(library=h.lib("hello")))
        sv.send(signal.SIGHUP)
        h.wait_until(lambda: sv.events("reload_done", gen="3"), 15, "generation 3")
        check(h.request(sv.port()).status == 200, "hello after the recovering reload")


if __name__ == "__main__":
    h.main()
