"""Reconciliation (N7): the receiver's receipt against our manifests, table by table.

The receiver writes `receipt.json` next to the batch on the drop, with per line and table
the rows it loaded and the checksum it computed with the manifest's own SQL, and returns a
backup copy of the files it loaded. Every table must agree in rows and checksum, no table
may be missing or extra, and every backup file must hash to the manifest's sha256. Any
difference is a failure: the caller exits non-zero.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cutover.data.drop import Drop, join
from cutover.data.handoff import answers, batch_index
from cutover.errors import CutoverError


def load_manifests(export_dir: Path, lines: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for line in lines:
        path = export_dir / line / "manifest.json"
        if not path.exists():
            raise CutoverError(f"{path}: no export manifest", "run data.export (and data.handoff) first")
        out[line] = json.loads(path.read_text(encoding="utf-8"))
    return out


def compare(manifests: dict[str, dict[str, Any]], receipt: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (line, table) on either side."""
    rows = []
    got_lines = receipt.get("lines") or {}
    for line in sorted(set(manifests) | set(got_lines)):
        sent = {t["table"]: t for t in (manifests.get(line) or {}).get("tables", [])}
        got = (got_lines.get(line) or {}).get("tables") or {}
        for table in sorted(set(sent) | set(got)):
            s, g = sent.get(table), got.get(table)
            row = {"line": line, "table": table,
                   "sent_rows": s["rows"] if s else None, "received_rows": g.get("rows") if g else None,
                   "sent_checksum": s["checksum"] if s else None,
                   "received_checksum": g.get("checksum") if g else None}
            if s is None:
                row["status"] = "extra at receiver"
            elif g is None:
                row["status"] = "missing at receiver"
            elif g.get("rows") != s["rows"]:
                row["status"] = f"rows differ by {g.get('rows', 0) - s['rows']:+d}"
            elif str(g.get("checksum")) != str(s["checksum"]):
                row["status"] = "checksum differs"
            else:
                row["status"] = "match"
            rows.append(row)
    return rows


def check_backup(drop: Drop, base: str, manifests: dict[str, dict[str, Any]],
                 receipt: dict[str, Any], say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each file the receiver returned must hash to what we sent."""
    backup = receipt.get("backup") or {}
    root = backup.get("path")
    if root is not None and not _inside(root):
        raise CutoverError(f"the receipt's backup path {root!r} leaves the batch directory {base}",
                           "the receipt is refused: ask the receiver for a backup path under its batch "
                           "(e.g. backup)")
    out = []
    for line, manifest in sorted(manifests.items()):
        for t in manifest["tables"]:
            remote = join(base, root or "backup", line, t["file"])
            size = drop.size(remote) if root else None
            if size is None:
                status = "missing"
            elif size != t["bytes"]:
                status = f"{size} bytes, sent {t['bytes']}"
            else:
                status = "match" if drop.sha256(remote) == t["sha256"] else "sha256 differs"
            out.append({"line": line, "file": t["file"], "status": status})
    bad = sum(1 for r in out if r["status"] != "match")
    say(f"  backup copy: {len(out) - bad} of {len(out)} file(s) match what was sent")
    return out


def _check_shape(receipt: Any, path: str) -> None:
    """The receiver's receipt is outside text: its shape is checked before anything reads it."""
    problems = []
    if not isinstance(receipt, dict):
        problems.append("it is not a JSON object")
    else:
        lines = receipt.get("lines")
        if not isinstance(lines, dict):
            problems.append("`lines` is not an object of insurance lines")
        else:
            for line, entry in lines.items():
                tables = entry.get("tables") if isinstance(entry, dict) else None
                if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
                    problems.append(f"`lines.{line}.tables` is not an object of tables, each an object")
                    continue
                for table, t in tables.items():
                    if not isinstance(t.get("rows"), int) or isinstance(t.get("rows"), bool):
                        problems.append(f"`lines.{line}.tables.{table}.rows` is not a whole number")
        if "backup" in receipt and not isinstance(receipt["backup"], dict):
            problems.append("`backup` is not an object")
    if problems:
        raise CutoverError(f"the receipt {path} is malformed: " + "; ".join(problems[:5]),
                           "ask the receiver to write it again (format cutover-receipt/1); nothing was "
                           "reconciled")


def _inside(path: object) -> bool:
    """A relative path that stays below where it is joined (receipt text is the receiver's)."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        return False
    parts = path.split("/")
    return not path.startswith("/") and ".." not in parts and ":" not in parts[0]


def receipt_path(receipts_root: str, batch: str) -> str:
    return join(receipts_root, batch, "receipt.json")


def wait_for_receipt(open_drop: Callable[[], Drop], path: str, *, wait: float, poll: float,
                     say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic, answering: str | None = None) -> bool:
    """Look for the receipt every `poll` seconds for up to `wait` seconds; True once it is
    there (with `answering`, once it answers that hand-off: a receiver still answering an
    earlier one, or half-way through writing, is waited for). A new connection each time: a
    drop that drops idle sessions cannot break a long wait."""
    deadline = clock() + wait
    while True:
        with open_drop() as d:
            there = d.size(path) is not None
            if there and (answering is None or answers(d, path) == answering):
                return True
            where = f"{d.name}/{path}"
        left = deadline - clock()
        if left <= 0:
            return False
        pause = min(poll, left)
        what = "a receipt of another hand-off" if there else "no receipt yet"
        say(f"{what} at {where}; looking again in {pause:.0f} s ({left:.0f} s of {wait:.0f} s left)")
        sleep(pause)


def reconcile(drop: Drop, export_dir: Path, lines: list[str], *, batch: str, receipts_root: str,
              say: Callable[[str], None] = print) -> dict[str, Any]:
    manifests = load_manifests(export_dir, lines)
    base = join(receipts_root, batch)
    path = receipt_path(receipts_root, batch)
    if drop.size(path) is None:
        raise CutoverError(f"no receipt yet at {path} on {drop.name}",
                           "the receiver has not answered; run data.reconcile again when it has "
                           "(si_drop_receipt_wait: how long the step waits for it)")
    try:
        receipt = json.loads(drop.get_bytes(path))
    except ValueError as exc:
        raise CutoverError(f"{path} on {drop.name} is not valid JSON: {exc}",
                           "ask the receiver to write the receipt again") from exc
    _check_shape(receipt, path)
    expected = hashlib.sha256(batch_index(export_dir, lines, batch)).hexdigest()
    answers = receipt.get("handoff_sha256")
    if answers != expected:
        raise CutoverError(f"{path} on {drop.name} does not answer this hand-off: it names index sha256 "
                           f"{str(answers)[:64] if answers else '(none)'}, this hand-off's is {expected}",
                           "it is an earlier receipt (a dry run, an earlier batch): ask the receiver to "
                           "load the batch again; data.handoff removes an old receipt before it sends")
    tables = compare(manifests, receipt)
    backup = check_backup(drop, base, manifests, receipt, say)
    mismatches = [r for r in tables if r["status"] != "match"]
    bad_backup = [r for r in backup if r["status"] != "match"]
    return {"batch": batch, "receipt": path, "received_at": receipt.get("received_at"),
            "receiver": receipt.get("receiver"), "tables": tables, "backup": backup,
            "passed": not mismatches and not bad_backup,
            "mismatches": len(mismatches), "backup_mismatches": len(bad_backup)}


def table_text(result: dict[str, Any]) -> str:
    head = f"{'line':<6} {'table':<18} {'sent rows':>12} {'received':>12}  {'checksum':<10} status"
    out = [head, "-" * len(head)]
    for r in result["tables"]:
        same = (r["sent_checksum"] == r["received_checksum"]) if r["received_checksum"] else None
        out.append(f"{r['line']:<6} {r['table']:<18} {_n(r['sent_rows']):>12} {_n(r['received_rows']):>12}"
                   f"  {'same' if same else ('—' if same is None else 'DIFFERS'):<10} {r['status']}")
    return "\n".join(out)


def _n(v: int | None) -> str:
    return "—" if v is None else f"{v:,}"
