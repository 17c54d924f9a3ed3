#!/bin/sh
# run-systemd.sh - run SCRIPT [ARG...] as a oneshot unit under the host's systemd as
# PID 1 inside the test VM (unified cgroup hierarchy); see tests/vm/README.md.
exec "$(dirname "$0")/boot.sh" systemd "$@"
