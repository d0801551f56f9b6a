#!/usr/bin/env python3
"""The lab's stand-in for the tax department's side of N7. Runs on the `tax` host.

Downloads a hand-off batch from the drop over FTP, checks every file against the line
manifests, loads each table into the receiving database (schema = the line), runs the
manifest's own checksum SQL under the manifest's session settings, and writes back to the
drop `receipts/<batch>/receipt.json` (per line and table: rows loaded, checksum) and a
backup copy of every file it loaded (`receipts/<batch>/backup/<line>/<file>`).

`--watch` is how the lab runs it (the service si-lab-receiver on tax1, started by `lab.up`):
every `--interval` seconds it looks at every batch in the inbox and answers each whose index
no receipt answers yet, as the tax department would on its own, outside cutover (N7). To
answer a batch anew (a receiver that fixed its loader), remove its receipt from the drop.

`--lose-row TABLE` (or the file /etc/si-lab/receiver-fault holding `lose-row TABLE`, read
when a batch is answered) plants a fault: the last row of that table (every line) is not
loaded, the way a receiver's loader might drop a row; reconciliation must catch it.
Uses only the standard library and psycopg 3 (Debian's python3-psycopg).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ftplib
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import psycopg

WORK = Path("/var/lib/si-tax")


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def fetch(ftp: ftplib.FTP, remote: str, local: Path) -> str:
    digest = hashlib.sha256()
    local.parent.mkdir(parents=True, exist_ok=True)
    with local.open("wb") as out:
        def write(block: bytes) -> None:
            out.write(block)
            digest.update(block)
        ftp.retrbinary(f"RETR {remote}", write, blocksize=1 << 20)
    return digest.hexdigest()


def ensure_dir(ftp: ftplib.FTP, path: str) -> None:
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        with contextlib.suppress(ftplib.error_perm):  # it exists
            ftp.mkd("/".join(parts[:i]))


def put(ftp: ftplib.FTP, data: io.BufferedIOBase, remote: str) -> None:
    ftp.storbinary(f"STOR {remote}.part", data, blocksize=1 << 20)
    with contextlib.suppress(ftplib.error_perm):
        ftp.delete(remote)
    ftp.rename(f"{remote}.part", remote)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", help="answer this batch once (without: --watch)")
    ap.add_argument("--watch", action="store_true", help="answer every new batch, for ever")
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--ftp-host", default="127.0.0.1")
    ap.add_argument("--ftp-port", type=int, default=21)
    ap.add_argument("--ftp-user", required=True)
    ap.add_argument("--inbox", default="inbox")
    ap.add_argument("--receipts", default="receipts")
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--lose-row", default="")
    a = ap.parse_args()
    if not a.watch:
        if not a.batch:
            ap.error("--batch BATCH, or --watch")
        with _drop(a) as ftp:
            return receive(ftp, a, a.batch)
    while True:  # a pass over the inbox; a drop or database that is away is tried again
        try:
            with _drop(a) as ftp:
                for batch in _unanswered(ftp, a):
                    receive(ftp, a, batch)
        except (OSError, EOFError, ftplib.Error, psycopg.Error, ValueError, KeyError) as exc:
            print(f"receiver: {exc!r}; trying again", file=sys.stderr, flush=True)
        time.sleep(a.interval)


@contextlib.contextmanager
def _drop(a: argparse.Namespace):
    ftp = ftplib.FTP()
    ftp.connect(a.ftp_host, a.ftp_port, timeout=30)
    try:
        ftp.login(a.ftp_user, os.environ["DROP_PASSWORD"])
        yield ftp
    finally:
        with contextlib.suppress(OSError, EOFError, ftplib.Error):
            ftp.quit()


def _unanswered(ftp: ftplib.FTP, a: argparse.Namespace) -> list[str]:
    """The batches in the inbox with an index (a complete hand-off) that no receipt answers."""
    try:
        batches = [name.rsplit("/", 1)[-1] for name in ftp.nlst(a.inbox)]
    except ftplib.error_perm:  # no inbox yet
        return []
    out = []
    for batch in batches:
        try:
            index = hashlib.sha256(b"".join(_chunks(ftp, f"{a.inbox}/{batch}/manifest.json"))).hexdigest()
        except ftplib.error_perm:
            continue  # no index: the hand-off is not complete
        try:
            receipt = json.loads(b"".join(_chunks(ftp, f"{a.receipts}/{batch}/receipt.json")))
        except (ftplib.error_perm, ValueError):
            receipt = {}
        if receipt.get("handoff_sha256") != index:
            out.append(batch)
    return out


def receive(ftp: ftplib.FTP, a: argparse.Namespace, batch: str) -> int:
    lose_row = a.lose_row
    fault = Path("/etc/si-lab/receiver-fault")
    if not lose_row and fault.exists():
        words = fault.read_text().split()
        lose_row = words[1] if len(words) == 2 and words[0] == "lose-row" else ""
    base = f"{a.inbox}/{batch}"
    work = WORK / batch
    try:
        index_raw = b"".join(_chunks(ftp, f"{base}/manifest.json"))
        index = json.loads(index_raw)
    except ftplib.error_perm as exc:
        print(f"error: no hand-off at {base}/manifest.json on the drop: {exc}", file=sys.stderr)
        return 1
    receipt = {"format": "cutover-receipt/1", "batch": batch, "receiver": "lab tax1 (tax_receive)",
               "handoff_sha256": hashlib.sha256(index_raw).hexdigest(),  # which hand-off this answers
               "received_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "lines": {}, "backup": {"path": "backup", "files": []}, "problems": []}
    with psycopg.connect(a.dsn, autocommit=True) as conn:
        for line, entry in index["lines"].items():
            mpath = work / line / "manifest.json"
            if fetch(ftp, f"{base}/{entry['manifest']}", mpath) != entry["sha256"]:
                receipt["problems"].append(f"{line}/manifest.json: sha256 differs from the index")
                continue
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
            conn.execute(f"DROP SCHEMA IF EXISTS {ident(line)} CASCADE")
            conn.execute(f"CREATE SCHEMA {ident(line)}")
            for key, value in manifest["session"].items():
                conn.execute(f"SET {key} = '{value}'")
            conn.execute(f"SET search_path = {ident(line)}")
            tables = {}
            for t in manifest["tables"]:
                local = work / line / t["file"]
                if fetch(ftp, f"{base}/{line}/{t['file']}", local) != t["sha256"]:
                    receipt["problems"].append(f"{line}/{t['file']}: sha256 differs from the manifest")
                cols = ", ".join(f"{ident(c['name'])} {c['type']}" for c in t["columns"])
                conn.execute(f"CREATE TABLE {ident(t['table'])} ({cols})")
                data = local.read_bytes()
                if lose_row == t["table"] and data.count(b"\n") > 1:
                    data = data[: data.rstrip(b"\n").rfind(b"\n") + 1]
                with conn.cursor().copy(f"COPY {ident(t['table'])} FROM STDIN (FORMAT csv, HEADER)") as cp:
                    cp.write(data)
                rows, checksum = conn.execute(t["checksum_sql"]).fetchone()
                tables[t["table"]] = {"rows": int(rows), "checksum": str(checksum)}
                remote = f"{a.receipts}/{batch}/backup/{line}"
                ensure_dir(ftp, remote)
                with local.open("rb") as f:
                    put(ftp, f, f"{remote}/{t['file']}")
                receipt["backup"]["files"].append(f"{line}/{t['file']}")
            receipt["lines"][line] = {"tables": tables}
            print(f"{line}: {len(tables)} tables, {sum(v['rows'] for v in tables.values()):,} rows loaded",
                  file=sys.stderr)
    ensure_dir(ftp, f"{a.receipts}/{batch}")
    put(ftp, io.BytesIO(json.dumps(receipt, ensure_ascii=False, indent=2).encode()),
        f"{a.receipts}/{batch}/receipt.json")
    print(json.dumps({"batch": batch, "lines": len(receipt["lines"]), "problems": receipt["problems"]}),
          flush=True)
    return 0


def _chunks(ftp: ftplib.FTP, remote: str) -> list[bytes]:
    out: list[bytes] = []
    ftp.retrbinary(f"RETR {remote}", out.append)
    return out


if __name__ == "__main__":
    sys.exit(main())
