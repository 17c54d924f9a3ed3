#!/bin/busybox sh
# init.sh - PID 1 of the test VM's initramfs (tests/vm/setup.sh packs it as /init).
# Mounts the host's / read-only over 9p under a tmpfs overlay, then either runs the
# job in a chroot with cgroup2 (+cpu +memory) mounted (ev.mode=run) or hands the
# overlay to the host's systemd as PID 1 (ev.mode=systemd).  The job is the
# wrap.sh that boot.sh wrote into the host dir named by ev.job=; it prints the
# exit marker on ttyS1 itself.

/bin/busybox --install -s /bin
export PATH=/bin

fail() {
	echo "edgevisor-vm: init: $*" >/dev/ttyS0
	poweroff -f
	sleep 5
}

# A checkout under the host's /tmp (CI may clone there) stays visible at its own
# path on top of the job's fresh /tmp, read-only like the rest of the host.
keep_tmp_path() {
	[ -n "$keep" ] && [ -d "/lower$keep" ] || return 0
	mkdir -p "/newroot$keep"
	mount --bind "/lower$keep" "/newroot$keep" || fail "bind-mounting $keep failed"
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "edgevisor-vm: init started at $(cut -d' ' -f1 /proc/uptime) s" >/dev/ttyS0

mode= job= keep=
for arg in $(cat /proc/cmdline); do
	case $arg in
	ev.mode=*)	mode=${arg#ev.mode=} ;;
	ev.job=*)	job=${arg#ev.job=} ;;
	ev.keep=*)	keep=${arg#ev.keep=} ;;
	esac
done
[ -n "$mode" ] && [ -n "$job" ] || fail "no ev.mode= or ev.job= on the command line"

# No depmod on the host: plain insmod, dependencies first (the order file).
while read -r m; do
	insmod "/lib/modules/$m.ko" || fail "insmod $m failed"
done </lib/modules/order

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose host0 /lower ||
    fail "mounting the host's / over 9p failed"
# The overlay keeps the host untouched yet lets the job (and systemd) write anywhere.
mount -t tmpfs -o mode=755 tmpfs /upper
mkdir -p /upper/upper /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work \
    overlay /newroot || fail "overlay mount failed"
[ -f "/lower$job/wrap.sh" ] || fail "no job at $job/wrap.sh"
mkdir -p /newroot/.edgevisor-vm
cp "/lower$job/"* /newroot/.edgevisor-vm/ || fail "copying the job failed"
# The job gets a fresh /tmp; the host's stays readable here (e.g. for scripts).
mkdir -p /newroot/.edgevisor-vm/host-tmp
mount --bind /lower/tmp /newroot/.edgevisor-vm/host-tmp
# Docker's marker would make systemd (and others) believe they run in a container.
rm -f /newroot/.dockerenv
hostname edgevisor-vm
ip link set lo up || fail "bringing lo up failed"
# Raw: the job's bytes reach the host's log unchanged (no \r added).
stty -F /dev/ttyS1 raw -echo

case $mode in
run)
	mount -t proc proc /newroot/proc
	mount -t sysfs sysfs /newroot/sys
	mount -t devtmpfs devtmpfs /newroot/dev
	mkdir -p /newroot/dev/pts /newroot/dev/shm
	mount -t devpts -o newinstance,ptmxmode=0666 devpts /newroot/dev/pts
	mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
	for d in /tmp /var/tmp; do
		mkdir -p "/newroot$d"
		mount -t tmpfs -o mode=1777 tmpfs "/newroot$d"
	done
	keep_tmp_path
	mkdir -p /newroot/run
	mount -t tmpfs -o mode=755 tmpfs /newroot/run
	mount -t cgroup2 -o nsdelegate cgroup2 /newroot/sys/fs/cgroup ||
	    fail "mounting cgroup2 failed"
	echo "+cpu +memory +pids +io" >/newroot/sys/fs/cgroup/cgroup.subtree_control ||
	    fail "enabling cpu and memory in the cgroup2 root failed"
	echo "edgevisor-vm: job starts at $(cut -d' ' -f1 /proc/uptime) s" >/dev/ttyS0
	chroot /newroot /bin/bash /.edgevisor-vm/wrap.sh </dev/null >/dev/ttyS1 2>&1
	echo "edgevisor-vm: job ended ($?) at $(cut -d' ' -f1 /proc/uptime) s" >/dev/ttyS0
	poweroff -f
	;;
systemd)
	u=/newroot/etc/systemd/system
	# The host's enabled units and slow or pointless ones in a VM stay off.
	rm -rf "$u"/*.wants
	for unit in systemd-udev-trigger.service systemd-udev-settle.service \
	    systemd-timesyncd.service timers.target getty.target \
	    getty@tty1.service serial-getty@ttyS0.service serial-getty@ttyS1.service \
	    console-getty.service kmod-static-nodes.service systemd-binfmt.service \
	    proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
	    systemd-firstboot.service systemd-networkd.service \
	    systemd-resolved.service cron.service nginx.service postgresql.service \
	    apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service \
	    systemd-logind.service dbus.service dbus.socket \
	    modprobe@configfs.service modprobe@dm_mod.service modprobe@fuse.service \
	    modprobe@loop.service modprobe@drm.service modprobe@efi_pstore.service \
	    systemd-modules-load.service sys-kernel-debug.mount \
	    sys-kernel-tracing.mount dev-hugepages.mount systemd-random-seed.service \
	    systemd-sysusers.service systemd-update-utmp.service \
	    systemd-journal-flush.service; do
		ln -sf /dev/null "$u/$unit"
	done
	# Generators cost seconds per daemon-reload under emulation; the
	# debug one (systemd.mask= and friends) stays.
	mkdir -p /newroot/etc/systemd/system-generators
	for g in /newroot/lib/systemd/system-generators/*; do
		g=${g##*/}
		[ "$g" = systemd-debug-generator ] ||
		    ln -sf /dev/null "/newroot/etc/systemd/system-generators/$g"
	done
	cat >"$u/edgevisor-vm.target" <<-EOT
	[Unit]
	Description=edgevisor VM test target
	Wants=basic.target edgevisor-vm-test.service
	AllowIsolate=yes
	EOT
	cat >"$u/edgevisor-vm-test.service" <<-EOT
	[Unit]
	Description=edgevisor VM test job
	After=basic.target
	SuccessAction=poweroff-force
	FailureAction=poweroff-force

	[Service]
	Type=oneshot
	ExecStart=/bin/bash /.edgevisor-vm/wrap.sh
	StandardInput=null
	StandardOutput=tty
	StandardError=inherit
	TTYPath=/dev/ttyS1
	TimeoutStartSec=infinity
	EOT
	mkdir -p /newroot/tmp
	mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
	keep_tmp_path
	umount /proc /sys
	mount --move /dev /newroot/dev
	exec switch_root /newroot /lib/systemd/systemd
	;;
*)
	fail "unknown ev.mode=$mode"
	;;
esac
