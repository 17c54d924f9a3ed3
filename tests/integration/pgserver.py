"""pgserver.py - a real PostgreSQL for a test: initdb + pg_ctl in a temp dir, run as
an unprivileged user (the `postgres` system user when the test runs as root),
listening only on a unix socket in that dir (listen_addresses = '': no TCP at all),
password authentication (scram-sha-256) so the DSN the supervisor reads is a real
secret. stop()/start() for an outage; cleanup() stops it (immediate mode, then
SIGKILL of the postmaster if it still runs) and removes the dir, also when the test
fails or the file is killed: the harness calls it from its own cleanup.

Python standard library only; the server binaries are Debian's postgresql-15."""

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile

import harness as h

PG_BIN = os.environ.get("EDGEVISOR_PG_BIN", "/usr/lib/postgresql/15/bin")


def missing():
    """None if the server binaries are here, else why not (for skip())."""
    for b in ("initdb", "pg_ctl", "postgres"):
        if not os.access(os.path.join(PG_BIN, b), os.X_OK):
            return "no PostgreSQL server binaries (%s/%s); apt-get install postgresql" % (PG_BIN, b)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no unprivileged 'postgres' user to run the server as"
    return None


class PgServer:
    """One throwaway cluster. Use as a context manager (started on enter)."""

    USER = "edgevisor"

    def __init__(self, name="pg", fsync=True):
        # Short path: the socket path (dir/.s.PGSQL.5432) must fit in sun_path.
        self.dir = tempfile.mkdtemp(prefix="ev-%s-" % name)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.logfile = os.path.join(self.dir, "server.log")
        self.password = secrets.token_hex(16)
        self.fsync = fsync
        self.pid = None
        self._as = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
        else:
            self._uid, self._gid = os.getuid(), os.getgid()
        self.dsn = ("host=%s port=5432 dbname=postgres user=%s password=%s"
                    % (self.sock, self.USER, self.password))
        h.at_cleanup(self.cleanup)

    def _run(self, *argv, timeout=60):
        r = subprocess.run([os.path.join(PG_BIN, argv[0]), *argv[1:]], cwd=self.dir,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, **self._as)
        if r.returncode != 0:
            raise h.Failure("%s exited %d: %s%s" % (argv[0], r.returncode, r.stdout[-800:],
                                                    r.stderr[-800:]))
        return r

    def init(self):
        # The dir is the server user's; the socket dir is traversable by everyone so
        # workers running as dynamic uids reach the socket (the password guards it).
        os.chmod(self.dir, 0o755)
        os.mkdir(self.sock, 0o755)
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        for p in (self.dir, self.sock, pwfile):
            os.chown(p, self._uid, self._gid)
        os.chmod(pwfile, 0o600)
        self._run("initdb", "-D", self.data, "-U", self.USER, "--pwfile", pwfile,
                  "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync")
        os.unlink(pwfile)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = ''\n")
            f.write("unix_socket_directories = '%s'\n" % self.sock)
            f.write("unix_socket_permissions = 0777\n")
            f.write("max_connections = 200\n")
            f.write("fsync = %s\n" % ("on" if self.fsync else "off"))
            f.write("log_min_messages = warning\n")
        return self

    def start(self):
        if not os.path.isdir(self.data):
            self.init()
        self._run("pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "-t", "30", "start")
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())
        return self

    def stop(self, mode="fast"):
        """Stops the server (for an outage: start() brings it back with its data)."""
        if self.pid is not None and h.alive(self.pid):
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")
        self.pid = None

    def running(self):
        return self.pid is not None and h.alive(self.pid)

    def write_dsn(self, path=None, extra=""):
        """The DSN as a 0600 file of the test's user (root), what `durable.dsn_file`
        names: written once (to a temp name, then renamed) so readers never see a
        half-written one."""
        path = path or os.path.join(self.dir, "dsn")
        if not os.path.exists(path):
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(self.dsn + (" " + extra if extra else "") + "\n")
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
        return path

    def psql(self, sql):
        """One statement's rows (unaligned, '|'-separated) through psql."""
        env = dict(os.environ, PGPASSWORD=self.password)
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-h", self.sock, "-U", self.USER,
                            "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60, env=env,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise h.Failure("psql %r: %s" % (sql, r.stderr.strip()))
        return [line.split("|") for line in r.stdout.splitlines() if line]

    def log_tail(self, n=20):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def cleanup(self):
        """Idempotent: stops the server however it is and removes its dir."""
        if self.pid is not None and h.alive(self.pid):
            try:
                self.stop("immediate")
            except Exception:
                pass
            if self.pid is not None and h.alive(self.pid):
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
        self.pid = None
        if self.dir and not os.environ.get("EDGEVISOR_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False
