#!/usr/bin/env bash
# run.sh - the long variants of the fault and hostile-tenant tests (make soak).
#
# Usage: tests/soak/run.sh [BUILD_DIR] [FACTOR]
# Runs tests/integration/test_faults.py and test_tenants.py with EDGEVISOR_SOAK=FACTOR
# (default 12): the SIGKILL storm lasts 10 s x FACTOR under wrk, the hostile-tenant
# sequence (fork, fd leak, memory leak, spin, exit) repeats FACTOR times. Ends with
# tests/run.sh's "N passed, N failed, N skipped" line.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
factor=${2:-${EDGEVISOR_SOAK:-12}}
export EDGEVISOR_SOAK=$factor
# The storm alone takes 10 s x FACTOR; leave room for the rest.
export TEST_TIMEOUT=${TEST_TIMEOUT:-$((300 + 60 * factor))}
echo "soak: factor $factor (storm ${factor}0 s), timeout ${TEST_TIMEOUT}s per file"
exec "$top/tests/run.sh" "$build" 'integration/test_(faults|tenants)\.py'
