"""The smoke check of one host (N9–N12) in one task: refuse a check that cannot run, send
every transaction through the module, then judge the answers and the read-backs.

#17: the check was four tasks per host (an assert of the inputs, the module, an assert of the
answers, an assert per record read back), each a task per host on the controller. The inputs
are judged here before the host is asked anything; the module sends, reads back and removes
(library/smoke_transactions.py); the verdict is judged here and says every reason at once.

The smoke check's transactions (the inventory's si_smoke_transactions), what to send for
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

from ansible.plugins.action import ActionBase


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
CONTROL = _ANSWERS.CONTROL

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
            elif where == "tax" and not re.fullmatch(r"[0-9]{1,5}", str(tax_db["port"])):
                out.append(f"{name!r} reads a record back on the tax side, and business_smoke_tax_db's port "
                           f"{str(tax_db['port'])[:40]!r} is not a port number")
    return out


def smoke_refused(urls: Iterable[str], lines: Iterable[str], names: Iterable[str], catalog: Any,
                  line_databases: Any, tax_db: Any = None) -> list[str]:
    """Every reason not to send anything: an empty check proves nothing, a line without a
    database could not be read back, a transaction the inventory does not define completely
    could not be run. One check on the controller (#17: three asserts were three tasks per host)."""
    urls, lines, names = list(urls), list(lines), list(names)
    out = []
    known = line_databases if isinstance(line_databases, Mapping) else {}
    homeless = [repr(line) for line in lines if line not in known]
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


def _said(text: Any, most: int) -> str:
    """The end of a host's message, control characters shown as ?: shown, never obeyed."""
    return CONTROL.sub("?", str(text or ""))[-most:]


def _touched(read: Mapping[str, Any]) -> int:
    rows = read.get("query_result") or [{}]
    first = rows[0] if isinstance(rows[0], Mapping) else {}
    return first.get("touched", 0)


def _db_name(item: Mapping[str, Any], line_databases: Mapping[str, Any], tax_db: Mapping[str, Any]) -> Any:
    if item["database"] != "line":
        return tax_db.get("db")
    spec = line_databases.get(item["line"])
    return spec.get("db") if isinstance(spec, Mapping) else None


def _unread(read: Mapping[str, Any], line_databases: Mapping[str, Any], tax_db: Mapping[str, Any]) -> str:
    item = read["item"]
    msg = str(read.get("msg") or "no such check record")
    guard = re.search(r'the check statement touched [0-9]+ rows[^"]*', msg)
    return (f"{item['url']}{item['path']} answered record #{item['id']} of the {item['line']} "
            f"{item['name']} transaction, but reading it back in {_db_name(item, line_databases, tax_db)} "
            f"failed: {_said(guard.group(0) if guard else msg, 300)}. Either the service did not write "
            "where this record must be (its record stays where it did write: remove it there), or the "
            "inventory's statement reaches more than the record (nothing was changed by it)")


def smoke_verdict(sent: list[Mapping[str, Any]], read: list[Mapping[str, Any]], catalog: Mapping[str, Any],
                  line_databases: Mapping[str, Any], tax_db: Mapping[str, Any]) -> list[str]:
    """Every reason the check failed, empty when it passed: each refusal (with whether every
    record a service named was removed), then each accepted record that did not reach its database."""
    out = []
    refused = smoke_refusals(sent, catalog)
    if refused:
        # said only when true: a record whose read-back failed is still where the service wrote it
        unremoved = "; ".join(
            f"{r['item']['line']} {r['item']['name']} #{r['item']['id']} in the {r['item']['database']} "
            f"database ({_said(r.get('msg'), 200)})"
            for r in read if r.get("failed") or _touched(r) != 1)
        out.append("; ".join(refused) + " " + (f"(NOT removed, remove by hand: {unremoved})" if unremoved
                                               else "(every record a service named was removed)"))
    out += [_unread(r, line_databases, tax_db) for r in read
            if r["item"].get("accepted") and (r.get("failed") or _touched(r) != 1)]
    return out


def smoke_unanswered(sends: list[Mapping[str, Any]], sent: Any) -> list[str]:
    """The sends the host's answer does not answer, in place and by name (an answer left out
    proves nothing about its service: the check fails naming it, never passes on less)."""
    answers = sent if isinstance(sent, list) else []
    missing = []
    for n, send in enumerate(sends):
        answer = answers[n] if n < len(answers) else None
        item = answer.get("item") if isinstance(answer, Mapping) else None
        if not (isinstance(item, Mapping) and all(item.get(k) == send[k] for k in ("url", "line", "name"))):
            missing.append(f"{send['line']} {send['name']} to {send['url']}")
    if not missing:
        return []
    more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
    return [f"the host answered {len(answers)} of the {len(sends)} transactions sent, and not "
            f"{_said('; '.join(missing[:5]), 600)}{more}: those services are not proven; every record "
            "the host named may still be in the databases"]


def module_args(a: Mapping[str, Any]) -> dict[str, Any]:
    """What the module is asked: the sends, the line databases' names only (the inventory's
    si_lines may hold more than the module needs), and of the tax side the keys the module
    knows, only when a transaction reads a record back there (checked before: complete, and
    its port a number)."""
    db = a.get("db") if isinstance(a.get("db"), Mapping) else {}
    tax = a.get("tax_db") if isinstance(a.get("tax_db"), Mapping) else {}
    if not any(isinstance(r, Mapping) and r.get("database") == "tax"
               for name in a["transactions"] for r in _records(a["catalog"][name])):
        tax = {}
    return {
        "sends": smoke_sends(a["urls"], a["lines"], a["transactions"], a["catalog"]),
        "catalog": a["catalog"], "check": a.get("check"), "timeout": a.get("timeout", 30),
        "line_db": {key: db.get(key) for key in ("host", "port", "user", "password", "sslmode")}
        | {"sslrootcert": db.get("sslrootcert") or ""},
        "line_databases": {line: spec.get("db") if isinstance(spec, Mapping) else None
                           for line, spec in a["line_databases"].items()},
        "tax_db": {key: tax.get(key) or "" for key in (*TAX_DB_KEYS, "sslrootcert") if key != "port"}
        | {"port": tax.get("port") or 0},
    }


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        a = {**self._task.args}
        for key in ("urls", "lines", "transactions"):
            a[key] = list(a.get(key) or [])
        tax_db = a.get("tax_db") if isinstance(a.get("tax_db"), Mapping) else {}
        refused = smoke_refused(a["urls"], a["lines"], a["transactions"], a.get("catalog"),
                                a.get("line_databases"), tax_db)
        if refused:  # before the host is asked anything
            return {**result, "failed": True, "changed": False,
                    "msg": "; ".join(refused) + "; nothing was sent"}
        asked = module_args(a)
        try:
            done = self._execute_module(module_name="ansible.legacy.smoke_transactions",
                                        module_args=asked, task_vars=task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        if done.get("failed") or done.get("unreachable"):
            return {**result, **done}
        sent, read = done.get("sent"), done.get("read")
        wrong = smoke_unanswered(asked["sends"], sent)
        try:
            if not isinstance(read, list):
                raise TypeError(read)
            answers = sent if isinstance(sent, list) else []
            wrong += smoke_verdict(answers, read, a["catalog"], a["line_databases"], tax_db)
        except (AttributeError, IndexError, KeyError, TypeError) as exc:  # not what the module answers
            wrong += [f"the host's answer is not the smoke module's (a {type(exc).__name__}); every record "
                      "it named may still be in the databases: look for the check's mark there"]
        return {**result, "changed": False, "sent": sent, "read": read,
                **({"warnings": done["warnings"]} if isinstance(done.get("warnings"), list) else {}),
                **({"failed": True, "msg": "; ".join(wrong)} if wrong else {})}
