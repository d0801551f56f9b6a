"""The restore's smoke transactions are the inventory's (si_smoke_transactions; issue #15 items
7 and 12): each site writes them for its own schema, so plan.check holds them to what the
business_smoke role relies on before any host is touched. Each statement is one statement
(the FORBIDDEN markers of cutover.data.sql), reads its record back by %(id)s and nothing
else, removes or undoes it, and keeps to records that carry the check's mark; each path is a
plain function name; each record's database is known; and every transaction a step sends is
defined. Problems name the file and line of the transaction and say what to write."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from cutover.data import sql
from cutover.paths import resolve
from cutover.plan.inventory_vars import InventoryGroups, named_hosts, var_line
from cutover.plan.model import Plan
from cutover.plan.playbooks import work_plays
from cutover.plan.problems import Add, close_match, rel
from cutover.yamlsafe import YamlRefused, compose

VAR = "si_smoke_transactions"
TAX_DB = "si_smoke_tax_db"
# the same keys the role's smoke_unrunnable asks for
TAX_DB_KEYS = ("host", "port", "user", "password", "sslmode", "db")
DATABASES = ("line", "tax")
FUNCTION = re.compile(r"[a-z][a-z0-9_-]{0,62}")
ANSWER_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
PARAM = "%(id)s"
REMOVES = re.compile(r"\b(DELETE\s+FROM|UPDATE)\b.*\bWHERE\b.*\bRETURNING\b", re.IGNORECASE | re.DOTALL)
HOW = ("write DELETE FROM <table> WHERE id = %(id)s AND <mark column> = '<mark>' RETURNING id, or an "
       "UPDATE … WHERE … = %(id)s … RETURNING … that undoes what the transaction did")


def lint_smoke_transactions(plan: Plan, add: Add, data: dict[str, Any], inv_path: Path) -> None:
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups = InventoryGroups(data)
    sent = _sent_by_steps(plan)
    catalogs: dict[str, list[str]] = {}  # each distinct si_smoke_transactions → the hosts with it
    for host in groups.in_order():
        value = hostvars.get(host, {}).get(VAR)
        if isinstance(value, dict):  # missing or mistyped: inventory_vars reports it
            catalogs.setdefault(json.dumps(value, sort_keys=True, default=str), []).append(host)
    for key, hosts in catalogs.items():
        catalog = json.loads(key)
        file, line = var_line(inv_path, hosts[0], groups.of_host(hosts[0]), VAR)
        root = _compose(resolve(file))
        problems = list(_problems(catalog))
        no_tax_db = [h for h in hosts if not _complete(hostvars[h].get(TAX_DB))]
        if no_tax_db and any(_reads_on_tax(t) for t in catalog.values()):
            problems.append(((), f"reads records back on the tax side (database: tax), but {TAX_DB} is "
                             f"missing or incomplete on {named_hosts(no_tax_db)}",
                             f"add {TAX_DB}: {{{', '.join(TAX_DB_KEYS)}}} beside it (the password from the "
                             "vault), or read back in the line's database only"))
        for name, (book, step) in sent.items():
            if name not in catalog:
                like = close_match(name, catalog, "")
                problems.append(((), f"has no transaction {name!r}, which {book} sends (step {step})",
                                 f"{like + ' or ' if like else ''}add {name}: {{path, body, mark, records}} "
                                 "(inventories/lab/group_vars/all/business_checks.yml is the example)"))
        for path, message, hint in problems:
            add(("plan", "inventory"), f"inventory {rel(inv_path)}: {_dotted(path)} {message}", hint,
                at=(file, _line_of(root, (VAR, *path), line)))


def _problems(catalog: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    for name, spec in catalog.items():
        if not isinstance(spec, dict):
            yield (name,), "is not a mapping", "write {path, body, mark, records} for each transaction"
            continue
        path, body, mark, records = (spec.get(k) for k in ("path", "body", "mark", "records"))
        if not isinstance(path, str) or not FUNCTION.fullmatch(path):
            yield (name, "path"), f"{path!r} is not a plain function name", \
                "write the function as the service names it, e.g. collection: the role sends it to each " \
                "service's base URL (no slash, query or host)"
        if not isinstance(body, dict):
            yield (name, "body"), "is not a mapping", "write the JSON body the service gets (without line)"
        if isinstance(mark, bool) or not isinstance(mark, (str, int)) or mark == "":
            yield (name, "mark"), "is missing", "name the value only a check's record carries: cutover-smoke"
            mark = None
        elif isinstance(body, dict) and mark not in body.values():
            yield (name, "mark"), f"{mark!r} is no value of the body", \
                "put the mark in the body (kind: cutover-smoke), so the service writes it into the record"
        if not isinstance(records, list) or not records:
            yield (name, "records"), "names no record", \
                "list each record the transaction writes: {database: line or tax, sql: …}"
            continue
        for index, record in enumerate(records):
            yield from _record_problems((name, "records", index), record, mark)


def _record_problems(at: tuple[Any, ...], record: Any, mark: str | int | None
                     ) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    if not isinstance(record, dict):
        yield at, "is not a mapping", "write {database: line or tax, sql: …}"
        return
    if record.get("database") not in DATABASES:
        yield (*at, "database"), f"{record.get('database')!r} is not a database the check knows", \
            "write line (the line's database) or tax (si_smoke_tax_db)"
    field = record.get("id_from", "id")
    if not isinstance(field, str) or not ANSWER_FIELD.fullmatch(field):
        yield (*at, "id_from"), f"{field!r} is not a field name", \
            "name the field of the service's answer that holds this record's id (default id)"
    text = record.get("sql")
    if not isinstance(text, str) or not text.strip():
        yield (*at, "sql"), "is missing", HOW
        return
    where = (*at, "sql")
    found = sql.forbidden_in(text)
    if found:
        yield where, f"holds {' and '.join(found)}; a smoke statement is exactly one statement", \
            "write one statement (WITH … DELETE … RETURNING reads back and removes in one), no comments"
    others = sorted(set(re.findall(r"%\([^)]*\)s|%[a-z]", text.replace(PARAM, "").replace("%%", ""))))
    if others or "%" in text.replace(PARAM, "").replace("%%", ""):
        said = ", ".join(others) or "a bare %"
        yield where, f"uses {said}: the only parameter is {PARAM}, the id the service answered", \
            "read the record back by %(id)s alone; write %% for a literal percent sign"
    elif not re.search(r"(?<![<>!])=\s*" + re.escape(PARAM), text):
        yield where, f"does not read its record back by <its id column> = {PARAM}", \
            "add WHERE <its id column> = %(id)s"
    if re.search(r"\bOR\b", text, re.IGNORECASE):
        yield where, "holds OR: a smoke statement reaches its one record only (id and mark joined by AND)", \
            "write WHERE <its id column> = %(id)s AND <mark column> = <the mark>"
    if not REMOVES.search(text):
        yield where, "neither removes nor undoes its record (DELETE … WHERE … RETURNING, " \
            "or UPDATE … WHERE … RETURNING)", HOW
    if mark is not None and not _holds_mark(text, mark):
        yield where, f"does not keep to the check's mark {mark!r}", \
            f"add AND <column> = {_literal(mark)}, so only a check's own record can be removed"


def _holds_mark(text: str, mark: str | int) -> bool:
    if isinstance(mark, int):
        return re.search(rf"(?<![\w.]){mark}(?![\w.])", text) is not None
    return _literal(mark) in text


def _literal(mark: str | int) -> str:
    return str(mark) if isinstance(mark, int) else sql.literal(mark)


def _complete(tax_db: Any) -> bool:
    return isinstance(tax_db, dict) and all(tax_db.get(k) not in (None, "") for k in TAX_DB_KEYS)


def _reads_on_tax(spec: Any) -> bool:
    records = spec.get("records") if isinstance(spec, dict) else None
    return isinstance(records, list) and any(isinstance(r, dict) and r.get("database") == "tax"
                                             for r in records)


def _sent_by_steps(plan: Plan) -> dict[str, tuple[str, str]]:
    """Each transaction a step's plays send (business_smoke_transactions, as the playbook
    writes it), with the first playbook and step that sends it."""
    out: dict[str, tuple[str, str]] = {}
    for step in plan.steps():
        path = resolve(step.playbook) if step.playbook else None
        if not path or not path.is_file():
            continue
        for play in work_plays(path, step.tags):
            for names in _smoke_vars(play.get("tasks")):
                for name in names:
                    out.setdefault(name, (rel(path), step.id))
    return out


def _smoke_vars(tasks: Any) -> Iterator[list[str]]:
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        for key in ("block", "rescue", "always"):
            yield from _smoke_vars(task.get(key))
        own = task.get("vars")
        names = own.get("business_smoke_transactions") if isinstance(own, dict) else None
        if isinstance(names, list):
            yield [n for n in names if isinstance(n, str) and "{{" not in n]


def _compose(file: Path) -> yaml.Node | None:
    try:
        return compose(file.read_text(encoding="utf-8"), file, syntax_errors=False)
    except (OSError, UnicodeDecodeError, YamlRefused):
        return None


def _line_of(node: yaml.Node | None, path: tuple[Any, ...], fallback: int) -> int:
    """The line of the deepest part of `path` the file writes (keys of mappings, items of lists)."""
    line = fallback
    for part in path:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _dotted(path: tuple[Any, ...]) -> str:
    out = VAR
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
