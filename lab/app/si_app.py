#!/usr/bin/env python3
"""The lab's sample social-insurance business service.

One program plays every business component of the lab, configured by environment
(an EnvironmentFile written by provisioning):

- mode ``core``: the business system of one insurance line; owns that line's database.
- mode ``front``: a channel or interface (counter, gateway, shared platform, online
  platform, app back-end); forwards business requests to the core service of the line.
  With ``SI_TAX_DSN`` set (the HR–tax shared platform), what it forwarded is also booked in
  the tax side's receiving database, table ``shared_ledger`` (N10), and the answer says the
  booking's id as ``tax_id``.
- mode ``sink``: the lab's stand-in for the chat groups and the tax department's inbox
  (N6, N16): POST /notify records a message (apprise's json:// format), GET /messages
  lists them.

Endpoints: GET /health, GET /version, POST /collection, POST /account,
POST /benefit-payment, POST /approval. Only the standard library and python3-psycopg
(Debian's package) are used, so it runs on a plain Debian host.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = (HERE / "VERSION").read_text(encoding="utf-8").strip()
COMPONENT = os.environ.get("SI_COMPONENT", "si-app")
MODE = os.environ.get("SI_MODE", "core")
LINE = os.environ.get("SI_LINE", "")
DSN = os.environ.get("SI_DSN", "")
PORT = int(os.environ.get("SI_PORT", "8080"))
UPSTREAMS: dict[str, str] = json.loads(os.environ.get("SI_UPSTREAMS", "{}") or "{}")
TAX_DSN = os.environ.get("SI_TAX_DSN", "")

BUSINESS = {"/collection", "/account", "/benefit-payment", "/approval"}
SINK_FILE = Path(os.environ.get("SI_SINK_FILE", "/var/lib/si-notify/messages.jsonl"))
# Written by the channel_notice role during a maintenance window (N2, N4): which business
# functions (or all) answer 503 with the friendly notice (友情提示) instead of working.
MAINTENANCE_DIR = Path(os.environ.get("SI_MAINTENANCE_DIR", "/etc/si/maintenance"))


def maintenance() -> dict | None:
    try:
        return json.loads((MAINTENANCE_DIR / f"{COMPONENT}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def blocked_by(notice: dict | None, path: str) -> bool:
    if not notice:
        return False
    return notice.get("scope") == "all" or path.strip("/") in notice.get("functions", [])


class HttpError(Exception):
    def __init__(self, status: int, message: str, record: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.record = record  # a record that was written all the same, to be taken back


def _db():
    import psycopg  # imported late: front components need no database driver

    return psycopg.connect(DSN, connect_timeout=5, application_name=COMPONENT)


def _need(body: dict, *keys: str) -> list:
    missing = [k for k in keys if body.get(k) in (None, "")]
    if missing:
        raise HttpError(400, f"missing field(s): {', '.join(missing)}")
    return [body[k] for k in keys]


def core_business(path: str, body: dict) -> dict:
    """Write one business record into this line's database."""
    import psycopg

    try:
        with _db() as conn, conn.cursor() as cur:
            if path == "/collection":
                person, agency, period, amount = _need(body, "person", "agency", "period", "amount")
                cur.execute(
                    "INSERT INTO contribution (person_id, agency_id, period, amount, paid_at)"
                    " VALUES (%s, %s, %s, %s, now()) RETURNING id",
                    (person, agency, period, amount),
                )
            elif path == "/account":
                person, delta = _need(body, "person", "delta")
                cur.execute(
                    "UPDATE account SET balance = balance + %s, updated_at = now()"
                    " WHERE person_id = %s RETURNING person_id",
                    (delta, person),
                )
            elif path == "/benefit-payment":
                agency, period, amount = _need(body, "agency", "period", "amount")
                cur.execute(
                    "INSERT INTO payment_batch (agency_id, period, amount, status, return_received)"
                    " VALUES (%s, %s, %s, 'unpaid', false) RETURNING id",
                    (agency, period, amount),
                )
            else:  # /approval
                agency, kind = _need(body, "agency", "kind")
                status = body.get("status", "pending")
                cur.execute(
                    "INSERT INTO approval (agency_id, kind, status, submitted_at)"
                    " VALUES (%s, %s, %s, now()) RETURNING id",
                    (agency, kind, status),
                )
            row = cur.fetchone()
            if row is None:
                raise HttpError(404, "no such record")
            return {"ok": True, "line": LINE, "id": row[0], "component": COMPONENT}
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise HttpError(503, "the database is frozen (read-only) for the maintenance window") from exc
    except psycopg.OperationalError as exc:
        raise HttpError(503, f"database unavailable: {exc}".strip()) from exc
    except psycopg.Error as exc:
        raise HttpError(400, f"rejected by the database: {exc}".strip()) from exc


def front_business(path: str, body: dict) -> dict:
    """Forward a business request to the core service of its insurance line."""
    line = body.get("line", "")
    upstream = UPSTREAMS.get(line)
    if not upstream:
        raise HttpError(400, f"unknown insurance line {line!r}; known: {sorted(UPSTREAMS)}")
    req = urllib.request.Request(
        upstream + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Channel": COMPONENT},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise HttpError(exc.code, exc.read().decode(errors="replace")) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise HttpError(502, f"core service of line {line} unreachable: {exc}") from exc
    answer["via"] = COMPONENT
    if TAX_DSN:
        answer["tax_id"] = book_on_tax_side(path, body, answer)
    return answer


def book_on_tax_side(path: str, body: dict, answer: dict) -> int:
    """The shared platform books what it forwarded on the tax side (N10). Should that fail,
    the answer still carries the line's record id, so whoever sent it can take it back."""
    import psycopg

    try:
        with psycopg.connect(TAX_DSN, connect_timeout=5, application_name=COMPONENT) as conn:
            row = conn.execute(
                "INSERT INTO shared_ledger (line, function, line_record_id, body, booked_at)"
                " VALUES (%s, %s, %s, %s, now()) RETURNING id",
                (body.get("line", ""), path.strip("/"), answer.get("id"),
                 json.dumps(body, ensure_ascii=False)),
            ).fetchone()
    except psycopg.Error as exc:
        raise HttpError(502, f"forwarded as record {answer.get('id')}, but the tax side's bookkeeping "
                             f"refused it: {exc}".strip(), record=answer.get("id")) from exc
    return row[0]


def health() -> dict:
    if MODE == "core":
        with _db() as conn:
            conn.execute("SELECT 1")
    notice = maintenance()
    out = {"status": "ok", "component": COMPONENT, "version": VERSION}
    if notice:
        out["maintenance"] = {"scope": notice.get("scope"), "functions": notice.get("functions", [])}
    return out


class Handler(BaseHTTPRequestHandler):
    server_version = f"si-app/{VERSION}"

    def _send(self, status: int, payload: dict, html: str | None = None) -> None:
        as_html = html is not None and "text/html" in (self.headers.get("Accept") or "")
        data = html.encode() if as_html else json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", ("text/html" if as_html else "application/json") + "; charset=utf-8")
        if status == 503:
            self.send_header("Retry-After", "3600")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _guard(self, fn) -> None:
        try:
            self._send(200, fn())
        except HttpError as exc:
            refused = {"ok": False, "error": str(exc), "component": COMPONENT}
            self._send(exc.status, refused if exc.record is None else {**refused, "id": exc.record})
        except Exception as exc:
            self._send(500, {"ok": False, "error": repr(exc), "component": COMPONENT})

    def do_GET(self) -> None:
        if MODE == "sink" and self.path == "/messages":
            lines = SINK_FILE.read_text(encoding="utf-8").splitlines() if SINK_FILE.exists() else []
            self._send(200, {"messages": [json.loads(x) for x in lines if x.strip()]})
        elif self.path == "/health":
            self._guard(health)
        elif self.path == "/version":
            self._guard(lambda: {"component": COMPONENT, "version": VERSION})
        else:
            self._send(404, {"ok": False, "error": f"no such endpoint {self.path}"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if MODE == "sink" and path == "/notify":
            length = int(self.headers.get("Content-Length") or 0)
            try:
                message = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"ok": False, "error": "body is not JSON"})
                return
            SINK_FILE.parent.mkdir(parents=True, exist_ok=True)
            with SINK_FILE.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(message, ensure_ascii=False) + "\n")
            self._send(200, {"ok": True})
            return
        if path not in BUSINESS:
            self._send(404, {"ok": False, "error": f"no such endpoint {path}"})
            return
        notice = maintenance()
        if blocked_by(notice, path):
            self._send(503, notice.get("json", {"ok": False, "error": "maintenance"}), notice.get("html"))
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"ok": False, "error": "body is not JSON"})
            return
        if MODE == "core":
            body.setdefault("line", LINE)
            self._guard(lambda: core_business(path, body))
        else:
            self._guard(lambda: front_business(path, body))

    def log_message(self, fmt: str, *args) -> None:  # to the journal, one line each
        sys.stderr.write(f"{COMPONENT} {self.command} {self.path} {fmt % args}\n")


def main() -> None:
    if MODE == "core" and not DSN:
        sys.exit(f"{COMPONENT}: SI_DSN is not set")
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    sys.stderr.write(f"{COMPONENT} {VERSION} ({MODE}) listening on 127.0.0.1:{PORT}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
