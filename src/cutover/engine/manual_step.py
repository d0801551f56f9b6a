"""The step kinds no playbook runs: `manual` (done when someone confirms it with
`cutover.confirm`; in a rehearsal with auto_confirm, confirmed as "rehearsal") and `wait`
(done when its time is reached: the run loop waits for a step's not_before).

A manual step with `sites: LEVEL` is confirmed by each site of that level (N11: each city
tracks its counter business; N12: each channel is tested): done at the sites that confirmed,
waiting at the others, done when every site has confirmed."""

from __future__ import annotations

from typing import Any

from cutover.engine.narrow import site_names
from cutover.engine.run import EXIT_WAITING, Run, StepFailed
from cutover.engine.states import AttemptStatus, StepState
from cutover.plan.model import Step

AUTO_NOTE = "confirmed automatically in a rehearsal"


def _for_this_run(run: Run) -> dict[str, Any]:
    """A rehearsal's automatic confirmation in check mode: shown, never written, so that a
    check run leaves no decision behind in any journal."""
    return {"by": "rehearsal", "note": f"{AUTO_NOTE} (check mode: not recorded)", "at": run.now_iso()}


def run_manual_step(run: Run, step: Step) -> None:
    if step.sites:
        _run_per_site(run, step)
        return
    journal, opts = run.journal, run.opts
    confirmation = journal.confirmation(step.id)
    if confirmation is None and opts.auto_confirm and opts.rehearsal:
        if opts.check:  # a check run records no decision: confirmed for this run only
            confirmation = _for_this_run(run)
        else:
            journal.add_confirmation(step.id, "rehearsal", AUTO_NOTE)
            confirmation = journal.confirmation(step.id)
    if confirmation is None:
        journal.set_state(step.id, StepState.WAITING, "waiting for confirmation")
        raise StepFailed(f"step {step.id} ({step.title}) is a manual step waiting for confirmation",
                         f"when it is done: invoke cutover.confirm {step.id} --by NAME [--note TEXT],"
                         f" then run cutover.{run.verb} again", code=EXIT_WAITING)
    sites = run.todo.get(step.id, frozenset())
    attempt = journal.begin_attempt(step.id, run.run_id, check=opts.check, actual_start=run.now_iso(),
                                    sites=sites)
    journal.finish_attempt(attempt, step.id, status=AttemptStatus.CONFIRMED, sites=sites,
                           site_state=StepState.DONE,
                           state=None if opts.check else StepState.DONE, actual_end=run.now_iso(),
                           evidence=[("confirmation", {"by": confirmation["by"], "note": confirmation["note"],
                                                       "at": confirmation["at"]})],
                           summary=f"confirmed by {confirmation['by']}")
    note = confirmation["note"]
    run.say(f"  confirmed by {confirmation['by']}{': ' + note if note else ''}")


def _run_per_site(run: Run, step: Step) -> None:
    """The sites this run does the step for (run.todo) that confirmed are recorded done, each
    with its confirmation; the others wait, and the run ends waiting, saying who is still to confirm."""
    journal, opts = run.journal, run.opts
    todo = run.todo.get(step.id, frozenset())
    for_this_run: dict[str, Any] = {}
    if opts.auto_confirm and opts.rehearsal:
        unconfirmed = sorted(todo - set(journal.confirmed_sites(step.id)))
        if opts.check:  # a check run records no decision: confirmed for this run only
            for_this_run = {site: _for_this_run(run) for site in unconfirmed}
        else:
            with journal.tx():
                for site in unconfirmed:
                    journal.add_confirmation(step.id, "rehearsal", AUTO_NOTE, site)
    confirmed = {site: row for site, row in journal.confirmed_sites(step.id).items() if site in todo}
    confirmed |= for_this_run
    waiting = todo - set(confirmed)
    every = run.touches.get(step.id, todo)
    if confirmed:
        run.todo[step.id] = frozenset(confirmed)  # this run does the step for the sites that confirmed
        state, site_state = run.site_outcome(step.id, passed=True)
        if waiting:
            state = StepState.WAITING
        attempt = journal.begin_attempt(step.id, run.run_id, check=opts.check, actual_start=run.now_iso(),
                                        sites=set(confirmed))
        journal.finish_attempt(
            attempt, step.id, status=AttemptStatus.CONFIRMED, sites=set(confirmed), site_state=site_state,
            state=None if opts.check else state, actual_end=run.now_iso(),
            evidence=[("confirmation", {"site": site, "by": row["by"], "note": row["note"], "at": row["at"]})
                      for site, row in sorted(confirmed.items())],
            summary=f"confirmed by {len(every & set(journal.confirmed_sites(step.id)))} of {len(every)} "
                    f"{step.sites}")
        for site, row in sorted(confirmed.items()):
            run.say(f"  {site_names(run.session, {site})}: confirmed by {row['by']}"
                    f"{': ' + row['note'] if row['note'] else ''}")
    if not waiting:
        return
    if not opts.check:
        with journal.tx():
            journal.set_site_states(step.id, set(waiting), StepState.WAITING, run_id=run.run_id)
            journal.set_state(step.id, StepState.WAITING,
                              f"waiting for {len(waiting)} of {len(every)} {step.sites} to confirm")
    first = sorted(waiting)[0]
    more = f" (and so for each of {', '.join(sorted(waiting))})" if len(waiting) > 1 else ""
    # the sites confirm over hours: the run goes on with what does not need this step (N12's
    # channels at 13:00 do not wait for every city's tracking), and ends waiting (exit 3)
    run.waiting[step.id] = (
        f"step {step.id} ({step.title}) waits for confirmation from {site_names(run.session, set(waiting))}",
        f"when it is done there: invoke cutover.confirm {step.id} --site {first} --by NAME "
        f"[--note TEXT]{more}, then run cutover.{run.verb} again")
    run.say(f"  waits for confirmation from {site_names(run.session, set(waiting))}; the run goes on "
            "with the steps that do not need it")


def run_wait_step(run: Run, step: Step) -> None:
    sites = run.todo.get(step.id, frozenset())
    attempt = run.journal.begin_attempt(step.id, run.run_id, check=run.opts.check, actual_start=run.now_iso(),
                                        sites=sites)
    run.journal.finish_attempt(attempt, step.id, status=AttemptStatus.OK, sites=sites,
                               site_state=StepState.DONE,
                               state=None if run.opts.check else StepState.DONE,
                               actual_end=run.now_iso(), summary="time reached")
