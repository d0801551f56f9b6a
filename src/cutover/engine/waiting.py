"""Waiting for a step's `not_before` without holding the journal.

The restore waits from the deploy's end until 08:00, then until 08:30, 09:00, 13:00 and
20:00 (N9–N13): hours in which a second operator must be able to confirm, override, run a
`data.*` task or the way back. So a run that sleeps lets go of the run lock and records that
it sleeps (run N waits for STEP until T: `cutover.status` shows it); when the time comes it
takes the lock back, waiting for whoever holds it then, and reads the journal again: what
others did meanwhile counts (a confirmation, an override, a step another run did), and a
window called off meanwhile (`cutover.abort`) or a plan changed meanwhile ends the run."""

from __future__ import annotations

import datetime as dt

from cutover.engine.journal import call_off_text
from cutover.engine.run import Run, StepFailed
from cutover.errors import CutoverError
from cutover.plan.model import Step
from cutover.plan.times import fmt


class WokeTo(StepFailed):
    """What the run found when it woke ends it at once, whatever the step's on_failure: the
    plan changed meanwhile."""


class CalledOff(WokeTo):
    """The window was called off while the run slept: it stops, nothing more done."""


def left_text(seconds: float) -> str:
    """`2 d 3 h 04 min`, `3 h 04 min`, `4 min 05 s`, `12 s`."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def sleep_until_start(run: Run, step: Step, head: str) -> bool:
    """Sleep, without the run lock, until the step's not_before; False when its time has come
    already (nothing slept). Raises CalledOff, or WokeTo for a plan changed meanwhile."""
    clock = run.clock
    if clock.rehearsal or step.start is None or clock.now() >= step.start:
        return False
    until = fmt(step.start, run.plan.tz)
    run.say(f"{head} {step.title}: not before {until}; run {run.run_id} waits "
            f"({left_text((step.start - clock.now()).total_seconds())}) without holding the journal: "
            "others may confirm, override, run data.* or the way back meanwhile")
    sleep_until(run, step, step.start)
    run.say(f"  {until}: run {run.run_id} goes on, with the journal as it is now")
    return True


def sleep_until(run: Run, step: Step, moment: dt.datetime, countdown: bool = True) -> None:
    """Sleep until `moment` for `step` (its not_before, a gate's next check) without the run
    lock, recorded in the journal; then take the lock back and stop if the window was called
    off or the plan changed meanwhile. With `countdown`, say every 10 minutes how long is
    left, every minute in the last hour, every 10 s in the last minute."""
    clock, journal, plan = run.clock, run.journal, run.plan
    until = fmt(moment, plan.tz)
    last_said = [(moment - clock.now()).total_seconds()]

    def tick(left: float) -> None:
        every = 600 if left > 3600 else 60 if left > 60 else 10
        if countdown and last_said[0] - left >= every:
            last_said[0] = left
            run.say(f"  waiting for {until}: {left_text(left)}")

    lock = run.session.run_lock
    if lock is None:
        raise CutoverError("a run sleeps only while it holds the run lock")
    journal.run_sleeps(run.run_id, step.id, moment.isoformat())
    with lock.set_aside(wait=lambda holder: run.say(
            f"  {until} reached; the journal is held by {holder}: waiting for it")):
        clock.wait_until(moment, tick=tick)
    journal.run_wakes(run.run_id)
    abort = journal.called_off()  # the run started before it: the executor refuses after one
    if abort is not None:
        raise CalledOff(f"while run {run.run_id} waited, the window was {call_off_text(abort)}; "
                        f"cutover.{run.verb} stops at {step.id}, nothing more was done",
                        "invoke cutover.status shows where every step stands")
    now_hash = journal.meta("plan_hash")
    if now_hash != plan.digest:
        raise WokeTo(f"the plan changed while run {run.run_id} waited (journal at hash {str(now_hash)[:12]}, "
                     f"this run's {plan.digest[:12]}); cutover.{run.verb} stops at {step.id}",
                     f"run cutover.{run.verb} again: it goes on with the plan as it is now")
