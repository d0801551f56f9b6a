"""The status page as a Starlette application, served by uvicorn (`invoke cutover.serve`).

Read-only: every route is GET (HEAD); anything else is 405, and nothing here writes to the
journal. The page is a shell rendered by Jinja2 with autoescape (as the report is); its script
(/app.js, the only script the Content-Security-Policy lets run) polls /api/status and puts every
value in with textContent. No external resource: the machine may have no internet.

With a token (access.py), every request carries it: `Authorization: Bearer TOKEN`, or
`?token=TOKEN` on a link; a page opened by such a link is answered with a cookie holding it
(HttpOnly, SameSite=Strict) and sent to the same address without the token, so it leaves the
address bar and the page's own requests carry the cookie. Tokens are compared in constant time
and never logged (uvicorn's access log is off: it would print `?token=`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from cutover.engine import status as status_mod
from cutover.engine.forecast import forecast, rehearsal_journal, step_durations
from cutover.engine.journal import Journal
from cutover.engine.journal_db import Where, journal_exists
from cutover.engine.scope import Scope
from cutover.engine.session import Session
from cutover.errors import CutoverError
from cutover.paths import ROOT
from cutover.plan.model import Plan
from cutover.serve import view

TEMPLATES = ROOT / "templates" / "serve"
POLL_SECONDS = 3
COOKIE = "cutover_page_token"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a link with ?token= is never passed on
    "Cache-Control": "no-store",
}
# every value from the plan or the journal may be hostile: autoescape always (see report/render.py
# for why select_autoescape would not do for .html.j2)
_HTML = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                           undefined=jinja2.StrictUndefined)


class StatusSource:
    """The journal as the page shows it: status.collect over the plan and the inventory's sites
    (read once), read again at most once a second (`fresh_for`) however many people watch."""

    def __init__(self, plan: Plan, journal: Where, scope: Scope | None, expected: dict[str, dict[str, Any]],
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 fresh_for: float = 1.0) -> None:
        self.plan, self.journal, self.scope, self.expected, self.now = plan, journal, scope, expected, now
        self.fresh_for = fresh_for  # seconds a reading is shown again to the next viewers
        self._lock = threading.Lock()
        self._read: tuple[float, dict[str, Any]] | None = None

    @classmethod
    def of(cls, session: Session, artifacts: Path, fresh_for: float = 1.0) -> StatusSource:
        """The page's source for a verb's footing: its plan and journal; the inventory's sites, read
        now (a broken inventory shows no sites, as in cutover.status); the forecast from the latest
        rehearsal under `artifacts`, as cutover.status makes it."""
        try:
            scope = Scope.of(session.inventory)
        except CutoverError:
            scope = None
        expected = forecast(session.plan, step_durations(rehearsal_journal(artifacts)))
        return cls(session.plan, session.journal_path, scope, expected, fresh_for=fresh_for)

    def collected(self) -> dict[str, Any]:
        with self._lock:
            if self._read is None or time.monotonic() - self._read[0] >= self.fresh_for:
                self._read = (time.monotonic(), self._collect())
            return self._read[1]

    def _collect(self) -> dict[str, Any]:
        if not journal_exists(self.journal):
            return status_mod.collect(self.plan, None, scope=self.scope)
        with Journal.open(self.journal, create=False) as journal:
            return status_mod.collect(self.plan, journal, scope=self.scope)

    def page(self, department: str | None = None) -> dict[str, Any]:
        return view.page(self.plan, self.collected(), self.expected, self.now(), department)


class Guard(BaseHTTPMiddleware):
    """The token (when there is one) and the headers every answer carries."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    def _valid(self, given: str | None) -> bool:
        return bool(given) and self.token is not None and hmac.compare_digest(
            given.encode("utf-8", "replace"), self.token.encode())

    async def dispatch(self, request: Request, call_next: Callable) -> Response:
        response = await self._answer(request, call_next)
        response.headers.update(HEADERS)
        return response

    async def _answer(self, request: Request, call_next: Callable) -> Response:
        if self.token is None:
            return await call_next(request)
        header = request.headers.get("authorization", "")
        bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
        in_link = request.query_params.get("token")
        if self._valid(bearer) or self._valid(request.cookies.get(COOKIE)):
            return await call_next(request)
        if self._valid(in_link):
            path = request.url.path
            if request.method == "GET" and (path == "/" or path.startswith("/department/")):
                rest = urlencode([(key, value) for key, value in request.query_params.multi_items()
                                  if key != "token"])
                moved = RedirectResponse(quote(path) + (f"?{rest}" if rest else ""), status_code=303)
                moved.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
                return moved
            return await call_next(request)
        return PlainTextResponse("a read-only token is required: Authorization: Bearer TOKEN, or "
                                 "?token=TOKEN\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})


def create_app(source: StatusSource, token: str | None) -> Starlette:
    def shell(request: Request) -> Response:
        department = request.path_params.get("name")
        try:
            data = source.page(department)
        except CutoverError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=404)
        html = _HTML.get_template("page.html.j2").render(data=data, department=department,
                                                         poll_seconds=POLL_SECONDS)
        return HTMLResponse(html)

    def api(request: Request) -> Response:
        try:
            return JSONResponse(source.page(request.query_params.get("department")))
        except CutoverError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    def asset(name: str, media_type: str) -> Callable[[Request], Response]:
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        return lambda request: Response(text, media_type=media_type)

    routes = [Route("/", shell, methods=["GET"]),
              Route("/department/{name}", shell, methods=["GET"]),
              Route("/api/status", api, methods=["GET"]),
              Route("/app.js", asset("app.js", "text/javascript; charset=utf-8"), methods=["GET"]),
              Route("/app.css", asset("app.css", "text/css; charset=utf-8"), methods=["GET"])]
    # Without a token the page is this machine's only; a web page elsewhere that rebinds its own
    # name to 127.0.0.1 (DNS rebinding) must not read it through the operator's browser: only
    # requests naming this machine's loopback as their Host are answered.
    loopback = ["127.0.0.1", "localhost"]
    local = [] if token else [Middleware(TrustedHostMiddleware, allowed_hosts=loopback)]
    return Starlette(routes=routes, middleware=[*local, Middleware(Guard, token=token)])
