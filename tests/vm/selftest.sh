#!/bin/bash
# selftest.sh - prove the VM test bed gives what the cgroup tests rely on.  On the
# host it boots the VM twice: itself in run mode (cgroup2 with cpu and memory, an
# OOM kill, CPU throttling, loopback) and selftest-systemd.sh under systemd.
# Exit 0 all passed, 1 a check failed, 77 the VM cannot run here.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/check.sh"

if [ "${EDGEVISOR_VM:-}" != run ]; then
	# The contract callers rely on: output and exit code come back, a hung
	# command is cut off at EDGEVISOR_VM_TIMEOUT.
	out=$("$HERE/run.sh" sh -c 'echo out; echo err >&2; printf partial; exit 3' 2>/dev/null)
	rc=$?
	[ "$rc" = 77 ] && exit 77
	[ "$rc" = 3 ] && [ "$out" = "$(printf 'out\nerr\npartial')" ] &&
	    ok "run.sh returns the command's output and exit code" ||
	    not_ok "run.sh: exit $rc, output '$out'"
	t0=$(date +%s%N)
	EDGEVISOR_VM_TIMEOUT=10 "$HERE/run.sh" sleep 600 2>/dev/null
	rc=$?
	ms=$(ms_since "$t0")
	[ "$rc" = 124 ] && [ "$ms" -lt 20000 ] &&
	    ok "run.sh times out a hung command: exit 124 after $ms ms" ||
	    not_ok "run.sh timeout: exit $rc after $ms ms"
	"$HERE/run.sh" "$HERE/selftest.sh"
	rc=$?
	[ "$rc" = 0 ] && ok "VM run mode self-test" || not_ok "VM run mode self-test (exit $rc)"
	"$HERE/run-systemd.sh" "$HERE/selftest-systemd.sh"
	rc=$?
	[ "$rc" = 0 ] && ok "VM systemd mode self-test" ||
	    not_ok "VM systemd mode self-test (exit $rc)"
	summary || exit 1
	exit 0
fi

root=/sys/fs/cgroup

fstype=$(stat -f -c %T "$root")
ctl=" $(cat "$root/cgroup.subtree_control") "
if [ "$fstype" = cgroup2fs ] && [[ $ctl == *" cpu "* ]] && [[ $ctl == *" memory "* ]]; then
	ok "$root is cgroup2 with cpu and memory in subtree_control:$ctl"
else
	not_ok "$root is $fstype, subtree_control:$ctl"
fi

# A 100 MB allocation in a 32M cgroup is OOM-killed, and memory.events says so.
cg=$root/vmselftest-mem.$$
mkdir "$cg" && echo 32M >"$cg/memory.max"
[ -f "$cg/memory.swap.max" ] && echo 0 >"$cg/memory.swap.max"
t0=$(date +%s%N)
# The group's redirection keeps bash's "Killed" notice out of the output.
{
	sh -c 'echo $$ >"$1/cgroup.procs" && exec python3 -c "b = b\"x\" * (100 << 20)"' \
	    _ "$cg"
	rc=$?
} 2>/dev/null
kills=$(sed -n 's/^oom_kill //p' "$cg/memory.events")
if [ "$rc" = 137 ] && [ "$kills" = 1 ]; then
	ok "memory.max=32M: 100 MB hog SIGKILLed, memory.events oom_kill 1 ($(ms_since "$t0") ms)"
else
	not_ok "memory.max=32M: hog exit $rc, oom_kill '${kills}'"
fi
wait_for 10 rmdir "$cg" 2>/dev/null || not_ok "rmdir $cg"

# A spinner under cpu.max 10000 100000 is throttled within about a second.
cg=$root/vmselftest-cpu.$$
mkdir "$cg" && echo "10000 100000" >"$cg/cpu.max"
sh -c 'echo $$ >"$1/cgroup.procs" && exec sh -c "while :; do :; done"' _ "$cg" &
spin=$!
throttled() {
	local n
	n=$(sed -n 's/^nr_throttled //p' "$cg/cpu.stat")
	[ "${n:-0}" -gt 0 ]
}
t0=$(date +%s%N)
if wait_for 10 throttled; then
	ok "cpu.max 10000 100000: spinner throttled after $(ms_since "$t0") ms ($(tr '\n' ' ' <"$cg/cpu.stat"))"
else
	not_ok "cpu.max 10000 100000: no throttling in 10 s ($(tr '\n' ' ' <"$cg/cpu.stat"))"
fi
kill "$spin"
wait "$spin" 2>/dev/null
wait_for 10 rmdir "$cg" 2>/dev/null || not_ok "rmdir $cg"

# Loopback: a TCP round trip on 127.0.0.1.
if python3 - <<'PY'
import socket
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
cli = socket.create_connection(srv.getsockname(), timeout=10)
conn, _ = srv.accept()
cli.sendall(b"ping")
assert conn.recv(4) == b"ping"
PY
then
	ok "lo is up: TCP round trip on 127.0.0.1"
else
	not_ok "lo: no TCP round trip on 127.0.0.1 ($(ip -o link show lo))"
fi

summary
