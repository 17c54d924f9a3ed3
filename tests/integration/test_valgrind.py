"""test_valgrind.py - the supervisor leaks nothing over a life with reloads: it runs
under valgrind (memcheck, --leak-check=full, definite and indirect leaks are errors)
through traffic, admin and metrics-listener requests, two good reloads that replace the generation, one
invalid reload, and a SIGTERM stop; valgrind must report no error and no leak.

Workers are not traced (they are exec'd natively); the fuzz and ASan runs cover
their code. Skips (exit 77) only when valgrind is not installed."""

import json
import os
import re
import shutil
import signal
import socket
import stat

import harness as h
from harness import check, test

VG_EXIT = 97


def admin_get(sv, path):
    """GET PATH on the admin unix socket; returns (status, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(sv.admin[len("unix:"):])
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        data = h.read_until_close(s)
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body



def traffic(sv, n=30):
    for i in range(n):
        r = h.request(sv.port("hello"), "/t/%d?x=%d" % (i, i), timeout=15)
        check(r.status == 200, "request %d: %d" % (i, r.status))
    r = h.request(sv.port("echo"), "/e", method="POST", body=b"x" * 5000, timeout=15)
    check(r.status == 200, "echo POST: %d" % r.status)


@test
def supervisor_has_no_leak_over_reloads():
    vg = shutil.which("valgrind")
    if vg is None:
        h.skip("valgrind is not installed (scripts/deps.sh installs it)")
    with open(h.EDGEVISOR, "rb") as f:
        if b"__asan_init" in f.read():
            # ASan and valgrind cannot both watch one process; the ASan run has
            # its own leak checks, and the plain `make test` runs this one.
            h.skip("%s is an ASan build: valgrind cannot run it" % h.EDGEVISOR)
    # The read-only metrics listener and a token file ride along: both are set up
    # at start and at every reload and torn down at exit.
    maddr = "127.0.0.1:%d" % h.free_port()
    tdir = h.tmpdir("vg-token")
    token = os.path.join(tdir, "admin.token")
    with open(token, "w") as f:
        f.write("valgrind-token-0123456789\n")
    os.chmod(token, 0o600)
    sv = h.Supervisor([h.function("hello", workers=2), h.function("echo", workers=1)],
                      name="vg", metrics=maddr, admin_token_file=token)
    # One log per process: a forked child reports until it execs the worker.
    vg_log = os.path.join(sv.dir, "valgrind.%p.log")
    # A wrapper in place of the binary: the harness starts it like the supervisor.
    wrapper = os.path.join(sv.dir, "edgevisor-vg")
    # valgrind refuses a child's setrlimit(NOFILE) unless the hard limit asked for
    # equals its own idea of it, the soft limit it started with: start it at the
    # functions' nofile (4096, the default) so the forked child may set exactly that.
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nulimit -S -n 4096\nexec %s --leak-check=full --show-leak-kinds=definite,indirect "
                "--errors-for-leak-kinds=definite,indirect --error-exitcode=%d "
                "--log-file=%s %s \"$@\"\n" % (vg, VG_EXIT, vg_log, h.EDGEVISOR))
    os.chmod(wrapper, stat.S_IRWXU)
    real = h.EDGEVISOR
    h.EDGEVISOR = wrapper
    try:
        sv.start(args=("-w", h.WORKER), timeout=90)
    finally:
        h.EDGEVISOR = real
    try:
        check("valgrind" in h.cmdline(sv.pid) or "memcheck" in h.cmdline(sv.pid),
              "the supervisor is not running under valgrind: %r" % h.cmdline(sv.pid))
        traffic(sv)
        code, body = admin_get(sv, "/status")
        check(code == 200 and json.loads(body)["functions"], "/status: %d %r" % (code, body[:200]))
        code, body = admin_get(sv, "/metrics")
        check(code == 200 and b"edgevisor" in body, "/metrics: %d" % code)
        # Clients that leave before their page is rendered (admin_job.c): the
        # request waits, its answer goes nowhere, and nothing of it is left.
        for i in range(10):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sv.admin[len("unix:"):])
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"/status" if i % 2 else b"/metrics"))
            s.close()
        code, body = admin_get(sv, "/status")
        check(code == 200, "/status after clients that left: %d" % code)
        mport = int(maddr.rsplit(":", 1)[1])
        for path, want in (("/metrics", 200), ("/health", 200), ("/status", 404)):
            r = h.request(mport, path, timeout=30)
            check(r.status == want, "metrics listener %s: %d, want %d" % (path, r.status, want))

        # Two reloads that replace every worker; the old generations drain away.
        for n, workers in ((2, 1), (3, 3)):
            sv.rewrite_config(lambda c: c["functions"][0].update(workers=workers))
            sv.send(signal.SIGHUP)
            sv.wait_ready(n=n, timeout=60)
            h.wait_until(lambda: len(sv.workers("hello")) == workers, 60,
                         "%d hello workers after reload %d" % (workers, n - 1))
            traffic(sv)

        # An invalid file: the error path of the loader, and nothing changes.
        with open(sv.conf_path) as f:
            good = f.read()
        with open(sv.conf_path, "w") as f:
            f.write(good.replace('"workers": 3', '"workers": 3, "wrokers": 1'))
        sv.send(signal.SIGHUP)
        sv.wait_event("reload_failed", timeout=60)
        traffic(sv, 5)
        code, _ = admin_get(sv, "/status")
        check(code == 200, "/status after the failed reload: %d" % code)

        code = sv.stop(timeout=90)
        with open(vg_log.replace("%p", str(sv.pid)), errors="replace") as f:
            report = f.read()
        leaks = re.findall(r"(?:definitely|indirectly) lost: [\d,]+ bytes.*", report)
        check(code == 0, "supervisor under valgrind exited %r, not 0 (%d = valgrind errors)"
              "\n%s" % (code, VG_EXIT, report[-6000:]))
        check(not re.search(r"(definitely|indirectly) lost: [1-9]", report),
              "leaks: %r\n%s" % (leaks, report[-6000:]))
        summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
        check(summary and summary.group(1) == "0",
              "no clean valgrind summary for the supervisor\n%s" % report[-3000:])
        heap = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees", report)
        print("#   valgrind: exit %d, %s, %s" % (
            code, heap.group(0) if heap else "no heap summary",
            "; ".join(leaks) or "no leak"))
    finally:
        sv.cleanup()


if __name__ == "__main__":
    h.main()
