"""The executor: walk one verb's steps in dependency order, through the journal.

Everything is validated before the first host is touched: the plan (lint), the inventory,
the journal (plan name and hash), the lock, and that steps of earlier verbs this verb
depends on are done. Then each step runs once: `done` steps are skipped, a step left
`running` by a crash is checked again first, a failure stops the run where it is.

The session (engine/session.py) sets up the plan, the journal and the lock; the order is
engine/order.py's; each step kind runs in its own module (playbook_step, manual_step).
"""

from __future__ import annotations

from collections.abc import Callable

from cutover.engine import escalation, notify
from cutover.engine.clock import Clock, RehearsalClock
from cutover.engine.journal import Journal, operator
from cutover.engine.journal_db import shown
from cutover.engine.leftovers import StillAtWork, wait_for_leftovers
from cutover.engine.lock import RunPresence
from cutover.engine.manual_step import run_manual_step, run_wait_step
from cutover.engine.narrow import reached_sites, site_names, this_runs_part, undone_at
from cutover.engine.order import ordered
from cutover.engine.playbook_step import run_playbook_step
from cutover.engine.run import EXIT_WAITING, Run, StepFailed, attempt_ident, attempt_mark
from cutover.engine.session import RunOptions, Session
from cutover.engine.states import RunStatus, StepState
from cutover.engine.waiting import CalledOff, WokeTo, sleep_until_start
from cutover.errors import CutoverError
from cutover.inventory import one_reading
from cutover.paths import resolve
from cutover.plan.model import VERBS, Step
from cutover.plan.times import fmt

STEP_KINDS: dict[str, Callable[[Run, Step], None]] = {
    "playbook": run_playbook_step, "gate": run_playbook_step,
    "manual": run_manual_step, "wait": run_wait_step,
}


class Executor:
    """`Executor(verb, opts).run()`: one run of a verb. Returns 0 when every step is done;
    a step that fails (or waits for a confirmation) raises StepFailed."""

    def __init__(self, verb: str, opts: RunOptions) -> None:
        if verb not in VERBS:
            raise CutoverError(f"unknown verb {verb!r}", f"one of {', '.join(VERBS)}")
        self.verb, self.opts = verb, opts

    def run(self) -> int:
        with one_reading():  # the inventory is read once per run, as the run's scope is
            return self._run()

    def _run(self) -> int:
        session = Session(self.opts, warn=True)
        plan = session.plan
        if not self.opts.check and not self.opts.yes:
            session.ask_if_production(f"Run cutover.{self.verb} of plan {plan.plan.name} now?",
                                      "answer yes at the prompt, or pass --yes")
        steps = plan.steps(self.verb)
        if not steps:
            raise CutoverError(f"plan {plan.plan.name} has no {self.verb} steps")
        with session.journal(lock=self.verb, accept_change=self.opts.accept_plan_change,
                             starts_run="" if self.opts.check else f"cutover.{self.verb}") as journal:
            record_crashed_runs(journal, self.opts.say)
            journal.refuse_if_called_off(f"cutover.{self.verb}")
            _check_cross_verb_dependencies(session, journal, steps)
            _check_waves(session, steps)
            order = ordered(steps, {step.id: index for index, step in enumerate(plan.steps())})
            run = _start(session, journal, self.verb, order)
            with RunPresence(journal.path, run.run_id):
                return _walk(run, order)


def record_crashed_runs(journal: Journal, say: Callable[[str], None]) -> None:
    """Runs the journal has not seen end whose process is gone: recorded as crashed. Under
    the lock, no run is at work; one that sleeps until a step's time (without the lock)
    and still lives is left to wake (engine/waiting.py)."""
    for crashed in journal.interrupted_runs():
        if RunPresence.alive(journal.path, crashed["id"]):
            continue
        journal.mark_run_crashed(crashed["id"])
        RunPresence.forget(journal.path, crashed["id"])
        say(f"run {crashed['id']} (cutover.{crashed['verb']}, {crashed['operator']}) "
            "ended without closing: recorded as crashed")


def _check_cross_verb_dependencies(session: Session, journal: Journal, steps: list[Step]) -> None:
    """A step of this verb needs the earlier verbs' steps it depends on done at every site
    of its in this run's reach, above and below it (N17); refused before any host is touched."""
    own = {step.id for step in steps}
    for step in steps:
        reach = reached_sites(session, step)
        for dep in step.after:
            if dep in own or not reach:
                continue
            missing = undone_at(session, journal, dep, reach)
            if missing is not None:
                other = session.plan.step(dep)
                row = journal.step(dep)
                where = f" for {site_names(session, missing)}" if missing else ""
                raise CutoverError(
                    f"step {step.id} needs {dep} ({other.verb if other else '?'}), which is "
                    f"{row['state'] if row else 'not started'}{where}",
                    f"run `invoke cutover.{other.verb if other else '?'}` first"
                    + (f" (--limit {','.join(sorted(missing))})" if missing else ""))


def _check_waves(session: Session, steps: list[Step]) -> None:
    """A phase that moves in waves names every level its steps work at: a host at a level no
    wave names would never run (N17). Refused before any host is touched."""
    scope = session.scope()
    for step in steps:
        phase = session.plan.phase(step.phase)
        if phase is None or not phase.waves or not step.playbook:
            continue
        sites = scope.step_sites(step)
        if "" in sites:
            raise CutoverError(f"phase {phase.id} moves in waves ({', '.join(phase.waves)}), but "
                               f"inventory {session.inventory} has no site tree",
                               "declare cutover_sites and each host's cutover_site (docs/plan-reference.md, "
                               "Sites), or remove waves")
        levels = {scope.tree.level(site) for site in sites} - set(phase.waves)
        if levels:
            raise CutoverError(f"step {step.id} works at {' and '.join(sorted(levels))} sites, but the "
                               f"waves of phase {phase.id} are {', '.join(phase.waves)}: those hosts "
                               "would never run", "add the level to the phase's waves, or narrow the "
                               "step with limit")


def _start(session: Session, journal: Journal, verb: str, order: list[Step]) -> Run:
    """Record the run's start; its clock (a rehearsal's maps the plan's first start onto now)."""
    opts = session.opts
    first = min((step.start for step in order if step.start), default=None)
    clock = opts.clock or (RehearsalClock(first) if opts.rehearsal else Clock())
    urls = opts.notify_urls if opts.notify_urls is not None else notify.notify_urls(session.plan,
                                                                                   session.inventory)
    contacts = escalation.contact_urls(session.plan, session.inventory)  # N14; resolved before the run starts
    run_id = journal.start_run(verb, rehearsal=opts.rehearsal, check=opts.check,
                               plan_hash=session.plan.digest, who=operator(),
                               options={"limit": opts.limit, "inventory": str(session.inventory),
                                        "auto_confirm": opts.auto_confirm})
    run = Run(session=session, journal=journal, verb=verb, run_id=run_id, clock=clock, notify_urls=urls,
              artifacts=resolve(opts.artifacts) / f"run-{run_id:04d}-{verb}",
              escalation_urls=contacts)
    mode = "rehearsal" if opts.rehearsal else "real clock"
    run.say(f"cutover.{verb}: plan {session.plan.plan.name}, run {run_id}, {mode}"
            f"{', check mode (nothing is marked done)' if opts.check else ''}, journal {shown(journal.path)}")
    return run


def _walk(run: Run, order: list[Step]) -> int:
    journal, verb, check = run.journal, run.verb, run.opts.check
    pending = [step for step in order if (journal.step(step.id) or {})["state"] != StepState.DONE]
    if not pending:
        run.say(f"every {verb} step is already done; nothing to do")
        journal.end_run(run.run_id, RunStatus.DONE)
        return 0
    try:
        _run_steps(run, order)
    except CalledOff:  # the abort has notified; nothing of this run failed
        journal.end_run(run.run_id, RunStatus.CALLED_OFF)
        raise
    except StepFailed as exc:
        status = RunStatus.WAITING if exc.code == EXIT_WAITING else RunStatus.FAILED
        journal.end_run(run.run_id, status)
        if status == RunStatus.FAILED:
            run.notify("failure", str(exc.message), detail=exc.hint)
        raise
    except BaseException:
        journal.end_run(run.run_id, RunStatus.ABORTED)
        raise
    if run.failed_sites:  # on_site_failure: continue: the others went on; the run did not succeed
        journal.end_run(run.run_id, RunStatus.FAILED)
        failed = sorted(set().union(*run.failed_sites.values()))
        raise StepFailed(
            f"cutover.{verb}: every other site went on, but "
            + "; ".join(f"{step_id} failed at {site_names(run.session, sites)}"
                        for step_id, sites in run.failed_sites.items()),
            f"fix the cause there, then: invoke cutover.{verb} --limit {','.join(failed)}"
            + "".join(f"\n{what}: {how}" for what, how in run.waiting.values()))
    if run.waiting:  # sites still to confirm: what did not need them is done; the run waits
        journal.end_run(run.run_id, RunStatus.WAITING)
        raise StepFailed("; ".join(what for what, _ in run.waiting.values()),
                         "\n".join(how for _, how in run.waiting.values()), code=EXIT_WAITING)
    journal.end_run(run.run_id, RunStatus.DONE)
    if run.left and not run.opts.limit and not check:  # nothing narrowed: a step left is a fault
        journal.end_run(run.run_id, RunStatus.FAILED)
        message = (f"cutover.{verb}: step(s) {', '.join(dict.fromkeys(run.left))} could not run: a "
                   "dependency is not done at every site they need (said above)")
        run.notify("failure", message)
        raise StepFailed(message, "run the dependency for those sites (--limit SITE), then this verb again")
    if run.left:
        within = f" within --limit {run.opts.limit}" if run.opts.limit else ""
        run.say(f"cutover.{verb}: {'checked' if check else 'done'}{within}; left for the other sites "
                f"or for later: {', '.join(dict.fromkeys(run.left))}")
        return 0
    run.notify("run_end", f"cutover.{verb} {'checked' if check else 'complete'}")
    run.say(f"cutover.{verb}: {'check complete' if check else 'all steps done'}")
    return 0


def _run_steps(run: Run, order: list[Step]) -> None:
    """Each step in order. A failure stops the run there, unless the step says
    `on_failure: hold_dependents`: then only what depends on it waits, the others go on, and
    the run ends failed with it (raised at the end)."""
    held: dict[str, StepFailed | None] = {}  # failed here (the failure), or waiting on one (None)
    for number, step in enumerate(order, 1):
        if _held_by(run, step, number, len(order), held):
            continue
        try:
            _run_step(run, step, number, len(order))
        except WokeTo:  # a call-off or a plan changed while the run slept: nothing goes on
            raise
        except StepFailed as exc:
            if step.on_failure == "hold_dependents" and exc.code != EXIT_WAITING:
                held[step.id] = exc
                run.say(f"  ✗ {exc.message}\n  the steps that do not depend on {step.id} go on "
                        "(on_failure: hold_dependents)")
                continue
            if not any(held.values()):
                raise
            _raise_held(held, exc)  # what failed earlier is said with what stopped the run now
    if any(held.values()):
        _raise_held(held)


def _raise_held(held: dict[str, StepFailed | None], last: StepFailed | None = None) -> None:
    failures = [failure for failure in held.values() if failure is not None] + ([last] if last else [])
    waited = [step_id for step_id, failure in held.items() if failure is None]
    raise StepFailed("; ".join(failure.message for failure in failures),
                     "\n".join(failure.hint for failure in failures)
                     + f"\nheld in this run by what failed: {', '.join(waited) or 'nothing'}")


def _held_by(run: Run, step: Step, number: int, total: int, held: dict[str, StepFailed | None]) -> bool:
    """A step that depends on one that failed in this run (on_failure: hold_dependents), or on
    one held by it, waits; recorded in `held` (as None) so its own dependents wait too."""
    waits = [dep for dep in step.after if dep in held]
    if not waits:
        return False
    held[step.id] = None
    run.say(f"[{number}/{total}] {step.id}: held: it depends on {', '.join(waits)}, which did not "
            "finish in this run")
    return True


def _run_step(run: Run, step: Step, number: int, total: int) -> None:
    journal, plan, clock = run.journal, run.plan, run.clock
    if not this_runs_part(run, step, number, total):
        return
    # slept without the lock: decide again, on what the journal says now
    if sleep_until_start(run, step, f"[{number}/{total}] {step.id}") and \
            not this_runs_part(run, step, number, total):
        return
    row = journal.step(step.id)
    if row["state"] == StepState.RUNNING:
        run.say(f"[{number}/{total}] {step.id}: was left running by a run that did not finish; "
                "checking it again before anything else")
        wait_for_earlier_attempts(run, step)
        journal.abandon_running(step.id)
    phase = plan.phase(step.phase)
    first_of_phase, _ = _phase_edges(run, step)
    if first_of_phase and not run.opts.check:
        run.notify("phase_start", f"{phase.id} {phase.title}", phase=phase)
    planned_start, planned_end = clock.planned(step.start), clock.planned(step.end)
    run.say(f"[{number}/{total}] {step.id} {step.title}  ·  {step.kind}  ·  owner {step.owner}"
            f"  ·  planned {fmt(planned_start, plan.tz)} → {fmt(planned_end, plan.tz)}")
    for note in run.notes.get(step.id, []):
        run.say(f"  {note}")
    if not clock.rehearsal and clock.overdue(step.end):  # not_before reached (slept above); due_by?
        override = journal.open_override(step.id)
        if override is None:
            run.escalate("overdue", step, site_names(run.session, set(run.todo.get(step.id, ()))),
                         f"due_by {fmt(step.end, plan.tz)}, now {fmt(clock.now(), plan.tz)}: not started")
            raise StepFailed(f"step {step.id} is past its due_by {fmt(step.end, plan.tz)}",
                             f"to run it anyway: invoke cutover.override {step.id} --by NAME "
                             "--reason TEXT (recorded)")
        if not run.opts.check:  # a check run leaves the override for the run that does the work
            journal.use_override(override["id"])
        run.say(f"  past due_by, allowed by override of {override['by']}: {override['reason']}")
    STEP_KINDS[step.kind](run, step)
    _, last_of_phase = _phase_edges(run, step)
    if last_of_phase and not run.opts.check:
        run.notify("phase_end", f"{phase.id} {phase.title}", phase=phase)


def _phase_edges(run: Run, step: Step) -> tuple[bool, bool]:
    """Is this step the first / last of its phase (by the phase's own step list)?"""
    phase = run.plan.phase(step.phase)
    ids = [member.id for member in phase.steps] if phase else [step.id]
    rows = [run.journal.step(step_id) or {} for step_id in ids]
    first = not any(row["attempts"] for row in rows)
    last = all(row["state"] == StepState.DONE for row in rows)
    return first, last


def wait_for_earlier_attempts(run: Run, step: Step) -> None:
    """Before a step runs again, what its earlier attempts left at work (engine/leftovers.py) is
    stopped and waited for, or the step is refused: two attempts never race over the same files.
    What the earlier work left is then checked by the step itself (a verified snapshot or
    upload is kept, anything else done again); a dump still running on the database host holds
    its lock there (pg_data)."""
    for attempt in run.journal.open_attempts(step.id):
        ident = attempt_ident(attempt["run_id"], step.id, attempt["id"])
        try:
            if wait_for_leftovers(attempt_mark(run.journal.identity(), ident), f"the earlier attempt {ident}",
                                  run.say, run.opts.orphan_wait,
                                  refused=f"step {step.id}", again=f"cutover.{run.verb}"):
                run.say("  the step runs again and checks what it left")
        except StillAtWork as exc:
            raise StepFailed(exc.message, exc.hint) from None
