"""test_durable_pg.py - durable tasks on PostgreSQL: a real server (pgserver.py:
initdb + pg_ctl in a temp dir as the unprivileged `postgres` user, unix socket only)
and the real backend, worker/durable_pg.c, driven by build/tests/durable_pg_drive
(one process = one host: its own connection and lease owner). Every attempt is
recorded in a side channel (start/end lines with CLOCK_MONOTONIC stamps) so the
checks are on what ran, not on what the store says:
  - hosts starting together on an empty database migrate it once;
  - two hosts drain 10,000 tasks: each task ran, none twice at once, none lost;
  - a host SIGKILLed mid-way: the other completes its claimed tasks once their
    lease expired, never while the killed attempt could still be running;
  - the database stopped for 5 s: enqueue fails clearly and within its bound during
    the outage, and enqueue and claims resume by themselves after it.
Skips (with the reason) only when the PostgreSQL server binaries are absent."""

import os
import signal
import subprocess
import time

import harness as h
import pgserver
from harness import check, test

DRIVE = os.path.join(h.BUILD, "tests", "durable_pg_drive")


class Host:
    """One durable_pg_drive process against the server."""

    def __init__(self, pg, *args, fn="t", timeout_ms=2000):
        self.dsn_file = pg.write_dsn()
        env = dict(os.environ, DPG_DSN_FILE=self.dsn_file, DPG_FUNCTION=fn,
                   DPG_TIMEOUT_MS=str(timeout_ms))
        self.out = os.path.join(pg.dir, "drive-%d-%d.out" % (os.getpid(), time.monotonic_ns()))
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen([DRIVE, *args], env=env, stdout=f,
                                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        h.at_cleanup(self.kill)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def wait(self, timeout=60):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise h.Failure("durable_pg_drive still running after %ds" % timeout)
        err = self.proc.stderr.read().decode(errors="replace")
        check(self.proc.returncode == 0, "durable_pg_drive exited %s: %s"
              % (self.proc.returncode, err[-800:]))
        return self.lines()

    def lines(self):
        with open(self.out) as f:
            return f.read().splitlines()


def drive(pg, *args, **kw):
    return Host(pg, *args, **kw).wait()


def counts(pg, fn="t"):
    line = drive(pg, "counts", fn=fn)[0]
    return {k: int(v) for k, v in (kv.split("=") for kv in line.split())}


def attempts(log):
    """{task id: [(owner, start_ns, end_ns or None)]} from a drain side channel."""
    runs, open_ = {}, {}
    with open(log) as f:
        for line in f:
            what, tid, owner, ns = line.split()
            tid, ns = int(tid), int(ns)
            if what == "start":
                open_[(tid, owner)] = ns
            else:
                runs.setdefault(tid, []).append((owner, open_.pop((tid, owner)), ns))
    for (tid, owner), ns in open_.items():
        runs.setdefault(tid, []).append((owner, ns, None))
    return runs


def overlaps(runs, cut_ns=None):
    """Task ids with two attempts whose intervals overlap (an attempt cut by a kill
    lasts until CUT_NS)."""
    bad = []
    for tid, rs in runs.items():
        iv = sorted((s, e if e is not None else cut_ns or float("inf")) for _, s, e in rs)
        if any(iv[i + 1][0] < iv[i][1] for i in range(len(iv) - 1)):
            bad.append(tid)
    return bad


def need_pg():
    why = pgserver.missing()
    if why:
        h.skip(why)
    check(os.access(DRIVE, os.X_OK), "%s is not built" % DRIVE)


@test
def hosts_starting_at_once_migrate_once():
    need_pg()
    with pgserver.PgServer("pgmig", fsync=False) as pg:
        hosts = [Host(pg, "counts") for _ in range(4)]
        for host in hosts:
            host.wait()
        rows = pg.psql("SELECT version FROM edgevisor_schema ORDER BY version")
        check(rows == [["1"], ["2"]], "schema versions after 4 concurrent starts: %r" % rows)
        # A schema newer than the binary knows is refused, not used.
        pg.psql("INSERT INTO edgevisor_schema (version) VALUES (99)")
        r = subprocess.run([DRIVE, "counts"], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, DPG_DSN_FILE=hosts[0].dsn_file))
        check(r.returncode != 0 and "newer than this edgevisor" in r.stderr,
              "a newer schema was not refused: rc=%d %s" % (r.returncode, r.stderr[-300:]))


@test
def two_hosts_drain_10000_tasks_none_twice_at_once_none_lost():
    need_pg()
    n = 10000
    with pgserver.PgServer("pgdrain", fsync=False) as pg:
        out = drive(pg, "enqueue", str(n), "500")
        check(out and out[0].startswith("enqueued=%d " % n), "enqueue: %r" % out)
        log = os.path.join(pg.dir, "attempts.log")
        hosts = [Host(pg, "drain", log, "5000", "400", "0") for _ in range(2)]
        done = [host.wait(60) for host in hosts]
        runs = attempts(log)
        ids = [int(r[0]) for r in pg.psql("SELECT id FROM edgevisor_tasks ORDER BY id")]
        check(len(ids) == n, "%d rows for %d tasks" % (len(ids), n))
        missing = [i for i in ids if i not in runs]
        check(not missing, "%d tasks never ran, e.g. %r" % (len(missing), missing[:5]))
        check(all(e is not None for rs in runs.values() for _, _, e in rs), "an attempt never ended")
        bad = overlaps(runs)
        check(not bad, "tasks run twice at once: %r" % bad[:5])
        owners = {o for rs in runs.values() for o, _, _ in rs}
        check(len(owners) == 2, "both hosts should have taken tasks: %r %r" % (owners, done))
        c = counts(pg)
        check(c["succeeded"] == n and c["pending"] == c["running"] == c["dead"] == 0,
              "counts after the drain: %r" % c)
        states = pg.psql("SELECT state, count(*) FROM edgevisor_tasks GROUP BY state")
        check(states == [["2", str(n)]], "states after the drain: %r" % states)


@test
def killed_host_tasks_are_completed_after_their_lease():
    need_pg()
    n, lease_ms = 200, 1500
    with pgserver.PgServer("pgkill", fsync=False) as pg:
        drive(pg, "enqueue", str(n), "100")
        log = os.path.join(pg.dir, "attempts.log")
        a = Host(pg, "drain", log, str(lease_ms), "3000", "20")
        b = Host(pg, "drain", log, str(lease_ms), "3000", "20")

        def a_started():
            with open(log) as f:
                return sum(1 for line in f if line.startswith("start ") and
                           line.split()[2] == "drive:%d" % a.proc.pid) >= 20
        h.wait_until(lambda: os.path.exists(log) and a_started(), 30, "host A at work")
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(5)
        kill_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        b.wait(90)
        runs = attempts(log)
        a_owner = "drive:%d" % a.proc.pid
        cut = [tid for tid, rs in runs.items() if any(o == a_owner and e is None for o, _, e in rs)]
        check(cut, "host A had no attempt in flight when killed")
        for tid in cut:
            later = [s for o, s, e in runs[tid] if o != a_owner]
            check(later, "task %d, cut by the kill, never ran again" % tid)
            check(min(later) >= kill_ns - 50_000_000,
                  "task %d ran again %.0f ms before host A was killed (lease not honoured)"
                  % (tid, (kill_ns - min(later)) / 1e6))
        bad = overlaps(runs, cut_ns=kill_ns)
        check(not bad, "tasks run twice at once: %r" % bad[:5])
        ids = [int(r[0]) for r in pg.psql("SELECT id FROM edgevisor_tasks")]
        check(all(i in runs for i in ids), "a task never ran")
        c = counts(pg)
        check(c["succeeded"] == n and c["pending"] == c["running"] == 0,
              "counts after the other host finished: %r" % c)
        # Tasks A had claimed but not started come back too: their lease expired.
        check(c["retried"] >= len(cut), "retried %d < %d cut attempts" % (c["retried"], len(cut)))


@test
def database_outage_enqueue_fails_clearly_then_resumes():
    need_pg()
    bound_ms = 2000
    with pgserver.PgServer("pgout", fsync=False) as pg:
        drive(pg, "counts")   # the schema exists before the clock starts
        host = Host(pg, "outage", "9", timeout_ms=bound_ms)
        h.wait_until(lambda: sum(1 for line in host.lines() if line.startswith("ok ")) >= 10,
                     15, "enqueues before the outage")
        pg.stop("fast")
        t_stop = time.monotonic()
        h.wait_until(lambda: any(line.startswith("err ") for line in host.lines()), 10,
                     "an enqueue failing during the outage")
        # The outage lasts 5 s from the stop (a deadline, not a bare sleep: the
        # driver keeps enqueueing meanwhile).
        h.wait_until(lambda: time.monotonic() - t_stop >= 5.0, 6, "the 5 s outage")
        n_before = len(host.lines())
        pg.start()
        lines = host.wait(30)
        errs = [line.split(" ", 3) for line in lines if line.startswith("err ")]
        oks_after = [line for line in lines[n_before:] if line.startswith("ok ")]
        check(len(errs) >= 5, "only %d failed enqueues during a 5 s outage" % len(errs))
        slow = [e for e in errs if int(e[1]) > bound_ms + 500]
        worst = max(int(e[1]) for e in errs)
        if h.ASAN:
            print("# slowest failed enqueue under ASan: %d ms" % worst)
        else:
            check(not slow, "failed enqueues took up to %d ms (bound %d)" % (worst, bound_ms))
        check(all(e[2] == str(11) for e in errs), "errno not EAGAIN: %r" % errs[:3])  # EAGAIN
        check(all("database" in e[3] for e in errs), "unclear errors: %r" % errs[:3])
        check(oks_after, "no enqueue succeeded after the server came back")
        # Nothing acknowledged is missing; at most the one whose commit reply the
        # stop cut may exist unacknowledged (at-least-once: the caller retries).
        oks = sum(1 for line in lines if line.startswith("ok "))
        rows = int(pg.psql("SELECT count(*) FROM edgevisor_tasks")[0][0])
        check(oks <= rows <= oks + 1, "%d acknowledged enqueues, %d rows" % (oks, rows))
        # And claims resume: everything recorded drains.
        drive(pg, "drain", os.path.join(pg.dir, "a.log"), "3000", "300", "0")
        c = counts(pg)
        check(c["succeeded"] == rows and c["pending"] == 0, "after the outage: %r" % c)


if __name__ == "__main__":
    h.main()
