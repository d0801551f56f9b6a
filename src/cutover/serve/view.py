"""What the live status page shows, from what `cutover.status` collects (engine/status.collect:
the same truth, never a second computation of a state), for everyone who is not at a terminal:
the site × phase matrix (N17), the timeline with a now-line and countdowns, steps late or at
risk (the forecast), a view per department (N15) and the recent notifications, overrides and
confirmations with names and reasons (N16).

Only what is listed here leaves the server: no evidence records, no run options (inventory
paths, limits), no process ids; the journal as `shown()` prints it (a URL without a secret).
Times are formatted here, in the plan's time zone, and counted down with the engine's own
`left_text`: the page's script only puts text into the page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cutover.engine.clock import RehearsalClock
from cutover.engine.states import StepState
from cutover.engine.waiting import left_text
from cutover.errors import CutoverError
from cutover.plan.model import Plan
from cutover.plan.problems import close_match
from cutover.plan.times import fmt

STEP_FIELDS = ("id", "title", "phase", "kind", "requirement", "owner", "cooperating", "state", "attempts",
               "evidence_summary", "acted_by")
LOG_SIZE = 40
DEADLINES = 6


def _dt(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _short(value: str | dt.datetime | None, plan: Plan) -> str:
    """`11-20 18:00` in the plan's time zone; "" for no time."""
    moment = _dt(value) if isinstance(value, str) else value
    return fmt(moment, plan.tz)[5:] if moment else ""


def _span(start: str | None, end: str | None, plan: Plan) -> str:
    if not start:
        return ""
    return f"{_short(start, plan)} → {_short(end, plan) if end else '…'}"


def plan_now(plan: Plan, runs: list[dict[str, Any]], now: dt.datetime) -> tuple[dt.datetime, int | None]:
    """Where now falls on the plan's time line, and the rehearsal run that says so (None: the
    real clock). A rehearsal waits for no time: its clock maps its verb's first planned start
    onto the moment its run started (engine/clock.py), so the latest rehearsal run places now."""
    rehearsals = [run for run in runs if run["rehearsal"] and not run["check_mode"]]
    if not rehearsals:
        return now, None
    run = rehearsals[-1]
    first = min((step.start for step in plan.steps() if step.verb == run["verb"] and step.start),
                default=None)
    started = dt.datetime.fromisoformat(run["started_at"])
    return now - RehearsalClock(first, now=lambda: started).offset, run["id"]


def departments(plan: Plan) -> list[str]:
    """Every responsible and cooperating department the plan names (N15), in plan order."""
    names: list[str] = []
    for step in plan.steps():
        for name in [step.owner, *step.cooperating]:
            if name and name not in names:
                names.append(name)
    return names


def _step(step: dict[str, Any], expected: dict[str, Any], now: dt.datetime, plan: Plan) -> dict[str, Any]:
    done = step["state"] == StepState.DONE
    due = _dt(step["planned_end"])
    guess = expected.get(step["id"]) or {}
    forecast = ""
    if not done and guess.get("expected_s") is not None and guess.get("end"):
        forecast = f"~{left_text(guess['expected_s'])}, ends {_short(guess['end'], plan)}"
    waiting_sites = (step["site_confirmations"] or {}).get("waiting") or []
    return {**{key: step[key] for key in STEP_FIELDS},
            "planned": _span(step["planned_start"], step["planned_end"], plan),
            "actual": _span(step["actual_start"], step["actual_end"], plan),
            "forecast": forecast,
            "late": not done and due is not None and now > due,
            "at_risk": not done and guess.get("fits") is False,
            "waiting": step["state"] == StepState.WAITING,  # for a confirmation (cutover.confirm)
            "waiting_sites": waiting_sites if step["state"] == StepState.WAITING else []}


def _timeline(steps: list[dict[str, Any]], collected: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Each step's planned window as a bar on the plan's whole time line (percent), and now on it."""
    spans = {step["id"]: (_dt(step["planned_start"]), _dt(step["planned_end"]))
             for step in collected["steps"]}
    starts = [start for start, _ in spans.values() if start]
    ends = [end or start for start, end in spans.values() if start]
    if not starts:
        return {"now_pct": None, "bars": {}}
    first, last = min(starts), max(ends)
    width = max((last - first).total_seconds(), 1.0)

    def pct(moment: dt.datetime) -> float:
        return round((moment - first).total_seconds() / width * 100, 2)

    bars = {}
    for step in steps:
        start, end = spans[step["id"]]
        if start:
            bars[step["id"]] = {"left": pct(start), "width": max(pct(end or start) - pct(start), 0.6)}
    return {"now_pct": pct(now) if first <= now <= last else None,
            "now_side": "before" if now < first else "after" if now > last else "",
            "bars": bars}


def _deadlines(steps: list[dict[str, Any]], collected: dict[str, Any], now: dt.datetime,
               plan: Plan) -> list[dict[str, str]]:
    """The next not_before and due_by of the steps not done yet, soonest first, counted down."""
    raw = {step["id"]: step for step in collected["steps"]}
    out = []
    for step in steps:
        if step["state"] == StepState.DONE:
            continue
        for kind, key in (("not_before", "planned_start"), ("due_by", "planned_end")):
            moment = _dt(raw[step["id"]][key])
            if moment and moment > now:
                out.append((moment, {"kind": kind, "step": step["id"], "title": step["title"],
                                     "at": _short(moment, plan),
                                     "in": left_text((moment - now).total_seconds())}))
    return [entry for _, entry in sorted(out, key=lambda pair: pair[0])[:DEADLINES]]


def _log(collected: dict[str, Any], plan: Plan, step_ids: set[str] | None) -> list[dict[str, Any]]:
    """Notifications, escalations, overrides and confirmations, newest first, with names and
    reasons (N16). For a department: those of its steps."""
    entries = []
    if step_ids is None:
        entries += [{"at": row["at"], "kind": "notification", "who": "", "step": "", "site": "",
                     "text": row["title"], "detail": row["body"], "ok": bool(row["ok"])}
                    for row in collected["notifications"]]
    entries += [{"at": row["at"], "kind": "escalation", "who": row["contact"], "step": row["step_id"],
                 "site": row["sites"], "text": row["title"], "detail": row["body"], "ok": bool(row["ok"])}
                for row in collected["escalations"]]
    entries += [{"at": row["at"], "kind": "override", "who": row["by"], "step": row["step_id"], "site": "",
                 "text": row["reason"], "detail": "", "ok": True} for row in collected["overrides"]]
    entries += [{"at": row["at"], "kind": "confirmation", "who": row["by"], "step": row["step_id"],
                 "site": row["site"], "text": row["note"], "detail": "", "ok": True}
                for row in collected["confirmations"]]
    if step_ids is not None:
        entries = [entry for entry in entries if entry["step"] in step_ids]
    entries.sort(key=lambda entry: _dt(entry["at"]) or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)
    return [entry | {"at": _short(entry["at"], plan)} for entry in entries[:LOG_SIZE]]


def _matrix(collected: dict[str, Any], plan: Plan) -> dict[str, Any] | None:
    matrix = collected["sites_matrix"]
    if not matrix:
        return None
    return {"phases": [{"id": phase["id"], "title": phase["title"],
                        "planned": _span(phase["planned"]["start"], phase["planned"]["end"], plan)}
                       for phase in matrix["phases"]],
            "rows": [{"site": row["site"], "name": row["name"], "level": row["level"],
                      "actual": _span(row["actual"]["start"], row["actual"]["end"], plan),
                      "cells": {phase: cell and {"state": cell["state"], "actual": _span(
                                    cell["actual"]["start"], cell["actual"]["end"], plan)}
                                for phase, cell in row["cells"].items()}}
                     for row in matrix["rows"]]}


def page(plan: Plan, collected: dict[str, Any], expected: dict[str, dict[str, Any]], now: dt.datetime,
         department: str | None = None) -> dict[str, Any]:
    """The page's data; with `department`, narrowed to its steps (责任部门 or 配合部门) and
    what waits for it to confirm. An unknown department is refused, with the nearest name."""
    known = departments(plan)
    if department is not None and department not in known:
        raise CutoverError(f"no step of plan {plan.plan.name} names department {department!r}",
                           close_match(department, known, f"the departments: {', '.join(known)}"))
    at, rehearsal_run = plan_now(plan, collected["runs"], now)
    steps = [_step(step, expected, at, plan) for step in collected["steps"]]
    mine: dict[str, Any] | None = None
    if department is not None:
        steps = [step | {"role": "责任部门 / responsible" if step["owner"] == department
                         else "配合部门 / cooperating"}
                 for step in steps if department in (step["owner"], *step["cooperating"])]
        mine = {"name": department,
                "waiting": [{"step": step["id"], "title": step["title"], "sites": step["waiting_sites"]}
                            for step in steps if step["waiting"] and step["owner"] == department]}
    called = collected["called_off"]
    return {
        "plan": {"name": plan.plan.name, "title": plan.plan.title or plan.plan.name},
        "journal": collected["journal"] or "no journal yet",
        "timezone": plan.plan.timezone,
        "generated": now.astimezone(plan.tz).strftime("%Y-%m-%d %H:%M:%S"),
        "clock": {"plan_now": fmt(at, plan.tz), "rehearsal_run": rehearsal_run},
        "called_off": called and {"by": called["by"], "reason": called["reason"],
                                  "at": _short(called["at"], plan), "status": called["status"]},
        "matrix": None if department is not None else _matrix(collected, plan),
        "timeline": _timeline(steps, collected, at),
        "deadlines": _deadlines(steps, collected, at, plan),
        "steps": steps,
        "departments": known,
        "department": mine,
        "log": _log(collected, plan, {step["id"] for step in steps} if department is not None else None),
    }
