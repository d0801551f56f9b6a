"""The verdict of the version check (N8): what each probe found, compared with the release
manifest, one row per probe. Plain Python instead of a Jinja program, so it is unit-tested
(tests/unit/test_version_verify_filter.py), including replies a host makes up.

Every component must be asked at least once: a component whose probes all went unasked
gets a failing row, never silence.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

# a reply is shown to operators and stored as evidence: kept short, whatever a host sends
MOST = 200
JSON_OBJECT = re.compile(r"\s*\{")


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MOST else text[:MOST] + "…"


def _row(host: str, component: Mapping[str, Any], probe: str, found: str, ok: bool) -> dict[str, Any]:
    return {"host": host, "component": component["name"], "expected": component["version"],
            "probe": probe, "found": found, "ok": ok}


def _file(host: str, result: Mapping[str, Any]) -> dict[str, Any]:
    component, probe = result["item"]
    found = None
    if "content" in result:
        try:
            found = base64.b64decode(result["content"]).decode("utf-8", "replace").strip()
        except (binascii.Error, ValueError):
            found = None
    return _row(host, component, f"file {probe['file']}", "missing" if found is None else _text(found),
                found == str(component["version"]))


def _http(host: str, result: Mapping[str, Any], require_running: bool) -> dict[str, Any]:
    component, probe = result["item"]
    status = result.get("status", -1)
    body = result.get("json")
    if body is None:
        content = result.get("content") or ""
        try:
            body = json.loads(content) if isinstance(content, str) and JSON_OBJECT.match(content) else {}
        except ValueError:
            body = {}
    found = body.get(probe.get("json_key") or "version") if status == 200 and isinstance(body, dict) else None
    # stopped for the window: nothing listens, or the notice's stand-in answers in its place (N4);
    # the stand-in names the component it stands for, which a live service in maintenance does not
    notice = (status == 503 and isinstance(body, dict) and body.get("code") == "MAINTENANCE"
              and result.get("x_si_notice_standin") == component["name"])
    down = status == -1 or notice
    shown = (_text(found) if found is not None else "not running" if status == -1
             else "not running (the notice answers)" if notice else f"HTTP {status}")
    ok = (isinstance(found, str) and found == str(component["version"])) or (down and not require_running)
    return _row(host, component, f"http {probe['http']}", shown, ok)


def _command(host: str, result: Mapping[str, Any]) -> dict[str, Any]:
    component, probe = result["item"]
    rc = result.get("rc", 1)
    found = str(result.get("stdout") or "").strip()
    return _row(host, component, f"command {probe['command']}", _text(found) if rc == 0 else f"error rc={rc}",
                rc == 0 and found == str(component["version"]))


def _package(host: str, component: Mapping[str, Any], probe: Mapping[str, Any],
             packages: Mapping[str, Any]) -> dict[str, Any]:
    installed = packages.get(probe["package"]) or []
    found = str(installed[0].get("version")) if installed else None
    version = str(component["version"])
    shown = "not installed" if found is None else _text(found)
    return _row(host, component, f"package {probe['package']}", shown,
                found is not None and (found == version or found.startswith(version + "-")))


def version_verify_rows(components: Iterable[Mapping[str, Any]], host: str, files: list[Mapping[str, Any]],
                        https: list[Mapping[str, Any]], commands: list[Mapping[str, Any]],
                        packages: Mapping[str, Any] | None, require_running: bool) -> list[dict[str, Any]]:
    """One row per probe (the results of the role's looped slurp, uri and command tasks, and
    the package facts), then a failing row for each component no probe asked."""
    components = list(components)
    rows = [_file(host, r) for r in files]
    rows += [_http(host, r, bool(require_running)) for r in https]
    rows += [_command(host, r) for r in commands]
    rows += [_package(host, c, p, packages or {}) for c in components for p in c.get("probes") or []
             if p.get("kind") == "package"]
    asked = {row["component"] for row in rows}
    rows += [_row(host, c, "none", "no probe was asked", False) for c in components if c["name"] not in asked]
    return rows


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"version_verify_rows": version_verify_rows}
