"""The export's database session (N5): a connection by keywords with its sslmode stated, the
fixed session settings the checksums depend on, one REPEATABLE READ READ ONLY transaction,
and statements run one at a time through the extended protocol."""

from __future__ import annotations

from typing import Any

import psycopg

from cutover.data import sql
from cutover.errors import CutoverError

STATEMENT_TIMEOUT = "30min"  # one COPY or count of one table


def connect(connection: dict[str, Any], line: str, database: str) -> psycopg.Connection:
    """Keyword arguments, never a conninfo string: a password with a space or a quote, or a
    value such as `x host=elsewhere`, stays one value. sslmode is always stated (N5: a full
    export of personal data; libpq's default `prefer` is neither verified nor downgrade-proof)."""
    if not connection.get("sslmode"):
        raise CutoverError(f"no sslmode for the {line} database connection",
                           "set si_db_sslmode in the inventory (verify-full with si_db_sslrootcert; "
                           "the lab states disable)")
    params = {k: v for k, v in connection.items() if v not in (None, "")}
    try:
        return psycopg.connect(**params, dbname=database, autocommit=True, connect_timeout=15)
    except psycopg.OperationalError as exc:
        raise CutoverError(f"cannot connect to the {line} database {database}: {exc}".strip(),
                           "is the database up and reachable from this machine?") from exc


def begin(conn: psycopg.Connection, schema: str) -> psycopg.Cursor:
    """The fixed session settings and one REPEATABLE READ, READ ONLY transaction."""
    cur = conn.cursor()
    for stmt in sql.session_sql():
        cur.execute(stmt)
    # a rule that calls something slow (pg_sleep, say) cannot hold the window: bounded
    cur.execute(f"SET statement_timeout = {sql.literal(STATEMENT_TIMEOUT)}")
    cur.execute(f"SET search_path = {sql.ident(schema)}")
    cur.execute("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    return cur


def one_statement(cur: psycopg.Cursor, query: str) -> psycopg.Cursor:
    """Run query as a prepared statement: the extended protocol, which PostgreSQL never lets
    carry more than one command (the simple protocol runs every command in the text)."""
    return cur.execute(query, prepare=True)
