"""A throwaway real PostgreSQL cluster for unit tests (the gates' queries, the business
checks): Debian's postgresql-15, which `invoke test` installs, on a free loopback port, with
trust authentication for one superuser. PostgreSQL refuses to run as root; as root the
cluster belongs to nobody and lives outside pytest's root-only temporary directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert found, "no PostgreSQL server here: apt-get install postgresql-15 (`invoke test` installs it)"
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(argv: list) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *map(str, argv)] if os.geteuid() == 0 else [str(a) for a in argv]


@contextmanager
def throwaway_postgres(user: str, databases: list[str]) -> Iterator[dict]:
    """Yield {"port", "dsn"} (dsn without dbname) of a new cluster holding `databases`;
    the cluster is stopped and removed afterwards."""
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="cutover-test-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "nobody")
    port = _free_port()
    subprocess.run(_as_owner([bindir / "initdb", "-D", base / "data", "-U", user, "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    subprocess.run(_as_owner([bindir / "pg_ctl", "-D", base / "data", "-l", base / "log", "-w", "-o",
                              f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    dsn = f"host=127.0.0.1 port={port} user={user}"
    try:
        with psycopg.connect(f"{dsn} dbname=postgres", autocommit=True) as conn:
            for db in databases:
                conn.execute(f'CREATE DATABASE "{db}"')
        yield {"port": port, "dsn": dsn}
    finally:
        subprocess.run(_as_owner([bindir / "pg_ctl", "-D", base / "data", "-m", "immediate", "stop"]),
                       check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
