"""Forecast: how long each step took in a rehearsal, and when each step would end if the
real window went the same way (each step starts at its not_before, or when the steps it
depends on end, whichever is later)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cutover.engine.journal import Journal
from cutover.engine.journal_db import Where, journal_exists
from cutover.plan.model import Plan


def step_durations(journal_path: Where) -> dict[str, float]:
    """Seconds each step took in the journal's runs (done steps only)."""
    if not journal_exists(journal_path):
        return {}
    with Journal.open(journal_path, create=False) as journal:
        return journal.step_durations()


def forecast(plan: Plan, durations: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per step: expected seconds, forecast start and end, and whether it ends by due_by."""
    out: dict[str, dict[str, Any]] = {}
    for step in plan.steps():  # the plan lists dependencies before the steps that need them
        deps_end = [out[dep]["end"] for dep in step.after if dep in out and out[dep]["end"]]
        candidates = [moment for moment in [step.start, *deps_end] if moment is not None]
        start = max(candidates) if candidates else None
        expected = durations.get(step.id)
        end = start + dt.timedelta(seconds=expected) if start and expected is not None else start
        out[step.id] = {"expected_s": expected, "start": start, "end": end,
                        "fits": end is None or step.end is None or end <= step.end}
    return out


LATEST_REHEARSAL = "rehearsals/latest/journal.sqlite"


def rehearsal_journal(artifacts: str | Path, journal: Where | None = None) -> Where:
    """The journal a forecast is based on: the one given, else the latest lab.rehearse's."""
    return journal if journal else Path(artifacts) / LATEST_REHEARSAL
