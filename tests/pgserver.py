"""A PostgreSQL server of a test's own, which the test may stop, kill and start again (the
suite's shared one, scripts/with-postgres.sh, serves every other test at once). It listens
on a Unix socket in its own folder only; as root it runs as the `postgres` user, as
PostgreSQL requires."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    found = shutil.which("pg_config")
    if found:
        made = subprocess.run([found, "--bindir"], capture_output=True, text=True)
        if made.returncode == 0 and (Path(made.stdout.strip()) / "initdb").exists():
            return Path(made.stdout.strip())
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    return versions[-1] if versions else None


class PostgresServer:
    """One server in a folder of its own: `url` reaches it; `stop`/`start` as an operator's
    restart does (`immediate`: as a crash does)."""

    def __init__(self, bindir: Path, folder: Path) -> None:
        self.bindir, self.folder = bindir, folder
        self.url = f"postgresql://postgres@/postgres?host={folder}"
        self.owner = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []

    def _ctl(self, *args: str) -> None:
        command = [*self.owner, str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data")]
        done = subprocess.run([*command, *args], capture_output=True, text=True)
        assert done.returncode == 0, f"pg_ctl {' '.join(args)}: {done.stdout}{done.stderr}"

    def init(self) -> None:
        initdb = [str(self.bindir / "initdb"), "-D", str(self.folder / "data"), "-U", "postgres"]
        made = subprocess.run(
            [*self.owner, *initdb, "-A", "trust", "--locale=C", "-E", "UTF8"],
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr

    def start(self) -> None:
        options = f"-c listen_addresses='' -k {self.folder} -c fsync=off"
        self._ctl("-l", str(self.folder / "server.log"), "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")


@contextmanager
def own_postgres() -> Iterator[PostgresServer]:
    """A fresh server for the test, gone with it; the test skips where PostgreSQL has no
    server binaries here (the suite's strict mode then fails it: .ci/run installs them)."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries: install postgresql-15")
    folder = Path(tempfile.mkdtemp(prefix="fashionrec-pg-"))  # /tmp: reachable by `postgres`
    server = PostgresServer(bindir, folder)
    if server.owner:
        shutil.chown(folder, "postgres")
    try:
        server.init()
        server.start()
        yield server
    finally:
        subprocess.run(
            [
                *server.owner,
                str(bindir / "pg_ctl"),
                "-D",
                str(folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)
