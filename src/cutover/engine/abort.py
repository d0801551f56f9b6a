"""`cutover.abort`: the window called off (N14, N18). Everything goes back to how it was
before the stop, in the restore's order and with its checks, at once (no waiting for the
plan's times):

1. when any deploy step started, every component back to the release the manifest replaces
   (the rollback playbook: a component the deploy never switched is left alone), verified;
2. each playbook step of the restore verb, in its order, with `cutover_abort`: databases
   read-write again, services started and checked on the release they ran before (the
   manifest's `previous`), the friendly notice removed, the timed jobs this window switched off
   back on exactly as recorded (none, if it never switched them off), the version check;
3. a data hand-off already made is reported as withdrawn (the receiver is told, through the
   notifications, not to load it).

Past a step marked `point_of_no_return` the call-off is refused unless the operator says so
(`--past-point-of-no-return`), recorded with the name and the reason like the call-off itself.
Once a call-off has started, the plan's verbs refuse to go on in this journal; a call-off that
failed half-way is finished by running `cutover.abort` again (every stage is idempotent).
"""

from __future__ import annotations

from typing import Any

from cutover.contract import PlaybookVars
from cutover.engine import notify
from cutover.engine.clock import Clock
from cutover.engine.executor import record_crashed_runs, wait_for_earlier_attempts
from cutover.engine.journal import Journal, operator
from cutover.engine.journal_db import shown
from cutover.engine.order import ordered
from cutover.engine.rollback import ROLLBACK_PLAYBOOK, run_stage
from cutover.engine.run import Run
from cutover.engine.session import RunOptions, Session
from cutover.engine.states import RunStatus, StepState
from cutover.errors import CutoverError
from cutover.paths import resolve
from cutover.plan.model import Plan, Step
from cutover.plan.times import fmt

VERB = "abort"  # the journal's runs and evidence of a call-off
HANDOFF_PLAYBOOK = "playbooks/data/handoff.yml"


def abort(opts: RunOptions, by: str, reason: str, past_point_of_no_return: bool = False) -> dict[str, Any]:
    """Call the window off: see the module. Returns what was done, for the operator's summary."""
    by, reason = by.strip(), reason.strip()
    if not by or not reason:
        raise CutoverError("a call-off names who decided it and why: --by NAME --reason TEXT",
                           "both are recorded in the journal, the report and the notifications; nothing "
                           "was changed")
    if opts.limit:
        raise CutoverError("a call-off brings back the whole window; it takes no --limit",
                           "nothing was changed")
    session = Session(opts)
    plan = session.plan
    if not plan.plan.release_manifest:
        raise CutoverError(f"plan {plan.plan.name} names no release_manifest: the call-off checks every "
                           "host against the release it ran before",
                           "name it in the plan; nothing was changed")
    if not opts.yes:
        session.ask_if_production("Call off the window and bring everything back as before the stop?",
                                  "answer yes, or pass --yes")
    with session.journal(lock=VERB, accept_change=opts.accept_plan_change,
                         starts_run="cutover.abort") as journal:
        started = _started(plan, journal)
        if not started:
            raise CutoverError(f"nothing to call off: no step of plan {plan.plan.name} has started in "
                               f"journal {shown(journal.path)}", "nothing was changed")
        past = [step for step in started if step.point_of_no_return]
        if past and not past_point_of_no_return:
            raise CutoverError(
                "the window is past its point of no return: "
                + ", ".join(f"{step.id} ({journal.step(step.id)['state']})" for step in past)
                + "; nothing was changed",
                "to call it off all the same: invoke cutover.abort --past-point-of-no-return --by NAME "
                "--reason TEXT (recorded); to go on instead: the next verb of the plan")
        earlier = journal.called_off()
        return _call_off(session, journal, started, by, reason, [step.id for step in past], earlier)


def _started(plan: Plan, journal: Journal) -> list[Step]:
    """The plan's steps this window has attempted, or had confirmed or overridden (a manual step
    confirmed between runs is done in the world already): in plan order."""
    decided = {row["step_id"] for table in ("confirmations", "overrides") for row in journal.all(table)}
    return [step for step in plan.steps()
            if (journal.step(step.id) or {"attempts": 0})["attempts"] or step.id in decided]


def _call_off(session: Session, journal: Journal, started: list[Step], by: str, reason: str,
              past: list[str], earlier: dict[str, Any] | None) -> dict[str, Any]:
    opts, plan = session.opts, session.plan
    record_crashed_runs(journal, session.opts.say)  # a run asleep until a step's time wakes to the call-off
    record = {"by": by, "reason": reason, "past_point_of_no_return": past,
              "started_steps": [step.id for step in started]}
    run_id = journal.start_run(VERB, rehearsal=opts.rehearsal, check=False, plan_hash=plan.digest,
                               options=record, who=operator())
    run = Run(session=session, journal=journal, verb=VERB, run_id=run_id, clock=Clock(),
              notify_urls=opts.notify_urls if opts.notify_urls is not None else notify.notify_urls(
                  plan, session.inventory),
              artifacts=resolve(opts.artifacts) / f"run-{run_id:04d}-{VERB}")
    journal.add_evidence(VERB, "called_off", record)
    again = "" if earlier is None else (f" (again: call-off run {earlier['id']} ended {earlier['status']}; "
                                        "every stage is checked again)")
    run.say(f"cutover.abort: plan {plan.plan.name}, run {run_id}: the window is called off by {by}{again}")
    run.say(f"  reason: {reason}")
    if past:
        run.say(f"  past the point of no return ({', '.join(past)}), as {by} said")
    run.notify("called_off", f"{plan.plan.name}: called off by {by}",  # the subject is said on one line
               detail=f"原因 / reason: {' '.join(reason.split())}"  # an operator's text: one line
               + (f"\npast the point of no return: {', '.join(past)}" if past else ""))
    # a killed run's work still at work would race the way back (N18): each started step's
    try:  # an earlier way back's leftovers were waited for under the lock already (Session.locked)
        for step in started:
            if journal.step(step.id)["state"] == StepState.RUNNING:
                wait_for_earlier_attempts(run, step)
                journal.abandon_running(step.id)
    except CutoverError:  # nothing was started: the call-off is refused until that work ends
        journal.end_run(run_id, RunStatus.FAILED)
        raise
    stages = _stages(plan, started)

    def playbook_vars(step: Step | None) -> dict[str, Any]:
        return PlaybookVars.for_plan(plan, artifacts=opts.artifacts, journal_id=journal.identity(),
                                     rehearsal=opts.rehearsal, step=step
                                     ).model_copy(update={"cutover_abort": True}).to_extravars()

    out: dict[str, Any] = {"stages": [], "record": record}
    try:
        for number, (name, playbook, step) in enumerate(stages, 1):
            run.say(f"[{number}/{len(stages)}] {name}  ·  {playbook}"
                    + (f" --tags {','.join(step.tags)}" if step and step.tags else ""))
            good = run_stage(session, journal, run_id, name=name, playbook=playbook,
                             extravars=playbook_vars(step),
                             evidence_step=VERB, run_dir=f"run-{run_id:04d}-{VERB}",
                             tags=step.tags if step else None,
                             limit=session.limit(step.limit) if step else None)
            out["stages"].append(name)
            if "versions" in good:
                out["versions"] = good["versions"]
            out.setdefault("jobs_untouched", []).extend(good.get("jobs_untouched", []))
    except CutoverError as exc:  # run_stage ended the run FAILED
        run.notify("failure", f"cutover.abort: {exc.message.splitlines()[0]}", detail=exc.hint)
        raise CutoverError(exc.message, f"{exc.hint}\nfix the cause, then run invoke cutover.abort again "
                           "(--by NAME --reason TEXT): every stage is checked again") from None
    withdrawn = _withdrawn_handoff(plan, journal)
    if withdrawn:  # N6: the receiver is told on its own channel (si_drop_notify_urls) and ours
        urls = list(dict.fromkeys([*run.notify_urls,
                                   *notify.inventory_urls(session.inventory, "si_drop_notify_urls")]))
        what = (f"{len(withdrawn['files'])} file(s), {sum(withdrawn['rows'].values()):,} rows on "
                f"{withdrawn['drop']}: the window was called off; do not load them")
        delivered = notify.send(urls, "handoff_withdrawn", journal, plan=plan, phase=None, detail=what,
                                subject=f"{plan.plan.name}: {withdrawn['path']}", operator=operator(),
                                at=fmt(run.clock.now(), plan.tz), rehearsal=opts.rehearsal)
        withdrawn["notified"] = {"targets": len(urls), "delivered": delivered}
        journal.add_evidence(VERB, "handoff_withdrawn", withdrawn)
        run.say(f"  the data hand-off {withdrawn['path']} on {withdrawn['drop']} is withdrawn: "
                + ("the receiver was notified not to load it" if delivered else
                   "the notification was NOT delivered: tell the receiver yourself not to load it"))
        out["handoff_withdrawn"] = withdrawn
    journal.end_run(run_id, RunStatus.DONE)
    run.notify("run_end", f"{plan.plan.name}: called off; everything is back as before the stop")
    run.say("cutover.abort: the window is called off; everything is back as before the stop, checked")
    return out


def _stages(plan: Plan, started: list[Step]) -> list[tuple[str, str, Step | None]]:
    """(name, playbook, the restore step it stands for): the rollback when a deploy step
    started, then every playbook step of the restore verb, in its order (its gates, manual
    steps and waits belong to the window, not to the way back)."""
    out: list[tuple[str, str, Step | None]] = []
    if any(step.verb == "deploy" for step in started):
        out.append(("rollback", ROLLBACK_PLAYBOOK, None))
    restore = plan.steps("restore")
    index = {step.id: number for number, step in enumerate(plan.steps())}
    out += [(step.id, step.playbook, step) for step in ordered(restore, index)
            if step.kind == "playbook" and step.playbook]
    return out


def _withdrawn_handoff(plan: Plan, journal: Journal) -> dict[str, Any] | None:
    """The hand-off this window made (N6), if any: what the receiver must not load."""
    for step in plan.steps():
        if step.playbook != HANDOFF_PLAYBOOK:
            continue
        for record in reversed(journal.evidence(step.id)):
            data = record["data"]
            if record["kind"] == "handoff" and isinstance(data, dict) and data.get("files"):
                return {"step": step.id, "drop": data["drop"], "path": data["path"],
                        "files": [sent.get("file", "?") for sent in data["files"]],
                        "rows": dict(data.get("rows") or {})}
    return None
