"""What the plan's vars say. They travel to every playbook as extra vars, which win over
everything a playbook sets itself: so a plan states which lines it keeps back (N5) and
sets none of the names the engine, the operator or the playbooks own."""

from __future__ import annotations

from typing import Any

from cutover.contract import ENGINE_VARS, OPERATOR_ONLY_VARS, PLAN_ROLE_OPTIONS
from cutover.paths import resolve
from cutover.plan.model import Plan
from cutover.plan.problems import Add

# the playbooks that require cutover_data_exclude_lines (their first play refuses to run without
# it): the data hand-off, and the restore, whose interfaces stage sends a record of every line
# not kept back through them
DATA_PLAYBOOKS = ("playbooks/data/screen.yml", "playbooks/data/export.yml", "playbooks/data/handoff.yml",
                  "playbooks/data/reconcile.yml", "playbooks/restore/restore.yml")


def lint_data_exclusion(plan: Plan, add: Add) -> None:
    """N5: which lines are kept back (城居保 in the notice) is stated, never defaulted: a plan
    without it would hand every line over and still reconcile."""
    data_steps = [s.id for s in plan.steps() if s.playbook in DATA_PLAYBOOKS]
    if not data_steps:
        return
    value = plan.plan.vars.get("cutover_data_exclude_lines")
    if value is None:
        add(("plan", "vars") if plan.plan.vars else ("plan",),
            f"the plan hands data over or sends it through the interfaces ({', '.join(data_steps)}) but "
            "does not say which lines it keeps back",
            "set plan.vars.cutover_data_exclude_lines: [cjyl] as the notice says "
            "(write [] to hand over every line)")
    elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        add(("plan", "vars", "cutover_data_exclude_lines"),
            f"cutover_data_exclude_lines must be a list of line ids, not {value!r}", "e.g. [cjyl]")


def lint_engine_vars(plan: Plan, add: Add, locs: dict[str, tuple[Any, ...]]) -> None:
    """What a plan's vars may not set: they travel as extra vars, which win over everything a
    playbook sets itself. The engine's own variables (cutover.contract.PlaybookVars), the
    operator-only switches, the playbooks' internal `_*` names and the roles' inputs (except
    cutover.contract.PLAN_ROLE_OPTIONS) would each override a check without a word."""
    roles = sorted(p.name for p in resolve("roles").iterdir() if p.is_dir())

    def problem(key: str) -> str | None:
        if key in ENGINE_VARS:
            return "which the engine passes to every playbook"
        if key in OPERATOR_ONLY_VARS:
            return "which only an operator's -e may set (never a plan: it switches a check off)"
        if key.startswith("_"):
            return "a playbook's internal name (it would override what the playbook computes)"
        role = next((r for r in roles if key.startswith(r + "_")), None)
        if role and key not in PLAN_ROLE_OPTIONS:
            return (f"an input of the role {role}, which its playbooks set (as an extra var it would "
                    "override every use of the role)")
        return None

    hint = "remove it; see docs/plan-reference.md for what a plan's vars may set"
    for key in plan.plan.vars:
        why = problem(key)
        if why:
            add(("plan", "vars", key), f"plan.vars sets {key}, {why}", hint)
    for step in plan.steps():
        for key in step.vars:
            why = problem(key)
            if why:
                add((*locs[step.id], "vars", key), f"step {step.id} sets {key}, {why}", hint)

