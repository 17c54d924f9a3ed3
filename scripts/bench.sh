#!/usr/bin/env bash
# bench.sh - measures edgevisor's hello function under wrk against nginx's `return 200`.
#
# Usage: scripts/bench.sh [BUILD_DIR]   (env: ROUNDS=3 DURATION=5 THREADS=2 CONNS=64)
# Starts the supervisor (hello, 2 workers, cgroups off) and, when nginx is installed,
# an nginx with 2 workers answering "hello\n", each on a free loopback port, in a
# temp dir. Rounds alternate the two, keep-alive and `Connection: close`, with
# `wrk --latency`. Prints each run, a table of min/median/max and ours/nginx ratios,
# and one `bench name=... value=... unit=...` line per figure. Everything it starts
# is stopped on exit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
rounds=${ROUNDS:-3}
duration=${DURATION:-5}
threads=${THREADS:-2}
conns=${CONNS:-64}

command -v wrk >/dev/null || { echo "bench.sh: wrk is not installed" >&2; exit 1; }
[ -x "$build/edgevisor" ] || { echo "bench.sh: $build/edgevisor is not built" >&2; exit 1; }
[ -f "$build/examples/hello.so" ] || { echo "bench.sh: $build/examples/hello.so is not built" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ev-bench.XXXXXX")
ev_pid=""
ngx_pid=""

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL its whole process group.
stop_pid() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	stop_pid "$ev_pid"
	if [ -n "$ngx_pid" ]; then
		kill -QUIT "$ngx_pid" 2>/dev/null || true
		stop_pid "$ngx_pid"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http PORT WHAT: until GET / answers 200, for at most 20 s.
wait_http() {
	local i
	for i in $(seq 200); do
		if curl -fsS -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench.sh: $2 did not answer on port $1" >&2
	return 1
}

# ---- edgevisor -----------------------------------------------------------------
ev_port=$(free_port)
cat >"$tmp/edgevisor.conf" <<EOF
{
  "cgroups": "off",
  "log_level": "warn",
  "functions": [
    { "name": "hello", "library": "$build/examples/hello.so",
      "listen": ["127.0.0.1:$ev_port"], "policy": "per_worker", "workers": 2 }
  ]
}
EOF
setsid "$build/edgevisor" -c "$tmp/edgevisor.conf" </dev/null >"$tmp/edgevisor.log" 2>&1 &
ev_pid=$!
wait_http "$ev_port" edgevisor || { tail -n 20 "$tmp/edgevisor.log" >&2; exit 1; }

# ---- nginx (the baseline, when installed) --------------------------------------------
nginx_bin=$(command -v nginx || true)
[ -n "$nginx_bin" ] || nginx_bin=$( [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx || true)
ngx_port=""
if [ -n "$nginx_bin" ]; then
	ngx_port=$(free_port)
	mkdir -p "$tmp/nginx"
	# keepalive_requests is raised so nginx does not close a keep-alive connection
	# every 1000 requests, which edgevisor does not do either.
	cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	server {
		listen 127.0.0.1:$ngx_port;
		location / { default_type text/plain; return 200 "hello\n"; }
	}
}
EOF
	setsid "$nginx_bin" -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" \
	    </dev/null >"$tmp/nginx/out.log" 2>&1 &
	ngx_pid=$!
	wait_http "$ngx_port" nginx || { cat "$tmp/nginx/error.log" >&2; exit 1; }
else
	echo "bench.sh: nginx not installed; measuring edgevisor alone" >&2
fi

# ---- runs ------------------------------------------------------------------------
# run_wrk TARGET PORT MODE ROUND: one wrk run; appends
# "TARGET MODE ROUND rps p50_ms p99_ms errors" to results.
results="$tmp/results"
: >"$results"
run_wrk() {
	local target=$1 port=$2 mode=$3 round=$4 out line
	local hdr=()
	[ "$mode" = close ] && hdr=(-H 'Connection: close')
	out=$(wrk --latency -t"$threads" -c"$conns" -d"${duration}s" "${hdr[@]}" \
	    "http://127.0.0.1:$port/" 2>&1)
	line=$(printf '%s\n' "$out" | awk -v t="$target" -v m="$mode" -v r="$round" '
		function ms(v) {
			if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
			if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
			if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
			if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
			return v + 0
		}
		/^ +50%/ { p50 = ms($2) }
		/^ +99%/ { p99 = ms($2) }
		/^Requests\/sec:/ { rps = $2 }
		/Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
		/Non-2xx or 3xx responses:/ { err += $NF }
		END { printf "%s %s %s %.0f %.3f %.3f %d\n", t, m, r, rps, p50, p99, err }')
	echo "$line" >>"$results"
	printf '  round %s %-6s %-9s %9s req/s  p50 %8s ms  p99 %8s ms  errors %s\n' \
	    "$round" "$target" "$mode" $(echo "$line" | cut -d' ' -f4-7)
}

targets="ours"
[ -n "$ngx_port" ] && targets="ours nginx"
echo "wrk -t$threads -c$conns -d${duration}s --latency, $rounds rounds ($(nproc) cores)"
for round in $(seq "$rounds"); do
	for mode in keepalive close; do
		for target in $targets; do
			if [ "$target" = ours ]; then
				run_wrk ours "$ev_port" "$mode" "$round"
			else
				run_wrk nginx "$ngx_port" "$mode" "$round"
			fi
		done
	done
done
kill -0 "$ev_pid" 2>/dev/null || { echo "bench.sh: edgevisor died during the runs" >&2; exit 1; }

# ---- summary -----------------------------------------------------------------------
# stats TARGET MODE COLUMN: "min median max" of one figure over the rounds.
stats() {
	awk -v t="$1" -v m="$2" -v c="$3" '$1 == t && $2 == m { print $c }' "$results" |
	    sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "- - -"; exit }
		med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%g %g %g\n", v[1], med, v[NR] }'
}

echo
printf '%-10s %-10s %-8s %28s %28s %8s\n' mode figure unit "ours min/median/max" \
    "nginx min/median/max" ours/ngx
machine=()
for mode in keepalive close; do
	for fig in rps:4:req/s p50:5:ms p99:6:ms errors:7:count; do
		name=${fig%%:*}
		col=$(echo "$fig" | cut -d: -f2)
		unit=${fig##*:}
		read -r omin omed omax <<<"$(stats ours "$mode" "$col")"
		read -r nmin nmed nmax <<<"$(stats nginx "$mode" "$col")"
		ratio=-
		if [ "$nmed" != - ] && awk -v n="$nmed" 'BEGIN { exit !(n > 0) }'; then
			ratio=$(awk -v o="$omed" -v n="$nmed" 'BEGIN { printf "%.2f", o / n }')
		fi
		printf '%-10s %-10s %-8s %28s %28s %8s\n' "$mode" "$name" "$unit" \
		    "$omin/$omed/$omax" "$nmin/$nmed/$nmax" "$ratio"
		machine+=("bench name=ours_${mode}_${name} value=$omed unit=$unit")
		[ "$nmed" != - ] && machine+=("bench name=nginx_${mode}_${name} value=$nmed unit=$unit")
		[ "$ratio" != - ] && machine+=("bench name=ratio_${mode}_${name} value=$ratio unit=ratio")
	done
done
echo
printf '%s\n' "${machine[@]}"
