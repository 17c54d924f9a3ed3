#!/usr/bin/env bash
# run.sh - runs every test of the suite against one build dir and sums them up.
#
# Usage: tests/run.sh [BUILD_DIR] [FILTER]
# Runs each unit test binary in BUILD_DIR/tests/unit/ and each
# tests/integration/test_*.py (FILTER: an extended regex on "unit/NAME" or
# "integration/NAME.py" selects a subset). Every file prints `ok - NAME`,
# `not ok - NAME: why` and `skip - NAME: why` lines (an old-style `ok - NAME # SKIP
# why` counts as a skip, never as a pass); a file that crashes, times out
# (TEST_TIMEOUT seconds, default 300) or reports nothing counts as one more
# failure; a file that exits 77 without a failure (it cannot run here at all) is
# one skip unless it named its skips. Every skip is listed with its reason. The
# output of failing files is shown; the last line is exactly
# `N passed, N failed, N skipped` and the exit status is non-zero on any failure
# (a skip is not a failure).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
filter=${2:-}
timeout_s=${TEST_TIMEOUT:-300}
case "$build" in
/*) ;;
*) build="$top/$build" ;;
esac
export EDGEVISOR_BUILD="$build"
py=/usr/bin/python3
[ -x "$py" ] || py=python3

cd "$top" || exit 1
passed=0
failed=0
skipped=0
failing=()
skips=()
out=$(mktemp -d "${TMPDIR:-/tmp}/ev-run.XXXXXX")
trap 'rm -rf "$out"' EXIT

# run_one LABEL CMD...: runs one test file with a timeout and tallies its lines.
run_one() {
	local label=$1 log rc ok nok nskip t0 t1 why="" line
	shift
	log="$out/$(echo "$label" | tr '/' '_').log"
	t0=$(date +%s%N)
	# (braces: the shell's own "Segmentation fault" notice goes to /dev/null)
	{ timeout -k 10 "$timeout_s" "$@" >"$log" 2>&1 </dev/null; } 2>/dev/null
	rc=$?
	t1=$(date +%s%N)
	# A skip is a skip however it is spelled: "skip - NAME: why" or "ok - NAME # SKIP why".
	nskip=$(grep -Ec '^skip - |^ok - .*# SKIP' "$log")
	ok=$(grep '^ok - ' "$log" | grep -vc '# SKIP')
	nok=$(grep -c '^not ok - ' "$log")
	if [ "$rc" -eq 77 ] && [ "$nok" -eq 0 ]; then
		# 77: the file could not run (all or part of it) here; it says why.
		if [ "$nskip" -eq 0 ]; then
			echo "skip - $label: $(grep -m1 -i 'skip' "$log" || echo "exit 77, no reason given")" >>"$log"
			nskip=1
		fi
	elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		why="timed out after ${timeout_s}s"
	elif [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
		if [ "$rc" -gt 128 ]; then
			why="killed by signal $((rc - 128))"
		else
			why="exited $rc without reporting a failure"
		fi
	elif [ "$rc" -eq 0 ] && [ "$ok" -eq 0 ] && [ "$nok" -eq 0 ] && [ "$nskip" -eq 0 ]; then
		why="reported no test"
	fi
	if [ -n "$why" ]; then
		echo "not ok - $label: $why" >>"$log"
		nok=$((nok + 1))
	fi
	passed=$((passed + ok))
	failed=$((failed + nok))
	skipped=$((skipped + nskip))
	printf '%-44s %3d ok %3d failed %3d skipped  %5.1fs\n' "$label" "$ok" "$nok" "$nskip" \
	    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }')"
	while IFS= read -r line; do
		line=${line#skip - }
		line=${line#ok - }
		echo "    skip - $label/$line"
		skips+=("$label/$line")
	done < <(grep -E '^skip - |^ok - .*# SKIP' "$log")
	if [ "$nok" -gt 0 ]; then
		failing+=("$label")
		echo "---- output of $label"
		sed -e 's/^/    /' "$log" | tail -n 300
		echo "----"
	fi
}

selected() {
	[ -z "$filter" ] || echo "$1" | grep -Eq -- "$filter"
}

if [ ! -x "$build/edgevisor" ]; then
	echo "warning: $build/edgevisor is not built" >&2
fi

if [ -d "$build/tests/unit" ]; then
	for t in "$build"/tests/unit/*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		selected "unit/$(basename "$t")" || continue
		run_one "unit/$(basename "$t")" "$t"
	done
fi

for t in "$top"/tests/integration/test_*.py; do
	[ -f "$t" ] || continue
	selected "integration/$(basename "$t")" || continue
	run_one "integration/$(basename "$t")" "$py" -u "$t"
done

if [ ${#failing[@]} -gt 0 ]; then
	echo "failing: ${failing[*]}"
fi
for line in "${skips[@]}"; do
	echo "skipped: $line"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
