"""Where a journal lives: a SQLite file (the default) or a PostgreSQL database, for a team
whose controllers share one journal (`--journal postgresql://db.example/cutover`).

The journal's SQL is written once, portable: `?` placeholders, `INSERT ... ON CONFLICT`,
`BEGIN IMMEDIATE` for a transaction that writes. On PostgreSQL, `PgConnection` runs the same
statements: `?` becomes `%s`, and `BEGIN IMMEDIATE` (SQLite's one writer at a time) becomes
BEGIN plus a transaction advisory lock, so the writers take turns on either.

A URL never carries a secret: one with a password is refused, before anything is opened. The
secret comes from PGPASSWORD, ~/.pgpass (PGPASSFILE) or a service file (PGSERVICEFILE), as
libpq reads them; what prints a journal prints `shown(where)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg

from cutover.errors import CutoverError
from cutover.paths import resolve

SCHEMES = ("postgresql://", "postgres://")
SECRET_PARAMS = {"password", "sslpassword"}
WRITER_KEY = (0x63757430, 0)  # pg_advisory_xact_lock: the journal's writers, one at a time
LIBPQ_HINT = ("give the password to libpq instead: PGPASSWORD in the environment, a line in ~/.pgpass "
              "(or the file PGPASSFILE names), or a service in a service file (PGSERVICEFILE, "
              "postgresql://...?service=NAME). A password in the URL would show in process lists, "
              "shell histories, invoke.yaml and the report")

Where = Path | str  # a journal file, or a postgresql:// URL


def is_url(where: Where) -> bool:
    return isinstance(where, str) and where.startswith(SCHEMES)


def journal_location(given: str | Path) -> Where:
    """The journal `--journal` (or cutover.journal in invoke.yaml) names: a path, relative to
    the checkout, or a postgresql:// URL, refused when it carries a password."""
    text = str(given)
    if not text.startswith(SCHEMES):
        return resolve(text)
    try:
        parts = urlsplit(text)
        secret = parts.password is not None or any(key.lower() in SECRET_PARAMS
                                                   for key, _ in parse_qsl(parts.query))
    except ValueError as exc:
        raise CutoverError(f"journal URL {shown(text)} cannot be read: {exc}",
                           "write it as postgresql://HOST:PORT/DBNAME (user@HOST if needed)") from None
    if secret:
        raise CutoverError(f"journal URL {shown(text)} carries a password; nothing was opened", LIBPQ_HINT)
    return text


def shown(where: Where) -> str:
    """The journal as it may be printed (status, report, messages): a URL without any secret."""
    if not is_url(where):
        return str(where)
    try:
        parts = urlsplit(str(where))
        host = parts.netloc.rpartition("@")[2]
        user = parts.username
    except ValueError:
        return "postgresql://(unreadable URL)"
    netloc = f"{user}@{host}" if user else host
    query = urlencode([(key, "***" if key.lower() in SECRET_PARAMS else value)
                       for key, value in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="/", quote_via=quote)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def connect(url: str, *, purpose: str = "journal") -> psycopg.Connection:
    """A connection to the journal's database (autocommit: each statement outside a
    transaction stands alone, as on SQLite), or a refusal saying where and why."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, row_factory=_rows,
                               application_name=f"cutover {purpose}")
    except psycopg.Error as exc:
        said = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CutoverError(f"cannot open journal {shown(url)}: {said}",
                           "check the URL, that the server is up and that the user may connect (a password "
                           "comes from PGPASSWORD, ~/.pgpass or a service file, PGSERVICEFILE)") from None


class Row(dict):
    """A row read as a sqlite3.Row is: by column name, by position, `dict(row)`."""

    def __init__(self, names: list[str], values: tuple) -> None:
        super().__init__(zip(names, values, strict=True))
        self._values = values

    def __getitem__(self, key: Any) -> Any:
        return self._values[key] if isinstance(key, int) else super().__getitem__(key)


def _rows(cursor: psycopg.Cursor) -> Any:
    names = [column.name for column in cursor.description or ()]
    return lambda values: Row(names, values)


class PgConnection:
    """The journal's statements, written for SQLite, run on PostgreSQL (see the module's note)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple | list = ()) -> psycopg.Cursor:
        if sql == "BEGIN IMMEDIATE":
            self.conn.execute("BEGIN")
            return self.conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", WRITER_KEY)
        return self.conn.execute(sql.replace("?", "%s"), tuple(params))

    def insert(self, sql: str, params: tuple) -> int:
        """Insert one row, return its id."""
        return int(self.execute(f"{sql} RETURNING id", params).fetchone()[0])

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def has_table(self, name: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None

    def close(self) -> None:
        self.conn.close()


def journal_exists(where: Where) -> bool:
    """Whether there is a journal there yet (a file; a database holding the journal's tables)."""
    if not is_url(where):
        return Path(where).exists()
    db = PgConnection(connect(str(where)))
    try:
        return db.has_table("meta")
    finally:
        db.close()
