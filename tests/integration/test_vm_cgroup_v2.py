"""test_vm_cgroup_v2.py - the isolation tests (test_isolation.py), the cgroup half
of the faults (test_faults.py's supervisor_sigkill_workers_exit_cgroups_cleaned_next_start:
stale worker cgroups of a SIGKILLed supervisor removed at the next start) and the
library check's (test_check.py: its cgroup killed whole, cgroup.kill on v2) again, live
on cgroup v2: tests/vm/run.sh boots a QEMU VM whose /sys/fs/cgroup is cgroup2 with
+cpu +memory and runs the three there, unchanged, against the same build dir, in one
boot. Each of their results comes back as `ok - vm_cgroup_v2/NAME`,
`not ok - vm_cgroup_v2/NAME: why` or `skip - vm_cgroup_v2/NAME: why`.

`skip - vm_cgroup_v2: reason` (exit 77) only when tests/vm says QEMU, busybox or the
kernel cannot be had here; anything else that keeps a file from reporting (timeout, a
VM that died, a run that was not on v2) is a failure.
"""

import os
import re
import subprocess
import sys

import harness as h

RUN = os.path.join(h.ROOT, "tests", "vm", "run.sh")
INNER = os.path.join("tests", "integration", "test_isolation.py")
FAULTS = os.path.join("tests", "integration", "test_faults.py")
FAULTS_TEST = "supervisor_sigkill_workers_exit_cgroups_cleaned_next_start"
CHECK = os.path.join("tests", "integration", "test_check.py")
# One boot, three files; each file's exit code is reported on a line of its own.
SCRIPT = (
    'b=$1; shift; '
    'env EDGEVISOR_BUILD="$b" python3 %s "$@"; i=$?; echo "# vm-file isolation exit $i"; '
    'env EDGEVISOR_BUILD="$b" python3 %s %s; f=$?; echo "# vm-file faults exit $f"; '
    'env EDGEVISOR_BUILD="$b" python3 %s; c=$?; echo "# vm-file check exit $c"; '
    '[ "$i" = 0 ] && [ "$f" = 0 ] && [ "$c" = 0 ]'
    % (INNER, FAULTS, FAULTS_TEST, CHECK))
VM_TIMEOUT = int(os.environ.get("EDGEVISOR_VM_TIMEOUT", "240"))


def main():
    if not os.access(RUN, os.X_OK):
        print("not ok - vm_cgroup_v2: %s is missing" % RUN)
        return 1
    # The guest gets a fresh /tmp; only the checkout's own top dir under /tmp is
    # mounted back (tests/vm/boot.sh), so a build elsewhere in /tmp is not there.
    top = "/".join(os.path.realpath(h.ROOT).split("/")[:3])
    outside = h.BUILD.startswith("/tmp/") and not (
        top.startswith("/tmp/") and os.path.realpath(h.BUILD).startswith(top + "/"))
    if outside or not os.access(h.EDGEVISOR, os.X_OK):
        print("not ok - vm_cgroup_v2: build %s is not built or lies under /tmp outside "
              "the checkout" % h.BUILD)
        return 1
    cmd = [RUN, "sh", "-c", SCRIPT, "sh", h.BUILD] + sys.argv[1:]
    env = dict(os.environ, EDGEVISOR_VM_TIMEOUT=str(VM_TIMEOUT))
    try:
        p = subprocess.run(cmd, cwd=h.ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                           env=env, timeout=VM_TIMEOUT + 60)
    except subprocess.TimeoutExpired:
        print("not ok - vm_cgroup_v2: tests/vm/run.sh still running after %d s"
              % (VM_TIMEOUT + 60))
        return 1
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    skip = re.search(r"^tests/vm: SKIP: (.*)$", out + "\n" + err, re.M)
    if p.returncode == 77 and skip:
        print("skip - vm_cgroup_v2: %s" % skip.group(1).strip())
        return 77

    results = re.findall(r"^(ok|not ok|skip) - (\S+?)(:.*)?$", out, re.M)
    failed = 0
    for status, name, rest in results:
        print("%s - vm_cgroup_v2/%s%s" % (status, name, rest))
        failed += status == "not ok"
    exits = dict(re.findall(r"^# vm-file (\w+) exit (\d+)$", out, re.M))
    # Everything else the inner file said (timings, logs of a failure) as comments.
    for line in out.splitlines():
        if line.startswith("#"):
            print("#   vm: " + line.lstrip("# "))

    why = None
    if p.returncode == 124:
        why = "the VM was killed at its %d s timeout" % VM_TIMEOUT
    elif p.returncode == 125:
        why = "the VM failed before the tests could report"
    elif p.returncode == 77:
        why = "exit 77 without a tests/vm SKIP line"
    elif not results:
        why = "no test reported (exit %d)" % p.returncode
    elif p.returncode != 0 and not failed:
        why = "the run exited %d without a failed test" % p.returncode
    elif sorted(exits) != ["check", "faults", "isolation"]:
        why = "a file did not finish: %r" % exits
    elif any(v != "0" for v in exits.values()) and not failed:
        why = "a file exited non-zero without a failed test: %r" % exits
    elif FAULTS_TEST not in [n for _, n, _ in results]:
        why = "%s did not report" % FAULTS_TEST
    elif not re.search(r"^#\s+cgroup v2 ", out, re.M) or \
            not re.search(r"^#\s+%s: cgroup v2 " % FAULTS_TEST, out, re.M):
        why = "the tests did not run on cgroup v2"
    if why:
        failed += 1
        print("not ok - vm_cgroup_v2: %s" % why)
        for line in (out.splitlines() + err.splitlines())[-20:]:
            print("#   " + line)
    else:
        print("ok - vm_cgroup_v2")
    for line in err.splitlines():
        if line.startswith("tests/vm:"):
            print("#   " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
