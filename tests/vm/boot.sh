#!/bin/bash
# boot.sh - boot the test VM once and run one command in it; the engine behind
# run.sh (mode run) and run-systemd.sh (mode systemd).  Usage: boot.sh MODE CMD [ARG...]
# Prints the command's output (stdout and stderr merged) and exits with its exit
# code; 77 when the VM cannot run here, 124 on timeout, 125 when the VM failed.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TIMEOUT=${EDGEVISOR_VM_TIMEOUT:-240}
MEM=${EDGEVISOR_VM_MEM:-512M}
MARK='@@EDGEVISOR-VM-EXIT='

if [ $# -lt 2 ]; then
	echo "usage: tests/vm/run.sh CMD [ARG...] | tests/vm/run-systemd.sh SCRIPT [ARG...]" >&2
	exit 2
fi
mode=$1
shift

setup=$("$HERE/setup.sh")
rc=$?
case $rc in
0)	;;
77)	exit 77 ;;
*)	echo "tests/vm: setup.sh failed ($rc)" >&2; exit 125 ;;
esac
KERNEL= INITRD=
eval "$setup"
[ -n "$KERNEL" ] && [ -n "$INITRD" ] || { echo "tests/vm: setup.sh gave no kernel" >&2; exit 125; }

job=$(mktemp -d /tmp/edgevisor-vm.XXXXXX) || exit 125
qpid=
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
	rm -rf "$job"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The job: a bash script in the guest, the command quoted for it here.
{
	echo 'stty -F /dev/ttyS1 raw -echo 2>/dev/null'
	echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	echo "export HOME=/root LANG=C.UTF-8 TERM=dumb EDGEVISOR_VM=$mode"
	# The suite's own settings (EDGEVISOR_BUILD, ...) pass through.
	while IFS= read -r name; do
		case $name in
		EDGEVISOR_VM*)	;;
		EDGEVISOR_*)	printf 'export %s=%q\n' "$name" "${!name}" ;;
		esac
	done < <(compgen -e)
	printf 'if cd %q 2>/dev/null; then\n\t' "$PWD"
	printf '%q ' "$@"
	echo '</dev/null'
	echo '	rc=$?'
	echo 'else'
	printf '\techo %q >&2\n' "tests/vm: cwd $PWD is not in the VM (the host's /tmp is at /.edgevisor-vm/host-tmp)"
	echo '	rc=125'
	echo 'fi'
	echo "printf '\\n${MARK}%d@@\\n' \"\$rc\""
	echo 'exit $rc'
} >"$job/wrap.sh"

append="console=ttyS0 panic=-1 ev.mode=$mode ev.job=$job"
# The guest's /tmp is fresh: a checkout under the host's /tmp is mounted back at its
# own path (the whole top-level dir below /tmp, so the build dir comes along).
case $PWD in
/tmp/?*)
	top=$(echo "$PWD" | cut -d/ -f1-3)
	case $top in *[[:space:]]*) ;; *) append="$append ev.keep=$top" ;; esac
	;;
esac
[ "$mode" = systemd ] && append="$append systemd.unified_cgroup_hierarchy=1 systemd.unit=edgevisor-vm.target systemd.show_status=1"
start=$(date +%s.%N)
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -nodefaults -no-user-config \
    -accel tcg -cpu max -m "$MEM" -smp 1 -display none -no-reboot \
    -nic none -monitor none \
    -kernel "$KERNEL" -initrd "$INITRD" -append "$append" \
    -virtfs local,path=/,mount_tag=host0,security_model=none,readonly=on,multidevs=remap \
    -serial "file:$job/console.log" -serial "file:$job/out.log" \
    </dev/null >"$job/qemu.log" 2>&1 &
qpid=$!
wait "$qpid"
qrc=$?
qpid=
secs=$(echo "$start $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
[ -n "${EDGEVISOR_VM_CONSOLE:-}" ] && cp "$job/console.log" "$EDGEVISOR_VM_CONSOLE"

touch "$job/out.log"
n=$(grep -a -n "^$MARK[0-9]*@@" "$job/out.log" | tail -n 1 | cut -d: -f1)
if [ -n "$n" ]; then
	rc=$(sed -n "${n}s/^$MARK\\([0-9]*\\)@@.*/\\1/p" "$job/out.log")
	# Drop the newline the marker added before itself.
	head -n $((n - 1)) "$job/out.log" |
	    awk '{ if (held) print last; last = $0; held = 1 }
		END { if (held && last != "") print last }'
	echo "tests/vm: $mode VM: exit $rc after $secs s" >&2
	exit "$rc"
fi

cat "$job/out.log"
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	echo "tests/vm: $mode VM timed out after $TIMEOUT s (EDGEVISOR_VM_TIMEOUT); killed" >&2
	rc=124
else
	echo "tests/vm: $mode VM ended after $secs s (qemu exit $qrc) without the job's exit code" >&2
	rc=125
fi
echo "tests/vm: qemu said:" >&2
sed 's/^/  /' "$job/qemu.log" >&2
echo "tests/vm: last console lines:" >&2
tail -n 40 "$job/console.log" | tr -d '\r' | sed 's/^/  /' >&2
exit $rc
