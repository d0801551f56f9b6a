"""`cutover.status`: every step with its state, planned and actual times, who acted and
what evidence it left, grouped by site where the inventory has sites; and, where it declares
its site tree (N17), the site × phase matrix (`sites_matrix`) the status and the report show."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cutover.engine import journal_db
from cutover.engine.journal import Journal
from cutover.engine.lock import RunPresence
from cutover.engine.scope import Scope
from cutover.engine.states import AttemptStatus, StepState
from cutover.errors import CutoverError
from cutover.plan.model import Plan, Step
from cutover.sites import SiteTree, _close


def _dt(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _evidence_summary(evidence: list[dict[str, Any]]) -> str:
    for record in reversed(evidence):
        if record["kind"] == "gate":
            gate = record["data"]
            return str(gate.get("summary") or ("passed" if gate.get("passed") else "failed"))
        if record["kind"] == "override":
            return f"override: {record['data']['by']}: {record['data']['reason']}"
        if record["kind"] == "confirmation":
            return f"confirmed by {record['data']['by']}"
    for record in reversed(evidence):
        if record["kind"] == "result":
            stats = record["data"].get("stats", {})
            changed = sum(host_stats.get("changed", 0) for host_stats in stats.values())
            return f"{len(stats)} host(s), {changed} change(s)"
    return ""


def _site_confirmations(step: Step, tree: SiteTree,
                        confirmations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """For a step each site of a level confirms (N11, N12): who confirmed where, who is still to."""
    if not step.sites:
        return None
    confirmed = {row["site"]: {"by": row["by"], "note": row["note"], "at": row["at"]}
                 for row in reversed(confirmations) if row["step_id"] == step.id and row["site"]}
    level = tree.at_level(step.sites)
    return {"level": step.sites, "confirmed": {site: confirmed[site] for site in level if site in confirmed},
            "waiting": [site for site in level if site not in confirmed]}


def collect(plan: Plan, journal: Journal | None, inventory=None, *,
            scope: Scope | None = None) -> dict[str, Any]:
    """`scope`: the inventory's sites already read (cutover.serve reads them once, not per poll)."""
    if scope is None and inventory is not None:
        try:
            scope = Scope.of(inventory)
        except CutoverError:  # status must show even with a broken inventory
            scope = None
    sites = {host: str(site) for host, site in scope.tree.host_site.items() if site} if scope else {}
    touches = {step.id: scope.step_sites(step) for step in plan.steps()} if scope else {}
    tree = scope.tree if scope else SiteTree({}, {})
    rows = {row["id"]: dict(row) for row in journal.steps()} if journal else {}
    overrides = journal.all("overrides") if journal else []
    confirmations = journal.all("confirmations") if journal else []
    attempts = journal.all("attempts") if journal else []
    out_steps = []
    for step in plan.steps():
        row = rows.get(step.id, {})
        evidence = journal.evidence(step.id) if journal else []
        start, end = _dt(row.get("actual_start")), _dt(row.get("actual_end"))
        last = next((attempt for attempt in reversed(attempts)
                     if attempt["step_id"] == step.id and not attempt["check_mode"]), None)
        by_site: dict[str, dict[str, int]] = {}
        if last and last.get("stats"):
            for host, host_stats in json.loads(last["stats"]).items():
                site = by_site.setdefault(sites.get(host, "—"), {"hosts": 0, "failed": 0})
                site["hosts"] += 1
                site["failed"] += int(bool(host_stats.get("failures") or host_stats.get("dark")))
        out_steps.append({
            "id": step.id, "title": step.title, "phase": step.phase, "verb": step.verb,
            "kind": step.kind, "requirement": step.requirement,
            "owner": step.owner, "cooperating": step.cooperating,
            "state": row.get("state", StepState.PENDING),
            "planned_start": step.start.isoformat() if step.start else None,
            "planned_end": step.end.isoformat() if step.end else None,
            "actual_start": row.get("actual_start"), "actual_end": row.get("actual_end"),
            "duration_s": (end - start).total_seconds() if start and end else None,
            "attempts": row.get("attempts", 0),
            "acted_by": [f"override: {override['by']}" for override in overrides
                         if override["step_id"] == step.id]
            + [f"confirmed: {confirmation['by']}"
               + (f" for {confirmation['site']}" if confirmation["site"] else "")
               for confirmation in confirmations if confirmation["step_id"] == step.id],
            "evidence_summary": row.get("summary") or _evidence_summary(evidence),
            "evidence": evidence,
            "sites": by_site,
            "site_states": journal.site_states(step.id) if journal else {},
            "touches": sorted(touches.get(step.id, ())),  # the sites it works at (N17)
            "site_confirmations": _site_confirmations(step, tree, confirmations),
        })
    return {
        "plan": plan.plan.name, "plan_hash": plan.digest,
        "journal": journal_db.shown(journal.path) if journal else None,
        "runs": journal.all("runs") if journal else [],
        "sleeping": [_sleeper(journal, row) for row in journal.sleeping_runs()] if journal else [],
        "steps": out_steps,
        "sites_matrix": site_matrix(plan, journal, scope.tree, touches, rows, attempts) if scope else None,
        "overrides": overrides, "confirmations": confirmations,
        "notifications": journal.all("notifications") if journal else [],
        # N14, N18: the window called off (cutover.abort): by whom, why, and what came of it
        "called_off": _called_off(journal) if journal else None,
        "escalations": journal.all("escalations") if journal else [],  # who was told of a fault (N14)
        # N18: who let a data rollback discard writes made since the snapshot, and which
        "discarded_writes": [record["data"] | {"at": record["at"]} for record in journal.evidence("rollback")
                             if record["kind"] == "discard_writes"] if journal else [],
    }


def _called_off(journal: Journal) -> dict[str, Any] | None:
    """The call-off: who, why, when, how its run ended, and the hand-off it withdrew."""
    run = journal.called_off()
    if run is None:
        return None
    withdrawn = [record["data"] for record in journal.evidence("abort")
                 if record["kind"] == "handoff_withdrawn"]
    return {"by": run["options"].get("by"), "reason": run["options"].get("reason"),
            "past_point_of_no_return": run["options"].get("past_point_of_no_return", []),
            "at": run["started_at"], "ended_at": run["ended_at"], "status": run["status"], "run": run["id"],
            "handoff_withdrawn": withdrawn[-1] if withdrawn else None}


def _sleeper(journal: Journal, row) -> dict[str, Any]:
    """A run that sleeps until a step's not_before, without the lock: which step, until when,
    and whether its process still lives (`pid`, None when it is gone)."""
    alive = RunPresence.alive(journal.path, row["id"])
    return {"run": row["id"], "verb": row["verb"], "operator": row["operator"], "step": row["waits_for"],
            "until": row["waits_until"], "alive": alive is not None,
            "pid": alive.get("pid") if alive else None}


# ---------------------------------------------------------------- by site (N17)

STOPPED = (StepState.FAILED, StepState.INTERRUPTED)


def _span(start: str | None, end: str | None) -> dict[str, str | None]:
    return {"start": start, "end": end}


def _outer(spans: list[dict[str, str | None]]) -> dict[str, str | None]:
    """From the earliest start to the latest end (compared as times: offsets may differ)."""
    starts = [span["start"] for span in spans if span["start"]]
    ends = [span["end"] for span in spans if span["end"]]
    return _span(min(starts, key=_dt, default=None), max(ends, key=_dt, default=None))


def _step_at_site(step_row: dict[str, Any], site_rows: dict[str, dict[str, Any]], site: str,
                  attempts: dict[int, dict[str, Any]]) -> tuple[str, bool, str | None, str | None]:
    """(state, passed by an override, actual start, actual end) of one step at one site. A step
    the journal has no state per site for (done before sites were recorded, or a manual step
    waiting for its confirmation) stands as the step itself does, at every site it touches."""
    state = str(step_row.get("state", StepState.PENDING))
    row = site_rows.get(site)
    if row is None:
        if site_rows and state != StepState.WAITING:
            return StepState.PENDING, False, None, None
        if state == StepState.PENDING:
            return state, False, None, None
        return state, False, step_row.get("actual_start"), step_row.get("actual_end")
    attempt = attempts.get(row["attempt_id"]) if row["attempt_id"] is not None else None
    if attempt is None:
        return row["state"], False, None, None
    return (row["state"], attempt["status"] == AttemptStatus.OVERRIDDEN,
            attempt["started_at"], attempt["ended_at"])


def _cell_state(states: list[tuple[str, bool]]) -> str:
    """One phase at one site, from its steps there."""
    only = [state for state, _ in states]
    if any(state in STOPPED for state in only):
        return StepState.FAILED
    for state in (StepState.RUNNING, StepState.WAITING):
        if state in only:
            return state
    if all(state == StepState.DONE for state in only):
        return "overridden" if any(overridden for _, overridden in states) else StepState.DONE
    if any(state in (StepState.DONE, StepState.PARTIAL) for state in only):
        return StepState.PARTIAL
    return StepState.PENDING


def site_matrix(plan: Plan, journal: Journal | None, tree: SiteTree, touches: dict[str, set[str]],
                step_rows: dict[str, dict[str, Any]],
                attempts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where each phase stands at each site (N17: the province, its cities and counties carry
    out the window together): rows in the tree's order (the province first, each city followed
    by its counties), one cell per phase, None where no step of the phase touches the site.
    A cell has the phase's state there (failed, running, waiting, overridden, done, partial,
    pending), the steps' states, the phase's planned window and when its steps actually ran
    there. `touches`: the sites each step works at (Scope.step_sites). None for an inventory
    without a site tree."""
    if not tree.sites:
        return None
    by_attempt = {attempt["id"]: attempt for attempt in attempts}
    site_rows: dict[str, dict[str, dict[str, Any]]] = {}
    for row in journal.all("step_sites") if journal else []:
        site_rows.setdefault(row["step_id"], {})[row["site"]] = row
    phases = [{"id": phase.id, "title": phase.title, "verb": phase.verb,
               "planned": _span(phase.start.isoformat() if phase.start else None,
                                phase.end.isoformat() if phase.end else None)} for phase in plan.phases]
    out_rows = []
    for site in tree.ordered():
        cells: dict[str, dict[str, Any] | None] = {}
        for phase, shown in zip(plan.phases, phases, strict=True):
            here = [step for step in phase.steps if site.id in touches[step.id]]
            if not here:
                cells[phase.id] = None
                continue
            at = {step.id: _step_at_site(step_rows.get(step.id, {}), site_rows.get(step.id, {}), site.id,
                                         by_attempt) for step in here}
            cells[phase.id] = {
                "state": _cell_state([(state, overridden) for state, overridden, _, _ in at.values()]),
                "steps": {step_id: "overridden" if overridden else state
                          for step_id, (state, overridden, _, _) in at.items()},
                "planned": shown["planned"],
                "actual": _outer([_span(start, end) for _, _, start, end in at.values()])}
        touched = [cell for cell in cells.values() if cell]
        out_rows.append({
            "site": site.id, "name": site.name, "level": tree.level(site.id), "cells": cells,
            "planned": _outer([cell["planned"] for cell in touched]),
            "actual": _outer([cell["actual"] for cell in touched])})
    return {"phases": phases, "rows": out_rows}


def for_site(collected: dict[str, Any], site: str) -> dict[str, Any]:
    """The status narrowed to one site: its row of the matrix and the steps that touch it,
    each with its state there (`state_at_site`). An unknown site is refused, with the nearest
    site id."""
    matrix = collected.get("sites_matrix")
    if not matrix:
        raise CutoverError(f"--site {site}: no sites to narrow to: the inventory declares no site "
                           "tree (cutover_sites) or cannot be read",
                           "leave --site out; the status shows every step")
    known = {row["site"]: row for row in matrix["rows"]}
    if site not in known:
        raise CutoverError(f"--site {site!r} is not a site of the inventory "
                           f"(its sites: {', '.join(list(known)[:8])}{' …' if len(known) > 8 else ''})",
                           _close(site, known))
    here = {step_id: state for cell in known[site]["cells"].values() if cell
            for step_id, state in cell["steps"].items()}
    return {**collected, "site": site, "sites_matrix": {**matrix, "rows": [known[site]]},
            "steps": [step | {"state_at_site": here.get(step["id"])} for step in collected["steps"]
                      if site in step["touches"]]}
