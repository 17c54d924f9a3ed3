"""test_background.py - background tasks, the drain/reaping protocol, beforeunload and
the three policies (SPEC §2, §3, §4), against the real supervisor and workers."""

import http.client
import signal
import threading
import time

import harness as h
from harness import check, test


def fn_logs(sv, needle):
    """function_log lines (written by the test functions with edge_log) containing NEEDLE."""
    return [r for r in sv.events("function_log") if needle in r.get("msg", "")]


def transitions_obey_reaping_rule(sv):
    """From the transition log: a worker only reaches `exited` from `drained` or
    `terminating`; any other end is a crash, never a quiet reap of pending work."""
    for r in sv.events("worker_state", to="exited"):
        check(r.get("from") in ("drained", "terminating"),
              "worker %s exited from %s: %r" % (r.get("pid"), r.get("from"), r))
    for r in sv.events("worker_state", to="drained"):
        check(r.get("pending") == "0", "worker %s drained with pending=%s"
              % (r.get("pid"), r.get("pending")))


@test
def response_does_not_wait_for_task():
    with h.Supervisor([h.function("slow", workers=1)], name="bg-latency") as sv:
        t0 = time.monotonic()
        r = h.request(sv.port(), "/?ms=500")
        took = time.monotonic() - t0
        check(r.status == 200, "status %d" % r.status)
        check(took < 0.25, "response took %.3f s with a 500 ms task running" % took)
        check(not fn_logs(sv, "slow done ms=500"), "task finished before the response")
        h.wait_until(lambda: fn_logs(sv, "slow done ms=500"), 5, "the task to complete")
        done_at = time.monotonic() - t0
        check(done_at >= 0.45, "task reported done after only %.3f s" % done_at)
    transitions_obey_reaping_rule(sv)
    s = sv.events("summary")[-1]
    check(s["tasks_started"] == "1" and s["tasks_completed"] == "1" and s["tasks_lost"] == "0",
          "summary %r" % s)


@test
def graceful_stop_completes_1000_tasks():
    fn = h.function("slow", workers=2, limits={"task_threads": 64, "drain_timeout_ms": 60000})
    sv = h.Supervisor([fn], name="bg-1000")
    try:
        sv.start()
        lock = threading.Lock()
        counts = {"ok": 0}

        def client(i):
            conn = h.http.client.HTTPConnection("127.0.0.1", sv.port(), timeout=10)
            try:
                for _ in range(125):
                    conn.request("GET", "/?ms=200")
                    r = conn.getresponse()
                    r.read()
                    if r.status == 200:
                        with lock:
                            counts["ok"] += 1
            finally:
                conn.close()
        errs = [e for e in h.parallel(8, client) if isinstance(e, Exception)]
        check(not errs, "client errors: %r" % errs[:3])
        check(counts["ok"] == 1000, "%d of 1000 requests answered 200" % counts["ok"])
        code = sv.stop(signal.SIGTERM, timeout=60)
        check(code == 0, "exit code %r" % code)
        s = sv.events("summary")[-1]
        check(s["tasks_started"] == "1000", "tasks_started %s" % s["tasks_started"])
        check(s["tasks_completed"] == "1000", "tasks_completed %s" % s["tasks_completed"])
        check(s["tasks_lost"] == "0", "tasks_lost %s" % s["tasks_lost"])
        check(len(fn_logs(sv, "slow done ms=200")) == 1000, "not every task logged done")
        # Each worker reported drained before it was reaped.
        pids = {r["pid"] for r in sv.events("worker_state", to="ready")}
        check(len(pids) == 2, "want 2 workers, saw %r" % pids)
        for pid in pids:
            seq = [r["to"] for r in sv.events("worker_state", pid=pid)]
            check(seq[-3:] == ["draining", "drained", "exited"],
                  "worker %s went %r" % (pid, seq))
        transitions_obey_reaping_rule(sv)
    finally:
        sv.cleanup()


@test
def drain_timeout_sends_sigterm_and_counts_lost():
    fn = h.function("unload", workers=1,
                    limits={"drain_timeout_ms": 300, "beforeunload_grace_ms": 3000})
    sv = h.Supervisor([fn], name="bg-drain-timeout")
    try:
        sv.start()
        check(h.request(sv.port(), "/?ms=20000").status == 200, "request failed")
        code = sv.stop(signal.SIGTERM, timeout=30)
        check(code == 0, "exit code %r" % code)
        hooks = fn_logs(sv, "beforeunload_hook")
        check(hooks, "beforeunload hook never ran")
        hook = hooks[0]["msg"]
        check("reason=termination" in hook, "hook saw %r" % hook)
        deadline = int(hook.split("deadline_ms=")[1].split()[0].strip('"'))
        check(deadline > 0, "deadline %d" % deadline)
        check(sv.events("worker_state", to="terminating"), "worker was never sent SIGTERM")
        lost = sv.events("task_lost", task_name="unload_task")
        check(len(lost) == 1, "task_lost lines: %r" % lost)
        check(sv.events("summary")[-1]["tasks_lost"] == "1", "summary %r" % sv.events("summary"))
        transitions_obey_reaping_rule(sv)
    finally:
        sv.cleanup()


@test
def oneshot_cuts_tasks_and_fires_early_drop():
    fn = h.function("unload", workers=1, policy="oneshot")
    with h.Supervisor([fn], name="bg-oneshot") as sv:
        r = h.request(sv.port(), "/?ms=5000")
        check(r.status == 200, "status %d" % r.status)
        sv.wait_event("task_lost", task_name="unload_task", timeout=10)
        hooks = fn_logs(sv, "beforeunload_hook")
        check(hooks and "reason=early_drop" in hooks[0]["msg"], "hooks %r" % hooks)
        # The pool refills: another request is served by a fresh worker.
        check(h.request(sv.port(), "/").status == 200, "second request failed")
    s = [r for r in sv.events("function_summary") if r["fn"] == "unload"][-1]
    check(s["tasks_lost"] == "1", "function_summary %r" % s)
    transitions_obey_reaping_rule(sv)


@test
def per_request_gives_each_connection_a_fresh_worker():
    fn = h.function("slow", workers=2, policy="per_request")
    with h.Supervisor([fn], name="bg-per-request") as sv:
        for i in range(5):
            r = h.request(sv.port(), "/?ms=100")
            check(r.status == 200, "request %d: %d" % (i, r.status))
        h.wait_until(lambda: len(fn_logs(sv, "slow done ms=100")) == 5, 10, "5 tasks done")
        retired = sv.events("worker_state", to="draining", reason="none")
        check(len({r["pid"] for r in retired}) == 5,
              "want 5 distinct retired workers, got %r" % [r["pid"] for r in retired])
    s = sv.events("summary")[-1]
    check(s["tasks_completed"] == "5" and s["tasks_lost"] == "0", "summary %r" % s)
    transitions_obey_reaping_rule(sv)


@test
def failing_and_timed_out_tasks_reach_the_hook():
    with h.Supervisor([h.function("fail", workers=1)], name="bg-errors") as sv:
        pid = list(sv.workers("fail").values())[0]
        check(h.request(sv.port(), "/?mode=fail").status == 200, "fail request")
        check(h.request(sv.port(), "/?mode=timeout&ms=400").status == 200, "timeout request")
        check(h.request(sv.port(), "/?mode=fail&handled=1").status == 200, "handled request")
        check(h.request(sv.port(), "/?mode=async").status == 200, "async request")
        h.wait_until(lambda: len(fn_logs(sv, "error_hook")) >= 4, 5, "4 error hook calls")
        msgs = [r["msg"] for r in fn_logs(sv, "error_hook")]
        check(any("name=fail " in m and "reason=failed" in m and "code=7" in m for m in msgs),
              "no failed report: %r" % msgs)
        check(any("name=timeout " in m and "reason=timeout" in m for m in msgs),
              "no timeout report: %r" % msgs)
        check(any("name=async " in m and "reason=boom" in m for m in msgs),
              "no async failure: %r" % msgs)
        # Unhandled ones are logged by the worker; the handled one is not.
        unhandled = sv.events("task_error")
        names = {r.get("task_name") for r in unhandled}
        check({"fail", "timeout", "async"} <= names, "unhandled logged: %r" % names)
        check("fail_handled" not in names, "handled task was logged: %r" % names)
        # The worker keeps serving, same process.
        check(h.request(sv.port(), "/?mode=fail").status == 200, "serving after failures")
        check(list(sv.workers("fail").values()) == [pid], "the worker was replaced")
    s = sv.events("summary")[-1]
    check(s["tasks_failed"] == "5", "summary %r" % s)
    transitions_obey_reaping_rule(sv)


def worker_budget(sv, pid):
    """The max_requests budget the supervisor gave worker PID (/status: the value it
    put in the worker's config record, jitter included)."""
    for w in h.admin_status(sv)["workers"]:
        if w["pid"] == pid:
            return w["max_requests"]
    raise h.Failure("worker %d is not in /status" % pid)


@test
def max_requests_recycles_with_jitter():
    # README: max_requests gets up to +10% jitter per worker, so a pool does not
    # recycle at once. 8 workers with a budget of 50: each gets 50..55 (6 values; all
    # 8 alike by chance: 6^-7), and each is retired exactly at its own budget.
    budget, nw = 50, 8
    fn = h.function("hello", workers=nw, limits={"max_requests": budget})
    with h.Supervisor([fn], name="bg-maxreq") as sv:
        ws = h.wait_until(lambda: len(sv.workers("hello")) == nw and sv.workers("hello"),
                          10, "%d ready workers" % nw)
        budgets = {wid: worker_budget(sv, pid) for wid, pid in ws.items()}
        print("#   budgets per worker: %s" % " ".join(
            "w%s=%d" % kv for kv in sorted(budgets.items())), flush=True)
        lo, hi = budget, budget + budget // 10
        check(all(lo <= b <= hi for b in budgets.values()),
              "budgets %r outside %d..%d" % (budgets, lo, hi))
        check(len(set(budgets.values())) > 1,
              "all %d workers got the same budget %r: no jitter" % (nw, budgets))

        def hit():
            # ev=max_requests requests=N: logged by a worker once it has served N.
            return {r["proc"]: int(r["requests"]) for r in sv.events("max_requests")}
        want = {"worker[hello/%s]" % wid: b for wid, b in budgets.items()}
        # Rounds of NW keep-alive connections opened one after the other (least-loaded
        # dispatch gives each an idle worker); each sends requests until its worker,
        # retired, answers with Connection: close.
        sent = 0
        for rnd in range(10):
            if set(want) <= set(hit()):
                break
            conns = []
            try:
                for i in range(nw):
                    c = http.client.HTTPConnection("127.0.0.1", sv.port(), timeout=5)
                    conns.append(c)
                    c.request("GET", "/r/%d/%d" % (rnd, i))
                    r = c.getresponse()
                    r.read()
                    check(r.status == 200, "request: %d" % r.status)
                    sent += 1
                for c in conns:
                    while True:
                        check(sent < 10 * nw * hi, "%d requests sent" % sent)
                        c.request("GET", "/r/%d" % sent)
                        r = c.getresponse()
                        r.read()
                        sent += 1
                        check(r.status == 200, "request %d: %d" % (sent, r.status))
                        if r.getheader("Connection") == "close":
                            break
            finally:
                for c in conns:
                    c.close()
        check(set(want) <= set(hit()), "after %d requests, workers that reached their "
              "budget: %r of %r" % (sent, hit(), want))
        got = {k: v for k, v in hit().items() if k in want}
        check(got == want, "requests at retirement %r, budgets %r" % (got, want))
        for wid, pid in ws.items():
            sv.wait_event("worker_state", pid=str(pid), to="exited", timeout=10)
        retired = {r["pid"] for r in sv.events("worker_state", to="draining",
                                               reason="early_drop")}
        check({str(p) for p in ws.values()} <= retired,
              "not every worker was retired with early_drop: %r" % retired)
    transitions_obey_reaping_rule(sv)


if __name__ == "__main__":
    h.main()
