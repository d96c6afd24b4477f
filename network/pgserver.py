"""A throwaway PostgreSQL server in a temporary folder, for tests and benchmarks.

``with TempPostgres() as dsn:`` runs ``initdb`` and ``pg_ctl start`` on a
free loopback port (as the ``postgres`` user when run as root, since the
server refuses to run as root) and removes everything on exit.  The
binaries are looked up on PATH and in Debian's /usr/lib/postgresql/N/bin.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from typing import List, Optional

from fieldpick.edge.errors import ConfigError

__all__ = ["find_binaries", "TempPostgres"]


def find_binaries() -> Optional[str]:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(folder, "initdb")) and os.path.exists(os.path.join(folder, "pg_ctl")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres(object):
    """Start a private server; ``dsn`` connects to its ``postgres`` database as ``postgres``."""

    def __init__(self, port: Optional[int] = None):
        self.bindir = find_binaries()
        if self.bindir is None:
            raise ConfigError("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
        self.port = port or _free_port()
        self.root = None
        self.dsn = None

    def _run(self, args: List[str]) -> None:
        cmd = [os.path.join(self.bindir, args[0])] + args[1:]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if done.returncode != 0:
            raise ConfigError("%s failed (%d): %s" % (args[0], done.returncode,
                                                      done.stdout.decode("utf-8", "replace")[-2000:]))

    def start(self) -> str:
        self.root = tempfile.mkdtemp(prefix="fieldpick-pg-")
        os.chmod(self.root, 0o755)
        data = os.path.join(self.root, "data")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(["initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on" % (self.port, self.root)
        self._run(["pg_ctl", "-D", data, "-o", opts, "-l", os.path.join(self.root, "log"), "-w", "start"])
        self.dsn = "postgresql://postgres@127.0.0.1:%d/postgres" % self.port
        return self.dsn

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._run(["pg_ctl", "-D", os.path.join(self.root, "data"), "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc):
        self.stop()
