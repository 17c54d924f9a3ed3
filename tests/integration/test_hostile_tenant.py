"""test_hostile_tenant.py - a tenant attacking its host and its neighbours (issue 13,
"safe by default on a shared host"), with nothing but the defaults: functions
without "user" under a root supervisor, the default seccomp profile.

tests/functions/intruder.c, as a tenant, tries: to signal or ptrace another
tenant's worker and the supervisor, to read their /proc/PID/environ and mem and
another tenant's file, to connect to the admin unix socket, to POST /stop on a TCP
admin without the token, to move itself out of its cgroup through cgroup.procs, to
create a user namespace (unshare, clone), to mount, to keep a process alive after
its function is removed, and to fake its CPU and memory figures. Every attempt
fails, and the test says which answer it got for each.

Also the acceptance checks of the defaults themselves: a dynamic uid != 0 per
function, different for two functions, the same after a restart whatever else
changed; "user": "root" warned at every start; the default profile's EPERM for
unshare / ptrace / mount with the worker still serving, "Seccomp: 2", each denial
counted in /status and logged once; "seccomp": "off" lifts it.
"""

import json
import os
import signal
import socket
import stat
import threading
import time

import harness as h
from harness import check, test

FIRST, LAST = 61184, 65519
_seq = [0]


def parent_name(tag):
    _seq[0] += 1
    return "edgevisor-hos-%s-%d-%d" % (tag, os.getpid(), _seq[0])


def cpu_ms(pid):
    """The kernel's utime + stime of PID, in ms."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) * 1000 // os.sysconf("SC_CLK_TCK")


def uid_gid(pid):
    st = h.proc_status(pid)
    return int(st["Uid"][0]), int(st["Gid"][0])


def lines(body):
    """The intruder's "name result" lines as a dict."""
    out = {}
    for ln in body.decode().splitlines():
        k, _, v = ln.partition(" ")
        out[k] = v
    return out


def ask(sv, fn, path, timeout=10):
    r = h.request(sv.port(fn), path, timeout=timeout)
    check(r.status == 200, "%s %s: %d" % (fn, path, r.status))
    return lines(r.body)


def status(sv):
    """GET /status over the admin unix socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sv.admin[5:])
    s.sendall(b"GET /status HTTP/1.0\r\nHost: x\r\n\r\n")
    data = h.read_until_close(s)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    check(head.split(b" ")[1:2] == [b"200"], "/status: %r" % head[:80])
    return json.loads(body)


def worker_status(sv, pid):
    for w in status(sv)["workers"]:
        if w["pid"] == pid:
            return w
    raise h.Failure("worker %d not in /status" % pid)


def one_worker(sv, fn):
    return list(h.wait_until(lambda: sv.workers(fn), 10, "%s ready" % fn).values())[0]


@test
def dynamic_uids_distinct_and_stable():
    """Without "user", each function's workers (and nothing else) run as a uid of
    the range that is no account, two functions differ, and after a restart whose
    config drops one function and adds two in front, the kept one has its uid;
    the dropped one gets its own back when it returns. "user": "root" runs as root
    and is warned about at every start."""
    state = os.path.join(h.tmpdir("hos-state"), "state")
    a = h.function("alpha", library="hello")
    b = h.function("beta", library="intruder")
    with h.Supervisor([a, b], name="hos-dyn", state_directory=state) as sv:
        pa, pb = one_worker(sv, "alpha"), one_worker(sv, "beta")
        ua, ub = uid_gid(pa), uid_gid(pb)
        for name, (u, g) in (("alpha", ua), ("beta", ub)):
            check(u != 0 and FIRST <= u <= LAST and g == u,
                  "%s worker uid/gid %d/%d, want one dynamic id" % (name, u, g))
            check(not [x for x in open("/etc/passwd") if x.split(":")[2] == str(u)],
                  "%s uid %d is an account in /etc/passwd" % (name, u))
        check(ua[0] != ub[0], "alpha and beta share uid %d" % ua[0])
        check(ask(sv, "beta", "/uid")["uid"].split()[0] == str(ub[0]), "beta's own getuid()")
        check(sv.stop() == 0, "stop")
    c = h.function("gamma", library="hello")
    r = h.function("rooted", library="hello", user="root")
    with h.Supervisor([c, r, b], name="hos-dyn2", state_directory=state) as sv:
        check(uid_gid(one_worker(sv, "beta")) == ub, "beta's uid changed across a restart "
              "that dropped alpha and added gamma: %r, was %r" % (uid_gid(one_worker(sv, "beta")), ub))
        ug = uid_gid(one_worker(sv, "gamma"))
        check(ug[0] not in (ua[0], ub[0]), "gamma got a uid already given: %r" % (ug,))
        check(uid_gid(one_worker(sv, "rooted"))[0] == 0, "user root is not root")
        check(sv.events("tenant_root", fn="rooted"), "no tenant_root warning:\n%s" % sv.tail())
        check(sv.stop() == 0, "stop")
    with h.Supervisor([a, c, r, b], name="hos-dyn3", state_directory=state) as sv:
        got = {n: uid_gid(one_worker(sv, n)) for n in ("alpha", "beta", "gamma")}
        check(got == {"alpha": ua, "beta": ub, "gamma": ug}, "uids moved: %r" % got)
        check(len(sv.events("tenant_root", fn="rooted")) == 1, "tenant_root not warned again")
        check(sv.stop() == 0, "stop")
    with open(os.path.join(state, "dynamic-users")) as f:
        rec = dict(x.split() for x in f if x.strip() and not x.startswith("#"))
    check(rec == {"alpha": str(ua[0]), "beta": str(ub[0]), "gamma": str(ug[0])},
          "the record: %r" % rec)


SYSCALLS = ("unshare", "ptrace", "mount", "clone_newuser", "mount_userns")


@test
def seccomp_default_refuses_and_off_lifts():
    """Under the default profile unshare(CLONE_NEWUSER), ptrace(PTRACE_TRACEME) and
    mount get EPERM, in the worker itself and in its children, the worker keeps
    serving (same pid), /proc says "Seccomp: 2", /status counts every denial and the
    log names each syscall once. With "seccomp": "off" the kernel decides: the user
    namespace and the traceme succeed."""
    on = h.function("guarded", library="intruder")
    off = h.function("open", library="intruder", seccomp="off")
    with h.Supervisor([on, off], name="hos-sc") as sv:
        pid = one_worker(sv, "guarded")
        check(h.proc_status(pid)["Seccomp"] == ["2"], "Seccomp: %r" % h.proc_status(pid)["Seccomp"])
        for rnd in range(2):
            got = ask(sv, "guarded", "/sys?inproc=1")
            for k in ("inproc_unshare", "inproc_ptrace", "inproc_mount") + SYSCALLS:
                check(got.get(k) == "EPERM", "round %d: %s got %r, want EPERM (%r)" %
                      (rnd, k, got.get(k), got))
            check(int(got["uid"].split()[4]) == pid, "another worker answered")
        check(h.request(sv.port("guarded"), "/uid").status == 200, "stopped serving")
        check(one_worker(sv, "guarded") == pid and not sv.events("worker_exit"),
              "the worker was replaced:\n%s" % sv.tail())
        # 3 in the worker and 5 in children (they share its scoreboard), twice.
        h.wait_until(lambda: worker_status(sv, pid)["seccomp_denied"] == 16, 5,
                     "seccomp_denied 16, have %r" % worker_status(sv, pid)["seccomp_denied"])
        for sc in ("unshare", "ptrace", "mount", "clone"):
            sv.wait_event("seccomp_denied", syscall=sc)
        h.wait_until(lambda: len(sv.events("seccomp_denied")) >= 4, 5, "the denial lines")
        names = [r["syscall"] for r in sv.events("seccomp_denied")]
        check(sorted(names) == ["clone", "mount", "ptrace", "unshare"],
              "each syscall logged once: %r" % names)

        opid = one_worker(sv, "open")
        check(h.proc_status(opid)["Seccomp"] == ["0"], "off: Seccomp %r" % h.proc_status(opid)["Seccomp"])
        got = ask(sv, "open", "/sys")
        for k in ("unshare", "ptrace", "clone_newuser", "mount_userns"):
            check(got.get(k) == "ok", "off: %s got %r (%r)" % (k, got.get(k), got))
        # Not root and in the host's namespaces: the kernel's own EPERM.
        check(got.get("mount") == "EPERM", "off: mount %r" % got.get("mount"))
        check(worker_status(sv, opid)["seccomp_denied"] == 0, "off counted denials")
        check(sv.stop() == 0, "stop")


@test
def library_check_runs_filtered_and_a_slow_one_stalls_nobody():
    """The library check loads tenant code (constructors) under the same uid and
    filter as a worker: a constructor sees "Seccomp: 2" and gets EPERM from unshare
    at -t, at start and in every worker. And a constructor that sleeps 3 s, added
    by a reload, is refused by the check's timeout while the running function
    keeps its worker and answers its keep-alive client throughout."""
    d = h.tmpdir("hos-ctor")
    os.chmod(d, 0o755)
    logf = os.path.join(d, "ctor.log")
    open(logf, "w").close()
    os.chmod(logf, 0o666)
    os.environ["EDGEVISOR_TEST_CTOR_LOG"] = logf
    try:
        fn = h.function("probe", library="ctor_probe")
        sv = h.Supervisor([fn], name="hos-ctor", library_check_timeout_ms=2000)
        code, out = h.check_config(sv.conf_path)
        check(code == 0, "-t: %d %s" % (code, out))
        seen = open(logf).read().splitlines()
        check(len(seen) == 1, "-t: the constructor ran %d times: %r" % (len(seen), seen))
        with sv:
            wp = one_worker(sv, "probe")
            h.wait_until(lambda: len(open(logf).read().splitlines()) >= 3, 5,
                         "the constructor in the start's check and in the worker")
            seen = open(logf).read().splitlines()
            check(any("pid=%d " % wp in x for x in seen), "no line from worker %d: %r" % (wp, seen))
            for x in seen:
                check(" seccomp=2 " in x and x.endswith(" unshare=EPERM") and " uid=0 " not in x,
                      "a constructor ran unfiltered or as root: %r" % x)
            # A client of the running function on a keep-alive connection (its
            # worker answers it directly) is served throughout the 2 s check: one
            # answer every few ms, not a handful; and so are new connections (the
            # check runs off the supervisor's loop).
            import http.client
            stop, got = threading.Event(), []

            def keepalive():
                c = http.client.HTTPConnection("127.0.0.1", sv.port("probe"), timeout=5)
                while not stop.is_set():
                    c.request("GET", "/")
                    r = c.getresponse()
                    got.append((time.monotonic(), r.status == 200 and r.read() == b"probe\n"))
                    stop.wait(0.005)
                c.close()
            t = threading.Thread(target=keepalive, daemon=True)
            t.start()
            h.wait_until(lambda: got, 5, "the keep-alive client's first answer")
            sv.rewrite_config(lambda c: c["functions"].append(
                {k: v for k, v in h.function("sleepy", library="ctor_sleep").items()
                 if k != "port"}))
            t0 = time.monotonic()
            with h.Prober(sv.port("probe"), interval=0.02) as probe:
                sv.send(signal.SIGHUP)
                sv.wait_event("reload_failed", timeout=10)
            t1 = time.monotonic()
            probe.check("new connections during the slow check", min_ok=50)
            stop.set()
            t.join(10)
            during = [ok for ts, ok in got if t0 <= ts <= t1]
            check(all(ok for _, ok in got), "a keep-alive answer was wrong")
            check(t1 - t0 >= 1.9 and len(during) >= 25, "%d answers in the %.1f s of the check"
                  % (len(during), t1 - t0))
            check(one_worker(sv, "probe") == wp and h.request(sv.port("probe")).status == 200,
                  "the running function was touched")
            check(sv.stop() == 0, "stop")
    finally:
        del os.environ["EDGEVISOR_TEST_CTOR_LOG"]


def stop_via(port, addr):
    """What the intruder heard for POST /stop on the TCP admin at ADDR."""
    return lines(h.request(port, "/tcp?port=%d" % addr).body).get("stop", "")


@test
def intruder_every_attempt_fails():
    """The full list, against a neighbour (hello) and the supervisor, cgroups on."""
    d = h.tmpdir("hos-files")
    os.chmod(d, 0o755)
    intr = h.function("intruder", library="intruder",
                      limits={"cpu_time_ms": 2500, "beforeunload_grace_ms": 500})
    victim = h.function("victim", library="hello")
    with h.Supervisor([intr, victim], name="hos-all", cgroups="auto",
                      cgroup_parent=parent_name("all")) as sv:
        ip, vp = one_worker(sv, "intruder"), one_worker(sv, "victim")
        vuid = uid_gid(vp)
        check(uid_gid(ip)[0] != vuid[0], "intruder and victim share a uid")
        # Another tenant's worker and the supervisor: no signal, no trace, no memory.
        for target in (vp, sv.pid):
            got = ask(sv, "intruder", "/peer?pid=%d" % target)
            want = {"kill0": "EPERM", "kill9": "EPERM", "ptrace_attach": "EPERM",
                    "environ": "EACCES", "mem": "EACCES"}
            for k, v in want.items():
                check(got.get(k) == v, "pid %d: %s got %r, want %s" % (target, k, got.get(k), v))
        check(h.alive(vp) and h.alive(sv.pid), "someone died")
        # Another tenant's file, 0600 in a directory anyone can traverse.
        secret = os.path.join(d, "victim.secret")
        with open(secret, "w") as f:
            f.write("victim's\n")
        os.chown(secret, vuid[0], vuid[1])
        os.chmod(secret, 0o600)
        check(ask(sv, "intruder", "/file?path=%s" % secret).get("read") == "EACCES",
              "read another tenant's file")
        # The admin unix socket (0600 root).
        check(stat.S_IMODE(os.stat(sv.admin[5:]).st_mode) == 0o600, "admin socket mode")
        check(ask(sv, "intruder", "/unix?path=%s" % sv.admin[5:]).get("connect") == "EACCES",
              "connect to the admin socket")
        # Out of its cgroup: the hierarchy's root and the supervisor's own cgroup.
        before = open("/proc/%d/cgroup" % ip).read()
        targets = ["/sys/fs/cgroup/memory/cgroup.procs", "/sys/fs/cgroup/pids/cgroup.procs"]
        for ln in open("/proc/%d/cgroup" % sv.pid):
            _, ctrls, path = ln.rstrip("\n").split(":", 2)
            if "memory" in ctrls.split(","):
                targets.append("/sys/fs/cgroup/memory%s/cgroup.procs" % path)
        for t in targets:
            if os.path.exists(t):
                got = ask(sv, "intruder", "/cgroup?path=%s" % t).get("cgroup_write")
                check(got == "EACCES", "writing %s: %r" % (t, got))
        check(open("/proc/%d/cgroup" % ip).read() == before, "the intruder changed cgroup")
        # A user namespace, a mount.
        got = ask(sv, "intruder", "/sys")
        for k in SYSCALLS:
            check(got.get(k) == "EPERM", "%s got %r" % (k, got.get(k)))
        # Fake figures: 1.5 s of CPU and 64 MiB while a thread zeroes every counter of the board
        # (CPU and memory are not on it at all); /status and the CPU limit go by the kernel.
        got = ask(sv, "intruder", "/fake?ms=1500")
        check(got.get("board") == "found", "the intruder did not find its board: %r" % got)
        real = cpu_ms(ip)
        w = worker_status(sv, ip)
        check(real >= 1400 and w["cpu_ms"] >= real - 50 and w["memory_current"] >= 64 << 20,
              "faked figures believed: cpu_ms %d (the kernel says %d), memory %d" %
              (w["cpu_ms"], real, w["memory_current"]))
        def spin_on():
            try:
                h.request(sv.port("intruder"), "/fake?ms=1500", timeout=10)
            except OSError:
                pass            # cut by its CPU limit: expected
        t = threading.Thread(target=spin_on, daemon=True)
        t.start()
        sv.wait_event("limit_soft", fn="intruder", reason="cpu", pid=str(ip), timeout=10)
        t.join(15)
        h.wait_until(lambda: [p for p in sv.workers("intruder").values() if p != ip], 10,
                     "a replacement for the intruder past its CPU limit")
        # A stray that leaves the session and ignores SIGTERM, then the function goes.
        check(h.alive(vp) and one_worker(sv, "victim") == vp and
              not sv.events("worker_exit", fn="victim"), "the victim was touched")
        stray = int(ask(sv, "intruder", "/stray")["stray"])
        check(h.alive(stray), "no stray")
        sv.rewrite_config(lambda c: c.update(functions=[f for f in c["functions"]
                                                        if f["name"] != "intruder"]))
        sv.send(signal.SIGHUP)
        h.wait_until(lambda: not h.alive(stray), 10, "stray %d gone after its function went" % stray)
        h.wait_until(lambda: not sv.workers("intruder"), 10, "intruder workers gone")
        # (A reload starts a new generation of every function: the victim's new
        # worker serves; its old one drained.)
        check(h.request(sv.port("victim")).status == 200, "the victim stopped serving")
        check(sv.stop() == 0, "stop")

    # A TCP admin with a token: the tenant, on the same loopback, cannot stop it.
    tf = os.path.join(d, "admin.token")
    with open(tf, "w") as f:
        f.write("hostile-tenants-never-see-" + os.urandom(8).hex() + "\n")
    os.chmod(tf, 0o600)
    aport = h.free_port()
    intr = h.function("intruder", library="intruder")
    with h.Supervisor([intr], name="hos-tcp", admin="127.0.0.1:%d" % aport,
                      admin_token_file=tf) as sv:
        got = stop_via(sv.port("intruder"), aport)
        check(got.startswith("HTTP/1.1 401"), "POST /stop without the token: %r" % got)
        check(sv.running() and not sv.events("stop"), "the tenant stopped the supervisor")
        check(h.request(sv.port("intruder"), "/uid").status == 200, "stopped serving")
        check(sv.stop() == 0, "stop")


if __name__ == "__main__":
    h.main()
