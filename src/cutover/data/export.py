"""Export one insurance line (N5): every table in one REPEATABLE READ READ ONLY snapshot.

Each table is written with `COPY (SELECT ...) TO STDOUT (FORMAT csv, HEADER)` through
psycopg (its libpq connection, for speed: see `copyout.copy_to`), hashed (sha256) while it is
written, into `<table>.csv.partial` and renamed only when complete. What each table selects
is decided and checked first, before a row is read (`selection`). The content checksums
run meanwhile on a second connection sharing the same snapshot. Rows failing a quality
rule are left out of the hand-off and written to `fix-after-cutover/<line>/` with counts
per rule: the notice hands over only data that meets the receiver's rules. The manifest
carries, per table, rows, bytes, sha256, the content checksum and the SQL that produced
them, so the receiver can run it again.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from cutover.data import sql
from cutover.data.copyout import copy_to
from cutover.data.files import write_json
from cutover.data.selection import rule_counts, rule_failures, table_work, validate
from cutover.data.session import begin, connect, one_statement
from cutover.errors import CutoverError


def export_line(connection: dict[str, Any], *, line: str, title: str, database: str, outdir: Path,
                reject_dir: Path, tables: list[dict[str, Any]] | None = None,
                rules: list[dict[str, Any]] | None = None, schema: str = "public",
                say: Callable[[str], None] = print) -> dict[str, Any]:
    """Export one line's tables into outdir; returns (and writes) its manifest."""
    try:
        return _export_line(connection, line=line, title=title, database=database, outdir=outdir,
                            reject_dir=reject_dir, tables=tables, rules=rules or [], schema=schema,
                            say=say)
    except BaseException:
        # A half export (a full disk, a lost connection) must never be handed over: the line's
        # files go, so the hand-off finds no manifest and asks for the export again.
        for d in (outdir, reject_dir):
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
        raise


def _export_line(connection: dict[str, Any], *, line: str, title: str, database: str, outdir: Path,
                 reject_dir: Path, tables: list[dict[str, Any]] | None, rules: list[dict[str, Any]],
                 schema: str, say: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    conn = connect(connection, line, database)
    with conn, ThreadPoolExecutor(max_workers=1) as pool:
        cur = begin(conn, schema)
        cur.execute("SELECT current_setting('server_version'), now(), pg_export_snapshot()")
        server_version, snapshot_at, snapshot = cur.fetchone()
        work = table_work(cur, line, schema, tables, rules)
        validate(cur, line, work)  # every filter and rule, before the first file is written
        outdir.mkdir(parents=True, exist_ok=True)
        sums = pool.submit(_checksums, connection, line, database, schema, snapshot,
                           {n: w["source_checksum"] for n, w in work.items()})
        out_tables = []
        rejected: dict[str, dict[str, int]] = {}
        for name, w in work.items():
            t0 = time.monotonic()
            rows, nbytes, sha = copy_to(conn, w["select"], outdir / f"{name}.csv")
            if w["rules"]:
                counts = _rejects(conn, name, w["columns"], w["where"], w["rules"], reject_dir)
                if counts:
                    rejected[name] = counts
            seconds = time.monotonic() - t0
            out_tables.append({
                "table": name, "file": f"{name}.csv", "rows": rows, "bytes": nbytes,
                "sha256": sha, "columns": [{"name": c, "type": ty} for c, ty in w["cols_types"]],
                "where": w["where"], "rules": [r["name"] for r in w["rules"]],
                "select_sql": w["select"],
                "checksum_sql": sql.checksum_sql(name, w["columns"]),  # what the receiver runs
                "seconds": round(seconds, 3)})
            note = f", {sum(rejected[name].values())} row(s) held back" if name in rejected else ""
            say(f"  {line}.{name}: {rows:,} rows, {nbytes / 1048576:.1f} MiB in {seconds:.1f} s{note}")
        checksums = sums.result()
        cur.execute("COMMIT")
    for t in out_tables:
        counted, t["checksum"] = checksums[t["table"]]
        if counted != t["rows"]:  # the same snapshot cannot disagree; if it does, stop here
            raise CutoverError(f"{line}.{t['table']}: COPY wrote {t['rows']} rows, the checksum query "
                               f"counted {counted} in the same snapshot", "report this; export again")
    manifest = {
        "format": "cutover-export/1", "line": line, "title": title, "database": database,
        "schema": schema, "server_version": server_version,
        "snapshot_at": snapshot_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "isolation": "REPEATABLE READ, READ ONLY", "session": sql.SESSION,
        "tables": out_tables, "rejected": rejected,
        "rows": sum(t["rows"] for t in out_tables), "bytes": sum(t["bytes"] for t in out_tables),
        "seconds": round(time.monotonic() - started, 3)}
    write_json(outdir / "manifest.json", manifest)
    return manifest


def _checksums(connection: dict[str, Any], line: str, database: str, schema: str, snapshot: str,
               queries: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Run the content checksums on a second connection that shares the export's snapshot,
    so the server computes them while the first connection streams the COPY."""
    with connect(connection, line, database) as conn:
        cur = begin(conn, schema)
        cur.execute(f"SET TRANSACTION SNAPSHOT {sql.literal(snapshot)}")
        out = {}
        for name, query in queries.items():
            rows, checksum = one_statement(cur, query).fetchone()
            out[name] = (int(rows), str(checksum))
        cur.execute("COMMIT")
        return out


def _rejects(conn: psycopg.Connection, table: str, columns: list[str], row_filter: str | None,
             rules: list[dict[str, Any]], reject_dir: Path) -> dict[str, int]:
    """Count rows failing each rule; write the failing rows with the rules they fail."""
    fails = rule_failures(rules)
    _, _, counts = rule_counts(conn, table, row_filter, rules)
    if counts:
        reject_dir.mkdir(parents=True, exist_ok=True)
        which = ", ".join(f"CASE WHEN {f} THEN {sql.literal(r['name'])} END" for r, f in zip(rules, fails,
                                                                                            strict=True))
        query = (f"SELECT {sql.column_list(columns)}, concat_ws(',', {which}) AS failed_rules"
                 f" FROM {sql.ident(table)}{sql.where_sql(row_filter, 'NOT (' + sql.passes(rules) + ')')}")
        copy_to(conn, query, reject_dir / f"{table}.csv")
    return counts
