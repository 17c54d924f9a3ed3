"""test_isolation.py - tenant isolation against the real supervisor and workers
(SPEC §5): the cgroup tree and its caps, the memory cap with beforeunload(memory) and
OOM detection, the CPU quota and a neighbour's share of its CPU, the CPU-time and wall-clock
budgets, the process cap (max_pids) against a fork bomb, the tenant uid/gid with
no_new_privs, and cgroups "required" / "auto".

Runs as-is on cgroup v1 (this host) and v2 (tests/vm/run.sh, see
test_vm_cgroup_v2.py): the hierarchy comes from the supervisor's
`ev=cgroup_init version=` line, and v1 or v2 files are read accordingly. Under the VM
(EDGEVISOR_VM set: emulated, one CPU) CPU timing is noise, so the CPU test asserts
throttling (cpu.stat nr_throttled > 0) instead of the exact share, and the neighbour
test (a capped hog and its neighbour pinned to one CPU) is not registered there: it
runs on the host only. Every supervisor gets its own cgroup_parent, and every test
checks that nothing of it is left in any hierarchy after the stop.
"""

import errno
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import harness as h
from harness import check, test

CG_ROOT = "/sys/fs/cgroup"
IN_VM = bool(os.environ.get("EDGEVISOR_VM"))


def _v1_pids_mounted():
    try:
        with open("/proc/mounts") as f:
            return any(l.split()[1] == CG_ROOT + "/pids" and l.split()[2] == "cgroup"
                       for l in f)
    except OSError:
        return False


# pids is optional: the supervisor uses it where it is mounted.
V1_CTRLS = ("cpu", "cpuacct", "memory") + (("pids",) if _v1_pids_mounted() else ())
_seq = [0]
_said_version = []


def parent_name(tag):
    """A cgroup_parent no other test (or concurrent run) uses."""
    _seq[0] += 1
    return "edgevisor-test-%s-%d-%d" % (tag, os.getpid(), _seq[0])


def host_version():
    """2 if /sys/fs/cgroup is the unified hierarchy with cpu and memory, else 1."""
    try:
        with open(os.path.join(CG_ROOT, "cgroup.controllers")) as f:
            ctrls = f.read().split()
        return 2 if "cpu" in ctrls and "memory" in ctrls else 1
    except OSError:
        return 1


def cpu_idle_s():
    """Seconds all CPUs spent idle since boot (idle + iowait in /proc/stat)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    return (int(v[4]) + int(v[5])) / os.sysconf("SC_CLK_TCK")


def read(path):
    with open(path) as f:
        return f.read().strip()


def kv(path):
    """A flat-keyed cgroup file (cpu.stat, memory.events) as a dict of ints."""
    out = {}
    for line in read(path).splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


def proc_cgroups(pid):
    """{controller or "": path} from /proc/PID/cgroup ("" is the v2 line)."""
    out = {}
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls == "":
                out[""] = path
            for c in ctrls.split(","):
                if c:
                    out[c] = path
    return out


class Cg:
    """What the supervisor built: version and the dirs of its base in each hierarchy."""

    def __init__(self, sv, parent):
        rec = sv.wait_event("cgroup_init", timeout=5)
        self.version = 2 if rec.get("version") == "v2" else 1
        self.pids = rec.get("pids") == "yes"
        self.parent = parent
        self.bases = base_dirs(self.version, parent)
        check(rec.get("base") in self.bases.values(),
              "cgroup_init base=%s is none of %r" % (rec.get("base"), self.bases))
        if not _said_version:
            # test_vm_cgroup_v2.py checks this line to know the VM really ran v2.
            print("#   cgroup v%d base=%s" % (self.version, rec.get("base")), flush=True)
            _said_version.append(self.version)

    def worker_dirs(self, pid):
        """{controller: dir} of worker PID's cgroups ("unified" on v2)."""
        cgs = proc_cgroups(pid)
        if self.version == 2:
            return {"unified": CG_ROOT + cgs[""]}
        return {c: os.path.join(CG_ROOT, c) + cgs[c] for c in V1_CTRLS}

    def cpu_usage_us(self, d):
        if self.version == 2:
            return kv(os.path.join(d["unified"], "cpu.stat"))["usage_usec"]
        return int(read(os.path.join(d["cpuacct"], "cpuacct.usage"))) // 1000

    def nr_throttled(self, d):
        return kv(os.path.join(d["unified" if self.version == 2 else "cpu"],
                               "cpu.stat"))["nr_throttled"]


def host_has_pids():
    """True if the supervisor should find a pids controller: a v1 pids mount, or pids
    in the v2 root's cgroup.controllers."""
    if host_version() == 1:
        return "pids" in V1_CTRLS
    try:
        return "pids" in read(os.path.join(CG_ROOT, "cgroup.controllers")).split()
    except OSError:
        return False


def base_dirs(version, parent):
    """Where <base> = our own cgroup + PARENT lives, per hierarchy (the supervisor is
    our child: it starts in our cgroups)."""
    cgs = proc_cgroups(os.getpid())
    if version == 2:
        return {"unified": os.path.normpath(CG_ROOT + cgs.get("", "/") + "/" + parent)}
    return {c: os.path.normpath(os.path.join(CG_ROOT, c) + cgs.get(c, "/") + "/" + parent)
            for c in V1_CTRLS}


def check_nothing_left(parent):
    """No cgroup named PARENT is left below our cgroup, in any hierarchy we use."""
    for ctrl, d in base_dirs(host_version(), parent).items():
        check(not os.path.exists(d), "cgroup %s left after stop (%s)" % (d, ctrl))


def remove_cgroups(parent):
    """Kills what is left in PARENT's cgroups and removes them, deepest first."""
    for d in base_dirs(host_version(), parent).values():
        if not os.path.isdir(d):
            continue
        for top, dirs, _ in sorted(os.walk(d), key=lambda t: -t[0].count("/")):
            try:
                for pid in read(os.path.join(top, "cgroup.procs")).split():
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
            try:
                h.wait_until(lambda: not read(os.path.join(top, "cgroup.procs")), 2,
                             "cgroup %s to empty" % top)
                os.rmdir(top)
            except (OSError, h.Failure):
                pass


class IsoSupervisor(h.Supervisor):
    """A Supervisor whose cleanup also removes its cgroup tree: a failed test ends it
    with SIGKILL, which leaves no chance to remove its own (stop_and_check has
    already judged what a proper stop left)."""

    def cleanup(self):
        super().cleanup()
        remove_cgroups(self.cg_parent)


def isolated(functions, tag, **top):
    """A Supervisor with cgroups on ("auto") under a cgroup_parent of its own."""
    parent = parent_name(tag)
    top.setdefault("cgroups", "auto")
    sv = IsoSupervisor(functions, name="iso-" + tag, cgroup_parent=parent, **top)
    sv.cg_parent = parent
    return sv


def worker_pid(sv, fn):
    ws = h.wait_until(lambda: sv.workers(fn), 10, "a ready %s worker" % fn)
    return sorted(ws.items())[0]


def admin_status(sv):
    """GET /status over the supervisor's unix admin socket, as JSON."""
    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(5)
            self.sock.connect(sv.admin[len("unix:"):])
    c = Conn("localhost")
    try:
        c.request("GET", "/status")
        r = c.getresponse()
        body = r.read()
        check(r.status == 200, "/status answered %d" % r.status)
        return json.loads(body)
    finally:
        c.close()


def fn_status(sv, name):
    for f in admin_status(sv)["functions"]:
        if f["name"] == name:
            return f
    raise h.Failure("no function %s in /status" % name)


def fn_logs(sv, needle, **filters):
    return [r for r in sv.events("function_log", **filters) if needle in r.get("msg", "")]


def wait_gone(pid, timeout=10):
    h.wait_until(lambda: not h.alive(pid), timeout, "worker %d to exit" % pid)


def wait_replacement(sv, fn, old_pid, timeout=10):
    """A ready worker of FN other than OLD_PID; returns its pid."""
    def found():
        return [p for p in sv.workers(fn).values() if p != old_pid]
    return h.wait_until(found, timeout, "a replacement %s worker" % fn)[0]


def stop_and_check(sv, sig=signal.SIGTERM, timeout=30):
    code = sv.stop(sig, timeout=timeout)
    check(code == 0, "supervisor exited %r after signal %d" % (code, sig))
    check(not sv.leftovers, "processes left after stop: %r" % sv.leftovers)
    check(sv.events("cgroup_shutdown"), "no ev=cgroup_shutdown line")
    check_nothing_left(sv.cg_parent)


# ---- the tests -------------------------------------------------------------------------

@test
def cgroup_files_hold_caps():
    fn = h.function("hello", workers=2, limits={
        "memory_mb": 64, "cpu_percent": 20,
        "function_memory_mb": 256, "function_cpu_percent": 50})
    sv = isolated([fn], "caps")
    with sv:
        cg = Cg(sv, sv.cg_parent)
        ws = h.wait_until(lambda: len(sv.workers("hello")) == 2 and sv.workers("hello"),
                          10, "two ready workers")
        check(h.request(sv.port(), "/").status == 200, "hello did not answer")
        for wid, pid in ws.items():
            d = cg.worker_dirs(pid)
            for ctrl, path in d.items():
                want = "%s/hello/w%s" % (cg.bases[ctrl], wid)
                check(path == want, "worker %d is in %s, not %s" % (pid, path, want))
                procs = read(os.path.join(path, "cgroup.procs")).split()
                check(str(pid) in procs, "pid %d not in %s/cgroup.procs (%r)"
                      % (pid, path, procs))
                fdir = os.path.dirname(path)
                if cg.version == 2:
                    check(read(path + "/memory.max") == str(64 << 20),
                          "memory.max %s" % read(path + "/memory.max"))
                    if os.path.exists(path + "/memory.swap.max"):
                        check(read(path + "/memory.swap.max") == "0", "memory.swap.max")
                    check(read(path + "/cpu.max") == "20000 100000",
                          "cpu.max %r" % read(path + "/cpu.max"))
                    check(read(fdir + "/memory.max") == str(256 << 20),
                          "function memory.max %s" % read(fdir + "/memory.max"))
                    check(read(fdir + "/cpu.max") == "50000 100000",
                          "function cpu.max %r" % read(fdir + "/cpu.max"))
                elif ctrl == "memory":
                    check(int(read(path + "/memory.limit_in_bytes")) == 64 << 20,
                          "memory.limit_in_bytes %s" % read(path + "/memory.limit_in_bytes"))
                    if os.path.exists(path + "/memory.memsw.limit_in_bytes"):
                        check(int(read(path + "/memory.memsw.limit_in_bytes")) == 64 << 20,
                              "memory.memsw.limit_in_bytes")
                    check(int(read(fdir + "/memory.limit_in_bytes")) == 256 << 20,
                          "function memory.limit_in_bytes %s"
                          % read(fdir + "/memory.limit_in_bytes"))
                elif ctrl == "cpu":
                    check(read(path + "/cpu.cfs_period_us") == "100000", "cfs_period_us")
                    check(read(path + "/cpu.cfs_quota_us") == "20000",
                          "cpu.cfs_quota_us %s" % read(path + "/cpu.cfs_quota_us"))
                    check(read(fdir + "/cpu.cfs_quota_us") == "50000",
                          "function cpu.cfs_quota_us %s" % read(fdir + "/cpu.cfs_quota_us"))
        # The supervisor sits in its own leaf, beside the functions.
        for ctrl, base in cg.bases.items():
            procs = read(os.path.join(base, "supervisor", "cgroup.procs")).split()
            check(str(sv.pid) in procs, "supervisor not in %s/supervisor" % base)
        stop_and_check(sv)


@test
def memory_hog_soft_limit_then_oom():
    hog = h.function("memgrow", workers=1, limits={"memory_mb": 64})
    hello = h.function("hello", workers=1)
    sv = isolated([hog, hello], "mem")
    with sv:
        Cg(sv, sv.cg_parent)
        wid, pid = worker_pid(sv, "memgrow")
        with h.Prober(sv.port("hello")) as nb:
            # 40 MB at once, then 1 MB every 100 ms: the 250 ms poll sees 90% (57.6
            # MB) well before the kernel's cap at 64 MB and retires the worker; its
            # beforeunload(memory) hook then takes 32 MB at once (oom=32), far past
            # the cap: the kernel's OOM kill, which the supervisor must report.
            r = h.request(sv.port("memgrow"), "/?start=40&mb=1&ms=100&oom=32")
            check(r.status == 200, "memgrow answered %d" % r.status)
            soft = sv.wait_event("limit_soft", 15, fn="memgrow", pid=str(pid))
            check(soft.get("reason") == "memory", "limit_soft reason %r" % soft)
            exit_rec = sv.wait_event("worker_exit", 15, fn="memgrow", pid=str(pid))
            new_pid = wait_replacement(sv, "memgrow", pid)
            check(h.request(sv.port("memgrow"), "/").body == b"alive\n",
                  "the replacement does not answer")
            nb.check("hello while memgrow hit its cap")
        check(exit_rec.get("reason") == "memory", "worker_exit %r" % exit_rec)
        oom = sv.events("worker_oom", pid=str(pid))
        if oom and exit_rec.get("signal") == "9":
            seen = "OOM kill (ev=worker_oom, signal 9)"
        elif "signal" in exit_rec:
            seen = "signal %s%s" % (exit_rec["signal"], " with ev=worker_oom" if oom else
                                    " without ev=worker_oom")
        elif sv.events("limit_hard", pid=str(pid)):
            seen = "SIGTERM at the hard limit (exit code %s)" % exit_rec.get("code")
        else:
            seen = "exit code %s" % exit_rec.get("code")
        print("#   memgrow worker ended: %s" % seen)
        check(oom and exit_rec.get("signal") == "9", "the worker ended by %s, not by the "
              "OOM kill this test is named for: %r" % (seen, exit_rec))
        check(int(oom[0].get("oom_kills", "0")) >= 1, "worker_oom %r" % oom[0])
        # beforeunload(memory) ran (worker and hook) before the worker went.
        lines = sv.lines()
        i_bu = [i for i, l in enumerate(lines) if "ev=beforeunload" in l and
                "worker[memgrow/%s]" % wid in l and "reason=memory" in l]
        i_hook = [i for i, l in enumerate(lines) if "beforeunload_hook reason=memory" in l
                  and "worker[memgrow/%s]" % wid in l]
        i_exit = [i for i, l in enumerate(lines) if "ev=worker_exit" in l and
                  "pid=%d " % pid in l]
        check(i_bu and i_hook, "no beforeunload(memory) from worker %s" % wid)
        check(i_bu[0] < i_exit[0] and i_hook[0] < i_exit[0],
              "beforeunload came after the exit")
        check(h.alive(new_pid), "replacement %d died" % new_pid)
        st = fn_status(sv, "memgrow")["totals"]["unloads"]
        check(st.get("memory") == 1, "/status unloads %r (want memory: 1)" % st)
        stop_and_check(sv)


def median(xs):
    ys = sorted(xs)
    n = len(ys)
    return ys[n // 2] if n % 2 else (ys[n // 2 - 1] + ys[n // 2]) / 2


def per_cpu_idle_s():
    """{cpu number: seconds it spent idle since boot} from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            v = line.split()
            if v[0].startswith("cpu") and v[0] != "cpu":
                out[int(v[0][3:])] = (int(v[4]) + int(v[5])) / os.sysconf("SC_CLK_TCK")
    return out


def threads_allowed(pid):
    """{tid: Cpus_allowed_list} of every thread of PID."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("Cpus_allowed_list:"):
                        out[int(tid)] = line.split(":", 1)[1].strip()
        except OSError:
            pass
    return out


class OneCpu:
    """Pins processes (all their threads, and threads they start later) to one CPU:
    a cpuset cgroup of our own where the v1 cpuset hierarchy is mounted (the
    supervisor does not use that one), else sched_setaffinity on every thread."""

    def __init__(self, cpu):
        self.cpu = cpu
        self.dir = None
        mine = proc_cgroups(os.getpid()).get("cpuset")
        top = os.path.join(CG_ROOT, "cpuset")
        if mine is not None and os.path.exists(os.path.join(top, "cpuset.cpus")):
            self.dir = os.path.normpath("%s/%s/%s" % (top, mine, parent_name("pin")))
            os.mkdir(self.dir)
            with open(os.path.join(self.dir, "cpuset.cpus"), "w") as f:
                f.write(str(cpu))
            with open(os.path.join(os.path.dirname(self.dir), "cpuset.mems")) as f:
                mems = f.read().strip()
            with open(os.path.join(self.dir, "cpuset.mems"), "w") as f:
                f.write(mems)

    def add(self, pid):
        if self.dir:
            with open(os.path.join(self.dir, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        else:
            for tid in threads_allowed(pid):
                os.sched_setaffinity(tid, {self.cpu})
        got = threads_allowed(pid)
        check(got and all(v == str(self.cpu) for v in got.values()),
              "threads of %d not pinned to CPU %d: %r" % (pid, self.cpu, got))

    def remove(self):
        if not self.dir or not os.path.isdir(self.dir):
            return
        parent = os.path.join(os.path.dirname(self.dir), "cgroup.procs")
        try:
            for pid in read(os.path.join(self.dir, "cgroup.procs")).split():
                try:
                    with open(parent, "w") as f:
                        f.write(pid)
                except OSError:
                    pass
            os.rmdir(self.dir)
        except OSError:
            pass


def start_capped_hog(sv, cg):
    _, pid = worker_pid(sv, "cpuhog")
    d = cg.worker_dirs(pid)
    # Flat out: a task spins for 60 s of CPU, far more than the test lasts.
    r = h.request(sv.port("cpuhog"), "/?ms=60000&task=1")
    check(r.status == 200, "cpuhog answered %d" % r.status)
    return pid, d


@test
def cpu_hog_capped():
    hog = h.function("cpuhog", workers=1, limits={
        "cpu_percent": 20, "drain_timeout_ms": 1000, "beforeunload_grace_ms": 500})
    sv = isolated([hog], "cpu")
    with sv:
        cg = Cg(sv, sv.cg_parent)
        pid, d = start_capped_hog(sv, cg)
        thr0 = cg.nr_throttled(d)
        h.wait_until(lambda: cg.nr_throttled(d) > thr0 + 2, 10, "the hog to be throttled")
        u0, t0, idle0 = cg.cpu_usage_us(d), time.monotonic(), cpu_idle_s()
        time.sleep(5)       # the measurement window itself
        u1, t1, idle1 = cg.cpu_usage_us(d), time.monotonic(), cpu_idle_s()
        share = (u1 - u0) / 1e6 / (t1 - t0) * 100
        idle = (idle1 - idle0) / (t1 - t0)
        thr = cg.nr_throttled(d)
        check(thr > thr0, "cpu.stat nr_throttled did not grow (%d)" % thr)
        print("#   hog %.1f%% of a core over 5 s (%.2f cores idle), nr_throttled %d"
              % (share, idle, thr))
        if IN_VM:
            print("#   VM: emulated CPU, the share is not judged (throttling is)")
        else:
            check(share <= 25, "hog used %.1f%% of a core over 5 s (cap 20%%)" % share)
            # Below the cap only when the CPUs were taken by others (the cap is a
            # ceiling): with half a core idle on average it had no excuse.
            check(share >= 15 or idle < 0.5, "hog used only %.1f%% of a core over 5 s "
                  "with %.2f cores idle (cap 20%%)" % (share, idle))
        check(h.alive(pid), "the hog worker died")
        stop_and_check(sv)


def neighbour_rps(port, cpus, duration=2):
    """Requests/s wrk gets from PORT with 2 connections (always one request waiting)."""
    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    cmd = pin + ["wrk", "-t1", "-c2", "-d%ds" % duration,
                 "http://127.0.0.1:%d/?ms=5" % port]
    p = subprocess.run(cmd, capture_output=True, timeout=duration + 30)
    text = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    w = h.parse_wrk(text)
    check(p.returncode == 0 and w["requests"] > 0 and not w["non2xx"] and
          not any(w["socket_errors"].values()), "wrk: %s" % text)
    return w["rps"]


def cpu_hog_capped_neighbour_keeps_its_share():
    """What the CPU cap does for a neighbour on the same CPU. A CPU-bound neighbour
    (cpuhog answering each request after 5 ms of CPU), a hog capped at 20% and the
    same hog uncapped are pinned to one CPU (on separate CPUs the cap could not
    matter), wrk on the other CPUs. Rounds of three 2-second runs back to back, so all
    see the same background load: both hogs stopped (SIGSTOP), only the capped one
    running, only the uncapped one running. Promised: beside the capped hog the
    neighbour keeps at least 70% of its throughput alone (the hog is held to 20%);
    beside the uncapped one it gets about half (CFS shares), which shows the test can
    tell. Not promised, so not judged: the neighbour's latency. On one CPU a
    latency-sensitive neighbour's p99 is a scheduler slice per wakeup whether the hog
    is capped or not (measured on this host: p99 3.5 ms beside the capped hog, 2.7 ms
    beside the uncapped one, 0.5 ms alone); the cap bounds the tenant's share of the
    CPU, not the neighbour's wakeup latency. Only rounds in which our three workers had
    the CPU to themselves count (their CPU time >= 0.85 of each run's wall time); a
    skip when fewer than 2 of up to 8 rounds did (other work on that CPU). Host only: under the VM's emulated single
    CPU timing is noise (test_vm_cgroup_v2.py)."""
    lim = {"drain_timeout_ms": 1000, "beforeunload_grace_ms": 500}
    capped = h.function("cpuhog", workers=1, limits=dict(lim, cpu_percent=20))
    free = h.function("cpuhog_free", library="cpuhog", workers=1, limits=lim)
    work = h.function("work", library="cpuhog", workers=1, limits=lim)
    sv = isolated([capped, free, work], "cpushare")
    ncpu = os.cpu_count() or 1
    # The idlest CPU over half a second is the one the three workers get.
    i0 = per_cpu_idle_s()
    time.sleep(0.5)
    i1 = per_cpu_idle_s()
    cpu = max(i1, key=lambda c: i1[c] - i0.get(c, 0))
    others = set(range(ncpu)) - {cpu} or {cpu}
    pin = OneCpu(cpu)
    try:
        with sv:
            cg = Cg(sv, sv.cg_parent)
            _, npid = worker_pid(sv, "work")
            _, cpid = worker_pid(sv, "cpuhog")
            _, fpid = worker_pid(sv, "cpuhog_free")
            for p in (npid, cpid, fpid):
                pin.add(p)
            d, fd, nd = cg.worker_dirs(cpid), cg.worker_dirs(fpid), cg.worker_dirs(npid)
            for fn in ("cpuhog_free", "cpuhog"):
                r = h.request(sv.port(fn), "/?ms=60000&task=1")
                check(r.status == 200, "%s answered %d" % (fn, r.status))
                if fn == "cpuhog_free":
                    os.kill(fpid, signal.SIGSTOP)
            thr0 = cg.nr_throttled(d)
            h.wait_until(lambda: cg.nr_throttled(d) > thr0 + 2, 10, "the hog to be throttled")
            os.kill(cpid, signal.SIGSTOP)
            # A round counts when our three workers had the CPU to themselves in each
            # of its runs (their CPU time adds up to >= 0.85 of the wall time): other
            # work on that CPU would squeeze both sides of a ratio.
            rounds, spoilt = [], []
            fthr0 = cg.nr_throttled(fd)

            def run():
                dirs = (nd, d, fd)
                u0, t0 = [cg.cpu_usage_us(x) for x in dirs], time.monotonic()
                rps = neighbour_rps(sv.port("work"), others)
                wall = time.monotonic() - t0
                u = [(cg.cpu_usage_us(x) - a) / 1e6 / wall for x, a in zip(dirs, u0)]
                return rps, u[0], sum(u)
            try:
                while len(rounds) < 3 and len(rounds) + len(spoilt) < 8:
                    a = run()
                    os.kill(cpid, signal.SIGCONT)
                    b = run()
                    os.kill(cpid, signal.SIGSTOP)
                    os.kill(fpid, signal.SIGCONT)
                    c = run()
                    os.kill(fpid, signal.SIGSTOP)
                    rnd = (a, b, c)
                    (rounds if min(x[2] for x in rnd) >= 0.85 else spoilt).append(rnd)
            finally:
                os.kill(cpid, signal.SIGCONT)
                os.kill(fpid, signal.SIGCONT)
            check(all(v == str(cpu) for p in (npid, cpid, fpid)
                      for v in threads_allowed(p).values()),
                  "a worker thread left CPU %d" % cpu)
            check(cg.nr_throttled(fd) == fthr0, "the uncapped hog was throttled")
            def show(rs):
                return ", ".join("%.0f/%.0f/%.0f req/s (neighbour %.2f/%.2f/%.2f of the CPU, "
                                 "ours %.2f/%.2f/%.2f)" % tuple(
                                     [x[0] for x in r] + [x[1] for x in r] + [x[2] for x in r])
                                 for r in rs)
            print("#   3 workers on CPU %d (%s), wrk on %s; rounds alone/capped/uncapped: %s; "
                  "spoilt by other work: %s" % (cpu, "cpuset" if pin.dir else "affinity",
                                                sorted(others), show(rounds) or "none",
                                                show(spoilt) or "none"), flush=True)
            if len(rounds) < 2:
                stop_and_check(sv)
                h.skip("not judged: other work used CPU %d in %d of %d rounds"
                       % (cpu, len(spoilt), len(rounds) + len(spoilt)))
            cap = median([r[1][0] / r[0][0] for r in rounds])
            nocap = median([r[2][0] / r[0][0] for r in rounds])
            print("#   beside the capped hog %.2f of alone, beside the uncapped one %.2f"
                  % (cap, nocap))
            check(cap >= 0.7, "beside the capped hog the neighbour kept only %.2f of its "
                  "throughput alone (%.2f beside the uncapped one)" % (cap, nocap))
            stop_and_check(sv)
    finally:
        sv.cleanup()
        pin.remove()


if not IN_VM:
    test(cpu_hog_capped_neighbour_keeps_its_share)


def budget_scenario(tag, fn, limits, start_path, reason):
    """FN's worker crosses a budget: its reason (soft, then hard or drained), a
    replacement, and not one failed request from a client on other connections."""
    f = h.function(fn, workers=1, limits=limits)
    sv = isolated([f], tag)
    with sv:
        Cg(sv, sv.cg_parent)
        wid, pid = worker_pid(sv, fn)
        with h.Prober(sv.port(fn), interval=0.01) as cl:
            if start_path:
                r = h.request(sv.port(fn), start_path)
                check(r.status == 200, "%s answered %d" % (start_path, r.status))
            ex = sv.wait_event("worker_exit", 15, fn=fn, pid=str(pid))
            new_pid = wait_replacement(sv, fn, pid)
            # Keep the client going across the hand-over to the replacement.
            n = cl.ok()
            # A deadline, not a speed bound: an ASan build in an emulated VM gets its
            # replacement ready and answering in seconds, not milliseconds.
            h.wait_until(lambda: cl.ok() >= n + 20, 30, "answers from the replacement")
        cl.check("client during the %s limit" % reason)
        check(ex.get("reason") == reason, "worker_exit %r" % ex)
        # Soft first as a rule; a worker that was slow to get ready may meet the
        # hard limit at its first look.
        lim = sv.events("limit_soft", pid=str(pid)) or sv.events("limit_hard", pid=str(pid))
        check(lim and lim[0].get("reason") == reason, "limit lines %r" % lim)
        check("signal" not in ex, "worker killed by a signal: %r" % ex)
        check(sv.events("beforeunload", reason=reason,
                        proc="worker[%s/%s]" % (fn, wid)),
              "no ev=beforeunload reason=%s from worker %s" % (reason, wid))
        check(new_pid != pid, "no replacement")
        return sv, pid


@test
def cpu_time_limit():
    # The task spins past the budget: retired at 90% (cpu), SIGTERM(cpu) at 100%.
    sv, pid = budget_scenario("cputime", "cpuhog",
                              {"cpu_time_ms": 600, "drain_timeout_ms": 10000},
                              "/?ms=5000&task=1", "cpu")
    check(sv.events("limit_hard", pid=str(pid), reason="cpu"), "no ev=limit_hard reason=cpu")
    stop_and_check(sv)


@test
def cpu_time_limit_blocking_handler():
    # The hog spins on the worker's loop: it cannot hear RETIRE nor read its SIGTERM,
    # so the hard limit ends with SIGKILL after the grace. A keep-alive connection
    # held on the other worker never notices. The budget is per worker and counts
    # everything it ever ran, so it must leave room for the keep-alive worker's own
    # start and answers: under ASan in an emulated VM, 600 ms retired that one too.
    f = h.function("cpuhog", workers=2, limits={"cpu_time_ms": 3000,
                                                 "beforeunload_grace_ms": 500})
    sv = isolated([f], "cpublock")
    with sv:
        Cg(sv, sv.cg_parent)
        h.wait_until(lambda: len(sv.workers("cpuhog")) == 2, 10, "two ready workers")
        pids = set(sv.workers("cpuhog").values())
        ka = http.client.HTTPConnection("127.0.0.1", sv.port(), timeout=5)
        answers, errors, res = [0], [], {}
        stop = threading.Event()

        def keepalive():
            while not stop.is_set():
                try:
                    ka.request("GET", "/?ms=0")
                    r = ka.getresponse()
                    r.read()
                    if r.status == 200 and not r.getheader("Connection") == "close":
                        answers[0] += 1
                    else:
                        errors.append("status %d" % r.status)
                except (OSError, http.client.HTTPException) as e:
                    errors.append("%s: %s" % (type(e).__name__, e))
                    return
                stop.wait(0.02)

        def hog():
            try:
                res["hog"] = h.request(sv.port(), "/?ms=10000", timeout=40)
            except (OSError, http.client.HTTPException) as e:
                res["hog"] = e
        try:
            ka.request("GET", "/?ms=0")
            r = ka.getresponse()
            r.read()
            check(r.status == 200, "keep-alive connection answered %d" % r.status)
            tk = threading.Thread(target=keepalive, daemon=True)
            tk.start()
            th = threading.Thread(target=hog, daemon=True)
            th.start()
            hard = sv.wait_event("limit_hard", 30, fn="cpuhog")
            hog_pid = int(hard["pid"])
            check(hog_pid in pids and hard.get("reason") == "cpu", "limit_hard %r" % hard)
            ex = sv.wait_event("worker_exit", 10, fn="cpuhog", pid=str(hog_pid))
            wait_replacement(sv, "cpuhog", hog_pid)
            n = answers[0]
            h.wait_until(lambda: answers[0] >= n + 10 or errors, 10,
                         "the keep-alive connection to go on")
        finally:
            stop.set()
            th.join(20)
            ka.close()
        others = [p for p in pids if p != hog_pid]
        check(not errors, "keep-alive connection failed: %r (limit_soft of the other "
              "worker: %r)" % (errors[:3], [sv.events("limit_soft", pid=str(p))
                                            for p in others]))
        check(answers[0] >= 20, "only %d keep-alive answers" % answers[0])
        check(ex.get("reason") == "cpu" and ex.get("signal") == "9", "worker_exit %r" % ex)
        check(sv.events("worker_kill", pid=str(hog_pid)), "no ev=worker_kill after the grace")
        check(sv.events("limit_soft", pid=str(hog_pid), reason="cpu"), "no limit_soft cpu")
        hr = res.get("hog")
        check(not isinstance(hr, h.Resp) or hr.status != 200,
              "the hog was answered %r although it was killed" % hr)
        check(h.request(sv.port(), "/?ms=0").status == 200, "no answer after the kill")
        stop_and_check(sv)


@test
def wall_clock_limit():
    # Idle workers drain at once when retired at 90% of their lifetime.
    sv, pid = budget_scenario("wall", "unload", {"wall_clock_ms": 1500}, None,
                              "wall_clock")
    check(fn_logs(sv, "beforeunload_hook reason=wall_clock"),
          "the function's hook did not run with wall_clock")
    stop_and_check(sv)


@test
def fork_bomb_capped_by_max_pids():
    # A tenant (as nobody) forks sleeping children until fork fails: max_pids 32
    # bounds its worker cgroup (threads count too), fork gets EAGAIN, the worker and
    # its neighbour keep answering, and the stop leaves no process and no cgroup.
    bomb = h.function("forkbomb", workers=1, user="nobody", group="nogroup",
                      limits={"max_pids": 32})
    hello = h.function("hello", workers=1)
    sv = isolated([bomb, hello], "pids")
    kids = []
    with sv:
        cg = Cg(sv, sv.cg_parent)
        check(cg.pids == host_has_pids(), "cgroup_init pids=%s but the host %s one"
              % ("yes" if cg.pids else "no", "has" if host_has_pids() else "has not"))
        if not cg.pids:
            stop_and_check(sv)
            h.skip("no pids controller here: max_pids cannot be enforced (only the "
                   "stop was checked)")
        wid, pid = worker_pid(sv, "forkbomb")
        _, nb_pid = worker_pid(sv, "hello")
        d = cg.worker_dirs(pid)["unified" if cg.version == 2 else "pids"]
        check(d.endswith("/forkbomb/w%s" % wid), "worker %d is in %s" % (pid, d))
        check(read(d + "/pids.max") == "32", "pids.max %r" % read(d + "/pids.max"))
        check(str(pid) in read(d + "/cgroup.procs").split(), "worker not in %s" % d)
        port = sv.port("forkbomb")
        with h.Prober(sv.port("hello")) as nb:
            r = h.request(port, "/?do=bomb&n=1000", timeout=30)
            m = re.match(rb"forked (\d+) errno (\d+) pids((?: \d+)*)", r.body)
            check(r.status == 200 and m, "bomb: %r" % r)
            n, err = int(m.group(1)), int(m.group(2))
            kids = [int(x) for x in m.group(3).split()]
            cur = int(read(d + "/pids.current"))
            threads = len(os.listdir("/proc/%d/task" % pid))
            print("#   forked %d errno %d; pids.current %d (worker threads %d)"
                  % (n, err, cur, threads), flush=True)
            check(err == errno.EAGAIN, "fork failed with errno %d, not EAGAIN" % err)
            check(len(kids) == n, "%d pids for %d forks" % (len(kids), n))
            check(cur <= 32, "pids.current %d above max_pids 32" % cur)
            check(n + threads == cur, "%d children + %d threads != pids.current %d"
                  % (n, threads, cur))
            check(n >= 32 - threads - 2, "only %d children before the cap" % n)
            for k in kids[:3]:
                check(proc_cgroups(k) == proc_cgroups(pid),
                      "child %d is not in its worker's cgroups" % k)
            # Capped, not broken: the worker answers, is not replaced, reports it.
            for _ in range(5):
                r = h.request(port, "/")
                check(r.status == 200 and r.body == b"fine\n", "worker after the cap: %r" % r)
            check(sv.workers("forkbomb").get(wid) == pid, "the capped worker was replaced")
            st = [w for w in admin_status(sv)["workers"] if w["pid"] == pid]
            check(st and st[0].get("pids") == cur, "/status pids %r, pids.current %d"
                  % (st and st[0].get("pids"), cur))
            check(fn_status(sv, "forkbomb")["limits"]["max_pids"] == 32,
                  "/status limits.max_pids")
            time.sleep(0.3)
        nb.check("neighbour during the fork bomb")
        check(list(sv.workers("hello").values()) == [nb_pid],
              "the neighbour's worker changed")
        stop_and_check(sv)
        left = [k for k in kids if h.alive(k)]
        check(not left, "children alive after stop: %r" % left[:5])


@test
def worker_runs_as_tenant_uid_with_no_new_privs():
    fn = h.function("hello", workers=1, user="nobody", group="nogroup")
    sv = isolated([fn], "uid")
    with sv:
        Cg(sv, sv.cg_parent)
        _, pid = worker_pid(sv, "hello")
        check(h.request(sv.port(), "/").status == 200, "hello did not answer")
        st = h.proc_status(pid)
        check(st["Uid"] == ["65534"] * 4, "Uid %r" % st["Uid"])
        check(st["Gid"] == ["65534"] * 4, "Gid %r" % st["Gid"])
        check(st.get("Groups", []) == ["65534"], "Groups %r" % st.get("Groups"))
        check(st["NoNewPrivs"] == ["1"], "NoNewPrivs %r" % st["NoNewPrivs"])
        check(int(st["CapEff"][0], 16) == 0, "CapEff %r" % st["CapEff"])
        check(os.stat("/proc/%d" % sv.pid).st_uid == 0, "the supervisor is not root")
        stop_and_check(sv)


@test
def cgroups_required_refuses_auto_warns():
    # A base that cannot be created: cgroup.procs is a file in every cgroup dir.
    bad = "cgroup.procs/edgevisor-test-%d" % os.getpid()
    sv = h.Supervisor([h.function("hello")], name="iso-req", cgroups="required",
                      cgroup_parent=bad)
    try:
        sv.start(wait=False)
        code = sv.proc.wait(10)
        check(code != 0, "supervisor started with cgroups required and none possible")
        text = open(sv.log_path).read()
        plain = [l for l in text.splitlines() if not l.startswith("ts=")]
        check(len(plain) == 1 and "cgroups required" in plain[0] and
              "cgroup.procs" in plain[0],
              "want one plain line naming the reason, got %r" % plain)
        check(sv.events("cgroups_required"), "no ev=cgroups_required line")
        check(not sv.events("ready") and not sv.events("worker_state"),
              "it spawned workers before refusing")
    finally:
        sv.cleanup()
    check_nothing_left(bad)

    sv = h.Supervisor([h.function("hello")], name="iso-auto", cgroups="auto",
                      cgroup_parent=bad)
    with sv:
        warn = sv.events("cgroups_off")
        check(len(warn) == 1 and warn[0].get("lvl") == "warn" and
              "cgroup.procs" in warn[0].get("msg", ""), "warning %r" % warn)
        check(sv.events("start", cgroups="off"), "start line does not say cgroups=off")
        _, pid = worker_pid(sv, "hello")
        check(h.request(sv.port(), "/").status == 200, "hello did not answer")
        cgs = proc_cgroups(pid)
        mine = proc_cgroups(os.getpid())
        check(cgs == mine, "worker is in %r, not our cgroups %r" % (cgs, mine))
        code = sv.stop()
        check(code == 0 and not sv.leftovers, "stop: %r %r" % (code, sv.leftovers))
    check_nothing_left(bad)


if __name__ == "__main__":
    h.main()
