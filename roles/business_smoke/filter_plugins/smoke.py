"""The smoke check's transactions (the inventory's si_smoke_transactions), what to send for
each, and what the services answered: the records to read back and remove, and the refusals
to report. Plain Python, unit-tested (tests/unit/test_business_smoke_filter.py), because
every answer comes from a host and is treated as hostile: only a plain decimal id is ever
used, and what is shown of an answer is short and free of control characters. What is read
from the answers is the module's too (the read-back runs on the host in the call that sent the
transactions), so it lives in the role's module_utils and is loaded from there."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def _answers():
    path = Path(__file__).resolve().parents[1] / "module_utils" / "smoke_answers.py"
    spec = importlib.util.spec_from_file_location("business_smoke_answers", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


_ANSWERS = _answers()
_records = _ANSWERS._records
smoke_records = _ANSWERS.smoke_records  # used by the module (library/); here for the unit tests
smoke_refusals = _ANSWERS.smoke_refusals

DATABASES = ("line", "tax")
TAX_DB_KEYS = ("host", "port", "user", "password", "sslmode", "db")
FUNCTION = re.compile(r"[a-z][a-z0-9_-]{0,62}")  # as plan.check's smoke_checks: no slash, query or host


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


def smoke_refused(urls: Iterable[str], lines: Iterable[str], names: Iterable[str], catalog: Any,
                  line_databases: Any, tax_db: Any = None) -> list[str]:
    """Every reason not to send anything: an empty check proves nothing, a line without a
    database could not be read back, a transaction the inventory does not define completely
    could not be run. One check on the controller (#17: three asserts were three tasks per host)."""
    urls, lines, names = list(urls), list(lines), list(names)
    out = []
    known = line_databases if isinstance(line_databases, Mapping) else {}
    homeless = [str(line) for line in lines if line not in known]
    if homeless:
        out.append(f"line(s) {', '.join(homeless)} have no database in business_smoke_line_databases "
                   "(the inventory's si_lines): nothing could be read back")
    if not (urls and lines and names):
        out.append("business_smoke_urls, business_smoke_lines and business_smoke_transactions name at least "
                   "one service, line and transaction; an empty check proves nothing")
    unrunnable = smoke_unrunnable(names, catalog, tax_db)
    if unrunnable:
        out.append(f"{'; '.join(unrunnable)}: fix si_smoke_transactions in the inventory (invoke plan.check "
                   "says where)")
    return out


def smoke_sends(urls: Iterable[str], lines: Iterable[str], names: Iterable[str],
                catalog: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One send per service, line and transaction: where it goes, and its body with the line."""
    return [{"url": url, "line": line, "name": name, "path": catalog[name]["path"],
             "body": {**catalog[name]["body"], "line": line}}
            for url in urls for line in lines for name in names]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"smoke_refused": smoke_refused, "smoke_sends": smoke_sends,
                "smoke_refusals": smoke_refusals}
