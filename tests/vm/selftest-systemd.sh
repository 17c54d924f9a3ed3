#!/bin/bash
# selftest-systemd.sh - run by run-systemd.sh as a oneshot unit under systemd as PID 1:
# a Type=notify service with Delegate=yes starts, gets cpu and memory delegated,
# and its cgroup goes away when it stops.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/check.sh"

unit=vmselftest-notify.service
[ "$(cat /proc/1/comm)" = systemd ] && [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] &&
    ok "PID 1 is systemd on a unified cgroup hierarchy" ||
    not_ok "PID 1 is $(cat /proc/1/comm), /sys/fs/cgroup is $(stat -f -c %T /sys/fs/cgroup)"

# The main process notifies itself and stays alive, so PID 1 can always match
# the message to the service (NotifyAccess=main).
mkdir -p /run/vmselftest
cat >/run/vmselftest/notify.py <<'PY'
import os, socket, time
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=selftest ready", addr)
time.sleep(3600)
PY
cat >"/run/systemd/system/$unit" <<EOT
[Service]
Type=notify
NotifyAccess=main
Delegate=yes
ExecStart=/usr/bin/python3 /run/vmselftest/notify.py
TimeoutStartSec=60
EOT
systemctl daemon-reload

t0=$(date +%s%N)
if timeout 90 systemctl start "$unit"; then
	state=$(systemctl show -P ActiveState "$unit")
	[ "$state" = active ] && ok "systemctl start $unit: active after $(ms_since "$t0") ms" ||
	    not_ok "systemctl start $unit: ActiveState=$state"
else
	not_ok "systemctl start $unit failed"
	systemctl status --no-pager "$unit"
fi

cg=/sys/fs/cgroup$(systemctl show -P ControlGroup "$unit")
ctl=" $(cat "$cg/cgroup.controllers" 2>/dev/null) "
if [[ $ctl == *" cpu "* ]] && [[ $ctl == *" memory "* ]] &&
    [ "$(systemctl show -P Delegate "$unit")" = yes ]; then
	ok "Delegate=yes: $cg has cgroup.controllers:$ctl"
else
	not_ok "Delegate=yes: $cg has cgroup.controllers:$ctl"
fi
pid=$(systemctl show -P MainPID "$unit")
grep -qx "0::${cg#/sys/fs/cgroup}" "/proc/$pid/cgroup" 2>/dev/null &&
    ok "main PID $pid is in $cg" || not_ok "main PID $pid not in $cg"

timeout 60 systemctl stop "$unit"
gone() { [ ! -d "$cg" ]; }
[ "$(systemctl show -P ActiveState "$unit")" = inactive ] && wait_for 10 gone &&
    ok "systemctl stop: inactive and $cg removed" ||
    not_ok "systemctl stop: $(systemctl show -P ActiveState "$unit"), cgroup dir left: $cg"

rm -f "/run/systemd/system/$unit"
systemctl daemon-reload
summary
