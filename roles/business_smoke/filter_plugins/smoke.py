"""The smoke check's transactions (the inventory's si_smoke_transactions), what to send for
each, and what the services answered: the records to read back and remove, and the refusals
to report. Plain Python, unit-tested (tests/unit/test_business_smoke_filter.py), because
every answer comes from a host and is treated as hostile: only a plain decimal id is ever
used, and what is shown of an answer is short and free of control characters."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

MOST = 200
RECORD_ID = re.compile(r"[0-9]{1,18}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
DATABASES = ("line", "tax")
TAX_DB_KEYS = ("host", "port", "user", "password", "sslmode", "db")
FUNCTION = re.compile(r"[a-z][a-z0-9_-]{0,62}")  # as plan.check's smoke_checks: no slash, query or host


def _shown(result: Mapping[str, Any]) -> str:
    text = result.get("content")
    if not isinstance(text, str):
        answer = result.get("json") if "json" in result else result.get("msg", "")
        text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    text = CONTROL.sub("?", text)
    return text if len(text) <= MOST else text[:MOST] + "…"


def _id(result: Mapping[str, Any], field: str = "id") -> int | None:
    answer = result.get("json")
    value = answer.get(field) if isinstance(answer, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    return int(value) if RECORD_ID.fullmatch(str(value)) else None


def _records(transaction: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(transaction.get("records") or [])


def _complete(tax_db: Any) -> bool:
    return isinstance(tax_db, Mapping) and all(tax_db.get(k) not in (None, "") for k in TAX_DB_KEYS)


def smoke_unrunnable(names: Iterable[str], catalog: Any, tax_db: Any = None) -> list[str]:
    """Why the named transactions cannot be run from this catalog (plan.check says more)."""
    if not isinstance(catalog, Mapping):
        return ["si_smoke_transactions is not a mapping of named transactions"]
    out = []
    for name in names:
        spec = catalog.get(name)
        if not isinstance(spec, Mapping) or not isinstance(spec.get("path"), str) \
                or not isinstance(spec.get("body"), Mapping) or not _records(spec):
            out.append(f"{name!r} is not a transaction of si_smoke_transactions with path, body and records")
            continue
        if not FUNCTION.fullmatch(spec["path"]):
            out.append(f"{name!r} has path {spec['path']!r}, not a plain function name")
        for record in _records(spec):
            where = record.get("database") if isinstance(record, Mapping) else None
            if where not in DATABASES:
                out.append(f"{name!r} reads a record back from {where!r}: say line or tax")
            elif where == "tax" and not _complete(tax_db):
                out.append(f"{name!r} reads a record back on the tax side, and business_smoke_tax_db "
                           f"(the inventory's si_smoke_tax_db) does not give its {', '.join(TAX_DB_KEYS)}")
    return out


def smoke_sends(urls: Iterable[str], lines: Iterable[str], names: Iterable[str],
                catalog: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One send per service, line and transaction: where it goes, and its body with the line."""
    return [{"url": url, "line": line, "name": name, "path": catalog[name]["path"],
             "body": {**catalog[name]["body"], "line": line}}
            for url in urls for line in lines for name in names]


def smoke_records(results: Iterable[Mapping[str, Any]], catalog: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every record an answer names with a plain id, for each read-back of its transaction:
    {url, line, name, database, sql, id, accepted}. A refusal that names a record all the
    same (a service that wrote, then failed) is taken back too: `accepted` is false."""
    out = []
    for result in results:
        send = result["item"]
        for record in _records(catalog[send["name"]]):
            found = _id(result, record.get("id_from", "id"))
            if found is not None:
                out.append({"url": send["url"], "line": send["line"], "name": send["name"],
                            "path": send["path"], "database": record["database"], "sql": record["sql"],
                            "id": found, "accepted": result.get("status") == 200})
    return out


def smoke_refusals(results: Iterable[Mapping[str, Any]], catalog: Mapping[str, Any]) -> list[str]:
    """Why each other answer proves nothing: the service, the line, the transaction, its status
    and answer."""
    out = []
    for result in results:
        send = result["item"]
        what = f"{send['url']}{send['path']}"
        if result.get("status") != 200:
            status = result.get("status", "none")
            out.append(f"{what} refused the {send['line']} {send['name']} transaction (status {status}): "
                       f"{_shown(result)}")
            continue
        missing = [r.get("id_from", "id") for r in _records(catalog[send["name"]])
                   if _id(result, r.get("id_from", "id")) is None]
        if missing:
            ids = " or ".join(dict.fromkeys(missing))
            out.append(f"{what} accepted the {send['line']} {send['name']} transaction but answered "
                       f"no record {ids}: {_shown(result)}")
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"smoke_unrunnable": smoke_unrunnable, "smoke_sends": smoke_sends,
                "smoke_records": smoke_records, "smoke_refusals": smoke_refusals}
