#!/bin/sh
# run.sh - run CMD [ARG...] inside the test VM (cgroup v2 with cpu and memory, lo up)
# in a chroot of the host's tree, cwd = the caller's cwd; see tests/vm/README.md.
exec "$(dirname "$0")/boot.sh" run "$@"
