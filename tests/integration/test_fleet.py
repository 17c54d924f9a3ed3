"""test_fleet.py - the host drain (README "Operating a fleet"): `edgevisorctl drain
--all` and SIGTERM first turn /health to 503 "draining" while every function keeps
serving for health_drain_ms, then drain the workers and exit 0 with no task lost; a
second SIGTERM or `edgevisorctl stop` ends the window early, `sigterm_health_drain:
false` skips it, reloads are refused meanwhile, and bad values of the two keys are config errors with
FILE:LINE:COL and the key. Real supervisor, workers, edgevisorctl and HTTP clients."""

import http.client
import json
import signal

import harness as h
from harness import check, test
from test_admin import admin_request, ctl
from test_config import check_position, write


def health(port):
    """(status, JSON body) of GET /health on the metrics listener at PORT."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health")
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def drain_sv(name, window_ms, **top):
    fn = h.function("bg", library="background", workers=2)
    mport = h.free_port()
    sv = h.Supervisor([fn], name=name, metrics="127.0.0.1:%d" % mport,
                      health_drain_ms=window_ms, **top)
    sv.mport = mport
    return sv


def served_while_draining(sv, what):
    """Requests through the window until the workers' drain begins: each one while
    the window lasts must see /health 503 "draining" and the function answer 200.
    Returns how many were judged."""
    n = 0
    while True:
        try:
            hs, hb = health(sv.mport)
            r = h.request(sv.port("bg"), "/?ms=20")
        except OSError as e:
            hs, hb, r = None, None, e   # the listener closed: judged below
        # Judged only if the window was still open after both answers came back (the
        # listeners close when it ends).
        if sv.events("host_drain", phase="workers"):
            return n
        check(hs == 503 and hb.get("status") == "draining",
              "%s: /health during the window: %r %r" % (what, hs, hb))
        check(r.status == 200, "%s: a request during the window: %r" % (what, r))
        n += 1


def summary_clean(sv, code):
    check(code == 0, "exit code %r" % code)
    s = sv.events("summary")
    check(s, "no ev=summary line:\n%s" % sv.tail(20))
    s = s[-1]
    check(s["tasks_lost"] == "0" and s["tasks_started"] == s["tasks_completed"],
          "tasks at exit: %r" % s)


@test
def drain_all_flips_health_first_serves_on_then_drains():
    sv = drain_sv("fleet-drain", 2500)
    try:
        sv.start()
        hs, hb = health(sv.mport)
        check(hs == 200 and hb["status"] == "serving", "/health before: %d %r" % (hs, hb))
        # A task that outlives the window's start: the drain must wait for it.
        r = h.request(sv.port("bg"), "/?ms=1000")
        check(r.status == 200, "task request %r" % r)
        rc, out, err = ctl("-s", sv.admin, "drain", "--all")
        check(rc == 0 and "503" in out, "ctl drain --all: %d %r %r" % (rc, out, err))
        # The reply came after the flip: /health is 503 now, not some time later.
        hs, hb = health(sv.mport)
        check(hs == 503 and hb["status"] == "draining", "/health after the reply: %d %r"
              % (hs, hb))
        st = h.admin_status(sv)["supervisor"]
        check(st["health"] == "draining" and 0 < st["health_drain_left_ms"] <= 2500
              and st["stopping"] is False, "status during the window: %r" % st)
        # Asked twice (a retried preStop hook): the same drain, not an error.
        rc, out, err = ctl("-s", sv.admin, "drain", "--all")
        check(rc == 0 and "already draining" in out, "second drain --all: %d %r %r"
              % (rc, out, err))
        code, _, body = admin_request(sv.admin, "/reload", "POST")
        check(code == 409 and "draining" in body, "reload during the window: %d %r"
              % (code, body))
        code, _, body = admin_request(sv.admin, "/drain/bg", "POST")
        check(code == 409, "drain bg during the window: %d %r" % (code, body))
        n = served_while_draining(sv, "drain --all")
        check(n >= 3, "only %d requests judged inside a 2.5 s window" % n)
        code = sv.proc.wait(30)
        summary_clean(sv, code)
        # The order in the log: the window, then the stop, then the workers drain.
        recs = sv.records()
        idx = {k: next(i for i, r in enumerate(recs) if pred(r)) for k, pred in {
            "health": lambda r: r.get("ev") == "host_drain" and r.get("phase") == "health",
            "workers": lambda r: r.get("ev") == "host_drain" and r.get("phase") == "workers",
            "stop": lambda r: r.get("ev") == "stop",
            "draining": lambda r: r.get("ev") == "worker_state" and r.get("to") == "draining",
        }.items()}
        check(idx["health"] < idx["workers"] < idx["stop"] < idx["draining"],
              "log order %r:\n%s" % (idx, sv.tail(30)))
        w = recs[idx["workers"]]
        check(w["via"] == "timer" and int(w["waited_ms"]) >= 2490,
              "the window ended early: %r" % w)
        check(recs[idx["health"]]["via"] == "admin", "via %r" % recs[idx["health"]])
    finally:
        sv.cleanup()


@test
def sigterm_runs_the_window_and_a_second_sigterm_cuts_it():
    sv = drain_sv("fleet-term", 20000)
    try:
        sv.start()
        sv.send(signal.SIGTERM)
        sv.wait_event("host_drain", phase="health", via="sigterm")
        hs, hb = health(sv.mport)
        check(hs == 503 and hb["status"] == "draining", "/health after SIGTERM: %d %r"
              % (hs, hb))
        r = h.request(sv.port("bg"), "/?ms=300")
        check(r.status == 200, "a request in the window: %r" % r)
        sv.send(signal.SIGHUP)
        sv.wait_event("reload_refused", why="host_draining")
        check(not sv.events("reload"), "a reload began during the window")
        # The second SIGTERM (an impatient operator, systemd's stop) ends the window.
        sv.send(signal.SIGTERM)
        w = sv.wait_event("host_drain", phase="workers")
        check(w["via"] == "sigterm", "window ended by %r" % w)
        code = sv.proc.wait(15)
        summary_clean(sv, code)
    finally:
        sv.cleanup()


@test
def stop_during_the_window_stops_now():
    sv = drain_sv("fleet-stop", 20000)
    try:
        sv.start()
        rc, out, err = ctl("-s", sv.admin, "drain", "--all")
        check(rc == 0, "ctl drain --all: %d %r %r" % (rc, out, err))
        rc, out, err = ctl("-s", sv.admin, "stop")
        check(rc == 0 and "stopping" in out, "ctl stop: %d %r %r" % (rc, out, err))
        # Well inside the 20 s window: an explicit stop does not wait it out.
        summary_clean(sv, sv.proc.wait(10))
        check(sv.events("stop", mode="graceful"), "no graceful stop:\n%s" % sv.tail(10))
    finally:
        sv.cleanup()


@test
def sigterm_health_drain_false_stops_at_once():
    sv = drain_sv("fleet-noterm", 20000, sigterm_health_drain=False)
    try:
        sv.start()
        sv.send(signal.SIGTERM)
        # Well inside the 20 s window it would otherwise hold.
        code = sv.proc.wait(10)
        check(code == 0, "exit code %r" % code)
        check(not sv.events("host_drain"), "a host drain on SIGTERM: %r" % sv.events("host_drain"))
        check(sv.events("stop", mode="graceful"), "no graceful stop:\n%s" % sv.tail(10))
    finally:
        sv.cleanup()


@test
def drain_all_is_an_admin_write():
    """Over TCP without the token, POST /drain is refused like every private route,
    and the host keeps serving (a tenant on the same loopback cannot take it out)."""
    aport = h.free_port()
    sv = drain_sv("fleet-auth", 20000, admin="127.0.0.1:%d" % aport)
    try:
        sv.start()
        code, _, body = admin_request(sv.admin, "/drain", "POST")
        check(code == 403, "POST /drain over TCP without a token: %d %r" % (code, body))
        hs, hb = health(sv.mport)
        check(hs == 200 and hb["status"] == "serving", "/health after: %d %r" % (hs, hb))
        check(not sv.events("host_drain"), "a host drain began: %r" % sv.events("host_drain"))
        code, _, body = admin_request(sv.admin, "/drain", "GET")
        check(code in (403, 405), "GET /drain: %d %r" % (code, body))
        # SIGTERM now takes the configured window; a second one ends it.
        sv.send(signal.SIGTERM)
        sv.wait_event("host_drain", phase="health")
        sv.send(signal.SIGTERM)
        summary_clean(sv, sv.proc.wait(15))
    finally:
        sv.cleanup()


@test
def host_drain_keys_are_checked():
    d = h.tmpdir("fleet-conf")
    cases = {
        "drain_string": ('\n  "health_drain_ms": "1000",', "health_drain_ms", '"health_drain_ms"'),
        "drain_negative": ('\n  "health_drain_ms": -1,', "health_drain_ms", '"health_drain_ms"'),
        "drain_too_long": ('\n  "health_drain_ms": 300001,', "health_drain_ms",
                           '"health_drain_ms"'),
        "sigterm_not_bool": ('\n  "sigterm_health_drain": "yes",', "sigterm_health_drain",
                             '"sigterm_health_drain"'),
    }
    for name, (top, keypath, marker) in cases.items():
        path, text, _ = write(d, name, {"top": top})
        code, out = h.check_config(path)
        check(code == 1, "%s: -t exited %d: %s" % (name, code, out.strip()))
        check_position(name, out, path, text, keypath, marker)
    path, _, _ = write(d, "good", {"top": '\n  "health_drain_ms": 300000,'
                                          '\n  "sigterm_health_drain": false,'})
    code, out = h.check_config(path)
    check(code == 0, "good keys refused: %s" % out)


if __name__ == "__main__":
    h.main()
