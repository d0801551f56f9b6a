"""The stop side's gates (N1, N3; playbooks/stop/gate-*.yml): the inventory's business queries
(si_gate_queries, one site's own schema) checked before they run, and their rows turned into
the gate's evidence.

The queries are the inventory's SQL, so the gate fails closed on them: one that is missing
or not a string stops the gate naming it; one with a `;` is refused, since several
statements could end the read-only transaction the gate runs each query in and write in the
next; a row without a column the gate reads stops it naming the query and the column.
`invoke plan.check` says all this earlier, with file and line (cutover.plan.gate_queries).

Plain data in, plain data out, unit-tested (tests/unit/test_gate_queries.py). Standard
library and ansible-core only, so the playbooks also run alone with `ansible-playbook`.

    # the Inputs play: fail_msg lists what is wrong
    that: si_gate_queries | default(none) | gate_query_problems('payments_approvals') == []
    # the gate: per agency and line, and what is still open
    __gate: "{{ __open.results | gate_open_items(si_gate_queries.payments_approvals) }}"
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

VAR = "si_gate_queries"
# cutover.data.sql.FORBIDDEN's markers (a unit test keeps them equal): a comment or a second
# statement has no place in a gate's query.
FORBIDDEN = ("--", "/*", "*/", ";")
KIND = re.compile(r"^[a-z][a-z0-9_]*$")
N1_COLUMNS = ("agency", "name", "level", "plans")
N3_COLUMNS = ("agency", "name", "ids")


def _query_problem(text: Any, where: str) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return f"{where} is not a query (a non-empty string)"
    found = [marker for marker in FORBIDDEN if marker in text]
    if found:
        return f"{where} holds {' and '.join(found)}: a gate's query is one statement without comments"
    return None


def gate_query_problems(queries: Any, gate: str) -> list[str]:
    """What keeps `gate` (collection_plan or payments_approvals) from running the inventory's
    queries; [] when nothing does."""
    if not isinstance(queries, Mapping):
        return [f"{VAR} is missing or not a mapping of gate to query (the inventory's group_vars/db)"]
    if gate not in queries:
        return [f"{VAR}.{gate} is missing (the inventory's group_vars/db)"]
    value = queries[gate]
    if gate == "collection_plan":
        problem = _query_problem(value, f"{VAR}.{gate}")
        return [problem] if problem else []
    if not isinstance(value, Mapping) or not value:
        return [f"{VAR}.{gate} is not a mapping of kind to {{problem, query}}"]
    out = []
    for kind, entry in value.items():
        where = f"{VAR}.{gate}.{kind}"
        if not isinstance(kind, str) or not KIND.match(kind) or kind in (*N3_COLUMNS, "line") \
                or kind.endswith("_ids"):
            out.append(f"{where}: the kind is not a lower-case name (letters, digits, _) of its own")
        elif not isinstance(entry, Mapping):
            out.append(f"{where} is not a mapping with problem and query")
        else:
            if not isinstance(entry.get("problem"), str) or not entry["problem"].strip():
                out.append(f"{where}.problem is missing: the text a finding of this kind says")
            problem = _query_problem(entry.get("query"), f"{where}.query")
            if problem:
                out.append(problem)
    return out


def _rows(result: Mapping[str, Any], where: str, columns: Iterable[str]) -> list[Mapping[str, Any]]:
    """A postgresql_query result's rows (it says {} for none), each with the gate's columns."""
    rows = result.get("query_result") or []
    if not isinstance(rows, list):
        raise AnsibleFilterError(f"{where} returned {type(rows).__name__}, not rows")
    if not rows:  # fail closed: a wrong filter or an empty table would otherwise pass the gate unseen
        raise AnsibleFilterError(f"{where} returned no agency at all: the gate gives no verdict on nothing "
                                 "(a query returns one row per agency of the line, open items or not)")
    for row in rows:
        missing = [c for c in columns if c not in row]
        if missing:
            raise AnsibleFilterError(f"{where} returned no column {', '.join(missing)} (it returns "
                                     f"{', '.join(map(str, row)) or 'nothing'}): the gate reads "
                                     f"{', '.join(columns)}")
    return rows


def gate_plans(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """N1, per agency and line (the query's loop over si_lines): whether its plan exists."""
    out = []
    for result in results:
        line = result["item"]["key"]
        for row in _rows(result, f"{VAR}.collection_plan (line {line})", N1_COLUMNS):
            plans = row["plans"]
            if not isinstance(plans, (int, float)) or isinstance(plans, bool):
                raise AnsibleFilterError(f"{VAR}.collection_plan (line {line}) returned plans {plans!r} "
                                         f"for agency {row['agency']}, not a count")
            out.append({"line": line, "agency": row["agency"], "name": row["name"], "level": row["level"],
                        "has_plan": plans > 0})
    return out


def gate_open_items(results: Iterable[Mapping[str, Any]], kinds: Mapping[str, Any]) -> dict[str, Any]:
    """N3, from the query loop over si_lines × kinds (item: [line, kind]): per agency and line
    the count and ids of each kind, the findings (one per agency, line and kind with ids, in
    that order, ids as the query listed them) and the summary."""
    per_agency: dict[tuple[str, str], dict[str, Any]] = {}
    for result in results:
        line, kind = result["item"][0]["key"], result["item"][1]["key"]
        for row in _rows(result, f"{VAR}.payments_approvals.{kind} (line {line})", N3_COLUMNS):
            ids = "" if row["ids"] is None else str(row["ids"])
            entry = per_agency.setdefault((line, str(row["agency"])),
                                          {"line": line, "agency": row["agency"], "name": row["name"]})
            entry[kind] = len([i for i in ids.split(",") if i.strip()])
            entry[f"{kind}_ids"] = ids
    rows = list(per_agency.values())
    for row in rows:  # an agency one query did not return has nothing open of that kind
        for kind in kinds:
            row.setdefault(kind, 0)
            row.setdefault(f"{kind}_ids", "")
    findings = [{"line": row["line"], "agency": row["agency"], "name": row["name"],
                 "problem": kinds[kind]["problem"], "ids": row[f"{kind}_ids"]}
                for row in rows for kind in kinds if row[f"{kind}_ids"]]
    counts = ", ".join(f"{sum(row[kind] for row in rows)} {kinds[kind]['problem']}" for kind in kinds)
    return {"per_agency": rows, "findings": findings,
            "summary": f"{len(rows)} agency×line checked: {counts}"}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"gate_query_problems": gate_query_problems, "gate_plans": gate_plans,
                "gate_open_items": gate_open_items}
