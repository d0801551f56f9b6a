"""N5 数据筛选, before the window: the export's selection checked against the live databases,
and the rows each quality rule will hold back counted (read-only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cutover.data.selection import rule_counts, table_work, validate
from cutover.data.session import begin, connect


def screen_line(connection: dict[str, Any], *, line: str, title: str, database: str,
                tables: list[dict[str, Any]] | None = None, rules: list[dict[str, Any]] | None = None,
                schema: str = "public", say: Callable[[str], None] = print) -> dict[str, Any]:
    """N5 数据筛选, before the window: check every table, column, row filter and quality rule
    of the export against the live database, and count the rows each rule will hold back.
    Read-only (one READ ONLY transaction); writes nothing."""
    rules = rules or []
    with connect(connection, line, database) as conn:
        cur = begin(conn, schema)
        work = table_work(cur, line, schema, tables, rules)
        validate(cur, line, work)
        out = []
        for name, w in work.items():
            rows, failing, per_rule = rule_counts(cur, name, w["where"], w["rules"])
            out.append({"table": name, "rows": rows, "to_hand_over": rows - failing,
                        "held_back": failing, "by_rule": per_rule})
            note = f", {failing:,} held back ({', '.join(f'{k} {v:,}' for k, v in per_rule.items())})" \
                if failing else ""
            say(f"  {line}.{name}: {rows:,} rows{note}")
        cur.execute("COMMIT")
    return {"line": line, "title": title, "database": database, "tables": out,
            "rows": sum(t["rows"] for t in out), "held_back": sum(t["held_back"] for t in out)}
