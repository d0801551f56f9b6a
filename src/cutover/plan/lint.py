"""`plan.check`: every problem as `file:line: message`, with a hint. Never a traceback.

Errors stop a run before the first host is touched; warnings are printed and recorded.
This module loads the plan and runs the checks, one module per subject: schedule (ids,
owners, windows, dependencies), escalation (N14), playbooks (files and tags), inventory (hosts, groups, SQL
fragments, production safety), variables (what the plan's vars may set) and release (the
release manifest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cutover.paths import resolve
from cutover.plan.escalation_check import lint_escalation
from cutover.plan.inventory import lint_inventory
from cutover.plan.loader import LoadedYaml, load_yaml
from cutover.plan.model import Plan, ValidationError, digest_of, resolve_times
from cutover.plan.playbooks import lint_playbooks, lint_site_failure
from cutover.plan.problems import Add, PlanInvalid, Problem
from cutover.plan.release_check import lint_release_manifest
from cutover.plan.schedule import (
    lint_dependencies,
    lint_durations,
    lint_ids_windows_owners,
    lint_verb_order,
    step_locs,
)
from cutover.plan.variables import lint_data_exclusion, lint_engine_vars

__all__ = ["PlanInvalid", "Problem", "check", "load_plan"]


def _pydantic_message(err: dict[str, Any]) -> tuple[str, str]:
    kind, loc = err["type"], err["loc"]
    field = str(loc[-1]) if loc else "plan"
    if kind == "extra_forbidden":
        return f"unknown key {field!r}", "check the spelling against docs/plan-reference.md"
    if kind == "missing":
        return f"missing required key {field!r}", "see docs/plan-reference.md for required keys"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{field}: {err['input']!r} is not one of {expected}", ""
    if kind == "string_pattern_mismatch":
        return f"{field}: {err['input']!r} is not a valid id", "use lower-case letters, digits, - _ ."
    if kind == "too_short":
        return f"{field}: must not be empty", ""
    msg = err["msg"].removeprefix("Value error, ")
    return f"{field}: {msg}", ""


def load_plan(path: str | Path, inventory: str | Path | None = None,
              journal_durations: dict[str, float] | None = None) -> tuple[Plan | None, list[Problem]]:
    """Load, validate and lint a plan. Returns the plan (None if unusable) and problems."""
    path = resolve(path)
    doc = load_yaml(path)  # syntax errors raise with file:line
    name = str(path.relative_to(resolve("."))) if path.is_relative_to(resolve(".")) else str(path)
    problems: list[Problem] = []

    def add(loc: tuple[Any, ...], message: str, hint: str = "", severity: str = "error",
            at: tuple[str, int] | None = None) -> None:
        """A problem at loc in the plan, or `at` (file, line) in another file."""
        file, line = at or (name, doc.line(loc))
        problems.append(Problem(file, line, message, hint, severity))

    if not isinstance(doc.data, dict):
        add((), "a plan is a mapping with `plan:` and `phases:`")
        return None, problems
    try:
        plan = Plan.model_validate(doc.data)
    except ValidationError as exc:
        for err in exc.errors():
            add(tuple(err["loc"]), *_pydantic_message(err))
        return None, sorted(problems, key=lambda p: p.line)
    plan.path, plan.digest = path, digest_of(path)
    time_errors: list[tuple[tuple[Any, ...], str, str]] = []
    resolve_times(plan, time_errors)
    for loc, msg, hint in time_errors:
        add(loc, msg, hint)
    _lint(plan, doc, add, inventory, journal_durations or {})
    problems.sort(key=lambda p: (p.line, p.severity))
    return plan, problems


def check(path: str | Path, inventory: str | Path | None = None,
          journal_durations: dict[str, float] | None = None) -> tuple[Plan, list[Problem]]:
    """Load and lint; raise PlanInvalid when there is any error."""
    plan, problems = load_plan(path, inventory, journal_durations)
    if plan is None or any(p.severity == "error" for p in problems):
        raise PlanInvalid(problems)
    return plan, problems


def _lint(plan: Plan, doc: LoadedYaml, add: Add, inventory: str | Path | None,
          durations: dict[str, float]) -> None:
    locs = step_locs(plan)
    by_id = lint_ids_windows_owners(plan, doc, add, locs)
    lint_dependencies(plan, add, locs, by_id)
    lint_verb_order(plan, add, locs)
    lint_escalation(plan, add)
    lint_playbooks(plan, add, locs)
    lint_site_failure(plan, add, locs)
    lint_data_exclusion(plan, add)
    groups = lint_inventory(plan, add, locs, inventory)
    lint_release_manifest(plan, add, locs, groups)
    lint_engine_vars(plan, add, locs)
    lint_durations(plan, add, durations)
