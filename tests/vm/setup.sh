#!/bin/sh
# setup.sh - make the VM test bed ready: QEMU and busybox from Debian, the Debian kernel
# unpacked (not installed) into a cache dir outside the repo, and an initramfs built
# from tests/vm/init.sh.  Idempotent; downloads only what is missing.
# Prints the cache dir's kernel and initramfs paths as shell assignments on stdout.
# Exit 0 ready, 77 when the bed cannot be set up here (message on stderr).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${EDGEVISOR_VM_CACHE:-/var/cache/edgevisor-vm}
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
	9pnet 9pnet_virtio netfs fscache 9p overlay"

skip() {
	echo "tests/vm: SKIP: $*" >&2
	exit 77
}

log() {
	echo "tests/vm: $*" >&2
}

apt_ready=0
apt_update() {
	[ "$apt_ready" = 1 ] && return 0
	log "apt-get update"
	apt-get update -qq >/dev/null 2>&1 || return 1
	apt_ready=1
}

need_pkg() {	# need_pkg BINARY PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	[ "$(id -u)" = 0 ] || skip "$1 missing and not root to apt-get install $2"
	command -v apt-get >/dev/null 2>&1 || skip "$1 missing and no apt-get"
	log "installing $2"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends "$2" >/dev/null 2>&1; then
		apt_update || skip "apt-get update failed; cannot install $2"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		    --no-install-recommends "$2" >/dev/null 2>&1 ||
		    skip "apt-get install $2 failed"
	fi
	command -v "$1" >/dev/null 2>&1 || skip "$2 installed but $1 not found"
}

mkdir -p "$CACHE" 2>/dev/null || skip "cannot create cache dir $CACHE"
exec 9>"$CACHE/lock"
# Several test runs may start at once: one of them sets up, the others wait.
flock 9 || skip "cannot lock $CACHE/lock"

need_pkg qemu-system-x86_64 qemu-system-x86
need_pkg busybox busybox-static
BUSYBOX=$(command -v busybox)
# The initramfs holds busybox alone, so it must be the static build.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	[ "$(id -u)" = 0 ] || skip "$BUSYBOX is dynamic; install busybox-static"
	log "installing busybox-static"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static \
	    >/dev/null 2>&1 || skip "apt-get install busybox-static failed"
	BUSYBOX=$(command -v busybox)
	ldd "$BUSYBOX" >/dev/null 2>&1 && skip "$BUSYBOX is still dynamic"
fi
qemu-system-x86_64 -version >/dev/null 2>&1 || skip "qemu-system-x86_64 does not run"

# The kernel: the one linux-image-amd64 points at, unpacked with dpkg -x.
kdir=$(ls -d "$CACHE"/kernel/boot 2>/dev/null)
if [ -z "$kdir" ] || ! ls "$CACHE"/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	    sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
	if [ -z "$kpkg" ]; then
		apt_update || skip "apt-get update failed; cannot find the kernel package"
		kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		    sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
	fi
	[ -n "$kpkg" ] || skip "apt-cache names no linux-image-*-amd64 for linux-image-amd64"
	log "downloading $kpkg (~70 MB, once)"
	dl=$(mktemp -d "$CACHE/dl.XXXXXX") || skip "mktemp failed"
	if ! (cd "$dl" && apt-get download -qq "$kpkg" >/dev/null 2>&1); then
		apt_update && (cd "$dl" && apt-get download -qq "$kpkg" >/dev/null 2>&1) ||
		    { rm -rf "$dl"; skip "apt-get download $kpkg failed"; }
	fi
	rm -rf "$CACHE/kernel.new"
	dpkg -x "$dl"/*.deb "$CACHE/kernel.new" || { rm -rf "$dl"; skip "dpkg -x failed"; }
	rm -rf "$dl" "$CACHE/kernel"
	mv "$CACHE/kernel.new" "$CACHE/kernel"
fi
KERNEL=$(ls "$CACHE"/kernel/boot/vmlinuz-* | head -n 1)
KVER=${KERNEL##*/vmlinuz-}
MODDIR=$CACHE/kernel/lib/modules/$KVER
[ -d "$MODDIR" ] || skip "no modules for $KVER in $CACHE/kernel"

# The initramfs is keyed by what goes in it, so editing init.sh rebuilds it.
key=$( (cat "$HERE/init.sh"; echo "$KVER $MODULES"; cksum <"$BUSYBOX") | cksum | cut -d' ' -f1)
INITRD=$CACHE/initramfs-$key.cpio.gz
if [ ! -s "$INITRD" ]; then
	log "building initramfs for $KVER"
	root=$(mktemp -d "$CACHE/initramfs.XXXXXX") || skip "mktemp failed"
	mkdir -p "$root/bin" "$root/lib/modules" "$root/proc" "$root/sys" \
	    "$root/dev" "$root/lower" "$root/upper" "$root/newroot"
	cp "$BUSYBOX" "$root/bin/busybox"
	cp "$HERE/init.sh" "$root/init"
	chmod 755 "$root/init"
	for m in $MODULES; do
		f=$(find "$MODDIR/kernel" -name "$m.ko" -o -name "$m.ko.xz" \
		    -o -name "$m.ko.zst" | head -n 1)
		[ -n "$f" ] || continue		# built in
		case $f in
		*.xz)	xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
		*.zst)	zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
		*)	cp "$f" "$root/lib/modules/$m.ko" ;;
		esac
		echo "$m" >>"$root/lib/modules/order"
	done
	# The host has no cpio; busybox packs newc archives.
	(cd "$root" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) |
	    gzip -1 >"$INITRD.tmp" && mv "$INITRD.tmp" "$INITRD"
	rm -rf "$root"
	[ -s "$INITRD" ] || skip "building the initramfs failed"
	# Old images from earlier init.sh versions are no use.
	for old in "$CACHE"/initramfs-*.cpio.gz; do
		[ "$old" = "$INITRD" ] || rm -f "$old"
	done
fi

echo "KERNEL=$KERNEL"
echo "INITRD=$INITRD"
