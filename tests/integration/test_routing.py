"""test_routing.py - shared listeners ("listeners"): requests reach the function their
route names (path prefix, the Supabase form, exact and *.suffix Host), the supervisor
itself answers 404 / 400 / 408 / 431 without a worker, a slow head delays nobody, one
keep-alive connection moves between functions (in turn and pipelined) with every
response in order, many connections moving at once each reach their function, a
worker killed while a moved connection is in its hands closes that connection and
nothing else, and a reload that drops a route answers 404 for it.
Real supervisor, workers and sockets."""

import json
import os
import signal
import socket
import time

import harness as h
from harness import check, test

ROUTES = [
    {"path": "/a", "function": "alpha"},
    {"path": "/a/deep", "function": "gamma"},
    {"path": "/b", "function": "beta", "strip_prefix": True},
    {"supabase": True},
    {"host": "g.example.com", "function": "gamma"},
    {"host": "*.beta.test", "function": "beta"},
]


def fns():
    alpha = h.function("alpha", library="whoami")
    beta = h.function("beta", library="whoami")
    gamma = h.function("gamma", library="whoami")
    # Served only through the routes: no port of their own.
    del beta["listen"]
    del gamma["listen"]
    return [alpha, beta, gamma]


def routed(port, slow_port):
    return [
        {"listen": "127.0.0.1:%d" % port, "head_timeout_ms": 400, "max_header_bytes": 4096,
         "routes": ROUTES},
        # The slowloris listener: heads may take 30 s, so a pending one is still pending
        # while others are served.
        {"listen": "127.0.0.1:%d" % slow_port, "head_timeout_ms": 30000,
         "routes": [{"function": "alpha"}]},
    ]


class Routed:
    """A supervisor with the shared listeners above; .port and .slow_port."""

    def __init__(self, name):
        self.port, self.slow_port = h.free_ports(2)
        self.sv = h.Supervisor(fns(), name=name, listeners=routed(self.port, self.slow_port))

    def __enter__(self):
        self.sv.__enter__()
        self.sv.wait_event("ready")
        return self

    def __exit__(self, *exc):
        return self.sv.__exit__(*exc)


def ask(port, path, host="t", extra="", timeout=5):
    """One Connection: close request; (status, body)."""
    head = "GET %s HTTP/1.1\r\n" % path
    if host is not None:
        head += "Host: %s\r\n" % host
    head += extra + "Connection: close\r\n\r\n"
    s = h.connect(port, timeout)
    try:
        s.sendall(head.encode())
        r = h.read_response(s.makefile("rb"))
        return r.status, r.body.decode(errors="replace")
    finally:
        s.close()


@test
def routes_by_path_supabase_and_host():
    with Routed("route-match") as r:
        want = [
            ("/a/x", "t", "alpha /a/x"),
            ("/a", "t", "alpha /a"),
            ("/a/deep/1", "t", "gamma /a/deep/1"),       # the longest prefix wins
            ("/a/deeper", "t", "alpha /a/deeper"),       # whole segments only
            ("/b/y?z=1", "t", "beta /y"),                # strip_prefix
            ("/b", "t", "beta /"),
            ("/functions/v1/beta/hi?q=1", "t", "beta /beta/hi"),
            ("/functions/v1/gamma", "t", "gamma /gamma"),
            ("/zzz", "g.example.com", "gamma /zzz"),     # exact Host
            ("/a/x", "G.Example.COM:8080", "gamma /a/x"),  # Host beats path; case, port
            ("/q", "x.Beta.test", "beta /q"),            # *.suffix
            ("/q", "a.b.beta.test:1", "beta /q"),
        ]
        for path, host, body in want:
            st, got = ask(r.port, path, host)
            check(st == 200 and got == body + "\n",
                  "%s (Host %s): %d %r, want %r" % (path, host, st, got, body))
        for path, host in (("/nope", "t"), ("/functions/v1/nosuch/x", "t"),
                           ("/functions/v1/", "t"), ("/q", "beta.test")):
            st, got = ask(r.port, path, host)
            check(st == 404 and got == "no route\n", "%s (Host %s): %d %r" % (path, host, st, got))
        # The function's own port serves as before, next to the routes.
        st, got = ask(r.sv.port("alpha"), "/direct")
        check(st == 200 and got == "alpha /direct\n", "direct port: %d %r" % (st, got))
        # None of the refusals reached a worker.
        check(not r.sv.events("http_request"), "a refusal went to a worker")


@test
def absent_or_duplicate_host_is_400():
    with Routed("route-host") as r:
        st, body = ask(r.port, "/a", host=None)
        check(st == 400, "no Host: %d %r" % (st, body))
        st, body = ask(r.port, "/a", extra="Host: again\r\n")
        check(st == 400, "two Hosts: %d %r" % (st, body))
        check(ask(r.port, "/a")[0] == 200, "a good request after them")


def partial(port, data):
    s = h.connect(port, 10)
    s.sendall(data)
    return s


@test
def slow_head_408_big_head_431_and_slowloris():
    with Routed("route-slow") as r:
        # A head never finished: 408 from the supervisor after head_timeout_ms.
        s = partial(r.port, b"GET /a HTTP/1.1\r\nHost: t\r\n")
        f = s.makefile("rb")
        st, _ = h.read_status_line(f)
        check(st == 408, "slow head: %d" % st)
        s.close()
        # Longer than the listener's max_header_bytes (4096): 431.
        s = partial(r.port, b"GET /a HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        st, _ = h.read_status_line(s.makefile("rb"))
        check(st == 431, "big head: %d" % st)
        s.close()
        # Fifty half-sent heads, each still waiting, while others are served in full.
        loris = [partial(r.slow_port, b"GET /loris HTTP/1.1\r\nHo") for _ in range(50)]
        for i in range(100):
            st, body = ask(r.slow_port, "/other/%d" % i)
            check(st == 200 and body == "alpha /other/%d\n" % i, "request %d: %d %r" % (i, st, body))
        for s in loris:
            s.setblocking(False)
            try:
                got = s.recv(1)
            except BlockingIOError:
                got = None
            check(got is None, "a slow head was answered or closed early: %r" % got)
            s.setblocking(True)
        # And each is served once it completes: its first bytes were kept.
        for s in loris[:5]:
            s.sendall(b"st: t\r\nConnection: close\r\n\r\n")
            resp = h.read_response(s.makefile("rb"))
            check(resp.status == 200 and resp.body == b"alpha /loris\n",
                  "completed slow head: %d %r" % (resp.status, resp.body))
        for s in loris:
            s.close()


SEQ = [("/a/%d", "alpha /a/%d"), ("/b/%d", "beta /%d"),
       ("/functions/v1/gamma/%d", "gamma /gamma/%d")]


def req(i, last=False):
    path = SEQ[i % 3][0] % i
    return ("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path, "Connection: close\r\n" if last else "")).encode()


def want(i):
    return (SEQ[i % 3][1] % i + "\n").encode()


@test
def keepalive_connection_moves_between_three_functions():
    with Routed("route-ka") as r:
        s = h.connect(r.port, 10)
        f = s.makefile("rb")
        for i in range(1000):
            s.sendall(req(i))
            resp = h.read_response(f)
            check(resp.status == 200 and resp.body == want(i),
                  "request %d: %d %r, want %r" % (i, resp.status, resp.body, want(i)))
        s.close()


@test
def pipelined_requests_for_three_functions_answered_in_order():
    with Routed("route-pipe") as r:
        s = h.connect(r.port, 20)
        n = 1000
        s.sendall(b"".join(req(i, last=(i == n - 1)) for i in range(n)))
        f = s.makefile("rb")
        for i in range(n):
            resp = h.read_response(f)
            check(resp.status == 200 and resp.body == want(i),
                  "response %d: %d %r, want %r" % (i, resp.status, resp.body, want(i)))
        check(f.read() == b"", "bytes after the last response")
        s.close()


@test
def keepalive_requests_of_one_route_stay_and_others_still_move():
    # /b and *.beta.test have no route below them: a worker keeps their requests.
    # /a does (/a/deep): every /a request is routed afresh. Interleaved, pipelined
    # and one by one, each reaches its own function.
    seq = [("/b/1", "t", "beta /1"), ("/b/2", "t", "beta /2"), ("/a/deep/3", "t", "gamma /a/deep/3"),
           ("/b/4", "t", "beta /4"), ("/a/5", "t", "alpha /a/5"), ("/a/deep/6", "t", "gamma /a/deep/6"),
           ("/a/7", "t", "alpha /a/7"), ("/q/8", "x.beta.test", "beta /q/8"),
           ("/q/9", "X.BETA.test:99", "beta /q/9"), ("/q/10", "g.example.com", "gamma /q/10"),
           ("/b/11", "t", "beta /11"), ("/functions/v1/beta/12", "t", "beta /beta/12"),
           ("/functions/v1/alpha/13", "t", "alpha /alpha/13"), ("/b", "t", "beta /")] * 20
    with Routed("route-stay") as r:
        s = h.connect(r.port, 10)
        f = s.makefile("rb")
        for i, (path, host, body) in enumerate(seq):
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
            resp = h.read_response(f)
            check(resp.status == 200 and resp.body == (body + "\n").encode(),
                  "request %d %s (Host %s): %d %r, want %r" % (i, path, host, resp.status,
                                                               resp.body, body))
        s.close()
        s = h.connect(r.port, 10)
        s.sendall(b"".join(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (p, hh)).encode()
                           for p, hh, _ in seq))
        f = s.makefile("rb")
        for i, (path, host, body) in enumerate(seq):
            resp = h.read_response(f)
            check(resp.status == 200 and resp.body == (body + "\n").encode(),
                  "pipelined %d %s (Host %s): %d %r, want %r" % (i, path, host, resp.status,
                                                                resp.body, body))
        s.close()


@test
def many_connections_moving_at_once_each_reach_their_function():
    # A worker sends the moves of one loop turn together: 32 connections that all
    # change function at once each get their own answer, in turn and back again.
    with Routed("route-many") as r:
        socks = [h.connect(r.port, 10) for _ in range(32)]
        files = [s.makefile("rb") for s in socks]
        for rnd in range(10):
            for path, body in (("/a/%d-%d", "alpha /a/%d-%d"), ("/b/%d-%d", "beta /%d-%d")):
                for i, s in enumerate(socks):
                    s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % (path % (rnd, i))).encode())
                for i, f in enumerate(files):
                    resp = h.read_response(f)
                    check(resp.status == 200 and resp.body == (body % (rnd, i) + "\n").encode(),
                          "round %d conn %d: %d %r, want %r" % (rnd, i, resp.status, resp.body,
                                                              body % (rnd, i)))
        for s in socks:
            s.close()


@test
def worker_killed_with_a_moved_connection_closes_it():
    with Routed("route-kill") as r:
        s = h.connect(r.port, 10)
        f = s.makefile("rb")
        s.sendall(req(0))
        check(h.read_response(f).body == want(0), "first request")
        gamma = list(r.sv.workers("gamma").values())
        check(len(gamma) == 1, "gamma workers %r" % gamma)
        # Moved from alpha to gamma, whose handler holds it.
        s.sendall(b"GET /functions/v1/gamma/x?hold=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        h.wait_until(lambda: [e for e in r.sv.events("function_log")
                              if "whoami holding" in e.get("msg", "")], 10, "gamma holding it")
        os.kill(gamma[0], signal.SIGKILL)
        s.settimeout(10)
        check(h.read_until_close(s) == b"", "the moved connection got bytes, not a close")
        s.close()
        # Replaced like any crash; the others never noticed.
        r.sv.wait_event("worker_state", fn="gamma", to="ready", count=2, timeout=15)
        check(ask(r.port, "/functions/v1/gamma/y") == (200, "gamma /gamma/y\n"), "gamma again")
        check(ask(r.port, "/a/z") == (200, "alpha /a/z\n"), "alpha")


@test
def reload_that_removes_a_route_answers_404():
    with Routed("route-reload") as r:
        check(ask(r.port, "/b/1") == (200, "beta /1\n"), "before")
        # Kept by beta's worker (no route below /b) until the routes change.
        s = h.connect(r.port, 10)
        f = s.makefile("rb")
        s.sendall(b"GET /b/0 HTTP/1.1\r\nHost: t\r\n\r\n")
        check(h.read_response(f).body == b"beta /0\n", "keep-alive before the reload")

        def drop(conf):
            conf["listeners"][0]["routes"] = [x for x in conf["listeners"][0]["routes"]
                                              if x.get("path") != "/b"]
        r.sv.rewrite_config(drop)
        r.sv.send(signal.SIGHUP)
        r.sv.wait_event("reload_done", timeout=20)
        st, body = ask(r.port, "/b/1")
        check(st == 404, "removed route: %d %r" % (st, body))
        # The connection opened before the reload follows the new routes too.
        s.sendall(b"GET /b/2 HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = h.read_response(f)
        check(resp.status == 404, "old keep-alive, removed route: %d %r" % (resp.status, resp.body))
        s.close()
        check(ask(r.port, "/a/1") == (200, "alpha /a/1\n"), "kept route")
        check(ask(r.port, "/functions/v1/beta/x") == (200, "beta /beta/x\n"), "beta by Supabase")


@test
def a_worker_cannot_pass_off_its_own_socket_as_a_client():
    # forger hands the supervisor one end of a socketpair holding a request for
    # alpha, as if it were a routed connection given back: refused, never routed.
    forger = h.function("forger")
    del forger["listen"]
    port, slow = h.free_ports(2)
    listeners = routed(port, slow)
    listeners[0]["routes"] = ROUTES + [{"path": "/forger", "function": "forger",
                                        "strip_prefix": True}]
    with h.Supervisor(fns() + [forger], name="route-forge", listeners=listeners) as sv:
        check(ask(port, "/forger/forge") == (200, "sent\n"), "forge request")
        ev = sv.wait_event("move_bad", fn="forger", timeout=10)
        check("not a connection" in ev.get("err", ""), "move_bad %r" % ev)
        check(ask(port, "/forger/check") == (200, ""), "the forged socket was answered")
        # A UDP socket on the listener's very address and port, and the worker's own
        # TCP connection to the listener: neither is a connection the listener accepted.
        for n, kind in ((2, "udp"), (3, "tcp")):
            check(ask(port, "/forger/forge_%s?%d" % (kind, port)) == (200, "sent\n"),
                  "forge a %s socket" % kind)
            ev = sv.wait_event("move_bad", fn="forger", timeout=10, count=n)
            check("not a connection" in ev.get("err", ""), "move_bad (%s) %r" % (kind, ev))
        check(not [e for e in sv.events("http_request") if "forged" in e.get("path", "")],
              "a worker took the forged request")
        check(ask(port, "/a/after") == (200, "alpha /a/after\n"), "routing after it")


def write_conf(d, name, listeners):
    path = os.path.join(d, name + ".conf")
    conf = {"cgroups": "off",
            "functions": [{k: v for k, v in f.items() if k != "port"} for f in fns()],
            "listeners": listeners}
    text = json.dumps(conf, indent=2) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return path, text


def line_col(text, marker, obj=False):
    """LINE, COL of MARKER in TEXT (of the object holding it, with OBJ)."""
    off = text.index(marker)
    if obj:
        off = text.rindex("{", 0, off)
    line = text.count("\n", 0, off) + 1
    col = off - (text.rfind("\n", 0, off) + 1) + 1
    return line, col


@test
def bad_routes_are_config_errors_naming_both_places():
    d = h.tmpdir("route-conf")
    port = h.free_port()
    dup = [{"listen": "127.0.0.1:%d" % port, "routes": [
        {"path": "/x", "function": "alpha"},
        {"path": "/y", "function": "beta"},
        {"path": "/x/", "function": "gamma"}]}]
    path, text = write_conf(d, "dup", dup)
    code, out = h.check_config(path)
    l1, c1 = line_col(text, '"path": "/x"', obj=True)
    l3, c3 = line_col(text, '"path": "/x/"', obj=True)
    check(code == 1 and "listeners[0].routes[2]" in out and "listeners[0].routes[0]" in out,
          "duplicate: %d %r" % (code, out))
    check("%s:%d:%d:" % (path, l3, c3) in out and "(%d:%d)" % (l1, c1) in out,
          "positions of both: %r (%d:%d, %d:%d)" % (out, l1, c1, l3, c3))
    unknown = [{"listen": "127.0.0.1:%d" % port, "routes": [{"path": "/x", "function": "nosuch"}]}]
    path, text = write_conf(d, "unknown", unknown)
    code, out = h.check_config(path)
    l, c = line_col(text, '"nosuch"')
    check(code == 1 and "listeners[0].routes[0].function" in out and "nosuch" in out and
          "%s:%d:%d:" % (path, l, c) in out, "unknown function: %d %r" % (code, out))
    supa = [{"listen": "127.0.0.1:%d" % port, "routes": [{"supabase": True, "function": "alpha"}]}]
    path, _ = write_conf(d, "supa", supa)
    code, out = h.check_config(path)
    check(code == 1 and "routes[0].function" in out, "supabase with a function: %r" % out)
    f = fns()
    clash = [{"listen": f[0]["listen"][0], "routes": [{"function": "alpha"}]}]
    path = os.path.join(d, "clash.conf")
    with open(path, "w") as out_f:
        json.dump({"cgroups": "off", "listeners": clash,
                   "functions": [{k: v for k, v in x.items() if k != "port"} for x in f]}, out_f)
    code, out = h.check_config(path)
    check(code == 1 and "listeners[0].listen" in out and "already used" in out,
          "listener on a function's address: %r" % out)


if __name__ == "__main__":
    h.main()
