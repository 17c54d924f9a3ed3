"""test_check.py - the library check runs tenant code (the library's constructors) and
must leave nothing behind (supervisor/check.h):

- a constructor that sleeps 3 s is refused by the check's timeout
  (library_check_timeout_ms 2000) at -t and at reload, with the timeout named, and no
  process of it is left;
- a constructor that double-forks a daemon (setsid, SIGTERM ignored) passes the check,
  and the check leaves no process: at -t (cgroups off: the check is a subreaper and
  kills the orphans it gets back), at start and at reload with cgroups on (the check
  runs in <base>/<fn>/check-<N>, killed whole and removed). The daemons the real
  workers fork live in the workers' cgroups and go with them at stop.
"""

import os
import re
import signal
import time

import harness as h
from harness import check, test

_seq = [0]


def parent_name(tag):
    """A cgroup_parent no other test (or concurrent run) uses."""
    _seq[0] += 1
    return "edgevisor-chk-%s-%d-%d" % (tag, os.getpid(), _seq[0])


def mapping(library):
    """Pids of every process that has LIBRARY mapped (what a constructor forked
    keeps it mapped: that is how its strays are found)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/maps" % d) as f:
                if library in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


def cgroup_of(pid):
    """The memory (v1) or unified (v2) cgroup path of PID, or ""."""
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            return path
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            return path
    return ""


def none_left(library, timeout=3.0):
    h.wait_until(lambda: not mapping(library), timeout,
                 "no process mapping %s (left: %s)" % (os.path.basename(library),
                                                      mapping(library)))


def own_cgroup_dirs(parent):
    """Where <our cgroup>/PARENT is in each hierarchy /proc/self/cgroup lists."""
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls == "":
                base = "/sys/fs/cgroup/unified" if os.path.isdir(
                    "/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
            else:
                base = os.path.join("/sys/fs/cgroup", ctrls.split(",")[0].replace("name=", ""))
            d = os.path.normpath(base + path + "/" + parent)
            if os.path.isdir(d):
                out.append(d)
    return out


def check_dirs(parent):
    """Library-check cgroups (check-<N>) still present under PARENT."""
    left = []
    for d in own_cgroup_dirs(parent):
        for top, dirs, _ in os.walk(d):
            left += [os.path.join(top, x) for x in dirs if x.startswith("check-")]
    return left


def remove_cgroups(parent):
    for d in own_cgroup_dirs(parent):
        for top, dirs, _ in sorted(os.walk(d), key=lambda t: -t[0].count("/")):
            try:
                with open(os.path.join(top, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
            try:
                os.rmdir(top)
            except OSError:
                pass


def write_conf(name, functions, **top):
    d = h.tmpdir(name)
    conf = {"admin": None, "cgroups": "off", "library_check_timeout_ms": 2000,
            "state_directory": os.path.join(d, "state")}
    conf.update(top)
    conf["functions"] = [{k: v for k, v in f.items() if k != "port"} for f in functions]
    path = os.path.join(d, "edgevisor.conf")
    import json
    with open(path, "w") as f:
        json.dump(conf, f)
    return path


@test
def constructor_sleeping_3s_is_refused_by_the_timeout_at_check():
    lib = h.lib("ctor_sleep")
    path = write_conf("chk-sleep", [h.function("hello"), h.function("sl", "ctor_sleep")])
    # What -t costs here without the sleeper (an ASan build in an emulated VM takes
    # about a second): the bound below is on the time past that.
    base_path = write_conf("chk-sleep-base", [h.function("hello")])
    t0 = time.monotonic()
    base_code, _ = h.check_config(base_path)
    base = time.monotonic() - t0
    check(base_code == 0, "-t of hello alone exited %d" % base_code)
    t0 = time.monotonic()
    code, out = h.check_config(path)
    took = time.monotonic() - t0 - base
    check(code == 1, "-t exited %d: %s" % (code, out))
    want = "%s: function sl: library %s: timed out loading it after 2000 ms" % (path, lib)
    check(out.strip() == want, "-t said %r, want %r" % (out.strip(), want))
    # Refused by the timeout, not by the constructor returning after its 3 s.
    check(took < 2.9, "-t took %.2fs more than with hello alone (%.2fs)" % (took, base))
    none_left(lib)


@test
def constructor_double_fork_leaves_nothing_at_check():
    lib = h.lib("ctor_fork")
    path = write_conf("chk-fork", [h.function("fk", "ctor_fork", user="nobody"),
                                   h.function("hello")])
    code, out = h.check_config(path)
    check(code == 0, "-t exited %d: %s" % (code, out))
    check(out.strip() == "%s: ok" % path, "-t said %r" % out)
    # Cgroups are off at -t: the check was a subreaper, its orphans came back to it
    # and it killed them before exiting.
    none_left(lib, timeout=1.0)


def strays_outside_workers(sv, lib):
    """Processes mapping LIB that are not in one of the function's worker cgroups."""
    return [(p, cgroup_of(p)) for p in mapping(lib)
            if not re.search(r"/%s/fk/w\d+$" % re.escape(sv.cg_parent), cgroup_of(p))]


@test
def constructor_double_fork_with_cgroups_start_reload_stop():
    lib = h.lib("ctor_fork")
    sleeper = h.lib("ctor_sleep")
    parent = parent_name("fork")
    sv = h.Supervisor([h.function("fk", "ctor_fork", workers=2, user="nobody"),
                       h.function("hello")],
                      name="chk-cg", cgroups="auto", cgroup_parent=parent,
                      log_level="debug", library_check_timeout_ms=2000)
    sv.cg_parent = parent
    try:
        sv.start(wait=False)
        sv.wait_event("ready", proc="supervisor", timeout=20)
        cg = sv.events("cgroup_init")
        check(cg, "cgroups did not come up: %s" % sv.tail(10))
        # Each of the 2 workers forked one daemon, in its own cgroup; the start-time
        # check's daemon is gone.
        h.wait_until(lambda: not strays_outside_workers(sv, lib), 3,
                     "only worker-cgroup processes mapping ctor_fork.so")
        n_start = len(mapping(lib))
        check(n_start == 4, "%d processes map ctor_fork.so after start, want 4 "
              "(2 workers, 2 daemons): %s" % (n_start, mapping(lib)))

        # A reload checks the library again, now inside <base>/fk/check-<N>.
        sv.send(signal.SIGHUP)
        # (not wait_ready: at debug level the workers log ev=ready too)
        sv.wait_event("ready", count=2, proc="supervisor", timeout=20)
        h.wait_until(lambda: not strays_outside_workers(sv, lib), 3,
                     "no check process left after the reload: %s"
                     % strays_outside_workers(sv, lib))
        h.wait_until(lambda: not check_dirs(parent), 3,
                     "check cgroups removed: %s" % check_dirs(parent))
        ran = sv.events("library_check", fn="fk")
        check(ran and ran[-1].get("cgroup") == "yes",
              "the reload's check did not run in a cgroup: %s" % ran)

        # A reload adding the sleeper: refused by the timeout, nothing of it left.
        sv.rewrite_config(lambda c: c["functions"].append(
            {"name": "sl", "library": sleeper, "listen": ["127.0.0.1:%d" % h.free_port()]}))
        n = len(sv.events("reload_failed"))
        sv.send(signal.SIGHUP)
        rec = sv.wait_event("reload_failed", count=n + 1, timeout=10)
        check("function sl: library %s: timed out loading it" % sleeper in rec.get("msg", ""),
              "reload_failed says %r" % rec.get("msg"))
        none_left(sleeper)
        h.wait_until(lambda: not check_dirs(parent), 3,
                     "check cgroups removed: %s" % check_dirs(parent))
        h.get_ok(sv.port("hello"))

        code = sv.stop()
        check(code == 0, "exit %s" % code)
        none_left(lib)
        check(not own_cgroup_dirs(parent), "cgroups left: %s" % own_cgroup_dirs(parent))
    finally:
        sv.cleanup()
        remove_cgroups(parent)


if __name__ == "__main__":
    h.main()
