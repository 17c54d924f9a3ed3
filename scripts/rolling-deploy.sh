#!/bin/sh
# rolling-deploy.sh - a rolling deploy of edgevisor hosts behind a load balancer, one
# host at a time, so the fleet never loses a request or a background task:
#
#   1. drain   the host drain: /health answers 503 "draining" for health_drain_ms
#              while the host still serves (the balancer's checks move traffic away),
#              then every worker drains its connections and tasks and the
#              supervisor exits 0
#   2. start   the new version (a new library, a new config, a new binary)
#   3. health  wait until the host's /health answers 200 (every pool ready)
#   4. lb-up   optionally wait until the balancer sends it traffic again
#   then the next host. Any step failing (or timing out) stops the deploy there:
#   the hosts not reached yet still run the old version.
#
# Usage: EV_START='...' [EV_DRAIN='...'] [EV_HEALTH='...'] [EV_LB_UP='...'] \
#            scripts/rolling-deploy.sh HOST...
# Each step is a shell command (EV_HEALTH: a URL) in which {} stands for the host:
#   EV_DRAIN   default: edgevisorctl -s unix:/run/edgevisor/{}.sock drain --all --wait
#              (one host over ssh: 'ssh {} edgevisorctl drain --all --wait'; with
#              systemd and sigterm_health_drain on: 'ssh {} systemctl stop edgevisor')
#   EV_START   required, e.g. 'ssh {} systemctl start edgevisor'
#   EV_HEALTH  default: http://{}:9101/health (the "metrics" listener)
#   EV_LB_UP   default: none; e.g. a query of the balancer's stats that succeeds
#              once it marks the host up (rise checks passed)
#   EV_TIMEOUT seconds each wait may take (default 120); EV_CTL the edgevisorctl path
# Output: one line per step, "rolling-deploy: HOST: STEP ...". Exit 0 when every host
# runs the new version, 1 at the first failure.
set -u

ctl=${EV_CTL:-edgevisorctl}
drain=${EV_DRAIN:-"$ctl -s unix:/run/edgevisor/{}.sock drain --all --wait"}
health=${EV_HEALTH:-"http://{}:9101/health"}
lb_up=${EV_LB_UP:-}
timeout=${EV_TIMEOUT:-120}

say() { echo "rolling-deploy: $*"; }

if [ -z "${EV_START:-}" ] || [ $# -eq 0 ]; then
	echo "usage: EV_START='cmd {}' [EV_DRAIN=...] [EV_HEALTH=url] [EV_LB_UP=...] $0 HOST..." >&2
	exit 2
fi

# subst TEMPLATE HOST: TEMPLATE with every {} replaced by HOST.
subst() {
	printf '%s\n' "$1" | sed "s|{}|$2|g"
}

# until_ok WHAT CMD: runs CMD every 100 ms until it succeeds or EV_TIMEOUT passes.
until_ok() {
	what=$1
	shift
	end=$(($(date +%s) + timeout))
	while ! sh -c "$1" >/dev/null 2>&1; do
		if [ "$(date +%s)" -ge "$end" ]; then
			say "$what: not after ${timeout} s"
			return 1
		fi
		sleep 0.1
	done
}

for host in "$@"; do
	say "$host: drain"
	sh -c "$(subst "$drain" "$host")" || { say "$host: drain failed"; exit 1; }
	say "$host: start"
	sh -c "$(subst "$EV_START" "$host")" || { say "$host: start failed"; exit 1; }
	url=$(subst "$health" "$host")
	until_ok "$host: health" "curl -fsS -o /dev/null --max-time 2 '$url'" || exit 1
	say "$host: healthy"
	if [ -n "$lb_up" ]; then
		until_ok "$host: lb-up" "$(subst "$lb_up" "$host")" || exit 1
		say "$host: back in the balancer"
	fi
done
say "done: $*"
