"""`python -m cutover.data screen|export|handoff|reconcile --spec JSON`: what the data playbooks run.

The playbooks resolve the inventory (vault included) and pass plain JSON; secrets (the
database and drop passwords, the receiver's webhook URLs) come as one JSON document on standard
input, never on a command line or in the environment, which a local `ps` shows and which
ansible-runner keeps; the action plugin passes them there and keeps them out of the task's
result.
Progress goes to stderr. Standard output holds one JSON object, Ansible's way of saying how
it went, which the `data_step` action plugin (playbooks/data/action_plugins) turns into the
task's result: `{"failed": false, "result": {...}}`, or for a refusal `{"failed": true,
"msg": "what is wrong", "hint": "what to do"}` (with `result` too when the refusal comes with
evidence: a reconciliation that found differences) and exit 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import psycopg

from cutover.data import drop as dropmod
from cutover.data.export import export_line
from cutover.data.files import write_json
from cutover.data.handoff import batch_index, handoff
from cutover.data.reconcile import receipt_path, reconcile, table_text, wait_for_receipt
from cutover.data.screen import screen_line
from cutover.engine import notify
from cutover.engine.journal import operator
from cutover.errors import CutoverError

SECRETS: dict[str, Any] = {}


class RefusedWithEvidence(CutoverError):
    """A refusal whose evidence is recorded all the same (a receipt that does not reconcile)."""

    def __init__(self, message: str, hint: str, result: dict[str, Any]) -> None:
        super().__init__(message, hint)
        self.result = result


def read_secrets(stream: Any) -> dict[str, Any]:
    """The secrets document from standard input (empty input: none)."""
    text = stream.read() if stream is not None and not stream.isatty() else ""
    if not text.strip():
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise CutoverError("the secrets on standard input are not a JSON object")
    return data


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _connection(db: dict[str, Any]) -> dict[str, Any]:
    """libpq keyword arguments (never a conninfo string); sslmode as the inventory states it."""
    return {"host": db["host"], "port": db["port"], "user": db["user"],
            "password": SECRETS.get("db_password", ""), "sslmode": db.get("sslmode"),
            "sslrootcert": db.get("sslrootcert"), "application_name": "cutover-export"}


def _screen(spec: dict[str, Any]) -> dict[str, Any]:
    db, line = spec["db"], spec["line"]
    say(f"screen {line} ({spec.get('title', '')}) in {db['name']}: filters and quality rules")
    return screen_line(_connection(db), line=line, title=spec.get("title", ""), database=db["name"],
                       tables=spec.get("tables") or None, rules=spec.get("rules") or [], say=say)


def _export(spec: dict[str, Any]) -> dict[str, Any]:
    db = spec["db"]
    connection = _connection(db)
    out = Path(spec["dir"])
    line = spec["line"]
    say(f"export {line} ({spec.get('title', '')}) from {db['name']} into {out / 'export' / line}")
    manifest = export_line(connection, line=line, title=spec.get("title", ""), database=db["name"],
                           outdir=out / "export" / line, reject_dir=out / "fix-after-cutover" / line,
                           tables=spec.get("tables") or None, rules=spec.get("rules") or [], say=say)
    return {k: v for k, v in manifest.items() if k != "tables"} | {
        "tables": [{k: t[k] for k in ("table", "rows", "bytes", "sha256", "checksum")}
                   for t in manifest["tables"]]}


def _drop(spec: dict[str, Any]) -> dropmod.Drop:
    return dropmod.connect(spec["drop"], SECRETS.get("drop_password", ""))


def _handoff(spec: dict[str, Any]) -> dict[str, Any]:
    with _drop(spec) as d:
        say(f"hand-off of {', '.join(spec['lines'])} to {d.name}/{spec['drop']['inbox']}/{spec['batch']}")
        result = handoff(d, Path(spec["dir"]) / "export", spec["lines"], batch=spec["batch"],
                         remote_root=spec["drop"]["inbox"],
                         receipt=receipt_path(spec["drop"]["receipts"], spec["batch"]), say=say)
    urls = list(SECRETS.get("notify_urls") or [])  # webhook tokens: secrets like the passwords
    rows = sum(result["rows"].values())
    detail = "\n".join(f"{line}: {n:,} rows" for line, n in result["rows"].items())
    plan = {"plan": {"name": spec["batch"], "title": spec["batch"]}}
    ok = notify.send(urls, "handoff", None, plan=plan,
                     subject=f"{len(result['files'])} files, {rows:,} rows at "
                             f"{result['drop']}/{result['path']}",
                     detail=detail, operator=operator(),
                     at=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                     rehearsal=bool(spec.get("rehearsal")))
    result["notified"] = {"targets": len(urls), "delivered": ok}
    if not ok:
        raise CutoverError("the files are on the drop, but the receiver's notification was not delivered"
                           + ("" if urls else ": si_drop_notify_urls names no target"),
                           "check si_drop_notify_urls; run data.handoff again (verified files are not "
                           "sent twice) to notify again")
    say(f"receiver notified ({len(urls)} target(s))")
    return result


def _reconcile(spec: dict[str, Any]) -> dict[str, Any]:
    wait = float(spec.get("wait") or 0)
    path = receipt_path(spec["drop"]["receipts"], spec["batch"])
    index = batch_index(Path(spec["dir"]) / "export", spec["lines"], spec["batch"])
    if wait > 0 and not wait_for_receipt(lambda: _drop(spec), path, wait=wait,
                                         poll=float(spec.get("poll") or 60), say=say,
                                         answering=hashlib.sha256(index).hexdigest()):
        raise CutoverError(f"no receipt at {path} after waiting {wait:.0f} s",
                           "the receiver has not answered; ask it, then run data.reconcile again "
                           "(cutover.deploy resumes here); si_drop_receipt_wait sets the wait")
    with _drop(spec) as d:
        result = reconcile(d, Path(spec["dir"]) / "export", spec["lines"], batch=spec["batch"],
                           receipts_root=spec["drop"]["receipts"], say=say)
    say(table_text(result))
    write_json(Path(spec["dir"]) / "reconciliation.json", result)
    if not result["passed"]:
        bad = [f"{r['line']}.{r['table']}: {r['status']} (sent {r['sent_rows']}, received "
               f"{r['received_rows']})" for r in result["tables"] if r["status"] != "match"]
        bad += [f"backup {r['line']}/{r['file']}: {r['status']}" for r in result["backup"]
                if r["status"] != "match"]
        raise RefusedWithEvidence("the receipt does not reconcile:\n  " + "\n  ".join(bad),
                                  "agree the difference with the receiver, then run data.reconcile again",
                                  result)  # the evidence, even so
    return result


ACTIONS = {"screen": _screen, "export": _export, "handoff": _handoff, "reconcile": _reconcile}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cutover.data")
    ap.add_argument("action", choices=tuple(ACTIONS))
    ap.add_argument("--spec", required=True, help="JSON")
    args = ap.parse_args(argv)
    try:
        SECRETS.update(read_secrets(sys.stdin))
        result = ACTIONS[args.action](json.loads(args.spec))
    except psycopg.Error as exc:  # e.g. a quality rule or row filter that is not valid SQL
        return answer({"failed": True, "msg": f"{args.action}: the database refused: {str(exc).strip()}",
                       "hint": "check si_export (tables[].where, quality_rules[].check) in the inventory"})
    except CutoverError as exc:
        refusal = {"failed": True, "msg": exc.message, "hint": exc.hint}
        if isinstance(exc, RefusedWithEvidence):
            refusal["result"] = exc.result
        return answer(refusal)
    return answer({"failed": False, "result": result})


def answer(document: dict[str, Any]) -> int:
    """The one JSON object on standard output; the exit status says the same."""
    print(json.dumps(document, ensure_ascii=False, default=str), flush=True)
    return 1 if document["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
