"""test_prometheus.py - a real Prometheus (Debian's /usr/bin/prometheus) scrapes the
supervisor's read-only metrics listener while a client sends known traffic; what its
HTTP API answers must match what the client saw: the request count and rate, and
quantiles of the duration histograms within the client's latency range. Every PromQL
expression of contrib/grafana/edgevisor.json and contrib/prometheus/alerts.yml runs
against it without error, non-empty where the scenario makes it so (a killed worker
loses a task, a function whose init fails is marked failed); `promtool check rules`
and `promtool test rules` pass on the alert rules."""

import ctypes
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import harness as h
from harness import check, test
from test_admin import fn_status, parse_prometheus, sample, status

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
ALERTS = os.path.join(h.ROOT, "contrib", "prometheus", "alerts.yml")
ALERTS_TEST = os.path.join(h.ROOT, "contrib", "prometheus", "alerts_test.yml")
DASHBOARD = os.path.join(h.ROOT, "contrib", "grafana", "edgevisor.json")

SCRAPE_S = 1
RATE = 100           # requests/s the client paces itself to
TRAFFIC_S = 8
WINDOW_S = 6         # the rate window, inside the traffic
REPLY_MS = 3         # the delay function answers after this long
TASK_MS = 15         # ... and leaves a task this long


def _die_with_parent():
    # Prometheus must not outlive this file, even when tests/run.sh's timeout kills
    # it with SIGKILL and no finally runs.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Prometheus:
    """Debian's prometheus in a temp dir (config, TSDB, log), on a loopback port,
    scraping TARGET every SCRAPE_S seconds and evaluating RULES. Stopped on exit."""

    def __init__(self, target, rules):
        self.dir = h.tmpdir("prom")
        self.port = h.free_ports(1)[0]
        self.conf = os.path.join(self.dir, "prometheus.yml")
        with open(self.conf, "w") as f:
            f.write("global:\n  scrape_interval: %ds\n  evaluation_interval: %ds\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: edgevisor\n"
                    "    static_configs:\n      - targets: ['%s']\n"
                    % (SCRAPE_S, SCRAPE_S, json.dumps(rules), target))
        self.log = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def __enter__(self):
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + self.conf,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd=self.dir,
                start_new_session=True, preexec_fn=_die_with_parent)
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return False

    def tail(self, n=10):
        with open(self.log, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def api(self, path, **params):
        """GET /api/v1/PATH; returns "data", or raises Failure with Prometheus' error."""
        if self.proc.poll() is not None:
            raise h.Failure("prometheus exited %s:\n%s" % (self.proc.returncode, self.tail()))
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (self.port, path,
                                                   urllib.parse.urlencode(params, doseq=True))
        # Until it is up, only the readiness probe (buildinfo) may fail.
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                return None if path == "status/buildinfo" else self._fail(path, params, text)
        except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
            return None if path == "status/buildinfo" else self._fail(path, params, e)
        if body.get("status") != "success":
            self._fail(path, params, "%s: %s" % (body.get("errorType"), body.get("error")))
        return body["data"]

    def _fail(self, path, params, why):
        raise h.Failure("prometheus %s %r: %s" % (path, params, why))

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        data = self.api("query", **params)
        check(data["resultType"] == "vector" or data["resultType"] == "scalar",
              "%s: result type %s" % (expr, data["resultType"]))
        return data["result"]

    def value(self, expr, at=None):
        """The one sample EXPR gives (a float), or None when it gives none."""
        res = self.query(expr, at)
        if not res:
            return None
        check(len(res) == 1, "%s: %d series, want 1: %r" % (expr, len(res), res[:3]))
        return float(res[0]["value"][1])


class Client(threading.Thread):
    """GET PATH at RATE a second on one keep-alive connection for SECONDS, paced to an
    absolute schedule (a late request is sent at once, so the rate stays steady);
    records each answer's completion time (wall clock, like Prometheus') and latency."""

    def __init__(self, port, path, rate, seconds):
        super().__init__(daemon=True)
        self.port, self.path, self.rate, self.seconds = port, path, rate, seconds
        self.done = []          # (wall time answered, latency s)
        self.errors = []
        self.t0 = self.t1 = None

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            start = time.monotonic()
            self.t0 = time.time()
            n = int(self.rate * self.seconds)
            for i in range(n):
                due = start + i / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t = time.monotonic()
                conn.request("GET", self.path)
                r = conn.getresponse()
                r.read()
                lat = time.monotonic() - t
                if r.status != 200:
                    self.errors.append(r.status)
                self.done.append((time.time(), lat))
            self.t1 = time.time()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
        finally:
            conn.close()

    def count(self, t_from, t_to):
        return sum(1 for t, _ in self.done if t_from < t <= t_to)


def bucket_edges(x):
    """The histogram bucket (lower, upper] in seconds that holds X (common/hist.c)."""
    bounds = [b / 1e6 for b in (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
                                100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000)]
    lower = 0.0
    for b in bounds:
        if x <= b:
            return lower, b
        lower = b
    return lower, float("inf")


def dashboard_exprs():
    """(where, expr) of every query in the dashboard: panel targets and the template
    variables' label_values() (as the series query Grafana makes of it)."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append(("panel %r %s" % (p["title"], t["refId"]), t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*), *(\w+)\)", v["query"])
            check(m, "variable %s: not label_values(): %r" % (v["name"], v["query"]))
            out.append(("variable %s" % v["name"], m.group(1)))
    return out


def grafana_subst(expr, rate_interval):
    """The expression as Grafana sends it with every value of the variables selected."""
    expr = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r"\$\{?(instance|function)\}?", ".+", expr)


def alert_exprs():
    """(alert, expr) of every rule in alerts.yml. The file is plain enough to read
    without a YAML library: `- alert: NAME` then `expr: ...` (one line or a `|` block)."""
    out = []
    with open(ALERTS) as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"\s*- alert: (\S+)", lines[i])
        if m:
            name = m.group(1)
            i += 1
            e = re.match(r"(\s*)expr: (.*)$", lines[i])
            check(e, "alert %s: no expr on the next line" % name)
            if e.group(2).strip() == "|":
                body = []
                ind = len(e.group(1))
                i += 1
                while i < len(lines) and (not lines[i].strip() or
                                          len(lines[i]) - len(lines[i].lstrip()) > ind):
                    body.append(lines[i].strip())
                    i += 1
                out.append((name, " ".join(b for b in body if b)))
            else:
                out.append((name, e.group(2).strip()))
        i += 1
    return out


def _skip_without_prometheus():
    for p in (PROMETHEUS, PROMTOOL):
        if not os.access(p, os.X_OK):
            h.skip("%s is not installed (scripts/deps.sh installs prometheus)" % p)


@test
def promtool_checks_the_alert_rules():
    _skip_without_prometheus()
    for args in (["check", "rules", ALERTS], ["test", "rules", ALERTS_TEST]):
        p = subprocess.run([PROMTOOL, *args], capture_output=True, timeout=30,
                           cwd=os.path.dirname(ALERTS))
        out = (p.stdout + p.stderr).decode(errors="replace")
        check(p.returncode == 0, "promtool %s: exit %d\n%s" % (" ".join(args), p.returncode, out))
        check("SUCCESS" in out, "promtool %s said no SUCCESS:\n%s" % (" ".join(args), out))
    names = [n for n, _ in alert_exprs()]
    for want in ("EdgevisorTasksLost", "EdgevisorCrashLoop", "EdgevisorFunctionFailed",
                 "EdgevisorQueueSaturated"):
        check(want in names, "alerts.yml has no %s: %r" % (want, names))


@test
def dashboard_has_a_panel_for_each_question():
    """Requests, latency quantiles, tasks, lost, workers by state, memory vs cap and
    cold starts each have a panel, every panel queries the selected data source, and
    each query a variable of it (so a host's or a function's panels can be picked)."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dash["panels"]}
    want = {
        "requests": r"rate\(edgevisor_requests_total",
        "latency quantiles": r"histogram_quantile\(0\.99, .*edgevisor_request_duration_seconds_bucket",
        "tasks": r"edgevisor_tasks_(started|completed)_total",
        "lost": r"edgevisor_tasks_lost_total",
        "workers by state": r"by \(function, state\) \(edgevisor_workers",
        "memory vs cap": r"edgevisor_worker_memory_bytes.*edgevisor_worker_memory_limit_bytes",
        "cold starts": r"edgevisor_cold_start_seconds",
    }
    for what, rx in want.items():
        check(any(re.search(rx, e) for e in exprs.values()),
              "no dashboard panel for %s (/%s/): %r" % (what, rx, list(exprs)))
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), "panel ids repeat: %r" % ids)
    for p in dash["panels"]:
        check(p["datasource"]["uid"] == "${datasource}", "panel %r: fixed data source" % p["title"])
        for t in p["targets"]:
            check("$instance" in t["expr"] and "$function" in t["expr"],
                  "panel %r: %s ignores the variables" % (p["title"], t["expr"]))


@test
def prometheus_scrapes_traffic_and_runs_every_dashboard_and_alert_query():
    _skip_without_prometheus()
    mport = h.free_ports(1)[0]
    fn = h.function("delay", workers=1, limits={"memory_mb": 256})
    with h.Supervisor([fn], name="prom", metrics="127.0.0.1:%d" % mport) as sv, \
            Prometheus("127.0.0.1:%d" % mport, ALERTS) as prom:
        h.wait_until(lambda: prom.api("status/buildinfo"), 20, "prometheus to answer")
        h.wait_until(lambda: any(t["health"] == "up" for t in
                                 prom.api("targets")["activeTargets"]), 15,
                     "the edgevisor target up")
        sel = '{function="delay"}'
        h.wait_until(lambda: prom.value("edgevisor_requests_total" + sel) == 0, 10,
                     "a first sample of edgevisor_requests_total (0)")
        # The rules loaded and are evaluated without error.
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        check(len(rules) == len(alert_exprs()), "prometheus loaded %d rules" % len(rules))
        check(all(r["health"] != "err" for r in rules),
              "rule errors: %r" % [(r["name"], r.get("lastError")) for r in rules])

        client = Client(sv.port(), "/?ms=%d&task_ms=%d" % (REPLY_MS, TASK_MS), RATE, TRAFFIC_S)
        before = time.time()
        client.start()
        client.join(TRAFFIC_S + 30)
        check(not client.is_alive(), "the client did not finish")
        check(not client.errors, "client errors: %r" % client.errors[:5])
        n = len(client.done)
        # A scrape after the last answer (and its task) was counted.
        after = client.t1 + TASK_MS / 1000.0 + 0.5
        h.wait_until(lambda: (prom.value("timestamp(edgevisor_requests_total%s)" % sel) or 0)
                     > after, 10, "a scrape after the traffic")

        # The count: the counter's increase between a sample before the traffic and
        # one after it is exactly what the client got.
        v0 = prom.value("edgevisor_requests_total" + sel, before)
        v1 = prom.value("edgevisor_requests_total" + sel, after + SCRAPE_S + 0.5)
        check(v0 == 0 and v1 is not None, "samples around the traffic: %r %r" % (v0, v1))
        check(abs((v1 - v0) - n) <= max(2, n * 0.01),
              "prometheus counted %d requests, the client %d" % (v1 - v0, n))
        # The rate over a window inside the traffic, against the client's rate there.
        at = client.t0 + (TRAFFIC_S + WINDOW_S) / 2.0
        window = "%ds" % WINDOW_S
        prate = prom.value("rate(edgevisor_requests_total%s[%s])" % (sel, window), at)
        crate = client.count(at - WINDOW_S, at) / float(WINDOW_S)
        print("#   %d requests; rate over %s: prometheus %.2f/s, client %.2f/s"
              % (n, window, prate or -1, crate), flush=True)
        check(prate is not None and abs(prate - crate) <= 0.1 * crate,
              "rate(edgevisor_requests_total[%s]) = %r, the client's rate then %.1f/s"
              % (window, prate, crate))

        # Quantiles: within the client's latency range, widened to the bucket edges
        # (the histogram knows no finer); the worker's timer makes every request at
        # least REPLY_MS, so nothing may come out below that bucket.
        lats = sorted(lat for _, lat in client.done)
        lo = bucket_edges(REPLY_MS / 1000.0)[0]
        hi = bucket_edges(lats[-1])[1]
        for q in ("0.5", "0.99"):
            expr = ("histogram_quantile(%s, sum by (le) (rate("
                    "edgevisor_request_duration_seconds_bucket%s[%s])))" % (q, sel, window))
            v = prom.value(expr, at)
            print("#   request duration p%s: %r s (client %.4f..%.4f s)"
                  % (round(float(q) * 100), v, lats[0], lats[-1]), flush=True)
            check(v is not None and lo <= v <= hi,
                  "%s = %r, not within [%g, %g] (client latency %.4f..%.4f s)"
                  % (expr, v, lo, hi, lats[0], lats[-1]))
        tq = prom.value("histogram_quantile(0.99, sum by (le) (rate("
                        "edgevisor_task_duration_seconds_bucket%s[%s])))" % (sel, window), at)
        check(tq is not None and bucket_edges(TASK_MS / 1000.0)[0] <= tq <= 1.0,
              "task duration p99 %r for %d ms tasks" % (tq, TASK_MS))
        # /status says the same from the same buckets.
        st = fn_status(status(sv), "delay")
        lat, tlat = st["latency"], st["task_latency"]
        check(lat["count"] == v1 and lo * 1000 <= lat["p99_ms"] <= hi * 1000
              and lo * 1000 <= lat["p50_ms"] <= lat["p99_ms"]
              and lat["sum_ms"] >= REPLY_MS * lat["count"],
              "/status latency %r (client %.2f..%.2f ms)" % (lat, lats[0] * 1e3, lats[-1] * 1e3))
        check(tlat["count"] == n and tlat["p50_ms"] >= TASK_MS * 0.6 and
              set(tlat) == {"count", "sum_ms", "p50_ms", "p99_ms"},
              "/status task_latency %r" % tlat)

        # The exposition itself: strict text, buckets cumulative up to +Inf = _count,
        # and _count is the requests counter (both counted in the same place).
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
            fams = parse_prometheus(r.read().decode())
        for fam, count in (("edgevisor_request_duration_seconds", n),
                           ("edgevisor_task_duration_seconds", n)):
            check(fams.get(fam, {}).get("type") == "histogram", "%s is not a histogram" % fam)
            buckets = sorted(((float(dict(k)["le"]), v) for k, v in fams[fam]["samples"].items()
                              if dict(k).get("series") == fam + "_bucket"))
            check(len(buckets) == 17 and buckets[0][0] == 0.0001 and buckets[-2][0] == 10 and
                  buckets[-1][0] == float("inf"), "%s buckets %r" % (fam, buckets))
            check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
                  "%s buckets not cumulative: %r" % (fam, buckets))
            got = sample(fams, fam, function="delay", series=fam + "_count")
            check(buckets[-1][1] == got == count, "%s: +Inf %r, _count %r, want %d"
                  % (fam, buckets[-1][1], got, count))
        check(sample(fams, "edgevisor_requests_total", function="delay") == n, "requests_total")
        check(sample(fams, "edgevisor_worker_memory_limit_bytes", function="delay") == 256 << 20,
              "memory limit")
        check(sample(fams, "edgevisor_max_workers", function="delay") == 1, "max_workers")

        # Trouble for the alerts: a worker SIGKILLed with a long task pending (lost,
        # a crash), and a function whose init fails added by a reload (failed).
        h.request(sv.port(), "/?task_ms=60000")
        h.wait_until(lambda: fn_status(status(sv), "delay")["totals"]["tasks_pending"] == 1,
                     5, "the long task pending")
        pid = list(sv.workers("delay").values())[0]
        os.kill(pid, signal.SIGKILL)
        sv.wait_event("task_lost", fn="delay")
        # The dead worker's buckets stay in its function's totals: its n + 1 requests
        # and n ended tasks (the lost one never ended) outlive it.
        h.wait_until(lambda: fn_status(status(sv), "delay")["totals"]["crashes"] == 1, 5,
                     "the crash counted")
        st = fn_status(status(sv), "delay")
        check(st["latency"]["count"] == n + 1 and st["task_latency"]["count"] == n,
              "latency after the worker died: %r %r" % (st["latency"], st["task_latency"]))
        bad = h.function("bad", library="initfail", workers=1)
        sv.functions.append(bad)
        sv.rewrite_config(lambda c: c["functions"].append(
            {k: v for k, v in bad.items() if k != "port"}))
        sv.send(signal.SIGHUP)
        h.wait_until(lambda: prom.value('edgevisor_function_failed{function="bad"}') == 1, 30,
                     "prometheus to see the failed function")
        h.wait_until(lambda: prom.value('edgevisor_tasks_lost_total{function="delay"}') == 1, 10,
                     "prometheus to see the lost task")
        h.wait_until(lambda: (prom.value('timestamp(edgevisor_generation)') or 0)
                     > time.time() - SCRAPE_S - 0.5 and
                     prom.value('edgevisor_workers{function="delay",state="ready"}') == 1,
                     10, "a scrape with the replacement worker ready")

        # Every alert expression runs; those the trouble above should trigger do.
        want = {"EdgevisorTasksLost": {"delay"}, "EdgevisorCrashLoop": {"bad"},
                "EdgevisorFunctionFailed": {"bad"}}
        for name, expr in alert_exprs():
            res = prom.query(expr)
            got = {r["metric"].get("function") for r in res}
            if name in want:
                check(want[name] <= got, "alert %s: %s gives %r, want functions %r"
                      % (name, expr, got, want[name]))
            else:
                check(not res, "alert %s fires with nothing wrong: %r" % (name, res))
        # ... and every dashboard query runs, non-empty: each panel has data here.
        # $__rate_interval: Grafana makes it at least 4 scrape intervals.
        for where, expr in dashboard_exprs():
            q = grafana_subst(expr, "%ds" % (4 * SCRAPE_S))
            if where.startswith("variable"):
                res = prom.api("series", **{"match[]": q})
            else:
                res = prom.query(q)
            check(res, "dashboard %s: %s gives nothing" % (where, q))


if __name__ == "__main__":
    h.main()
