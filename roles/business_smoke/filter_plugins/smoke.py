"""What the services answered to the smoke check, sorted into the records to read back and
remove, and the refusals to report. Plain Python, unit-tested
(tests/unit/test_business_smoke_filter.py), because every answer comes from a host and is
treated as hostile: only a plain decimal id is ever used, and what is shown of an answer is
short and free of control characters."""

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


def _id(result: Mapping[str, Any]) -> int | None:
    answer = result.get("json")
    value = answer.get("id") if isinstance(answer, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    return int(value) if RECORD_ID.fullmatch(str(value)) else None


def smoke_records(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One {url, line, id} per answer that accepted the transaction with a record id."""
    out = []
    for result in results:
        url, line = result["item"]
        record = _id(result)
        if result.get("status") == 200 and record is not None:
            out.append({"url": url, "line": line, "id": record})
    return out


def smoke_refusals(results: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why each other answer proves nothing: the service, the line, its status and answer."""
    out = []
    for result in results:
        url, line = result["item"]
        if result.get("status") != 200:
            status = result.get("status", "none")
            out.append(f"{url}approval refused the {line} transaction (status {status}): {_shown(result)}")
        elif _id(result) is None:
            out.append(f"{url}approval accepted the {line} transaction but answered no record id: "
                       f"{_shown(result)}")
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"smoke_records": smoke_records, "smoke_refusals": smoke_refusals}
