"""test_top.py - edgevisorctl top in a real terminal: tmux runs it in a 160x40 pane,
send-keys drives it and capture-pane reads the screen, while wrk loads one of two
functions of a real supervisor. The screen shows both functions and a live req/s for
the loaded one; the sort keys reorder the rows; Enter shows the selected function's
workers (the pids /status names), Esc goes back; a resize redraws at the new size; q
exits 0, SIGTERM 143 and SIGINT 130, and each time the terminal is given back (tmux:
the alternate screen is off, keypad mode off, the cursor shown again, the shell's
text before top is on the screen again). A supervisor that goes away is shown, not
fatal. --batch prints plain frames for scripts."""

import os
import re
import shlex
import shutil
import signal
import subprocess

import harness as h
from harness import check, test
from test_admin import CTL, ctl, status


class Tmux:
    """A private tmux server (its own socket in a temp dir) with one pane; dead
    panes stay (remain-on-exit) so their exit status can be read."""

    def __init__(self, name, width=160, height=40):
        self.dir = h.tmpdir("tmux")
        self.name = "ev-%d-%s" % (os.getpid(), name)
        self.conf = os.path.join(self.dir, "tmux.conf")
        with open(self.conf, "w") as f:
            f.write("set -g remain-on-exit on\nset -g status off\n")
        self.env = {k: v for k, v in os.environ.items() if k != "TMUX"}
        self.env["TMUX_TMPDIR"] = self.dir
        self.width, self.height = width, height
        self.status_file = os.path.join(self.dir, "top.status")

    def run(self, *args, check_rc=True):
        p = subprocess.run(["tmux", "-L", self.name, "-f", self.conf, *args],
                           capture_output=True, timeout=10, env=self.env,
                           stdin=subprocess.DEVNULL)
        if check_rc:
            check(p.returncode == 0, "tmux %s: %s" % (" ".join(args), p.stderr.decode()))
        return p.stdout.decode(errors="replace")

    def start(self, shell_cmd):
        self.run("new-session", "-d", "-x", str(self.width), "-y", str(self.height),
                 shell_cmd)

    def screen(self, history=False):
        """The visible rows; with HISTORY, the lines scrolled off above them too."""
        out = self.run("capture-pane", "-p", *(("-S", "-") if history else ()))
        return (out[:-1] if out.endswith("\n") else out).split("\n")

    def fmt(self, f):
        return self.run("display-message", "-p", f).strip()

    def keys(self, *keys):
        self.run("send-keys", *keys)

    def exit_status(self, what, timeout=10):
        """Top's exit status, as the pane's shell wrote it to status_file (top_cmd).
        Not tmux's #{pane_dead_status}: under ASan it stayed empty after the pane was
        marked dead (its pty closed before tmux reaped the process), for seconds."""
        def known():
            try:
                with open(self.status_file) as f:
                    return f.read().strip()
            except OSError:
                return ""
        h.wait_until(lambda: known() != "", timeout, what)
        return known()

    def kill(self):
        self.run("kill-server", check_rc=False)


def need_tmux():
    if shutil.which("tmux") is None:
        h.skip("tmux is not installed (scripts/deps.sh)")


def top_cmd(sv, after="", status=None):
    """The pane's shell: a marker line, wait for Enter (so the marker is on the main
    screen before top starts), then top; then AFTER, or top's exit status written
    quietly to STATUS (Tmux.exit_status reads it)."""
    top = "%s -s %s top" % (shlex.quote(CTL), shlex.quote(sv.admin))
    if after:
        return "sh -c %s" % shlex.quote("echo BEFORE-TOP; read go; %s; %s" % (top, after))
    return "sh -c %s" % shlex.quote("echo BEFORE-TOP; read go; %s; echo $? > %s"
                                    % (top, shlex.quote(status)))


def started(tm):
    """Starts top in the pane and waits for its first frame on the alternate screen."""
    h.wait_until(lambda: "BEFORE-TOP" in tm.screen(), 10, "the shell's marker line")
    tm.keys("Enter")
    h.wait_until(lambda: tm.fmt("#{alternate_on}") == "1" and
                 any("FUNCTION" in l for l in tm.screen()), 10, "top's first frame")


def table(lines):
    """{name: {"row": index, "rps": text, "selected": bool}} of the function table on
    the screen, read by the header's column ends (the figures are right-aligned)."""
    hdr = next((l for l in lines if l.startswith("  FUNCTION") and "REQ/S" in l), None)
    if hdr is None:
        return {}
    end = hdr.index("REQ/S") + len("REQ/S")
    rows, start = {}, lines.index(hdr) + 1
    for i, l in enumerate(lines[start:]):
        if len(l) < end or l[:1] not in "> " or not l[2:3].strip():
            break
        rows[l[2:].split()[0]] = {"row": i, "rps": l[:end].split()[-1],
                                  "selected": l.startswith(">")}
    return rows


def restored(tm):
    """What a terminal given back looks like in tmux: main screen, keypad mode off, the
    shell's marker there (a resize may have pushed it into the history), none of
    top's frames left."""
    lines = tm.screen(history=True)
    return (tm.fmt("#{alternate_on}") == "0" and tm.fmt("#{keypad_cursor_flag}") == "0"
            and "BEFORE-TOP" in lines and not any("FUNCTION" in l for l in lines))


def rps_of(rows, name):
    try:
        return float(rows[name]["rps"])
    except (KeyError, ValueError):
        return 0.0


@test
def live_view_sort_drill_down_and_quit():
    need_tmux()
    fns = [h.function("aidle", library="hello", workers=1),
           h.function("zload", library="hello", workers=2)]
    tm = Tmux("live")
    load = None
    try:
        with h.Supervisor(fns, name="top-live") as sv:
            h.wait_until(lambda: len(sv.workers("zload")) == 2 and sv.workers("aidle"), 10,
                         "three ready workers")
            tm.start(top_cmd(sv, status=tm.status_file))
            started(tm)
            # Long enough to outlast every check on a busy machine; ended with SIGINT
            # (wrk then reports and exits 0) once they are done.
            load = subprocess.Popen(h.wrk_cmd(sv.port("zload"), threads=1, conns=8,
                                              duration=60),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            # Live figures: both names, the loaded one with a non-zero req/s.
            rows = h.wait_until(lambda: (lambda r: r if "aidle" in r and
                                         rps_of(r, "zload") > 0 else None)(table(tm.screen())),
                                10, "zload with a non-zero req/s next to aidle")
            check(rps_of(rows, "aidle") == 0, "aidle has req/s %r" % rows["aidle"]["rps"])
            # Sorted by name first; r puts the loaded one on top, n back.
            check(rows["aidle"]["row"] < rows["zload"]["row"], "name order: %r" % rows)
            tm.keys("r")
            h.wait_until(lambda: (lambda r: "zload" in r and "aidle" in r and
                                  r["zload"]["row"] < r["aidle"]["row"])(table(tm.screen()))
                         and "sort req/s" in tm.screen()[0], 5, "req/s order")
            tm.keys("n")
            h.wait_until(lambda: (lambda r: "zload" in r and "aidle" in r and
                                  r["aidle"]["row"] < r["zload"]["row"])(table(tm.screen()))
                         and "sort name" in tm.screen()[0], 5, "name order again")
            # Drill-down: select zload, Enter shows its workers' pids as /status has them.
            tm.keys("Down")
            h.wait_until(lambda: table(tm.screen()).get("zload", {}).get("selected"), 5,
                         "zload selected")
            want = {w["pid"] for w in status(sv)["workers"] if w["function"] == "zload"}
            other = {w["pid"] for w in status(sv)["workers"] if w["function"] == "aidle"}
            check(len(want) == 2, "zload workers in /status: %r" % want)
            tm.keys("Enter")

            def pids_on_screen():
                found = set()
                for l in tm.screen():
                    m = re.match(r"^  (\S+)\s+\d+\s+(\d+)\s", l)
                    if m:
                        found.add((m.group(1), int(m.group(2))))
                return found
            shown = h.wait_until(lambda: (lambda s: s if {p for _, p in s} >= want else None)(
                pids_on_screen()), 5, "zload's worker pids %r on the screen" % want)
            check(all(n == "zload" for n, _ in shown) and not {p for _, p in shown} & other,
                  "the drill-down shows other workers: %r" % shown)
            check(tm.screen()[1].startswith("workers of zload"), "drill-down title %r"
                  % tm.screen()[1])
            tm.keys("Escape")
            h.wait_until(lambda: "aidle" in table(tm.screen()), 5, "the function table again")
            # A resize redraws at the new size: the help line on the new last row.
            tm.run("resize-window", "-x", "100", "-y", "30")

            def fits():
                s = tm.screen()
                return (len(s) == 30 and s[29].startswith("q quit") and
                        max(len(l) for l in s) <= 100 and "aidle" in table(s))
            h.wait_until(fits, 5, "a 100x30 frame after the resize")
            # Plain frames for scripts, while the load still runs.
            rc, out, err = ctl("-s", sv.admin, "top", "--batch", "2", "--interval", "300")
            check(rc == 0, "top --batch exited %d: %s" % (rc, err))
            frames = out.split("edgevisor pid ")[1:]
            check(len(frames) == 2, "%d frames:\n%s" % (len(frames), out))
            last = frames[-1].split("\n")
            check(rps_of(table(last), "zload") > 0, "--batch: no zload req/s in:\n%s" % out)
            for p in want:
                check(re.search(r"\b%d\b" % p, frames[-1]), "--batch: pid %d missing" % p)
            # q: exit status 0, and the terminal is back as the shell left it.
            check(tm.fmt("#{keypad_cursor_flag}") == "1", "keypad mode off while top runs")
            tm.keys("q")
            code = tm.exit_status("top to exit on q")
            check(code == "0", "top exited %s on q" % code)
            check(restored(tm), "terminal not restored: alternate %s keypad %s screen %r"
                  % (tm.fmt("#{alternate_on}"), tm.fmt("#{keypad_cursor_flag}"),
                     tm.screen(history=True)[:3]))
            load.send_signal(signal.SIGINT)
            out = load.communicate(timeout=30)[0].decode(errors="replace")
            check(load.returncode == 0, "wrk exited %d: %s" % (load.returncode, out))
            print("#   wrk on zload: %.0f req/s; top showed %s req/s"
                  % (h.parse_wrk(out)["rps"], rows["zload"]["rps"]))
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        tm.kill()


@test
def signals_restore_the_terminal():
    need_tmux()
    with h.Supervisor([h.function("hello")], name="top-term") as sv:
        for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
            tm = Tmux("sig%d" % sig, width=120, height=30)
            try:
                tm.start(top_cmd(sv, after='echo "top-exit=$?"; read done'))
                started(tm)
                # While top runs the cursor is hidden: the check below can fail.
                check(tm.fmt("#{cursor_flag}") == "0", "the cursor shows while top runs")
                shell = int(tm.fmt("#{pane_pid}"))
                tops = [p for p in h.children(shell) if "edgevisorctl" in h.cmdline(p)]
                check(len(tops) == 1, "top's pid under the pane's shell: %r" % tops)
                os.kill(tops[0], sig)
                h.wait_until(lambda: "top-exit=%d" % code in tm.screen(), 5,
                             "top to end on signal %d" % sig)
                check(restored(tm) and tm.fmt("#{cursor_flag}") == "1",
                      "signal %d: terminal not restored: alternate %s keypad %s cursor %s "
                      "screen %r" % (sig, tm.fmt("#{alternate_on}"),
                                     tm.fmt("#{keypad_cursor_flag}"), tm.fmt("#{cursor_flag}"),
                                     tm.screen()[:3]))
            finally:
                tm.kill()


@test
def a_lost_supervisor_is_shown_not_fatal():
    """The supervisor goes away under a running top: the view says so over the last
    good figures and keeps running; q still exits 0."""
    need_tmux()
    tm = Tmux("gone", width=120, height=30)
    try:
        with h.Supervisor([h.function("hello")], name="top-gone") as sv:
            tm.start(top_cmd(sv, status=tm.status_file))
            started(tm)
            h.wait_until(lambda: "hello" in table(tm.screen()), 5, "hello on the screen")
            code = sv.stop()
            check(code == 0, "supervisor exited %s" % code)
            h.wait_until(lambda: "last good data" in tm.screen()[1], 5,
                         "the lost admin endpoint on the screen")
            check("cannot connect" in tm.screen()[1], "message %r" % tm.screen()[1])
            check("hello" in table(tm.screen()), "the last figures are gone")
            check(tm.fmt("#{pane_dead}") == "0", "top ended when the supervisor went away")
            tm.keys("q")
            code = tm.exit_status("top to exit on q")
            check(code == "0", "top exited %s" % code)
    finally:
        tm.kill()


@test
def top_refuses_bad_use():
    with h.Supervisor([h.function("hello")], name="top-args") as sv:
        rc, out, err = ctl("-s", sv.admin, "top", "--batch", "0")
        check(rc == 2 and "--batch 0" in err, "--batch 0: %d %r" % (rc, err))
        rc, out, err = ctl("-s", sv.admin, "top", "--sort", "x")
        check(rc == 2 and "--sort x" in err, "--sort x: %d %r" % (rc, err))
        # No terminal (stdin is /dev/null): a clear error, not a garbled screen.
        rc, out, err = ctl("-s", sv.admin, "top")
        check(rc == 1 and "not a terminal" in err and out == "", "no tty: %d %r" % (rc, err))
        rc, out, err = ctl("-s", "unix:" + os.path.join(sv.dir, "nosuch.sock"), "top", "--once")
        check(rc == 1 and "cannot connect" in err, "no admin: %d %r" % (rc, err))


if __name__ == "__main__":
    h.main()
