"""test_vm_systemd.py - edgevisor as a real systemd service: in the QEMU test bed
(tests/vm/run-systemd.sh) the host's systemd 252 is PID 1 on cgroup v2, and
tests/vm/systemd-scenario.sh installs the build (make install), installs the real
scripts/edgevisor.service and checks start (active only after READY), the delegated
cgroup subtree, reload (re-ready, old workers drained, no task lost) and stop (drain,
no process or cgroup left).

Builds nothing: it uses EDGEVISOR_BUILD (or argv[1]) like every integration test.
The scenario's own lines are printed as `#` comments; its verdict is one test here.
Reports `skip - systemd_vm: why` only when the test bed says QEMU, busybox or the
kernel cannot be had on this machine.
"""

import os
import signal
import subprocess
import time

from harness import BUILD, ROOT, Failure, _live, check, main, kill_session, test
from harness import skip as skip_

RUN = os.path.join(ROOT, "tests", "vm", "run-systemd.sh")
SCENARIO = "tests/vm/systemd-scenario.sh"
VM_TIMEOUT = int(os.environ.get("EDGEVISOR_VM_TIMEOUT", "150"))


class _VM:
    """The run-systemd.sh process and its session (boot.sh, timeout, qemu), put
    in harness's cleanup list so a failure or tests/run.sh's SIGTERM stops it."""

    def __init__(self, proc):
        self.proc = proc

    def cleanup(self):
        if self.proc.poll() is None:
            # boot.sh kills qemu itself on TERM; whatever is left gets SIGKILL.
            try:
                self.proc.terminate()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        kill_session(self.proc.pid, pause=0.1)
        if self in _live:
            _live.remove(self)


@test
def systemd_vm():
    for f in ("edgevisor", "edgevisor-worker", "edgevisorctl", "examples/hello.so",
              "examples/background.so"):
        check(os.path.exists(os.path.join(BUILD, f)), "%s/%s is not built" % (BUILD, f))
    env = dict(os.environ, EDGEVISOR_BUILD=BUILD, EDGEVISOR_VM_TIMEOUT=str(VM_TIMEOUT))
    t0 = time.monotonic()
    proc = subprocess.Popen([RUN, SCENARIO], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    vm = _VM(proc)
    _live.append(vm)
    try:
        out, err = proc.communicate(timeout=VM_TIMEOUT + 45)
    except subprocess.TimeoutExpired:
        vm.cleanup()
        raise Failure("run-systemd.sh still running after %d s; killed" % (VM_TIMEOUT + 45))
    vm.cleanup()
    rc = proc.returncode
    out = out.decode(errors="replace")
    err = err.decode(errors="replace")
    for line in out.splitlines():
        print("# " + line)
    for line in err.splitlines():
        print("# [vm] " + line)
    print("# run-systemd.sh exit %d after %.1f s" % (rc, time.monotonic() - t0), flush=True)
    skip = [l for l in (out + err).splitlines() if l.startswith("tests/vm: SKIP")]
    if rc == 77 and skip:
        skip_(skip[0][len("tests/vm: SKIP"):].lstrip(": "))
    lines = out.splitlines()
    bad = [l[len("not ok - "):] for l in lines if l.startswith("not ok - ")]
    good = [l for l in lines if l.startswith("ok - ")]
    check(not bad, "%d scenario check(s) failed, first: %s" % (len(bad), bad[0] if bad else ""))
    check(rc == 0, "run-systemd.sh exited %d (124 timeout, 125 VM failure, 77 without "
          "a SKIP line)" % rc)
    # Every step must have reported: a scenario that stops early is a failure.
    check(len(good) >= 25 and "0 failed" in (lines[-1] if lines else ""),
          "scenario reported only %d ok lines; last line: %r"
          % (len(good), lines[-1] if lines else ""))


if __name__ == "__main__":
    main()
