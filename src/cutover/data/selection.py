"""What a line's export selects (N5), checked before a row is read: each table's columns,
row filter and quality rules (the inventory's si_export, which is untrusted SQL from the
receiving organisation), the statements built from them, and the rows each rule holds back."""

from __future__ import annotations

from typing import Any

import psycopg

from cutover.data import sql
from cutover.data.session import one_statement
from cutover.errors import CutoverError


def table_work(cur: psycopg.Cursor, line: str, schema: str, tables: list[dict[str, Any]] | None,
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


def _columns(cur: psycopg.Cursor, schema: str, table: str) -> list[tuple[str, str]]:
    cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
                " WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass"
                " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (schema, table))
    return [(r[0], r[1]) for r in cur.fetchall()]


def _tables(cur: psycopg.Cursor, schema: str) -> list[str]:
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                " AND table_type = 'BASE TABLE' ORDER BY table_name", (schema,))
    return [r[0] for r in cur.fetchall()]


def validate(cur: psycopg.Cursor, line: str, work: dict[str, dict[str, Any]]) -> None:
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


def rule_failures(rules: list[dict[str, Any]]) -> list[str]:
    """Per rule, the predicate true for a row that fails it (NULL counts as failing)."""
    return [f"NOT coalesce(({r['check']}), false)" for r in rules]


def rule_counts(conn: psycopg.Connection | psycopg.Cursor, table: str, row_filter: str | None,
                rules: list[dict[str, Any]]) -> tuple[int, int, dict[str, int]]:
    """(rows, rows failing any rule, rows failing each rule — only rules with failures)."""
    counts_sql = "".join(f", count(*) FILTER (WHERE {f})" for f in rule_failures(rules))
    held = f", count(*) FILTER (WHERE NOT ({sql.passes(rules)}))" if rules else ", 0"
    cur = conn if isinstance(conn, psycopg.Cursor) else conn.cursor()
    found = one_statement(cur, f"SELECT count(*){held}{counts_sql} FROM {sql.ident(table)}"
                               f"{sql.where_sql(row_filter)}").fetchone()
    rows, failing, per_rule = int(found[0]), int(found[1]), found[2:]
    return rows, failing, {r["name"]: int(n) for r, n in zip(rules, per_rule, strict=True) if n}
