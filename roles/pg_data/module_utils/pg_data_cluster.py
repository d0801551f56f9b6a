"""The PostgreSQL cluster on this host as the `pg_data` module sees it: psql and the client
tools run as the postgres user (peer authentication, no password), with the standard library
only. A refusal is a `Refusal` (what is wrong, and what to do), which the module turns into
`fail_json(msg=..., hint=...)`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Every session of the maintenance role (the superuser) resolves names in pg_catalog only: a
# database's owner may create functions in `public` (format, quote_ident, count, current_setting
# ...) that would otherwise run as the superuser, or fool the guard.
SAFE_PATH = "-c search_path=pg_catalog,pg_temp"
SAFE = {**os.environ, "PGOPTIONS": SAFE_PATH}
RW = {**os.environ, "PGOPTIONS": f"{SAFE_PATH} -c default_transaction_read_only=off"}

# the snapshot directory's lock (pg_data_snapshot.hold_lock), inherited by pg_dump/pg_restore
LOCK_FD: list[int] = []


class Refusal(Exception):
    """What is wrong (`message`) and what the operator can do about it (`hint`)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def run(cmd: list[str], env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or SAFE, check=False, pass_fds=LOCK_FD)
    if check and proc.returncode != 0:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise Refusal(f"{cmd[0]} failed (exit {proc.returncode}):\n    {tail}",
                      "is the database server up? see the server log (journalctl -u postgresql@*)")
    return proc


def psql(port: int, db: str, query: str, env: dict | None = None, check: bool = True):
    return run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-p", str(port), "-d", db,
                "-c", query], env=env, check=check)


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def counts(port: int, db: str) -> dict[str, int]:
    tables = psql(port, db, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables"
                  " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1").stdout.split()
    if not tables:
        return {}
    query = " UNION ALL ".join(f"SELECT {lit(t)}, count(*) FROM {t}" for t in tables)
    out = psql(port, db, query).stdout
    return {name: int(n) for name, n in (row.split("|") for row in out.splitlines() if row)}


def is_frozen(port: int, db: str) -> bool:
    out = psql(port, "postgres", "SELECT coalesce(array_to_string(s.setconfig, ','), '') FROM pg_database d"
               " LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0"
               f" WHERE d.datname = {lit(db)}").stdout
    return "default_transaction_read_only=on" in out


def owner(port: int, db: str) -> str | None:
    """The database's owner when it is not a superuser: the business role to probe with."""
    out = psql(port, "postgres", "SELECT r.rolname FROM pg_catalog.pg_database d JOIN pg_catalog.pg_roles r"
               f" ON r.oid = d.datdba WHERE d.datname = {lit(db)} AND NOT r.rolsuper").stdout.strip()
    return out or None


@dataclass(frozen=True)
class Options:
    """The module's parameters, as the actions read them."""

    databases: list[str]
    port: int = 5432
    snapshot_dir: str = "/var/backups/cutover"
    snapshot_id: str = "snapshot"
    snapshot_key: str = ""  # snapshot: keep a verified snapshot made with this key
    replace: bool = False  # snapshot: replace one made under another key
    lock_wait: int = 1800  # snapshot/restore: how long to wait for an earlier one still at work (s)
    jobs: int = 2
    compress: str = "1"
    reserve_mb: int = 512
    test_restore: bool = False
    discard_writes: bool = False  # restore: over databases that changed since the snapshot (N18)
    check_mode: bool = False  # say what would be done, change nothing
    warn: Callable[[str], None] = field(default=lambda _text: None, compare=False)

    @property
    def base(self) -> Path:
        """This snapshot's directory: <snapshot_dir>/<snapshot_id>."""
        return Path(self.snapshot_dir) / self.snapshot_id
