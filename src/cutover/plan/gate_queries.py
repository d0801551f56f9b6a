"""The gates' business queries are inventory data (issue #15): each site writes what "every
agency has its collection plan" (N1) and "nothing is still open" (N3) mean in its own schema
(`si_gate_queries`, the lab's in inventories/lab/group_vars/db/gates.yml). `plan.check` holds
them to what the gates run, before any host is touched, at the file and line they are
written: one statement, a SELECT (or WITH … SELECT), no comment and no `;` (the markers of
cutover.data.sql: several statements could end the gate's read-only transaction and write in
the next), no named argument but %(period)s, a problem text for each N3 kind. Whether
si_gate_queries is there at all, and a mapping, is the contract table's
(contract/host_vars.yml); the gate itself refuses the same at run time
(filter_plugins/gates.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cutover.data.sql import FORBIDDEN
from cutover.paths import resolve
from cutover.plan.inventory_vars import InventoryGroups, var_line
from cutover.plan.model import Plan
from cutover.plan.problems import Add, close_match, rel

VAR = "si_gate_queries"
# each gate's key of si_gate_queries, by its playbook
GATES = {"playbooks/stop/gate-collection-plan.yml": "collection_plan",
         "playbooks/stop/gate-payments-approvals.yml": "payments_approvals"}
KIND = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED = {"line", "agency", "name", "ids"}  # the evidence's own keys (per_agency)
NAMED = re.compile(r"%\((\w*)\)s")
EXAMPLE = "inventories/lab/group_vars/db/gates.yml"


def query_problem(text: Any) -> str | None:
    """Why a gate's query cannot run, or None."""
    if not isinstance(text, str) or not text.strip():
        return "is not a query (a non-empty string)"
    found = [what for marker, what in FORBIDDEN.items() if marker in text]
    if found:
        return "holds " + " and ".join(found) + "; a gate's query is one statement"
    if not re.match(r"(?i)(select|with)\b", text.strip()):
        return f"starts with {text.strip().split()[0]!r}; a gate's query is a SELECT (or WITH … SELECT)"
    unknown = sorted({name for name in NAMED.findall(text) if name != "period"})
    if unknown:
        return (f"names the argument {', '.join(f'%({n})s' for n in unknown)}; the gate passes only "
                "%(period)s")
    if "%" in NAMED.sub("", text).replace("%%", ""):
        return "holds a % that is not %(period)s; write a literal % as %%"
    return None


def lint_gate_queries(plan: Plan, add: Add, data: dict[str, Any], inv_path: Path) -> None:
    """Each distinct si_gate_queries of the inventory, against the gates the plan runs."""
    used: dict[str, str] = {}  # gate key → the first step that runs it
    for step in plan.steps():
        key = GATES.get(rel(resolve(step.playbook))) if step.playbook else None
        if key:
            used.setdefault(key, step.id)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups = InventoryGroups(data)
    seen: set[str] = set()
    for host in groups.in_order():
        value = hostvars.get(host, {}).get(VAR)
        if not isinstance(value, dict):  # missing or mistyped: lint_inventory_vars says so
            continue
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        if text in seen:
            continue
        seen.add(text)
        at = var_line(inv_path, host, groups.of_host(host), VAR)
        for path, message, hint in _problems(value, used):
            add(("plan", "inventory"), f"inventory {rel(inv_path)}: {VAR}{path} {message}", hint,
                at=_key_line(at, path))


def _problems(value: dict[str, Any], used: dict[str, str]) -> list[tuple[str, str, str]]:
    """(where under si_gate_queries, what is wrong, what to write)."""
    out = [(f".{key}", "is no gate's query", close_match(str(key), GATES.values(),
                                                        f"the gates are {', '.join(GATES.values())}"))
           for key in value if key not in GATES.values()]
    out += [("", f"has no {key}, which step {step} runs", f"add {key} as {EXAMPLE} does")
            for key, step in used.items() if key not in value]
    if "collection_plan" in value and (problem := query_problem(value["collection_plan"])):
        out.append((".collection_plan", problem, "write one SELECT returning agency, name, level, plans "
                    f"per agency, as {EXAMPLE} does"))
    if "payments_approvals" not in value:
        return out
    kinds = value["payments_approvals"]
    if not isinstance(kinds, dict) or not kinds:
        return [*out, (".payments_approvals", "is not a mapping of each kind of open item to "
                       "{problem, query}", f"write it as {EXAMPLE} does")]
    for kind, entry in kinds.items():
        out += _kind_problems(f".payments_approvals.{kind}", str(kind), entry)
    return out


def _kind_problems(where: str, kind: str, entry: Any) -> list[tuple[str, str, str]]:
    """One N3 kind of open item: a name of its own, a problem text and a query."""
    out = []
    if not KIND.match(kind) or kind in RESERVED or kind.endswith("_ids"):
        out.append((where, "is not a name of its own for a kind of open item (it names the count "
                    "in the evidence)", "use lower-case letters, digits and _, e.g. pending_approvals"))
    if not isinstance(entry, dict):
        return [*out, (where, "is not a mapping with problem and query", f"write it as {EXAMPLE} does")]
    out += [(f"{where}.{extra}", "is not a key of a kind",
             close_match(str(extra), ["problem", "query"], "a kind has problem and query"))
            for extra in sorted(set(entry) - {"problem", "query"})]
    if not isinstance(entry.get("problem"), str) or not entry["problem"].strip():
        out.append((where, "has no problem text",
                    "add problem: what a finding of this kind says, e.g. approval pending"))
    if problem := query_problem(entry.get("query")):
        out.append((f"{where}.query", problem, "write one SELECT returning agency, name, ids "
                    f"per agency, as {EXAMPLE} does"))
    return out


def _key_line(at: tuple[str, int], path: str) -> tuple[str, int]:
    """The line of `.a.b.c` under si_gate_queries, from where si_gate_queries is written
    (block style; else the variable's own line)."""
    file, line = at
    try:
        lines = resolve(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return at
    for key in (k for k in path.split(".") if k):
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*:")
        found = next((n for n in range(line + 1, len(lines) + 1) if pattern.search(lines[n - 1])), None)
        if found is None:
            break
        line = found
    return file, line
