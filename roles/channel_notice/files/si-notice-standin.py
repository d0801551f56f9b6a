#!/usr/bin/python3
"""Answer in place of a stopped business component with the friendly notice (N4).

From the full stop (11-23 18:00) until a front comes back, a counter, the core's own front
or an interface must not refuse connections: people get the notice as a page, apps get it
as JSON, both with status 503 and Retry-After. The channel_notice role starts this program
as the unit si-notice@COMPONENT (which conflicts with COMPONENT.service, so starting the
component again stops it first), as nobody, with its own copy of the notice as its argument
(/var/www/si-maintenance/standin/COMPONENT.json):

    {"json": {...the notice...}, "html": "...", "standin": {"address": "127.0.0.1", "port": 28101}}

Every request, whatever its method and path (/health too: a probe must never take the
notice for the service), gets 503. The file is read on every request, so a changed notice
shows at once. Standard library only: it runs on any host Ansible can manage.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MOST_BODY = 1 << 20  # a request body is read (so the answer is not lost to a reset), never kept
FALLBACK = {"ok": False, "code": "MAINTENANCE", "message": "系统停机升级，暂停办理"}


def read_notice(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


class Handler(BaseHTTPRequestHandler):
    server_version = "si-notice"
    notice_file = ""
    component = ""
    timeout = 30  # a client that sends nothing for this long is dropped (no thread held for ever)

    def _answer(self) -> None:
        length = self.headers.get("Content-Length") or "0"
        if length.isdigit() and int(length) <= MOST_BODY:
            self.rfile.read(int(length))
        try:
            notice = read_notice(self.notice_file)
        except (OSError, ValueError):
            notice = {}
        page = notice.get("html") if isinstance(notice.get("html"), str) else None
        as_page = page is not None and "text/html" in (self.headers.get("Accept") or "")
        answer = notice.get("json") if isinstance(notice.get("json"), dict) else FALLBACK
        data = (page if as_page else json.dumps(answer, ensure_ascii=False)).encode()
        self.close_connection = True
        self.send_response(503)
        self.send_header("Content-Type", ("text/html" if as_page else "application/json") + "; charset=utf-8")
        self.send_header("Retry-After", "3600")
        # says which stopped component this is: a probe tells the stand-in from a live service
        # that answers its own maintenance 503 (version_verify, channel_notice's own check)
        self.send_header("X-SI-Notice-Standin", self.component)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

    def log_message(self, fmt: str, *args) -> None:  # to the unit's journal, one line each
        sys.stderr.write(f"{self.command} {self.path} {fmt % args}\n")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: si-notice-standin.py MAINTENANCE_FILE")
    try:
        standin = read_notice(sys.argv[1])["standin"]
        address, port = str(standin["address"]), int(standin["port"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.exit(f"{sys.argv[1]}: no usable stand-in address and port ({exc})")
    Handler.notice_file = sys.argv[1]
    Handler.component = os.path.basename(sys.argv[1]).removesuffix(".json")
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((address, port), Handler)
    sys.stderr.write(f"notice answering on {address}:{port} from {sys.argv[1]}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
