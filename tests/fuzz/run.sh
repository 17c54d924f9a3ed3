#!/usr/bin/env bash
# run.sh - runs each libFuzzer target for a bounded time from its seed corpus.
#
# Usage: tests/fuzz/run.sh [BUILD_DIR] [SECONDS_EACH] [TARGET...]
# Targets (default: all) are BUILD_DIR/fuzz/fuzz_<name>, built by `make fuzz`.
# The seeds in tests/fuzz/corpus/<name>/ are read, never written: new inputs go to
# BUILD_DIR/fuzz/work/<name>/, which persists across runs (a longer campaign
# carries on). A crash, leak, hang (-timeout) or failed invariant leaves its input
# in BUILD_DIR/fuzz/artifacts/ and makes this script exit 1, naming the file and
# the command that replays it.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
secs=${2:-60}
shift 2 2>/dev/null || shift $#
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(http config wire)
case "$build" in
/*) ;;
*) build="$top/$build" ;;
esac

# Inputs per target: the longest we try, and the per-input time limit in seconds.
declare -A max_len=([http]=20000 [config]=8192 [wire]=8192)
status=0
mkdir -p "$build/fuzz/artifacts"
for t in "${targets[@]}"; do
	bin="$build/fuzz/fuzz_$t"
	seeds="$top/tests/fuzz/corpus/$t"
	work="$build/fuzz/work/$t"
	log="$build/fuzz/fuzz_$t.log"
	if [ ! -x "$bin" ]; then
		echo "fuzz_$t: $bin is not built (make BUILD=$build fuzz)" >&2
		status=1
		continue
	fi
	mkdir -p "$work"
	dict=()
	[ -f "$top/tests/fuzz/$t.dict" ] && dict=(-dict="$top/tests/fuzz/$t.dict")
	# The config target loads from the cwd-relative library paths: run it in a temp dir.
	(cd "$build/fuzz" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1 \
	    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -max_len="${max_len[$t]:-4096}" -print_final_stats=1 \
	    -artifact_prefix="$build/fuzz/artifacts/${t}-" "${dict[@]}" \
	    "$work" "$seeds") >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	cov=$(grep -aEo 'cov: [0-9]+' "$log" | tail -n1)
	if [ "$rc" -ne 0 ]; then
		art=$(grep -aEo "Test unit written to [^ ]+" "$log" | tail -n1 | sed 's/.* to //')
		echo "fuzz_$t: FAILED (exit $rc) after ${runs:-?} runs; ${art:+input: $art; }log: $log"
		grep -aE '^(==[0-9]+==ERROR|SUMMARY|fuzz_http:|bad error message|.*runtime error)' "$log" | head -n 5
		[ -n "$art" ] && echo "  replay: $bin $art"
		status=1
	else
		echo "fuzz_$t: ok, ${runs:-?} runs in ${secs}s, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) + $(ls "$seeds" | wc -l) seeds"
	fi
done
exit $status
