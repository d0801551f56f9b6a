"""The step kinds no playbook runs: `manual` (done when someone confirms it with
`cutover.confirm`; in a rehearsal with auto_confirm, confirmed as "rehearsal") and `wait`
(done when its time is reached: the run loop waits for a step's not_before)."""

from __future__ import annotations

from cutover.engine.run import EXIT_WAITING, Run, StepFailed
from cutover.engine.states import AttemptStatus, StepState
from cutover.plan.model import Step


def run_manual_step(run: Run, step: Step) -> None:
    journal, opts = run.journal, run.opts
    confirmation = journal.confirmation(step.id)
    if confirmation is None and opts.auto_confirm and opts.rehearsal:
        journal.add_confirmation(step.id, "rehearsal", "confirmed automatically in a rehearsal")
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


def run_wait_step(run: Run, step: Step) -> None:
    sites = run.todo.get(step.id, frozenset())
    attempt = run.journal.begin_attempt(step.id, run.run_id, check=run.opts.check, actual_start=run.now_iso(),
                                        sites=sites)
    run.journal.finish_attempt(attempt, step.id, status=AttemptStatus.OK, sites=sites,
                               site_state=StepState.DONE,
                               state=None if run.opts.check else StepState.DONE,
                               actual_end=run.now_iso(), summary="time reached")
