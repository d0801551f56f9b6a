"""What the services answered to the smoke check (business_smoke): the records to read back
and remove, and the refusals to report. Shared by the module, which reads the records back on
the host in the same call that sent the transactions (library/smoke_transactions.py, #17), and
by the role's action (action_plugins/smoke_check.py), which the unit tests import. Every answer
comes from a host and is treated as hostile: only a plain decimal id is ever used, and what is
shown of an answer is short and free of control characters."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

MOST = 200
RECORD_ID = re.compile(r"[0-9]{1,18}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


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
