"""test_fetch.py - outbound HTTP from the worker's loop (edge_fetch): against upstreams
this test starts on loopback (a threaded http.server, a server that accepts and never
answers, a port that refuses), through tests/functions/fetcher.so and
examples/fetch_log.so. Each failure must reach the task-error hook with a clear reason;
fetches are tasks: draining waits for them, a SIGKILL counts them lost by name."""

import http.server
import signal
import socket
import socketserver
import threading
import time

import harness as h
from harness import check, test

BIG = 2 * 1024 * 1024           # over the worker's 1 MiB response cap
CAP = 1024 * 1024


class Upstream:
    """A threaded HTTP/1.1 server on loopback: /ok, /huge (Content-Length), /stream
    (2 MiB, no length, ends at close), /slow?ms=N, /redirect?to=URL, POST /log. It
    counts requests and the client connections it saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.conns = set()
        self.posts = []
        up = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with up.lock:
                    up.conns.add(self.client_address)

            def _send(self, code, body, headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with up.lock:
                    up.requests += 1
                path, _, query = self.path.partition("?")
                if path == "/ok":
                    self._send(200, b"ok\n", [("X-Up", "1")])
                elif path == "/huge":
                    self._send(200, b"x" * BIG)
                elif path == "/stream":
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b"y" * 65536
                    try:
                        for _ in range(BIG // len(chunk)):
                            self.wfile.write(chunk)
                    except OSError:
                        pass
                    self.close_connection = True
                elif path == "/slow":
                    time.sleep(int(query.split("ms=")[1]) / 1000.0)
                    self._send(200, b"slow\n")
                elif path == "/redirect":
                    self._send(302, b"", [("Location", query.split("to=", 1)[1])])
                else:
                    self._send(404, b"no\n")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with up.lock:
                    up.requests += 1
                    up.posts.append((self.path, body))
                self._send(200, b"logged\n")

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            request_queue_size = 1024       # a burst of connects must not hit SYN retries

            def handle_error(self, request, client_address):
                pass                            # a fetch cut at the cap resets its socket

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path, host="127.0.0.1"):
        return "http://%s:%d%s" % (host, self.port, path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        return False


class Silent:
    """Accepts connections and never answers (holds them until closed)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.held.append(c)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join(2)
        for c in self.held:
            c.close()
        self.sock.close()
        return False


def fn_logs(sv, needle):
    return [r["msg"] for r in sv.events("function_log") if needle in r.get("msg", "")]


def fetcher(sv, query):
    r = h.request(sv.port(), query, timeout=10)
    return r


def summary(sv, fn):
    recs = sv.events("function_summary", fn=fn)
    check(recs, "no function_summary for %s" % fn)
    return {k: int(v) for k, v in recs[-1].items() if v.isdigit()}


@test
def thousand_concurrent_fetches_complete():
    with Upstream() as up, h.Supervisor([h.function("fetcher")], name="fetch-1000") as sv:
        r = fetcher(sv, "/many?n=1000&to=" + up.url("/ok"))
        check(r.status == 200 and b"started=1000 of 1000" in r.body, "start: %r" % r)
        line = h.wait_until(lambda: fn_logs(sv, "fetch_batch"), 60, "the batch to end")[0]
        check("ok=1000 failed=0 non200=0 bytes=3000 " in line, "batch: %s" % line)
        check(up.requests == 1000, "upstream saw %d requests" % up.requests)
        # Bounded (256 at once) and reused: far fewer connections than fetches.
        check(len(up.conns) <= 256, "%d upstream connections for 1000 fetches" % len(up.conns))
        print("#   %s; %d upstream connections" % (line, len(up.conns)))
        # The same worker fetches again, on the connections it kept.
        before = len(up.conns)
        r = fetcher(sv, "/many?n=100&c=10&to=" + up.url("/ok"))
        h.wait_until(lambda: len(fn_logs(sv, "fetch_batch")) == 2, 30, "the second batch")
        check("ok=100 failed=0" in fn_logs(sv, "fetch_batch")[1], fn_logs(sv, "fetch_batch")[1])
        check(len(up.conns) == before, "connections not reused: %d -> %d" % (before, len(up.conns)))
    s = summary(sv, "fetcher")
    check(s["tasks_started"] == 1100 and s["tasks_completed"] == 1100 and s["tasks_lost"] == 0,
          "summary %r" % s)


@test
def failures_reach_the_task_error_hook():
    closed = h.free_port()
    with Upstream() as up, Silent() as silent, \
            h.Supervisor([h.function("fetcher")], name="fetch-errors") as sv:
        cases = [
            ("unreachable", "http://127.0.0.1:%d/" % closed, "unreachable: "),
            ("timeout", silent.url("/"), "timeout: "),
            ("huge", up.url("/huge"), "too_large: response body over %d bytes" % CAP),
            ("stream", up.url("/stream"), "too_large: response body over %d bytes" % CAP),
        ]
        for name, url, _ in cases:
            r = fetcher(sv, "/one?name=%s&timeout=500&to=%s" % (name, url))
            check(r.status == 200, "%s: %r" % (name, r))
        h.wait_until(lambda: len(fn_logs(sv, "error_hook")) >= 4, 10, "4 error hook calls")
        hooks = fn_logs(sv, "error_hook")
        cbs = fn_logs(sv, "fetch_cb")
        for name, _, want in cases:
            got = [m for m in hooks if "name=%s " % name in m]
            check(len(got) == 1 and ("reason=" + want) in got[0],
                  "%s: the hook heard %r, want reason=%s..." % (name, got, want))
            cb = [m for m in cbs if "name=%s " % name in m]
            check(len(cb) == 1 and "status=0 error=" + want in cb[0],
                  "%s: the callback got %r" % (name, cb))
            print("#   %s" % got[0])
        # Not the hook's generic "timeout" from the task timer: curl's, with its detail.
        check(any("name=timeout reason=timeout: " in m and " milliseconds" in m for m in hooks),
              "timeout reason: %r" % hooks)
        # A success does not reach the hook, and the worker goes on.
        r = fetcher(sv, "/one?name=fine&to=" + up.url("/ok"))
        h.wait_until(lambda: any("name=fine " in m for m in fn_logs(sv, "fetch_cb")), 10, "fine")
        check(any("name=fine status=200 error=none body_len=3" in m
                  for m in fn_logs(sv, "fetch_cb")), fn_logs(sv, "fetch_cb"))
        check(len(fn_logs(sv, "error_hook")) == 4, "a success reached the hook")
    s = summary(sv, "fetcher")
    check(s["tasks_failed"] == 4 and s["tasks_completed"] == 1 and s["tasks_lost"] == 0,
          "summary %r" % s)


@test
def lowered_fetch_caps_take_effect():
    """fetch_max_response_bytes 1000: a 3-byte answer passes, a 2 MiB one fails
    "too_large" at 1000; fetch_max_concurrent 2: 20 fetches at once all complete over
    at most 2 upstream connections."""
    lim = {"fetch_max_response_bytes": 1000, "fetch_max_concurrent": 2}
    with Upstream() as up, h.Supervisor([h.function("fetcher", limits=lim)],
                                        name="fetch-caps") as sv:
        fetcher(sv, "/one?name=small&to=" + up.url("/ok"))
        fetcher(sv, "/one?name=big&to=" + up.url("/huge"))
        h.wait_until(lambda: len(fn_logs(sv, "fetch_cb")) >= 2, 10, "2 fetch callbacks")
        cbs = fn_logs(sv, "fetch_cb")
        check(any("name=small status=200 error=none body_len=3" in m for m in cbs),
              "small: %r" % cbs)
        check(any("name=big status=0 error=too_large: response body over 1000 bytes" in m
                  for m in cbs), "big: %r" % cbs)
        up.conns.clear()
        r = fetcher(sv, "/many?n=20&to=" + up.url("/ok"))
        check(r.status == 200 and b"started=20 of 20" in r.body, "start: %r" % r)
        line = h.wait_until(lambda: fn_logs(sv, "fetch_batch"), 30, "the batch")[0]
        check("ok=20 failed=0" in line, "batch: %s" % line)
        check(len(up.conns) <= 2, "%d upstream connections with fetch_max_concurrent 2" %
              len(up.conns))


@test
def sigkilled_worker_counts_inflight_fetches_lost():
    with Silent() as silent, h.Supervisor([h.function("fetcher")], name="fetch-kill") as sv:
        pid = list(sv.workers("fetcher").values())[0]
        r = fetcher(sv, "/one?n=5&name=held_fetch&timeout=60000&to=" + silent.url("/"))
        check(r.status == 200, "start: %r" % r)
        h.wait_until(lambda: len(silent.held) >= 5, 10, "5 fetches connected upstream")
        import os
        os.kill(pid, signal.SIGKILL)
        ex = sv.wait_event("worker_exit", pid=pid, timeout=10)
        check(ex.get("signal") == "9" and ex.get("lost") == "5", "worker_exit %r" % ex)
        lost = sv.events("task_lost", pid=pid)
        check(len(lost) == 5 and all(r.get("task_name") == "held_fetch" for r in lost),
              "task_lost lines: %r" % lost)
        check(len({r["task_id"] for r in lost}) == 5, "ids %r" % lost)
        h.wait_until(lambda: sv.workers("fetcher"), 10, "a replacement worker")
    s = summary(sv, "fetcher")
    check(s["tasks_lost"] == 5 and s["tasks_started"] == 5, "summary %r" % s)


@test
def draining_waits_for_fetches_and_sigterm_cuts_them():
    with Upstream() as up:
        # A graceful stop drains: the 800 ms fetch ends first.
        sv = h.Supervisor([h.function("fetcher")], name="fetch-drain")
        with sv:
            check(fetcher(sv, "/one?name=slowone&to=" + up.url("/slow?ms=800")).status == 200, "")
            code = sv.stop()
            check(code == 0, "exit %r" % code)
        check(any("name=slowone status=200" in m for m in fn_logs(sv, "fetch_cb")),
              "the fetch did not complete before the worker went: %r" % fn_logs(sv, "fetch"))
        seq = [r["to"] for r in sv.events("worker_state")]
        check(seq[-3:] == ["draining", "drained", "exited"], "states %r" % seq)
        check(summary(sv, "fetcher")["tasks_lost"] == 0, "lost")
    with Silent() as silent:
        # Past drain_timeout_ms the worker gets SIGTERM: the fetch is cut, counted lost.
        fn = h.function("fetcher", limits={"drain_timeout_ms": 300})
        sv = h.Supervisor([fn], name="fetch-cut")
        with sv:
            check(fetcher(sv, "/one?name=cutme&timeout=60000&to=" + silent.url()).status == 200, "")
            h.wait_until(lambda: silent.held, 10, "the fetch to connect")
            check(sv.stop() == 0, "exit")
        check(any("name=cutme reason=cut" in m for m in fn_logs(sv, "error_hook")),
              "hook: %r" % fn_logs(sv, "error_hook"))
        check([r.get("task_name") for r in sv.events("task_lost")] == ["cutme"],
              "task_lost %r" % sv.events("task_lost"))
        check(summary(sv, "fetcher")["tasks_lost"] == 1, "lost")


@test
def allow_list_and_schemes():
    with Upstream() as up, h.Supervisor([h.function("fetcher")], name="fetch-allow") as sv:
        # Any scheme but http(s) is refused at once, as is a malformed URL.
        for bad in ("file:///etc/passwd", "gopher://127.0.0.1/", "127.0.0.1/no-scheme"):
            r = fetcher(sv, "/one?to=" + bad)
            check(r.status == 400, "%s: %r" % (bad, r))
        # With an allow-list, another host is refused at once, with a log line...
        r = fetcher(sv, "/one?allow=localhost&to=" + up.url("/ok"))
        check(r.status == 403, "127.0.0.1 with only localhost allowed: %r" % r)
        ref = sv.wait_event("fetch_refused", reason="not_allowed")
        check(ref.get("host") == "127.0.0.1", "refusal %r" % ref)
        # ...an allowed one is fetched...
        r = fetcher(sv, "/one?name=allowed&to=" + up.url("/ok", host="localhost"))
        check(r.status == 200, "localhost: %r" % r)
        h.wait_until(lambda: any("name=allowed status=200" in m for m in fn_logs(sv, "fetch_cb")),
                     10, "the allowed fetch")
        # ...and a redirect to a host off the list is stopped before it is sent.
        n = up.requests
        r = fetcher(sv, "/one?name=hop&redirects=3&to=" +
                    up.url("/redirect?to=" + up.url("/ok"), host="localhost"))
        check(r.status == 200, "redirect: %r" % r)
        h.wait_until(lambda: any("name=hop " in m for m in fn_logs(sv, "error_hook")), 10, "hop")
        hop = [m for m in fn_logs(sv, "error_hook") if "name=hop " in m][0]
        check("reason=not_allowed: redirect to host 127.0.0.1" in hop, hop)
        check(up.requests == n + 1, "the redirect target was requested")
        # Without redirects asked for, a 3xx is the answer.
        r = fetcher(sv, "/one?name=nohop&to=" +
                    up.url("/redirect?to=" + up.url("/ok"), host="localhost"))
        h.wait_until(lambda: any("name=nohop " in m for m in fn_logs(sv, "fetch_cb")), 10, "nohop")
        check(any("name=nohop status=302 error=none" in m for m in fn_logs(sv, "fetch_cb")),
              fn_logs(sv, "fetch_cb"))


@test
def example_fetch_log_answers_then_logs():
    with Upstream() as up, h.Supervisor([h.function("fetch_log")], name="fetch-log") as sv:
        r = h.request(sv.port(), "/hello/world?to=" + up.url("/log"))
        check(r.status == 200 and r.body == b"logged in the background\n", "%r" % r)
        h.wait_until(lambda: up.posts, 10, "the logging endpoint to be called")
        check(up.posts == [("/log", b"GET /hello/world")], "posts %r" % up.posts)
        h.wait_until(lambda: fn_logs(sv, "answered 200"), 10, "the outcome logged")
        # An unreachable endpoint: the client still gets its answer; the hook logs why.
        r = h.request(sv.port(), "/x?to=http://127.0.0.1:%d/log" % h.free_port())
        check(r.status == 200, "%r" % r)
        h.wait_until(lambda: fn_logs(sv, "(log_request) failed: unreachable: "), 10,
                     "the failure logged by the hook")


if __name__ == "__main__":
    h.main()
