"""Export one insurance line (N5): every table in one REPEATABLE READ READ ONLY snapshot.

Each table is written with `COPY (SELECT ...) TO STDOUT (FORMAT csv, HEADER)` through
psycopg (its libpq connection, for speed: see `_copy_to`), hashed (sha256) while it is
written, into `<table>.csv.partial` and renamed only when complete. The content checksums
run meanwhile on a second connection sharing the same snapshot. Rows failing a quality
rule are left out of the hand-off and written to `fix-after-cutover/<line>/` with counts
per rule: the notice hands over only data that meets the receiver's rules. The manifest
carries, per table, rows, bytes, sha256, the content checksum and the SQL that produced
them, so the receiver can run it again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

from cutover.data import sql
from cutover.errors import CutoverError

BLOCK = 1 << 20
STATEMENT_TIMEOUT = "30min"  # one COPY or count of one table


def _columns(cur: psycopg.Cursor, schema: str, table: str) -> list[tuple[str, str]]:
    cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
                " WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass"
                " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (schema, table))
    return [(r[0], r[1]) for r in cur.fetchall()]


def _tables(cur: psycopg.Cursor, schema: str) -> list[str]:
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                " AND table_type = 'BASE TABLE' ORDER BY table_name", (schema,))
    return [r[0] for r in cur.fetchall()]


def _copy_to(conn: psycopg.Connection, query: str, dest: Path) -> tuple[int, int, str]:
    """COPY query to dest (via .partial), hashing while writing; (rows, bytes, sha256).

    libpq hands COPY data over one row per call; psycopg's `copy()` iterator costs about
    a microsecond per row around that call, so rows are taken from its libpq connection
    (`conn.pgconn`, psycopg.pq) directly and hashed and written in 1 MiB blocks."""
    partial = dest.with_name(dest.name + ".partial")
    digest, size, block = hashlib.sha256(), 0, bytearray()
    pg = conn.pgconn
    # The extended protocol (PQsendQueryParams) runs exactly one statement: text joined from
    # inventory fragments can never carry a second command here.
    pg.send_query_params(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)".encode(), None)
    res = pg.get_result()
    if res is None or res.status != pq.ExecStatus.COPY_OUT:
        message = (res.error_message.decode(errors="replace") if res else "no result").strip()
        while pg.get_result() is not None:
            pass
        raise CutoverError(f"COPY of {dest.stem} failed: {message}",
                           "check the table's settings in si_export")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while True:
                nbytes, data = pg.get_copy_data(0)
                if nbytes < 0:
                    break
                block += data
                if len(block) >= BLOCK:
                    digest.update(block)
                    out.write(block)
                    size += len(block)
                    block.clear()
            digest.update(block)
            out.write(block)
            size += len(block)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:  # a full disk, most often: nothing half-written stays
        partial.unlink(missing_ok=True)
        _drain(pg)
        raise CutoverError(f"cannot write {dest}: {exc.strerror or exc} ({_free(dest.parent)} free there)",
                           "free space there (or point cutover_data_dir elsewhere), then export again"
                           ) from exc
    res = pg.get_result()
    while pg.get_result() is not None:
        pass
    if res is None or res.status != pq.ExecStatus.COMMAND_OK:
        partial.unlink(missing_ok=True)
        message = (res.error_message.decode(errors="replace") if res else "connection lost").strip()
        raise CutoverError(f"COPY of {dest.stem} failed midway: {message}", "is the database up?")
    rows = int(res.command_status.split()[-1])
    partial.replace(dest)
    return rows, size, digest.hexdigest()


def _drain(pg: Any) -> None:
    """Read what is left of a COPY that is given up, so the connection can be closed cleanly."""
    with contextlib.suppress(psycopg.Error, OSError):  # the connection is closed next in any case
        while pg.get_copy_data(0)[0] >= 0:
            pass
        while pg.get_result() is not None:
            pass


def _free(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 1048576:,.1f} MiB"
    except OSError:
        return "unknown space"


def _checksums(connection: dict[str, Any], line: str, database: str, schema: str, snapshot: str,
               queries: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Run the content checksums on a second connection that shares the export's snapshot,
    so the server computes them while the first connection streams the COPY."""
    with _connect(connection, line, database) as conn:
        cur = _begin(conn, schema)
        cur.execute(f"SET TRANSACTION SNAPSHOT {sql.literal(snapshot)}")
        out = {}
        for name, query in queries.items():
            rows, checksum = one_statement(cur, query).fetchone()
            out[name] = (int(rows), str(checksum))
        cur.execute("COMMIT")
        return out


def _work(cur: psycopg.Cursor, line: str, schema: str, tables: list[dict[str, Any]] | None,
          rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per table: its explicit column list, row filter, quality rules and SQL."""
    _refuse_unsafe_fragments(line, tables or [], rules)
    names = [t["name"] for t in tables] if tables else _tables(cur, schema)
    config = {t["name"]: t for t in (tables or [])}
    unknown = sorted({r["table"] for r in rules} - set(names))
    if unknown:
        raise CutoverError(f"quality rules name tables the {line} export does not have: "
                           f"{', '.join(unknown)}", "fix si_export.quality_rules in the inventory")
    work = {}
    for name in names:
        cols_types = _columns(cur, schema, name)
        wanted = config.get(name, {}).get("columns")
        if wanted:
            missing = [c for c in wanted if c not in dict(cols_types)]
            if missing:
                raise CutoverError(f"{line}.{name} has no column(s) {', '.join(missing)}",
                                   "fix si_export.tables in the inventory")
            cols_types = [(c, dict(cols_types)[c]) for c in wanted]
        columns = [c for c, _ in cols_types]
        row_filter = config.get(name, {}).get("where")
        table_rules = [r for r in rules if r["table"] == name]
        good = sql.passes(table_rules)
        work[name] = {"cols_types": cols_types, "columns": columns, "where": row_filter,
                      "rules": table_rules, "select": sql.select_sql(name, columns, row_filter, good),
                      "source_checksum": sql.checksum_sql(name, columns, row_filter, good)}
    return work


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
    conn = _connect(connection, line, database)
    with conn, ThreadPoolExecutor(max_workers=1) as pool:
        cur = _begin(conn, schema)
        cur.execute("SELECT current_setting('server_version'), now(), pg_export_snapshot()")
        server_version, snapshot_at, snapshot = cur.fetchone()
        work = _work(cur, line, schema, tables, rules)
        _validate(cur, line, work)  # every filter and rule, before the first file is written
        outdir.mkdir(parents=True, exist_ok=True)
        sums = pool.submit(_checksums, connection, line, database, schema, snapshot,
                           {n: w["source_checksum"] for n, w in work.items()})
        out_tables = []
        rejected: dict[str, dict[str, int]] = {}
        for name, w in work.items():
            t0 = time.monotonic()
            rows, nbytes, sha = _copy_to(conn, w["select"], outdir / f"{name}.csv")
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


def _rejects(conn: psycopg.Connection, table: str, columns: list[str], row_filter: str | None,
             rules: list[dict[str, Any]], reject_dir: Path) -> dict[str, int]:
    """Count rows failing each rule; write the failing rows with the rules they fail."""
    fails = _fails(rules)
    _, _, counts = _rule_counts(conn, table, row_filter, rules)
    if counts:
        reject_dir.mkdir(parents=True, exist_ok=True)
        which = ", ".join(f"CASE WHEN {f} THEN {sql.literal(r['name'])} END" for r, f in zip(rules, fails,
                                                                                            strict=True))
        query = (f"SELECT {sql.column_list(columns)}, concat_ws(',', {which}) AS failed_rules"
                 f" FROM {sql.ident(table)}{sql.where_sql(row_filter, 'NOT (' + sql.passes(rules) + ')')}")
        _copy_to(conn, query, reject_dir / f"{table}.csv")
    return counts


def _connect(connection: dict[str, Any], line: str, database: str) -> psycopg.Connection:
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


def _begin(conn: psycopg.Connection, schema: str) -> psycopg.Cursor:
    """The fixed session settings and one REPEATABLE READ, READ ONLY transaction."""
    cur = conn.cursor()
    for stmt in sql.session_sql():
        cur.execute(stmt)
    # a rule that calls something slow (pg_sleep, say) cannot hold the window: bounded
    cur.execute(f"SET statement_timeout = {sql.literal(STATEMENT_TIMEOUT)}")
    cur.execute(f"SET search_path = {sql.ident(schema)}")
    cur.execute("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    return cur


def _validate(cur: psycopg.Cursor, line: str, work: dict[str, dict[str, Any]]) -> None:
    """Plan (EXPLAIN, nothing runs) each table's row filter and each quality rule on its own,
    so a mistake is named by where it is written in the inventory. Every statement built
    from these fragments, here and after, runs through the extended protocol (one statement
    only), exactly as it will run."""
    for name, w in work.items():
        pieces = [(f"si_export.tables[{name}].where", w["where"])] if w["where"] else []
        pieces += [(f"si_export.quality_rules[{r['name']}] (table {name})", r["check"]) for r in w["rules"]]
        for where, predicate in pieces:
            try:
                plan = one_statement(cur, f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {sql.ident(name)}"
                                          f"{sql.where_sql(predicate)}").fetchone()[0]
            except psycopg.Error as exc:
                message = str(exc).strip().splitlines()[0]
                raise CutoverError(f"{line}: {where} is not valid SQL for {line}.{name}: {message}",
                                   "fix it in the inventory (group_vars si_export); nothing was "
                                   "written or changed") from exc
            reads = _plan_reads(plan)
            if reads - {name} or "subquery" in reads:
                # a rule judges the row it is given; one that reads elsewhere could learn what
                # the export leaves out (other tables, catalogs) and leak it through what is held back
                raise CutoverError(f"{line}: {where} reads more than its own row of {line}.{name} "
                                   f"({', '.join(sorted(reads - {name}))})",
                                   "a filter or rule is an expression over the table's own columns, "
                                   "without subqueries; nothing was read or written")


def _plan_reads(plan: Any) -> set[str]:
    """Every relation an EXPLAIN (FORMAT JSON) plan reads; "subquery" for any sub-plan."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "Relation Name" in node:
                found.add(str(node["Relation Name"]))
            if node.get("Parent Relationship") in ("SubPlan", "InitPlan") or "Subplan Name" in node:
                found.add("subquery")
            if node.get("Node Type") in ("Function Scan", "Values Scan", "CTE Scan", "Subquery Scan"):
                found.add("subquery")
            for key in ("Plan", "Plans"):
                walk(node.get(key))

    walk(plan)
    return found


def one_statement(cur: psycopg.Cursor, query: str) -> psycopg.Cursor:
    """Run query as a prepared statement: the extended protocol, which PostgreSQL never lets
    carry more than one command (the simple protocol runs every command in the text)."""
    return cur.execute(query, prepare=True)


def _refuse_unsafe_fragments(line: str, tables: list[dict[str, Any]], rules: list[dict[str, Any]]) -> None:
    """Every row filter and quality rule is one expression, checked by name before any SQL
    runs (plan.check runs the same check on the inventory)."""
    pieces = [(f"si_export.tables[{t.get('name')}].where", t["where"]) for t in tables if t.get("where")]
    for r in rules:
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) and r[k] for k in ("name", "table")):
            raise CutoverError(f"{line}: si_export.quality_rules has an entry without a name or table: "
                               f"{r!r}", "each rule needs name, table and check; nothing was read or written")
        pieces.append((f"si_export.quality_rules[{r['name']}] (table {r['table']})", r.get("check")))
    for where, text in pieces:
        problem = sql.fragment_problem(text)
        if problem:
            raise CutoverError(f"{line}: {where} {problem}",
                               "fix it in the inventory (group_vars si_export); nothing was read or written")


def _fails(rules: list[dict[str, Any]]) -> list[str]:
    """Per rule, the predicate true for a row that fails it (NULL counts as failing)."""
    return [f"NOT coalesce(({r['check']}), false)" for r in rules]


def _rule_counts(conn: psycopg.Connection | psycopg.Cursor, table: str, row_filter: str | None,
                 rules: list[dict[str, Any]]) -> tuple[int, int, dict[str, int]]:
    """(rows, rows failing any rule, rows failing each rule — only rules with failures)."""
    counts_sql = "".join(f", count(*) FILTER (WHERE {f})" for f in _fails(rules))
    held = f", count(*) FILTER (WHERE NOT ({sql.passes(rules)}))" if rules else ", 0"
    cur = conn if isinstance(conn, psycopg.Cursor) else conn.cursor()
    found = one_statement(cur, f"SELECT count(*){held}{counts_sql} FROM {sql.ident(table)}"
                               f"{sql.where_sql(row_filter)}").fetchone()
    rows, failing, per_rule = int(found[0]), int(found[1]), found[2:]
    return rows, failing, {r["name"]: int(n) for r, n in zip(rules, per_rule, strict=True) if n}


def screen_line(connection: dict[str, Any], *, line: str, title: str, database: str,
                tables: list[dict[str, Any]] | None = None, rules: list[dict[str, Any]] | None = None,
                schema: str = "public", say: Callable[[str], None] = print) -> dict[str, Any]:
    """N5 数据筛选, before the window: check every table, column, row filter and quality rule
    of the export against the live database, and count the rows each rule will hold back.
    Read-only (one READ ONLY transaction); writes nothing."""
    rules = rules or []
    with _connect(connection, line, database) as conn:
        cur = _begin(conn, schema)
        work = _work(cur, line, schema, tables, rules)
        _validate(cur, line, work)
        out = []
        for name, w in work.items():
            rows, failing, per_rule = _rule_counts(cur, name, w["where"], w["rules"])
            out.append({"table": name, "rows": rows, "to_hand_over": rows - failing,
                        "held_back": failing, "by_rule": per_rule})
            note = f", {failing:,} held back ({', '.join(f'{k} {v:,}' for k, v in per_rule.items())})" \
                if failing else ""
            say(f"  {line}.{name}: {rows:,} rows{note}")
        cur.execute("COMMIT")
    return {"line": line, "title": title, "database": database, "tables": out,
            "rows": sum(t["rows"] for t in out), "held_back": sum(t["held_back"] for t in out)}


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CutoverError(f"cannot write {path}: {exc.strerror or exc} ({_free(path.parent)} free there)",
                           "free space there, then run the step again") from exc
    tmp.replace(path)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_export(outdir: Path) -> tuple[dict[str, Any], list[str]]:
    """Re-hash every file of a line's export against its manifest; (manifest, problems)."""
    mpath = outdir / "manifest.json"
    if not mpath.exists():
        return {}, [f"{mpath}: no manifest (was the export run?)"]
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    problems = []
    for t in manifest["tables"]:
        path = outdir / t["file"]
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        size = path.stat().st_size
        if size != t["bytes"]:
            problems.append(f"{path}: {size} bytes, the manifest says {t['bytes']}")
        elif sha256_file(path) != t["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest (changed after the export)")
    return manifest, problems
