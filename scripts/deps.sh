#!/bin/sh
# deps.sh - installs the Debian packages edgevisor needs to build, test and bench.
#
# Idempotent and quiet: dpkg-query decides what is missing, and apt runs only then
# (one update, one install). nginx-light is only a benchmark baseline, so a service
# its install may have started is stopped again.
set -eu

PKGS="build-essential gcc make pkg-config libevent-dev libjansson-dev libcgroup-dev
libhttp-parser-dev libwslay-dev nettle-dev libsystemd-dev libseccomp-dev libcurl4-openssl-dev curl wrk
python3 procps iproute2 clang nginx-light
libclang-rt-14-dev valgrind slowhttptest
libsqlite3-dev libpq-dev postgresql libncurses-dev tmux prometheus haproxy"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in
	ii*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
	command -v sudo >/dev/null 2>&1 || {
		echo "deps.sh: missing packages:$missing (run as root to install)" >&2
		exit 1
	}
else
	SUDO=
fi

had_nginx=0
pgrep -x nginx >/dev/null 2>&1 && had_nginx=1
# Servers the tests start themselves (in temp dirs, on loopback): a service their
# package's install starts is stopped again, as nginx is below.
had_services=""
for s in postgresql prometheus haproxy; do
	pgrep -f "/usr/[a-z/]*$s" >/dev/null 2>&1 && had_services="$had_services $s"
done

echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing

# Leave no nginx service behind that was not running before the install.
if [ "$had_nginx" -eq 0 ] && pgrep -x nginx >/dev/null 2>&1; then
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q nginx 2>/dev/null; then
		$SUDO systemctl stop nginx || true
		$SUDO systemctl disable -q nginx 2>/dev/null || true
	elif command -v service >/dev/null 2>&1; then
		$SUDO service nginx stop >/dev/null 2>&1 || true
	fi
	if pgrep -x nginx >/dev/null 2>&1; then
		$SUDO nginx -s quit 2>/dev/null || true
	fi
fi

for s in postgresql prometheus haproxy; do
	case " $had_services " in *" $s "*) continue ;; esac
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q "$s" 2>/dev/null; then
		$SUDO systemctl stop "$s" || true
		$SUDO systemctl disable -q "$s" 2>/dev/null || true
	elif command -v service >/dev/null 2>&1; then
		$SUDO service "$s" stop >/dev/null 2>&1 || true
	fi
done
