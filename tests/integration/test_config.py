"""test_config.py - supervisor.conf checking through the real binary (SPEC §3): `-t`
accepts a good file, and rejects unknown keys, wrong types and out-of-range values
with FILE:LINE:COL and the key path; the supervisor refuses to start with such a
file and never listens."""

import os
import re
import socket
import subprocess

import harness as h
from harness import check, test

# One template; BAD marks the line a case puts its error on.
TEMPLATE = """{
  "cgroups": "off",
  "log_level": "info",%(top)s
  "functions": [
    {
      "name": "hello",
      "library": "%(lib)s",
      "listen": ["127.0.0.1:%(port)d"],
      "workers": %(workers)s,%(fn)s
      "limits": {
        "memory_mb": %(memory)s,%(limits)s
        "request_timeout_ms": 30000
      }
    },
    {
      "name": "echo",
      "library": "%(echo)s",
      "listen": ["127.0.0.1:%(port2)d"],
      "limits": {
        "memory_mb": %(memory2)s
      }
    }
  ]
}
"""

# name -> (template overrides, key path in the error, text on the bad line)
CASES = {
    "unknown_top_key": ({"top": '\n  "colour": "blue",'}, "colour", '"colour"'),
    "unknown_function_key": ({"fn": '\n      "wokers": 2,'}, "functions[0].wokers",
                             '"wokers"'),
    "unknown_limit_key": ({"limits": '\n        "bogus_limit": 1,'},
                          "functions[0].limits.bogus_limit", '"bogus_limit"'),
    "wrong_type": ({"workers": '"two"'}, "functions[0].workers", '"workers"'),
    "out_of_range": ({"memory2": "-5"}, "functions[1].limits.memory_mb", '"memory_mb": -5'),
    "fetch_cap_zero": ({"limits": '\n        "fetch_max_concurrent": 0,'},
                       "functions[0].limits.fetch_max_concurrent", '"fetch_max_concurrent"'),
    "ws_buffer_too_small": ({"limits": '\n        "ws_max_buffer_bytes": 100,'},
                            "functions[0].limits.ws_max_buffer_bytes",
                            '"ws_max_buffer_bytes"'),
}


def write(d, name, over):
    vals = {"top": "", "fn": "", "limits": "", "workers": "1", "memory": "64",
            "memory2": "64", "lib": h.lib("hello"), "echo": h.lib("echo"),
            "port": h.free_port(), "port2": h.free_port()}
    vals.update(over)
    text = TEMPLATE % vals
    path = os.path.join(d, name + ".conf")
    with open(path, "w") as f:
        f.write(text)
    return path, text, vals["port"]


def error_line(out, path):
    """The FILE:LINE:COL: KEYPATH: msg line about PATH, parsed; or None."""
    for line in out.splitlines():
        m = re.search(r"(\S+):(\d+):(\d+): (\S+): (.+)$", line)
        if m and os.path.basename(m.group(1)) == os.path.basename(path):
            return int(m.group(2)), int(m.group(3)), m.group(4), m.group(5)
    return None


def check_position(name, out, path, text, keypath, marker):
    got = error_line(out, path)
    check(got is not None, "%s: no FILE:LINE:COL: KEYPATH: line in %r" % (name, out))
    line, col, kp, _ = got
    lines = text.splitlines()
    want = next(i + 1 for i, l in enumerate(lines) if marker in l)
    check(kp == keypath, "%s: key path %r, want %r" % (name, kp, keypath))
    check(line == want, "%s: line %d, want %d (%r)" % (name, line, want, lines[want - 1]))
    check(1 <= col <= len(lines[want - 1]) + 1,
          "%s: column %d outside line %d" % (name, col, line))


@test
def good_config_passes_check():
    d = h.tmpdir("conf")
    path, _, _ = write(d, "good", {})
    code, out = h.check_config(path)
    check(code == 0, "-t on a good file exited %d: %s" % (code, out))


@test
def bad_configs_fail_check_with_position_and_key_path():
    d = h.tmpdir("conf")
    for name, (over, keypath, marker) in CASES.items():
        path, text, _ = write(d, name, over)
        code, out = h.check_config(path)
        check(code == 1, "%s: -t exited %d, want 1 (%s)" % (name, code, out.strip()))
        check_position(name, out, path, text, keypath, marker)


@test
def supervisor_refuses_bad_config():
    d = h.tmpdir("conf")
    path, text, port = write(d, "unknown", CASES["unknown_limit_key"][0])
    check(os.access(h.EDGEVISOR, os.X_OK), "edgevisor not built")
    p = subprocess.Popen([h.EDGEVISOR, "-c", path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.wait()
        raise h.Failure("the supervisor kept running with an invalid config")
    out = out.decode(errors="replace")
    check(p.returncode != 0, "exited 0 with an invalid config")
    check_position("start", out, path, text, "functions[0].limits.bogus_limit",
                   '"bogus_limit"')
    s = socket.socket()
    try:
        check(s.connect_ex(("127.0.0.1", port)) != 0, "port %d is listening" % port)
    finally:
        s.close()
    check(not h.session_pids(p.pid), "processes left behind: %r" % h.session_pids(p.pid))


if __name__ == "__main__":
    h.main()
