"""The `playbook` and `gate` step kinds: run the step's playbook, hold its evidence to the
contract, store it and move the step, in one transaction. A gate passes only when its
playbook publishes `gate` evidence that says so, or when an override lets a failed gate by."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from cutover.ansible import HostFailure, PlaybookResult, run_playbook
from cutover.contract import INPUT_PLAY, PlaybookVars, check_evidence, work_stats
from cutover.engine.narrow import site_names
from cutover.engine.run import Run, StepFailed, attempt_ident, attempt_mark
from cutover.engine.states import AttemptStatus, StepState
from cutover.engine.waiting import sleep_until
from cutover.paths import resolve
from cutover.plan.model import Plan, Step
from cutover.plan.times import fmt


def step_vars(plan: Plan, step: Step, *, artifacts: str, journal_id: str, rehearsal: bool) -> PlaybookVars:
    """What a step's playbook receives (cutover.contract): the export lives under
    <artifacts>/data/<plan>, per plan, not per run, so a later run's hand-off finds it."""
    return PlaybookVars.for_plan(plan, artifacts=artifacts, journal_id=journal_id, rehearsal=rehearsal,
                                 step=step)


class GateNotYet(StepFailed):
    """A gate whose playbook ran and said "not passed" (as opposed to one that could not tell);
    `escalate` tells the fault's owner, once no further look is due (N1, N14)."""

    def __init__(self, message: str, hint: str = "", *, escalate: Callable[[], None]) -> None:
        super().__init__(message, hint)
        self.escalate = escalate


def run_playbook_step(run: Run, step: Step) -> None:
    while True:
        if _may_be_let_pass(step) and _passed_by_override(run, step):
            return
        try:
            waves = step_waves(run, step)
            for number, (label, limit, hosts, sites) in enumerate(waves, 1):
                if len(waves) > 1:
                    run.say(f"  wave {number}/{len(waves)}: {label}")
                _attempt(run, step, limit, hosts, sites)
            return
        except GateNotYet as exc:
            if not _poll_again(run, step, exc):
                exc.escalate()
                raise


def _poll_again(run: Run, step: Step, verdict: GateNotYet) -> bool:
    """N1: a gate with `poll` whose verdict is "not yet" is checked again after the interval, as
    long as that is before its due_by (a real clock; a rehearsal, or check mode, checks once).
    What is still missing is said each time, and each check is an attempt in the journal."""
    clock = run.clock
    if not step.poll or clock.rehearsal or run.opts.check or step.end is None:
        return False
    again = clock.now() + dt.timedelta(seconds=int(step.poll))
    if again > step.end:
        return False
    tz = run.plan.tz
    run.say(f"  not yet: {verdict.message}\n  checked again at {fmt(again, tz)} (every {step.poll} s until "
            f"its due_by {fmt(step.end, tz)}); an override lets it pass meanwhile, and the journal is "
            "free until then")
    sleep_until(run, step, again, countdown=False)
    return True


def step_waves(run: Run, step: Step) -> list[tuple[str, str | None, frozenset[str], frozenset[str]]]:
    """(what, limit, its hosts, sites to record) of each wave the step runs in (N17). Without waves,
    one: the step's hosts at once. With them, one per level the phase names, in its order,
    in batches of wave_size sites: each wave a run of the playbook on exactly its hosts, so
    no host of the next wave starts before the last of this one ended."""
    phase = run.plan.phase(step.phase)
    todo = run.todo.get(step.id, frozenset())
    hosts = run.hosts.get(step.id, frozenset())
    if phase is None or not phase.waves:
        return [("", _limit(run, step), hosts, todo)]
    scope = run.session.scope()
    reached = {scope.site_of(host) for host in hosts}
    waves = []
    for level in phase.waves:
        at = [site for site in scope.tree.at_level(level) if site in reached]
        size = phase.wave_size or max(len(at), 1)
        for start in range(0, len(at), size):
            batch = at[start:start + size]
            chosen = sorted(host for host in hosts if scope.site_of(host) in batch)
            names = ", ".join(scope.tree.sites[site].name or site for site in batch)
            waves.append((f"{level}: {names} ({len(chosen)} host(s))", ",".join(chosen),
                          frozenset(chosen), frozenset(batch) & todo))
    return waves


def _attempt(run: Run, step: Step, limit: str | None, hosts: frozenset[str], sites: frozenset[str]) -> None:
    """One run of the step's playbook on `limit` (`hosts`), recorded for `sites`."""
    journal, opts = run.journal, run.opts
    phase = run.plan.phase(step.phase)
    go_on = phase is not None and phase.on_site_failure == "continue"
    attempt = journal.begin_attempt(step.id, run.run_id, check=opts.check, actual_start=run.now_iso(),
                                    sites=sites)
    ident = attempt_ident(run.run_id, step.id, attempt)
    extravars = step_vars(run.plan, step, artifacts=opts.artifacts, journal_id=journal.identity(),
                          rehearsal=opts.rehearsal).to_extravars()
    with opts.progress(step.id) as on_progress:
        result = run_playbook(resolve(step.playbook), run.session.inventory, ident=ident,
                              artifacts_dir=run.artifacts, limit=limit, tags=step.tags,
                              extravars=extravars, check=opts.check, on_progress=on_progress,
                              mark=attempt_mark(journal.identity(), ident), halt_on_failure=not go_on)
    # the evidence is held to the contract before it is stored: a key no model knows, or
    # a value of the wrong shape, fails the step (and is not stored), naming both
    found, wrong = check_evidence(result.evidence, step.playbook or "")
    result.failures += [HostFailure("-", step.playbook or "", problem) for problem in wrong]
    result.stats = work_stats(result)  # hosts that only passed the input checks did nothing
    gate = found.get("gate") if step.kind == "gate" else None
    evidence: list[tuple[str, Any]] = [("result", {
        "status": result.status, "rc": result.rc, "stats": result.stats,
        "failures": [failure.__dict__ for failure in result.failures]})]
    extra = {key: value for key, value in found.items() if key != "gate"}
    if gate is not None:
        evidence.append(("gate", gate))
    if extra:
        evidence.append(("facts", extra))
    passed = result.ok and not wrong and (gate is None or gate["passed"] is True)
    if gate is not None and not passed and not wrong and _nothing_new(run, step, gate, result):
        passed = True  # N3 checked again: only what the earlier gate's override accepted is found
        gate = {**gate, "summary": f"nothing new since {step.recheck_of} was let pass: "
                                   f"{len(gate.get('findings') or [])} finding(s) accepted then"}
        evidence.append(("recheck", {"of": step.recheck_of, "accepted": gate.get("findings") or []}))
    # no play matched a host (Ansible refuses a limit that leaves none: rc 1, no host's
    # result; its own line is kept beside ours): nothing was done, never "done" (N18), and
    # the operator is told which limits
    if not result.stats and (result.ok or (limit and result.rc == 1)):
        passed = False
        result.failures.append(HostFailure(
            "-", step.playbook or "", f"the step's plays match no host under --limit "
            f"{' and '.join(filter(None, [step.limit, opts.limit])) or limit}: nothing "
            "was done; run it with a limit that includes its hosts, or without --limit"
            if limit else "the step's plays match no host of the inventory: nothing was done"))
    # what the step declares (and a gate's verdict) must come back, and not empty: a freeze
    # that reports no database, or a gate with no verdict, has not shown its work (check
    # mode runs no task, so it publishes nothing)
    owed = [*step.evidence, *(["gate"] if step.kind == "gate" and "gate" not in step.evidence else [])]
    missing = [key for key in owed if found.get(key) in (None, {}, [])]
    if missing and result.ok and not wrong and not opts.check:
        passed = False
        result.failures += [HostFailure("-", step.playbook or "", f"the playbook returned no `{key}` evidence"
                                        + (" (the plan's step declares it)" if key in step.evidence else ""))
                            for key in missing]
    summary = _summary(result, gate)
    own, finished = _own_failures(run, result, hosts) if not (passed or wrong or missing) else (None, False)
    contained = go_on and bool(own) and finished  # the others went on (on_site_failure: continue)
    state, site_state = run.site_outcome(step.id, passed or contained, sites - (own or set()))
    failed = (own or set()) & sites
    if contained:
        state = StepState.FAILED
        evidence.append(("site_failure", {"sites": sorted(failed)}))
    elif not passed and failed:  # halted: the sites whose hosts failed; the others were stopped
        site_state = StepState.INTERRUPTED
    journal.finish_attempt(attempt, step.id, status=AttemptStatus.OK if passed else AttemptStatus.FAILED,
                           state=None if opts.check else state, sites=sites, site_state=site_state,
                           failed_sites=failed if not passed else (), ident=ident,
                           artifact_dir=str(result.artifact_dir),
                           stats=result.stats, error=None if passed else result.summary(),
                           evidence=evidence, actual_end=run.now_iso(), summary=summary)
    if passed:
        run.say(f"  ✓ {summary}")
    elif contained:
        _report_site_failure(run, step, result, own or set())
    else:
        _raise_failure(run, step, result, gate, failed or sites)


def _report_site_failure(run: Run, step: Step, result: PlaybookResult, failed: set[str]) -> None:
    """Say and notify where the step failed while the other sites went on."""
    run.failed_sites.setdefault(step.id, set()).update(failed)
    names = site_names(run.session, failed)
    run.say(f"  ✗ failed at {names}; the other sites went on (on_site_failure: continue)\n"
            f"  {result.summary()}\n  log: {result.artifact_dir / 'stdout'}")
    run.notify("site_failure", f"{step.id} {step.title}: {names}",
               detail=f"{result.summary()}\nresume after the fix: invoke cutover.{run.verb} "
               f"--limit {','.join(sorted(failed))}")
    run.escalate("site_failure", step, names, f"{result.summary()}\nlog: {result.artifact_dir / 'stdout'}")


def _raise_failure(run: Run, step: Step, result: PlaybookResult, gate: dict | None,
                   sites: set[str] | frozenset[str]) -> None:
    detail = [result.summary()]
    if gate:
        detail.append(_findings(gate))

    def escalate() -> None:  # N14: the owner of the fault is told once it is one
        run.escalate("failure", step, site_names(run.session, set(sites)),
                     "\n".join([*filter(None, detail), f"log: {result.artifact_dir / 'stdout'}"]),
                     verdict=gate is not None)
    hint = (f"fix the cause and run cutover.{run.verb} again (it resumes here)"
            + (f"; or let the gate pass: invoke cutover.override {step.id} --by NAME --reason TEXT"
               if step.kind == "gate" else "")
            + (f"; or, to let the next stage start without the sites where it failed (they stay "
               f"as they are): invoke cutover.override {step.id} --by NAME --reason TEXT"
               if _may_be_let_pass(step) and step.kind != "gate" else "")
            + f"\n  log: {result.artifact_dir / 'stdout'}")
    message = f"step {step.id} failed\n" + "\n".join(line for line in detail if line)
    if _verdict_of_all(gate, result):  # "not yet": a polling gate looks again, and tells only at the end
        raise GateNotYet(message, hint, escalate=escalate)
    escalate()
    raise StepFailed(message, hint)


def _verdict_of_all(gate: dict | None, result: PlaybookResult) -> bool:
    """The gate ran on every host and said "not passed": not a contract problem ("-"), not a host
    it could not reach (whose part of the verdict is missing)."""
    return (gate is not None and gate.get("passed") is False
            and all(failure.host != "-" for failure in result.failures)
            and not any(stats.get("dark") for stats in result.stats.values()))


def _limit(run: Run, step: Step) -> str | None:
    """The run's limit for this step: as the plan and the operator give it when the step is
    done for every site it touches; otherwise exactly the hosts narrow.py chose: those of the
    sites still to do within the operator's limit (N17: a site done earlier is never done twice)."""
    session = run.session
    todo, touches = run.todo.get(step.id), run.touches.get(step.id)
    if todo is None or (todo == touches and session.opts.limit is None):
        return session.limit(step.limit)
    return ",".join(sorted(run.hosts.get(step.id, ()))) or "!all"


def _own_failures(run: Run, result: PlaybookResult, hosts: frozenset[str]) -> tuple[set[str] | None, bool]:
    """The sites whose hosts failed in the step's work by their own failure, and whether every
    other host of the attempt finished its work. (None, False) when the failure is no host's
    own in the work: a contract problem, or an input check (every entry playbook stops all
    its hosts when one fails them). Not finished when a host never reached the work, or
    stopped before the end of a play without a failure of its own (another's failure in a
    run_once or any_errors_fatal task stops every host): then the failure is everyone's, as
    with halt (fail closed)."""
    if any(failure.host == "-" for failure in result.failures):
        return None, False
    worked = {host for play, seen in result.hosts_by_play.items() if play != INPUT_PLAY for host in seen}
    bad = {host for host, stats in result.stats.items() if stats.get("failures") or stats.get("dark")}
    bad |= {failure.host for failure in result.failures}
    if not bad or bad - worked:
        return None, False
    good = (worked & hosts) - bad
    finished = hosts <= worked | bad and not good & result.unfinished
    return run.session.scope().sites_of(bad), finished


def _nothing_new(run: Run, step: Step, gate: dict, result: PlaybookResult) -> bool:
    """A gate that checks again an earlier one (`recheck_of`) finds only what an override let
    pass there: every finding is one the earlier gate reported in the attempt the override
    let by. Fail closed: the earlier gate passed on its own (nothing was accepted), a finding
    the override never saw, a playbook that could not ask a host, or no findings to compare."""
    if step.recheck_of is None or gate.get("passed") is not False:
        return False
    if not _verdict_of_all(gate, result) or not gate.get("findings"):
        return False
    accepted: list[Any] | None = None
    last_gate: list[Any] = []
    for record in run.journal.evidence(step.recheck_of):
        if record["kind"] == "gate":
            last_gate = list(record["data"].get("findings") or [])
        elif record["kind"] == "override":
            accepted = last_gate
    if accepted is None:
        return False
    return all(any(_covered(finding, earlier) for earlier in accepted) for finding in gate["findings"])


def _covered(finding: Any, earlier: Any) -> bool:
    """A finding the earlier one covers: the same except for `ids`, whose ids (a list, or text
    separated by commas, in any order) are all among the earlier's. Fewer ids (some handled
    since) is covered; one id more is new."""
    def split(item: Any) -> tuple[str, set[str]]:
        if not isinstance(item, dict):
            return json.dumps(item, sort_keys=True, ensure_ascii=False), set()
        ids = item.get("ids")
        listed = ids if isinstance(ids, list) else str(ids if ids is not None else "").split(",")
        rest = {key: value for key, value in item.items() if key != "ids"}
        return (json.dumps(rest, sort_keys=True, ensure_ascii=False),
                {str(i).strip() for i in listed if str(i).strip()})

    key, ids = split(finding)
    earlier_key, earlier_ids = split(earlier)
    return key == earlier_key and ids <= earlier_ids


def _may_be_let_pass(step: Step) -> bool:
    """A gate, or a restore stage (a restore playbook step that proves nothing by declared
    evidence), may be let pass by an override. A freeze, a snapshot, an export, a version
    check never is."""
    return step.kind == "gate" or (step.verb == "restore" and step.kind == "playbook" and not step.evidence)


def _passed_by_override(run: Run, step: Step) -> bool:
    """A step that may be let pass (`_may_be_let_pass`) and failed, with an override waiting,
    passes by it at the sites where it failed only (N17), recorded with the name and reason.
    A gate passes where it failed or was interrupted, and only when this run reaches no other
    site. A restore stage passes where its hosts failed; the sites it was merely stopped at,
    or never ran at, run it now: the next stage starts when every site of this one is done
    or let pass. True when nothing is left to run."""
    journal = run.journal
    override = journal.open_override(step.id)
    if override is None:
        return False
    sites = run.todo.get(step.id, frozenset())
    states = journal.site_states(step.id)
    stopped = (StepState.FAILED, StepState.INTERRUPTED) if step.kind == "gate" else (StepState.FAILED,)
    if states:
        failed = {site for site, state in states.items() if state in stopped}
        if step.kind != "gate":
            sites = frozenset(sites & failed)
            if not sites:
                return False
        elif not sites or not sites <= failed:
            if failed & sites:
                run.say(f"  the override of {override['by']} covers the sites where it failed; "
                        "it runs again here: this run also reaches sites where it has not "
                        "(narrow with --limit)")
            return False
    elif journal.step(step.id)["state"] not in stopped:
        return False
    attempt = journal.begin_attempt(step.id, run.run_id, check=run.opts.check, actual_start=run.now_iso(),
                                    sites=sites)
    if not run.opts.check:  # a check run leaves the override for the run that does the work
        journal.use_override(override["id"])
    state, site_state = run.site_outcome(step.id, True, sites)
    journal.finish_attempt(attempt, step.id, status=AttemptStatus.OVERRIDDEN, sites=sites,
                           site_state=site_state,
                           state=None if run.opts.check else state, actual_end=run.now_iso(),
                           evidence=[("override", {"by": override["by"], "reason": override["reason"],
                                                   "at": override["at"], "sites": sorted(sites)})],
                           summary=f"passed by override of {override['by']}: {override['reason']}")
    where = f" at {site_names(run.session, set(sites))}" if step.kind != "gate" else ""
    run.say(f"  {'gate ' if step.kind == 'gate' else ''}passed{where} by override of {override['by']}: "
            f"{override['reason']}")
    rest = run.todo.get(step.id, frozenset()) - sites
    if step.kind == "gate" or not rest:
        return True
    scope = run.session.scope()  # the other sites run it now
    run.todo[step.id] = rest
    run.hosts[step.id] = frozenset(host for host in run.hosts.get(step.id, ())
                                   if scope.site_of(host) not in sites)
    return False


def _summary(result: PlaybookResult, gate: dict | None) -> str:
    if gate is not None:
        return str(gate.get("summary") or ("gate passed" if gate.get("passed") else "gate failed"))
    hosts = len(result.stats)
    stats = result.stats.values()
    changed = sum(host_stats.get("changed", 0) for host_stats in stats)
    failed = sum(host_stats.get("failures", 0) + host_stats.get("dark", 0) for host_stats in stats)
    return f"{hosts} host(s), {changed} change(s), {failed} failure(s)"


def _findings(gate: dict) -> str:
    findings = gate.get("findings") or []
    lines = [f"  gate found {len(findings)} problem(s):"] if findings else []
    for finding in findings[:30]:
        if isinstance(finding, dict):
            lines.append("    - " + ", ".join(f"{key}={value}" for key, value in finding.items()))
        else:
            lines.append(f"    - {finding}")
    if len(findings) > 30:
        lines.append(f"    … and {len(findings) - 30} more (see cutover.status --json)")
    return "\n".join(lines)
