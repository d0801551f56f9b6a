"""What people decide between runs, recorded in the journal for the next run to act on:
`cutover.confirm` (a manual step is done) and `cutover.override` (let a failed gate, or an
overdue step, pass; notified)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cutover.engine import escalation, notify
from cutover.engine.journal import operator
from cutover.engine.session import RunOptions, Session
from cutover.engine.states import StepState
from cutover.errors import CutoverError
from cutover.plan.model import Step
from cutover.plan.problems import close_match
from cutover.plan.times import fmt


def confirm(opts: RunOptions, step_id: str, by: str, note: str, sites: Sequence[str] = ()) -> str:
    """Record a confirmation of a manual step: of the whole step, or, for a step confirmed
    site by site (`sites: cities`), of each site named with --site. Names and notes are
    stored as given. A refusal records nothing."""
    session = Session(opts)
    step = session.step(step_id)
    if step.kind != "manual":
        raise CutoverError(f"step {step_id} is a {step.kind} step; only manual steps are confirmed",
                           "a failed gate is let through with cutover.override")
    if not by.strip():
        raise CutoverError("a confirmation needs --by NAME", "the name is recorded")
    if step.note_required and not note.strip():
        raise CutoverError(f"step {step_id} is confirmed with a note saying {step.note_required}",
                           f"invoke cutover.confirm {step_id} --by NAME --note TEXT; nothing was recorded")
    if step.sites:
        return _confirm_sites(session, step, by.strip(), note, list(dict.fromkeys(sites)))
    if sites:
        raise CutoverError(f"step {step_id} is confirmed once, for the whole step: --site does not apply",
                           f"leave --site out: invoke cutover.confirm {step_id} --by NAME [--note TEXT]")
    with session.journal() as journal:
        journal.refuse_if_called_off(f"cutover.confirm {step_id}")
        journal.add_confirmation(step_id, by.strip(), note)
    return f"confirmation of {step_id} by {by} recorded; run cutover.{step.verb} to continue"


def _confirm_sites(session: Session, step: Step, by: str, note: str, sites: list[str]) -> str:
    """N11, N12: each site of the step's level confirms it; every site named must be one the
    step touches and not confirmed yet, or nothing is recorded."""
    scope = session.scope()
    tree, touches = scope.tree, scope.step_sites(step)
    for site in sites:
        if site in touches:
            continue
        if site in tree.sites:
            raise CutoverError(f"step {step.id} is confirmed by each of the {step.sites}; "
                               f"{tree.label(site)} is of level {tree.level(site)}",
                               f"name one of the {step.sites}: {', '.join(sorted(touches))}")
        raise CutoverError(f"step {step.id}: --site {site!r} is no site of inventory {session.inventory}",
                           close_match(site, touches, f"name one of the {step.sites}: "
                                                      f"{', '.join(sorted(touches))}"))
    if not sites:
        with session.existing_journal() as journal:  # only looks: a refusal writes nothing
            confirmed = journal.confirmed_sites(step.id) if journal else {}
        still = [site for site in tree.at_level(step.sites) if site not in confirmed]
        raise CutoverError(f"step {step.id} is confirmed site by site ({step.sites}): name the site with "
                           f"--site", f"still to confirm: {', '.join(still) or 'none, every site has'}")
    with session.journal() as journal, journal.tx():
        journal.refuse_if_called_off(f"cutover.confirm {step.id}")
        confirmed = journal.confirmed_sites(step.id)
        still = [site for site in tree.at_level(step.sites) if site not in confirmed]
        for site in sites:
            if site in confirmed:
                row = confirmed[site]
                raise CutoverError(f"step {step.id} is already confirmed for {tree.label(site)} by "
                                   f"{row['by']} at {row['at']}",
                                   "nothing was recorded; a confirmation stands as it was given"
                                   + (f"; still to confirm: {', '.join(still)}" if still else ""))
        for site in sites:
            journal.add_confirmation(step.id, by, note, site)
    left = [site for site in still if site not in sites]
    named = ", ".join(tree.label(site) for site in sites)
    return (f"confirmation of {step.id} for {named} by {by} recorded; "
            + (f"still to confirm: {', '.join(left)}" if left else
               f"every site has confirmed; run cutover.{step.verb} to continue"))


def override(opts: RunOptions, step_id: str, by: str, reason: str) -> str:
    session = Session(opts)
    step = session.step(step_id)
    if not by.strip() or not reason.strip():
        raise CutoverError("an override needs --by NAME and --reason TEXT", "both are recorded")
    plan = session.plan
    contacts = escalation.contact_urls(plan, session.inventory)  # before anything is recorded
    with session.journal() as journal:
        journal.refuse_if_called_off(f"cutover.override {step_id}")
        journal.add_override(step_id, by.strip(), reason.strip())
        urls = (opts.notify_urls if opts.notify_urls is not None
                else notify.notify_urls(plan, session.inventory))
        at = fmt(dt.datetime.now(plan.tz))
        notify.send(urls, "override", journal, plan=plan, subject=f"{step.id} {step.title}",
                    phase=plan.phase(step.phase), detail=" ".join(f"{by}: {reason}".split()),  # one line
                    operator=operator(),
                    at=at, rehearsal=opts.rehearsal)
        if contacts:  # N14: a waived safeguard is every escalation contact's business
            _escalate_override(session, journal, contacts, step, by.strip(), reason.strip(), at)
    return f"override of {step_id} by {by} recorded; run cutover.{step.verb} to continue"


def _escalate_override(session: Session, journal, contacts: dict[str, list[str]], step: Step, by: str,
                       reason: str, at: str) -> None:
    """Tell every escalation contact what the override lets pass: where the step stands
    stopped and what it found there, by whom and why."""
    row = journal.step(step.id)
    stopped = sorted(site for site, state in journal.site_states(step.id).items()
                     if state in (StepState.FAILED, StepState.INTERRUPTED))
    sites = ", ".join(session.scope().tree.label(site) if site else "the inventory" for site in stopped)
    evidence = f"override by {by}: {reason}\nthe step is {row['state'] if row else 'not started'}" + (
        f": {row['summary']}" if row and row["summary"] else "")
    escalation.escalate(session.plan, journal, contacts, event="override", step=step, sites=sites,
                        evidence=evidence, at=at, operator=operator(), rehearsal=session.opts.rehearsal)
