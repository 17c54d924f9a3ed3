"""test_durable.py - durable tasks on the local journal (SQLite): tasks survive a
worker SIGKILL and a supervisor SIGKILL, retries back off, dead tasks are re-driven by
edgevisorctl, the idempotency key de-duplicates, the journal cap refuses cleanly and a
tenant cannot open another tenant's journal. Real supervisor, workers and journal; the
handlers (tests/functions/durable_probe.c) append one line per attempt to a side file:
"KIND ID ATTEMPT SEQ MS"."""

import http.server
import json
import os
import signal
import subprocess
import threading

import harness as h
from harness import check, test

CTL = os.path.join(h.BUILD, "edgevisorctl")


def durable_fn(name="dp", **durable):
    conf = {"backend": "local", "lease_ms": 1000, "retry_base_ms": 200}
    conf.update(durable)
    return h.function(name, library="durable_probe", durable=conf,
                      limits={"task_threads": 4})


def open_dir(sv):
    """The tenant's uid must reach state/durable/NAME inside the test's dir."""
    os.chmod(sv.dir, 0o711)


def side_file():
    d = h.tmpdir("durable-side")
    os.chmod(d, 0o711)
    path = os.path.join(d, "side")
    with open(path, "w"):
        pass
    os.chmod(path, 0o666)
    return path


def lines(path, kind=None):
    out = []
    with open(path) as f:
        for ln in f:
            p = ln.split()
            if len(p) == 5 and (kind is None or p[0] == kind):
                out.append({"kind": p[0], "id": int(p[1]), "attempt": int(p[2]),
                            "seq": int(p[3]), "ms": int(p[4])})
    return out


def enqueue(sv, side, kind="ok", n=1, block=False, timeout=20, **q):
    qs = "&".join(["kind=%s" % kind, "n=%d" % n] + ["%s=%s" % kv for kv in q.items()])
    r = h.request(sv.port(), "/enqueue%s?%s" % ("-block" if block else "", qs),
                  method="POST", body=side.encode(), timeout=timeout)
    return r


def ids(r):
    check(r.status == 200, "enqueue answered %d: %r" % (r.status, r.body))
    a, b = r.body.decode().strip().split("=", 1)[1].split(",")
    return int(a), int(b)


def ctl_tasks(sv, name="dp"):
    p = subprocess.run([CTL, "-c", sv.conf_path, "tasks", name, "--json"],
                       capture_output=True, timeout=15)
    check(p.returncode == 0, "edgevisorctl tasks: %r" % p.stderr)
    return json.loads(p.stdout)


def kind_counts(doc, kind):
    for k in doc["kinds"]:
        if k["kind"] == kind:
            return k
    raise h.Failure("no kind %s in %r" % (kind, doc["kinds"]))


def all_seen(side, kind, n):
    return {ln["seq"] for ln in lines(side, kind)} >= set(range(n))


def new_worker(sv, old):
    def got():
        pids = set(sv.workers("dp").values()) - {old}
        return pids.pop() if pids else None
    return h.wait_until(got, 15, "a new worker after the kill")


@test
def worker_sigkill_mid_way_loses_nothing():
    side = side_file()
    sv = h.Supervisor([durable_fn()], name="durable-kill")
    open_dir(sv)
    with sv.start():
        first, last = ids(enqueue(sv, side, "slow", 1000))
        check(last - first == 999, "ids %d..%d for 1000 tasks" % (first, last))
        h.wait_until(lambda: len(lines(side, "slow")) >= 200, 20, "200 tasks run")
        old = list(sv.workers("dp").values())[0]
        os.kill(old, signal.SIGKILL)
        new_worker(sv, old)
        h.wait_until(lambda: all_seen(side, "slow", 1000), 40,
                     "all 1000 tasks observed after the respawn")
        seen = lines(side, "slow")
        again = [ln for ln in seen if ln["attempt"] >= 2]
        check(again, "no task ran a second attempt: the kill cut none?")
        h.wait_until(lambda: kind_counts(ctl_tasks(sv), "slow")["succeeded"] == 1000, 15,
                     "1000 succeeded in the journal")
        c = kind_counts(ctl_tasks(sv), "slow")
        check(c["pending"] == 0 and c["running"] == 0 and c["dead"] == 0, "counts %r" % c)
        check(c["retried"] >= len({ln["id"] for ln in again}),
              "retried %d, but %d tasks ran again" % (c["retried"], len(again)))


@test
def supervisor_sigkill_and_restart_loses_nothing():
    side = side_file()
    state = h.tmpdir("durable-state")
    os.chmod(state, 0o711)
    fn = durable_fn()
    sv = h.Supervisor([fn], name="durable-sv1", state_directory=state)
    open_dir(sv)
    with sv.start():
        ids(enqueue(sv, side, "slow", 1000))
        h.wait_until(lambda: len(lines(side, "slow")) >= 200, 20, "200 tasks run")
        sv.send(signal.SIGKILL)
        sv.proc.wait(10)
        sv.cleanup()
    before = {ln["seq"] for ln in lines(side, "slow")}
    check(len(before) < 1000, "all ran before the kill: the test proves nothing")
    sv2 = h.Supervisor([fn], name="durable-sv2", state_directory=state)
    open_dir(sv2)
    with sv2.start():
        h.wait_until(lambda: all_seen(side, "slow", 1000), 40,
                     "all 1000 tasks observed after the restart")
        h.wait_until(lambda: kind_counts(ctl_tasks(sv2), "slow")["succeeded"] == 1000, 15,
                     "1000 succeeded in the journal")


@test
def fails_twice_then_succeeds_with_growing_backoff():
    side = side_file()
    sv = h.Supervisor([durable_fn(retry_base_ms=300)], name="durable-flaky")
    open_dir(sv)
    with sv:
        tid, _ = ids(enqueue(sv, side, "flaky"))
        h.wait_until(lambda: len(lines(side, "flaky")) >= 3, 15, "three attempts")
        at = lines(side, "flaky")
        check([a["attempt"] for a in at] == [1, 2, 3], "attempts %r" % at)
        g1, g2 = at[1]["ms"] - at[0]["ms"], at[2]["ms"] - at[1]["ms"]
        # Equal jitter: wait n is in [base*2^(n-1)/2, base*2^(n-1)]: 150..300, 300..600.
        check(g1 >= 150 and g2 >= 300, "gaps %d, %d ms below the backoff floor" % (g1, g2))
        check(g2 > g1 - 20, "gaps did not grow: %d then %d ms" % (g1, g2))
        h.wait_until(lambda: kind_counts(ctl_tasks(sv), "flaky")["succeeded"] == 1, 10,
                     "flaky succeeded")
        c = kind_counts(ctl_tasks(sv), "flaky")
        check(c["retried"] == 2, "retried %r" % c)
        sv.wait_event("durable_retry", task=str(tid), attempt="2")


@test
def always_fails_ends_dead_and_is_redriven():
    side = side_file()
    sv = h.Supervisor([durable_fn(retry_base_ms=50)], name="durable-dead")
    open_dir(sv)
    with sv:
        tid, _ = ids(enqueue(sv, side, "never", attempts=3))

        def dead():
            t = [x for x in ctl_tasks(sv)["tasks"] if x["id"] == tid]
            return t and t[0]["state"] == "dead" and t[0]
        t = h.wait_until(dead, 15, "task dead")
        check(t["attempts"] == 3 and "attempts used up" in t["why"], "dead task %r" % t)
        check(len(lines(side, "never")) == 3, "attempts run: %r" % lines(side, "never"))
        p = subprocess.run([CTL, "-c", sv.conf_path, "tasks", "retry", "dp", str(tid)],
                           capture_output=True, timeout=15)
        check(p.returncode == 0, "tasks retry: %r" % p.stderr)
        h.wait_until(lambda: len(lines(side, "never")) >= 4, 10, "re-driven attempt")
        check(lines(side, "never")[3]["attempt"] == 1, "re-driven attempt is not attempt 1")
        h.wait_until(dead, 15, "dead again after the re-drive")
        # Only dead tasks can be re-driven.
        p = subprocess.run([CTL, "-c", sv.conf_path, "tasks", "retry", "dp", "999999"],
                           capture_output=True, timeout=15)
        check(p.returncode == 1 and b"no dead task" in p.stderr, "retry of nothing: %r" % (p,))


@test
def idempotency_key_deduplicates():
    side = side_file()
    sv = h.Supervisor([durable_fn()], name="durable-idem")
    open_dir(sv)
    with sv:
        a = ids(enqueue(sv, side, "ok", key="order-42"))
        b = ids(enqueue(sv, side, "ok", key="order-42", block=True))
        check(a == b, "second enqueue with the key got %r, first %r" % (b, a))
        h.wait_until(lambda: any(ln["id"] == a[0] for ln in lines(side, "ok")), 10, "ran")
        # Done, still within the window: the same id again, no new run.
        c = ids(enqueue(sv, side, "ok", key="order-42"))
        check(c == a, "after it ran: %r, first %r" % (c, a))
        m, _ = ids(enqueue(sv, side, "ok", key="marker"))
        h.wait_until(lambda: any(ln["id"] == m for ln in lines(side, "ok")), 10, "marker ran")
        runs = [ln for ln in lines(side, "ok") if ln["id"] == a[0]]
        check(len(runs) == 1, "the keyed task ran %d times" % len(runs))
        check(kind_counts(ctl_tasks(sv), "ok")["enqueued"] == 2, "enqueued count")


def admin_get(sv, path):
    conn = h.UnixHTTPConnection(sv.admin[5:], timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


@test
def status_and_metrics_count_per_kind():
    side = side_file()
    sv = h.Supervisor([durable_fn()], name="durable-status")
    open_dir(sv)
    with sv:
        ids(enqueue(sv, side, "ok", n=3))
        ids(enqueue(sv, side, "never", attempts=1))
        ids(enqueue(sv, side, "ok", delay=600000))

        def counted():
            for f in h.admin_status(sv)["functions"]:
                if f["name"] == "dp" and f["durable"] and "ok" in f["durable"]["kinds"]:
                    k = f["durable"]["kinds"]
                    if (k["ok"]["succeeded"] == 3 and k["ok"]["pending"] == 1 and
                            k.get("never", {}).get("dead") == 1):
                        return k
            return None
        k = h.wait_until(counted, 10, "durable counts in /status")
        check(k["ok"]["enqueued"] == 4 and k["ok"]["oldest_age_s"] >= 0, "status %r" % k)
        code, text = admin_get(sv, "/metrics")
        check(code == 200, "metrics %d" % code)
        for want in ('edgevisor_durable_succeeded_total{function="dp",kind="ok"} 3',
                     'edgevisor_durable_tasks{function="dp",kind="ok",state="pending"} 1',
                     'edgevisor_durable_dead_total{function="dp",kind="never"} 1'):
            check(want in text, "no %r in /metrics" % want)


@test
def zero_workers_get_a_worker_for_due_tasks():
    side = side_file()
    fn = durable_fn()
    del fn["workers"]
    fn.update(min_workers=0, max_workers=1, scale_idle_ms=300)
    sv = h.Supervisor([fn], name="durable-zero")
    open_dir(sv)
    with sv:
        tid, _ = ids(enqueue(sv, side, "ok", delay=4000))
        h.wait_until(lambda: not sv.workers("dp"), 3.5, "scaled to zero before the task is due")
        check(not lines(side, "ok"), "the task ran before it was due")
        spawned = len(sv.events("worker_state", fn="dp", to="starting"))
        h.wait_until(lambda: any(ln["id"] == tid for ln in lines(side, "ok")), 10,
                     "the due task ran on a worker started for it")
        check(len(sv.events("worker_state", fn="dp", to="starting")) > spawned,
              "no worker was started for the due task")


@test
def journal_cap_refuses_cleanly():
    side = side_file()
    sv = h.Supervisor([durable_fn(journal_max_bytes=65536)], name="durable-cap")
    open_dir(sv)
    with sv:
        ids(enqueue(sv, side, "ok", delay=600000))
        r = enqueue(sv, side, "ok", n=400, delay=600000)
        check(r.status == 507 and b"space" in r.body, "over the cap: %d %r" % (r.status, r.body))
        sv.wait_event("durable_enqueue_failed")
        # The 400 went in several group commits: those before the cap are kept, the
        # refused ones whole (tests/unit/test_durable.c checks a batch is all or nothing).
        pending = kind_counts(ctl_tasks(sv), "ok")["pending"]
        check(1 <= pending < 401, "pending %d after the refusal" % pending)
        check(get_ok_open(sv), "the worker stopped serving once its journal was full")


def get_ok_open(sv):
    r = h.request(sv.port(), "/open?path=/nonexistent")
    return r.status == 200 and r.body == b"errno=ENOENT\n"


@test
def tenant_cannot_open_another_tenants_journal():
    side = side_file()
    a, b = durable_fn("dpa"), durable_fn("dpb")
    sv = h.Supervisor([a, b], name="durable-iso")
    open_dir(sv)
    with sv:
        for fn in (a, b):
            r = h.request(fn["port"], "/enqueue?kind=ok&n=1", method="POST", body=side.encode())
            check(r.status == 200, "enqueue on %s: %r" % (fn["name"], r.body))
        state = os.path.join(sv.dir, "state", "durable")
        own = os.path.join(state, "dpa", "journal.db")
        other = os.path.join(state, "dpb", "journal.db")
        r = h.request(a["port"], "/open?path=" + own)
        check(r.body == b"ok\n", "the tenant cannot open its own journal: %r" % r.body)
        r = h.request(a["port"], "/open?path=" + other)
        check(r.body == b"errno=EACCES\n", "opening another tenant's journal: %r" % r.body)
        st = os.stat(os.path.join(state, "dpb"))
        check(st.st_mode & 0o777 == 0o700, "journal dir mode %o" % (st.st_mode & 0o777))


@test
def example_retries_a_failing_hook_with_its_key():
    """examples/durable.c end to end: POST /orders records a task; its edge_fetch to a
    real HTTP server that answers 503 once is retried, with the same Idempotency-Key."""
    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.append((self.headers.get("Idempotency-Key"), body))
            code = 503 if len(got) == 1 else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        fn = h.function("ex", library="durable", durable={"backend": "local",
                                                           "retry_base_ms": 100})
        sv = h.Supervisor([fn], name="durable-example")
        open_dir(sv)
        with sv:
            url = "/orders?hook=http://127.0.0.1:%d/paid" % srv.server_port
            hdr = {"Idempotency-Key": "order-7"}
            r1 = h.request(sv.port(), url, method="POST", body=b'{"order":7}', headers=hdr)
            r2 = h.request(sv.port(), url, method="POST", body=b'{"order":7}', headers=hdr)
            check(r1.status == 202 and r1.body == r2.body, "answers %r %r" % (r1, r2))
            h.wait_until(lambda: len(got) >= 2, 10, "the hook called again after its 503")
            check(got[0] == got[1] == ("order-7", b'{"order":7}'), "hook got %r" % got)
            h.wait_until(lambda: kind_counts(ctl_tasks(sv, "ex"), "notify")["succeeded"] == 1,
                         10, "notify succeeded")
            c = kind_counts(ctl_tasks(sv, "ex"), "notify")
            check(c["enqueued"] == 1 and c["retried"] == 1, "counts %r" % c)
            check(len(got) == 2, "the hook was called %d times" % len(got))
    finally:
        srv.shutdown()
        srv.server_close()


@test
def bad_durable_config_names_the_key():
    d = h.tmpdir("durable-conf")
    path = os.path.join(d, "c.conf")
    fn = durable_fn(backend="sqlite")
    fn.pop("port")
    with open(path, "w") as f:
        json.dump({"state_directory": d, "functions": [fn]}, f, indent=2)
    code, err = h.check_config(path)
    check(code != 0 and "functions[0].durable.backend: must be one of \"local\"" in err, err)
    check(":%d:" % next(i + 1 for i, ln in enumerate(open(path)) if '"sqlite"' in ln) in err,
          "no line number: %s" % err)
    # A seccomp profile that refuses what SQLite needs would leave a journal that
    # cannot be written: refused at load.
    fn = durable_fn()
    fn.pop("port")
    fn["seccomp"] = {"deny": ["fdatasync"]}
    with open(path, "w") as f:
        json.dump({"state_directory": d, "functions": [fn]}, f, indent=2)
    code, err = h.check_config(path)
    check(code != 0 and "functions[0].seccomp: denies fdatasync" in err, err)


if __name__ == "__main__":
    h.main()
