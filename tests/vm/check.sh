# check.sh - tiny pass/fail bookkeeping sourced by the VM self-tests.
passed=0
failed=0

ok() {
	passed=$((passed + 1))
	echo "ok - $*"
}

not_ok() {
	failed=$((failed + 1))
	echo "not ok - $*"
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds or time runs out.
wait_for() {
	local end=$(($(date +%s%N) + $1 * 1000000000))
	shift
	until "$@"; do
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# ms_since START_NS: milliseconds elapsed, for the report.
ms_since() {
	echo $((($(date +%s%N) - $1) / 1000000))
}

summary() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}
