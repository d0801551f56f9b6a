"""The version check of one host (N8), in one task: ask every probe, judge what each found
against the release manifest, one row per probe, and hand the rows to the run's record.

#17: this was four tasks per host (the probes, the package facts, the record, the verdict's
input) on top of the verdict itself; each was a task per host on the controller. Now the probes
are one module call (library/version_answers.py; the installed packages one more, only when a
component has a package probe), and the verdict is plain Python here, unit-tested
(tests/unit/test_version_verify_filter.py) including replies a host makes up. The rows go to
the run's record (`ansible_stats` `versions`, as `set_stats` gave them) whether or not they
agree; the role's next task fails naming each that does not.

The input is checked against the role's own spec (meta/argument_specs.yml, entry main) before
the host is asked anything, so the restore's before_start, which builds the components from
the manifest and imports this task directly, is held to the same spec as a caller of main.

Every component must be asked at least once: a component whose probes all went unasked
gets a failing row, never silence. Each answer is judged against the probe this action sent
in its place, never against what the host says it answered (its echoed `item`): a probe
with no answer, or whose answer is no mapping, fails its row.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

# a reply is shown to operators and stored as evidence: kept short, whatever a host sends
MOST = 200
JSON_OBJECT = re.compile(r"\s*\{")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
PUBLISHES = ("versions",)  # the run's record key of the rows (cutover.contract.EVIDENCE)
SPEC = Path(__file__).resolve().parents[1] / "meta" / "argument_specs.yml"


def _spec() -> dict[str, Any]:
    """The options of the role's main entry point, as its argument check reads them."""
    return yaml.safe_load(SPEC.read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]


def _text(value: Any) -> str:
    """What a host replied, as shown and stored: control characters as ?, shown, never obeyed."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = CONTROL.sub("?", text)
    return text if len(text) <= MOST else text[:MOST] + "…"


def _row(host: str, component: Mapping[str, Any], probe: str, found: str, ok: bool) -> dict[str, Any]:
    return {"host": host, "component": component["name"], "expected": component["version"],
            "probe": probe, "found": found, "ok": ok}


def _file(host: str, component: Mapping[str, Any], probe: Mapping[str, Any],
          result: Mapping[str, Any]) -> dict[str, Any]:
    found = None
    if "content" in result:
        try:
            found = base64.b64decode(result["content"]).decode("utf-8", "replace").strip()
        except (binascii.Error, ValueError):
            found = None
    return _row(host, component, f"file {probe['file']}", "missing" if found is None else _text(found),
                found == str(component["version"]))


def _http(host: str, component: Mapping[str, Any], probe: Mapping[str, Any], result: Mapping[str, Any],
          require_running: bool) -> dict[str, Any]:
    status = result.get("status", -1)
    body = result.get("json")
    if body is None:
        content = result.get("content") or ""
        try:
            body = json.loads(content) if isinstance(content, str) and JSON_OBJECT.match(content) else {}
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python reads
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


def _command(host: str, component: Mapping[str, Any], probe: Mapping[str, Any],
             result: Mapping[str, Any]) -> dict[str, Any]:
    rc = result.get("rc", 1)
    found = str(result.get("stdout") or "").strip()
    return _row(host, component, f"command {probe['command']}", _text(found) if rc == 0 else f"error rc={rc}",
                rc == 0 and found == str(component["version"]))


def _package(host: str, component: Mapping[str, Any], probe: Mapping[str, Any],
             packages: Mapping[str, Any]) -> dict[str, Any]:
    installed = packages.get(probe["package"])
    first = installed[0] if isinstance(installed, list) and installed else None
    found = str(first.get("version")) if isinstance(first, Mapping) else None
    version = str(component["version"])
    shown = "not installed" if found is None else _text(found)
    return _row(host, component, f"package {probe['package']}", shown,
                found is not None and (found == version or found.startswith(version + "-")))


def _answered(host: str, components: list[Mapping[str, Any]], kind: str, answers: Any,
              judge: Any) -> list[dict[str, Any]]:
    """A row per probe of this kind sent, judged on the answer in its place; none: a failing row."""
    answers = answers if isinstance(answers, list) else []
    rows = []
    for n, (component, probe) in enumerate(pairs(components, kind)):
        answer = answers[n] if n < len(answers) else None
        if isinstance(answer, Mapping):
            rows.append(judge(host, component, probe, answer))
        else:
            rows.append(_row(host, component, f"{kind} {probe[kind]}", "no answer", False))
    return rows


def version_verify_rows(components: Iterable[Mapping[str, Any]], host: str, files: Any, https: Any,
                        commands: Any, packages: Mapping[str, Any] | None,
                        require_running: bool) -> list[dict[str, Any]]:
    """One row per probe (what the module answered for the file, HTTP and command probes, and
    the package facts), then a failing row for each component no probe asked."""
    components = list(components)
    rows = _answered(host, components, "file", files, _file)
    rows += _answered(host, components, "http", https,
                      lambda h, c, p, r: _http(h, c, p, r, bool(require_running)))
    rows += _answered(host, components, "command", commands, _command)
    packages = packages if isinstance(packages, Mapping) else {}
    rows += [_package(host, c, p, packages) for c, p in pairs(components, "package")]
    asked = {row["component"] for row in rows}
    rows += [_row(host, c, "none", "no probe was asked", False) for c in components if c["name"] not in asked]
    return rows


def pairs(components: list[Mapping[str, Any]], kind: str) -> list[list[Any]]:
    """[component, probe] of each probe of this kind, as the module answers them."""
    return [[c, p] for c in components for p in c.get("probes") or [] if p.get("kind") == kind]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        given = {"version_verify_components": self._task.args.get("components"),
                 "version_verify_require_running": self._task.args.get("require_running", True)}
        checked = ArgumentSpecValidator(_spec()).validate(given)
        if checked.error_messages:  # before the host is asked anything
            return {**result, "failed": True, "changed": False,
                    "msg": "version_verify: " + "; ".join(checked.error_messages)}
        components = checked.validated_parameters["version_verify_components"]
        require_running = checked.validated_parameters["version_verify_require_running"]
        try:
            found = self._execute_module(
                module_name="ansible.legacy.version_answers", task_vars=task_vars,
                module_args={"files": pairs(components, "file"), "https": pairs(components, "http"),
                             "commands": pairs(components, "command")})
            if found.get("failed") or found.get("unreachable"):
                return {**result, **found}
            packages: dict[str, Any] = {}
            packages_asked = bool(pairs(components, "package"))
            if packages_asked:
                facts = self._execute_module(module_name="ansible.legacy.package_facts",
                                             module_args={"manager": "auto"}, task_vars=task_vars)
                if facts.get("failed") or facts.get("unreachable"):
                    return {**result, **facts}
                packages = (facts.get("ansible_facts") or {}).get("packages") or {}
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        try:
            rows = version_verify_rows(components, str(task_vars.get("inventory_hostname", "")),
                                       found.get("files"), found.get("https"), found.get("commands"),
                                       packages, require_running)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, RecursionError) as exc:
            return {**result, "failed": True, "changed": False,
                    "msg": f"version_verify: the host's answer is not the probe module's "
                           f"(a {type(exc).__name__}); no version of this host was checked"}
        said = [found.get("warnings"), facts.get("warnings") if packages_asked else None]
        # a host's other shapes are dropped
        warnings = [w for given in said if isinstance(given, list) for w in given]
        if warnings:
            result["warnings"] = warnings
        return {**result, "changed": False, "rows": rows,
                "ansible_stats": {"data": {PUBLISHES[0]: rows}, "per_host": False, "aggregate": True}}
