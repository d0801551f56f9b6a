"""What people decide between runs, recorded in the journal for the next run to act on:
`cutover.confirm` (a manual step is done) and `cutover.override` (let a failed gate, or an
overdue step, pass; notified)."""

from __future__ import annotations

import datetime as dt

from cutover.engine import notify
from cutover.engine.journal import operator
from cutover.engine.session import RunOptions, Session
from cutover.errors import CutoverError
from cutover.plan.times import fmt


def confirm(opts: RunOptions, step_id: str, by: str, note: str) -> str:
    session = Session(opts)
    step = session.step(step_id)
    if step.kind != "manual":
        raise CutoverError(f"step {step_id} is a {step.kind} step; only manual steps are confirmed",
                           "a failed gate is let through with cutover.override")
    if not by.strip():
        raise CutoverError("a confirmation needs --by NAME", "the name is recorded")
    with session.journal() as journal:
        journal.add_confirmation(step_id, by.strip(), note)
    return f"confirmation of {step_id} by {by} recorded; run cutover.{step.verb} to continue"


def override(opts: RunOptions, step_id: str, by: str, reason: str) -> str:
    session = Session(opts)
    step = session.step(step_id)
    if not by.strip() or not reason.strip():
        raise CutoverError("an override needs --by NAME and --reason TEXT", "both are recorded")
    plan = session.plan
    with session.journal() as journal:
        journal.add_override(step_id, by.strip(), reason.strip())
        urls = (opts.notify_urls if opts.notify_urls is not None
                else notify.notify_urls(plan, session.inventory))
        notify.send(urls, "override", journal, plan=plan, subject=f"{step.id} {step.title}",
                    phase=plan.phase(step.phase), detail=f"{by}: {reason}", operator=operator(),
                    at=fmt(dt.datetime.now(plan.tz)), rehearsal=opts.rehearsal)
    return f"override of {step_id} by {by} recorded; run cutover.{step.verb} to continue"
