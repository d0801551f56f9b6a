"""The executor: walk one verb's steps in dependency order, through the journal.

Everything is validated before the first host is touched: the plan (lint), the inventory,
the journal (plan name and hash), the lock, and that steps of earlier verbs this verb
depends on are done. Then each step runs once: `done` steps are skipped, a step left
`running` by a crash is checked again first, a failure stops the run where it is.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.ansible import HostFailure, is_driver, processes_of, run_playbook, stop_processes
from cutover.contract import PlaybookVars, check_evidence, work_stats
from cutover.engine import notify
from cutover.engine.clock import Clock, RehearsalClock
from cutover.engine.journal import Journal, now_iso, operator
from cutover.engine.lock import RunLock
from cutover.errors import CutoverError
from cutover.lab.lab import active_limit
from cutover.lab.topology import load_inventory, resolved_var
from cutover.paths import resolve
from cutover.plan.lint import check as lint_check
from cutover.plan.model import VERBS, Plan, Step
from cutover.plan.times import fmt

EXIT_FAILED = 1
EXIT_WAITING = 3  # a manual step waits for `cutover.confirm`


@dataclass
class RunOptions:
    plan: str
    journal: str
    artifacts: str
    inventory: str | None = None
    rehearsal: bool = False
    check: bool = False
    limit: str | None = None
    yes: bool = False
    accept_plan_change: bool = False
    auto_confirm: bool = False  # rehearsals only: manual steps confirmed as "rehearsal"
    notify_urls: list[str] | None = None  # None: the plan's own list
    clock: Clock | None = None  # tests inject a fake time source
    say: Callable[[str], None] = print
    progress_factory: Callable[[str], Any] | None = None
    confirm_prompt: Callable[[str], bool] | None = None
    orphan_wait: float = 1800.0  # seconds to wait for a killed run's work still running (N18)


class StepFailed(CutoverError):
    pass


def attempt_ident(run_id: int, step_id: str, attempt_id: int) -> str:
    """The ident of a step's attempt: its artifacts' directory, and the mark its processes carry."""
    return f"run{run_id:04d}-{step_id}-a{attempt_id}"


def ordered(steps: list[Step], plan_order: dict[str, int]) -> list[Step]:
    """Dependency order; among ready steps, the earliest planned start, then plan order."""
    ids = {s.id for s in steps}
    indeg = {s.id: sum(1 for d in s.after if d in ids) for s in steps}
    children: dict[str, list[Step]] = {s.id: [] for s in steps}
    for s in steps:
        for d in s.after:
            if d in ids:
                children[d].append(s)
    far = dt.datetime.max.replace(tzinfo=dt.UTC)

    def key(s: Step) -> tuple:
        return (s.start or far, plan_order[s.id], s.id)

    ready = [(*key(s), s) for s in steps if indeg[s.id] == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        *_, s = heapq.heappop(ready)
        out.append(s)
        for c in children[s.id]:
            indeg[c.id] -= 1
            if indeg[c.id] == 0:
                heapq.heappush(ready, (*key(c), c))
    return out


def notify_urls(plan: Plan, inventory: Path) -> list[str]:
    """The plan's notification URLs and the inventory's `cutover_notify_urls` (N16), resolved
    as Ansible resolves them (templates, vault), once per distinct value in the inventory."""
    urls = list(plan.plan.notify)
    hostvars = load_inventory(inventory).get("_meta", {}).get("hostvars", {})
    seen: list[Any] = []
    for host, hv in sorted(hostvars.items()):
        raw = hv.get("cutover_notify_urls")
        if not raw or raw in seen:
            continue
        seen.append(raw)
        value = resolved_var(inventory, host, "cutover_notify_urls")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
            raise CutoverError(f"cutover_notify_urls of {host} in {inventory} is not a list of URLs",
                               "write it as a YAML list of apprise URLs")
        urls += [u for u in value if u not in urls]
    return urls


def step_vars(plan: Plan, step: Step, *, artifacts: str, journal_id: str, rehearsal: bool) -> PlaybookVars:
    """What a step's playbook receives (cutover.contract): the export lives under
    <artifacts>/data/<plan>, per plan, not per run, so a later run's hand-off finds it."""
    return PlaybookVars.for_plan(plan, artifacts=artifacts, journal_id=journal_id, rehearsal=rehearsal,
                                 step=step)


def rollback_vars(plan: Plan, *, artifacts: str, journal_id: str, rehearsal: bool) -> PlaybookVars:
    """What the way back's playbooks receive (cutover.contract)."""
    return PlaybookVars.for_plan(plan, artifacts=artifacts, journal_id=journal_id, rehearsal=rehearsal)


def is_production(inventory: Path) -> bool:
    data = load_inventory(inventory)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    return any(v.get("cutover_environment") == "production" for v in hostvars.values())


def combine_limits(*limits: str | None) -> str | None:
    """Intersect limit patterns: `a`, `b` → `a:&b` (each term of b intersected)."""
    parts = [x for x in limits if x]
    if not parts:
        return None
    out = parts[0]
    for extra in parts[1:]:
        if extra.startswith("all:!"):
            out += ":" + extra.removeprefix("all:")
        else:
            out += ":" + ":".join(f"&{t}" if not t.startswith(("!", "&")) else t
                                  for t in extra.replace(",", ":").split(":") if t)
    return out


class Executor:
    def __init__(self, verb: str, opts: RunOptions) -> None:
        if verb not in VERBS:
            raise CutoverError(f"unknown verb {verb!r}", f"one of {', '.join(VERBS)}")
        self.verb, self.o = verb, opts
        self.say = opts.say

    # ------------------------------------------------------------------ preparation

    def prepare(self) -> None:
        o = self.o
        journal_path = resolve(o.journal)
        durations: dict[str, float] = {}
        if journal_path.exists():
            j = Journal.open(journal_path)
            durations = j.phase_durations()
            j.close()
        self.plan, warnings = lint_check(o.plan, o.inventory, durations)
        for w in warnings:
            self.say(str(w))
        self.inventory = resolve(o.inventory or self.plan.plan.inventory)
        if is_production(self.inventory) and not o.check and not o.yes:
            ask = o.confirm_prompt
            prompt = (f"{self.inventory} is a PRODUCTION inventory. Run cutover.{self.verb} "
                      f"of plan {self.plan.plan.name} now?")
            if ask is None or not ask(prompt):
                raise CutoverError("not confirmed; nothing was run",
                                   "answer yes at the prompt, or pass --yes")
        self.steps = self.plan.steps(self.verb)
        if not self.steps:
            raise CutoverError(f"plan {self.plan.plan.name} has no {self.verb} steps")
        self.journal = Journal.open(journal_path)
        self.lock = RunLock(journal_path)

    def _check_cross_verb_dependencies(self) -> None:
        own = {s.id for s in self.steps}
        for s in self.steps:
            for d in s.after:
                if d in own:
                    continue
                row = self.journal.step(d)
                if row is None or row["state"] != "done":
                    other = self.plan.step(d)
                    raise CutoverError(
                        f"step {s.id} needs {d} ({other.verb if other else '?'}), which is "
                        f"{row['state'] if row else 'not started'}",
                        f"run `invoke cutover.{other.verb if other else '?'}` first")

    # ------------------------------------------------------------------ the run

    def run(self) -> int:
        self.prepare()
        try:
            self.lock.acquire(self.verb)
        except CutoverError:
            self.journal.close()
            raise
        try:
            return self._run_locked()
        finally:
            self.lock.release()
            self.journal.close()

    def _run_locked(self) -> int:
        o, j, who = self.o, self.journal, operator()
        note = j.bind_plan(self.plan, accept_change=o.accept_plan_change, by=who)
        if note:
            self.say(note)
        for r in j.interrupted_runs():  # we hold the lock, so their process is gone
            j.mark_run_crashed(r["id"])
            self.say(f"run {r['id']} (cutover.{r['verb']}, {r['operator']}) ended without "
                     "closing: recorded as crashed")
        self._check_cross_verb_dependencies()
        order = ordered(self.steps, {s.id: i for i, s in enumerate(self.plan.steps())})
        first = min((s.start for s in order if s.start), default=None)
        self.clock = o.clock or (RehearsalClock(first) if o.rehearsal else Clock())
        self.urls = o.notify_urls if o.notify_urls is not None else notify_urls(self.plan, self.inventory)
        run_id = j.start_run(self.verb, rehearsal=o.rehearsal, check=o.check,
                             plan_hash=self.plan.digest, who=who,
                             options={"limit": o.limit, "inventory": str(self.inventory),
                                      "auto_confirm": o.auto_confirm})
        self.run_id = run_id
        self.artifacts = resolve(o.artifacts) / f"run-{run_id:04d}-{self.verb}"
        mode = "rehearsal" if o.rehearsal else "real clock"
        self.say(f"cutover.{self.verb}: plan {self.plan.plan.name}, run {run_id}, {mode}"
                 f"{', check mode (nothing is marked done)' if o.check else ''}, journal {j.path}")
        pending = [s for s in order if (j.step(s.id) or {})["state"] != "done"]
        if not pending:
            self.say(f"every {self.verb} step is already done; nothing to do")
            j.end_run(run_id, "done")
            return 0
        status = "done"
        try:
            for n, step in enumerate(order, 1):
                self._one(step, n, len(order))
        except StepFailed as exc:
            status = "waiting" if exc.code == EXIT_WAITING else "failed"
            j.end_run(run_id, status)
            if status == "failed":
                self._notify("failure", str(exc.message), detail=exc.hint)
            raise
        except BaseException:
            j.end_run(run_id, "aborted")
            raise
        j.end_run(run_id, status)
        self._notify("run_end", f"cutover.{self.verb} {'checked' if o.check else 'complete'}")
        self.say(f"cutover.{self.verb}: {'check complete' if o.check else 'all steps done'}")
        return 0

    def _notify(self, event: str, subject: str, phase=None, detail: str = "") -> None:
        if self.o.check:
            return
        ok = notify.send(self.urls, event, self.journal, plan=self.plan, subject=subject,
                         phase=phase, detail=detail, operator=operator(),
                         at=fmt(self.clock.now(), self.plan.tz), rehearsal=self.o.rehearsal)
        if not ok:
            self.say(f"  warning: notification '{subject}' was not delivered to every target"
                     if self.urls else f"  warning: notification '{subject}' reached nobody: no target "
                     "(the plan's notify, the inventory's cutover_notify_urls)")

    def _phase_edges(self, step: Step) -> tuple[bool, bool]:
        """Is this step the first / last of its phase (by the phase's own step list)?"""
        phase = self.plan.phase(step.phase)
        ids = [s.id for s in phase.steps] if phase else [step.id]
        done = {sid for sid in ids if (self.journal.step(sid) or {})["state"] == "done"}
        first = not any((self.journal.step(sid) or {})["attempts"] for sid in ids)
        last = len(done) == len(ids)
        return first, last

    def _one(self, step: Step, n: int, total: int) -> None:
        j, o = self.journal, self.o
        row = j.step(step.id)
        if row["state"] == "done":
            self.say(f"[{n}/{total}] {step.id}: done earlier ({row['summary'] or 'ok'}); skipped")
            return
        if row["state"] == "running":
            self.say(f"[{n}/{total}] {step.id}: was left running by a run that did not finish; "
                     "checking it again before anything else")
            self._wait_for_earlier_attempts(step)
            j.abandon_running(step.id)
        phase = self.plan.phase(step.phase)
        first_of_phase, _ = self._phase_edges(step)
        if first_of_phase and not o.check:
            self._notify("phase_start", f"{phase.id} {phase.title}", phase=phase)
        planned_start, planned_end = self.clock.planned(step.start), self.clock.planned(step.end)
        self.say(f"[{n}/{total}] {step.id} {step.title}  ·  {step.kind}  ·  owner {step.owner}"
                 f"  ·  planned {fmt(planned_start, self.plan.tz)} → {fmt(planned_end, self.plan.tz)}")
        if not self.clock.rehearsal:
            self.clock.wait_until(step.start, tick=lambda left: self.say(
                f"  waiting for {fmt(step.start, self.plan.tz)}: {int(left // 60)} min {int(left % 60)} s"))
            if self.clock.overdue(step.end):
                ov = j.open_override(step.id)
                if ov is None:
                    raise StepFailed(f"step {step.id} is past its due_by {fmt(step.end, self.plan.tz)}",
                                     f"to run it anyway: invoke cutover.override {step.id} --by NAME "
                                     "--reason TEXT (recorded)")
                j.use_override(ov["id"])
                self.say(f"  past due_by, allowed by override of {ov['by']}: {ov['reason']}")
        handler = {"playbook": self._playbook, "gate": self._playbook, "manual": self._manual,
                   "wait": self._wait}[step.kind]
        handler(step)
        _, last_of_phase = self._phase_edges(step)
        if last_of_phase and not o.check:
            self._notify("phase_end", f"{phase.id} {phase.title}", phase=phase)

    def _wait_for_earlier_attempts(self, step: Step) -> None:
        """A killed run's work can outlive it: its ansible-playbook (which, its output gone,
        may hang forever) and the helpers it started (an upload, an export, a remote dump's
        caller). Before the step runs again, the orphaned ansible-playbook is stopped and the
        work itself is waited for, or the step is refused after `orphan_wait` seconds: two
        attempts never race over the same files. What the earlier work left is then checked
        by the step itself (a verified snapshot or upload is kept, anything else done again);
        a dump still running on the database host holds its lock there (pg_data)."""
        for a in self.journal.open_attempts(step.id):
            ident = attempt_ident(a["run_id"], step.id, a["id"])
            pids = processes_of(ident)
            drivers = [p for p in pids if is_driver(p)]
            if drivers:
                self.say(f"  the earlier attempt {ident} left ansible-playbook running (pid "
                         f"{', '.join(map(str, drivers))}); stopping it")
                stop_processes(drivers)
                pids = processes_of(ident)
            if not pids:
                continue
            self.say(f"  the earlier attempt {ident} is still at work ({len(pids)} process(es): "
                     f"{', '.join(map(str, pids[:8]))}); waiting for it to end "
                     f"(up to {self.o.orphan_wait:.0f} s)")
            started = time.monotonic()
            while pids and time.monotonic() - started < self.o.orphan_wait:
                time.sleep(min(2.0, self.o.orphan_wait))
                pids = processes_of(ident)
            if pids:
                raise StepFailed(f"step {step.id}: the earlier attempt {ident} is still at work after "
                                 f"{self.o.orphan_wait:.0f} s (process(es) {', '.join(map(str, pids))}); "
                                 "nothing was started",
                                 "let it finish (or stop it: kill those processes), then run "
                                 f"cutover.{self.verb} again")
            self.say(f"  the earlier attempt's work ended after {time.monotonic() - started:.0f} s; "
                     "the step runs again and checks what it left")

    def _now_iso(self) -> str:
        return self.clock.now().isoformat(timespec="seconds")

    # ------------------------------------------------------------------ step kinds

    def _manual(self, step: Step) -> None:
        j = self.journal
        conf = j.confirmation(step.id)
        if conf is None and self.o.auto_confirm and self.o.rehearsal:
            j.add_confirmation(step.id, "rehearsal", "confirmed automatically in a rehearsal")
            conf = j.confirmation(step.id)
        if conf is None:
            j.set_state(step.id, "waiting", "waiting for confirmation")
            raise StepFailed(f"step {step.id} ({step.title}) is a manual step waiting for confirmation",
                             f"when it is done: invoke cutover.confirm {step.id} --by NAME [--note TEXT],"
                             f" then run cutover.{self.verb} again", code=EXIT_WAITING)
        attempt = j.begin_attempt(step.id, self.run_id, check=self.o.check, actual_start=self._now_iso())
        j.finish_attempt(attempt, step.id, status="confirmed",
                         state=None if self.o.check else "done", actual_end=self._now_iso(),
                         evidence=[("confirmation", {"by": conf["by"], "note": conf["note"],
                                                     "at": conf["at"]})],
                         summary=f"confirmed by {conf['by']}")
        self.say(f"  confirmed by {conf['by']}{': ' + conf['note'] if conf['note'] else ''}")

    def _wait(self, step: Step) -> None:
        attempt = self.journal.begin_attempt(step.id, self.run_id, check=self.o.check,
                                             actual_start=self._now_iso())
        self.journal.finish_attempt(attempt, step.id, status="ok",
                                    state=None if self.o.check else "done",
                                    actual_end=self._now_iso(), summary="time reached")

    def _playbook(self, step: Step) -> None:
        j, o = self.journal, self.o
        if step.kind == "gate":
            ov = j.open_override(step.id)
            if ov is not None and (j.step(step.id)["state"] in ("failed", "interrupted")):
                attempt = j.begin_attempt(step.id, self.run_id, check=o.check, actual_start=self._now_iso())
                j.use_override(ov["id"])
                j.finish_attempt(attempt, step.id, status="overridden",
                                 state=None if o.check else "done", actual_end=self._now_iso(),
                                 evidence=[("override", {"by": ov["by"], "reason": ov["reason"],
                                                         "at": ov["at"]})],
                                 summary=f"passed by override of {ov['by']}: {ov['reason']}")
                self.say(f"  gate passed by override of {ov['by']}: {ov['reason']}")
                return
        attempt = j.begin_attempt(step.id, self.run_id, check=o.check, actual_start=self._now_iso())
        ident = attempt_ident(self.run_id, step.id, attempt)
        extravars = step_vars(self.plan, step, artifacts=o.artifacts, journal_id=j.identity(),
                              rehearsal=o.rehearsal).to_extravars()
        limit = combine_limits(step.limit, o.limit, active_limit(self.inventory))
        progress = self.o.progress_factory(step.id) if self.o.progress_factory else None
        try:
            if progress:
                progress.__enter__()
            result = run_playbook(resolve(step.playbook), self.inventory, ident=ident,
                                  artifacts_dir=self.artifacts, limit=limit, tags=step.tags,
                                  extravars=extravars, check=o.check,
                                  on_progress=progress.update if progress else None)
        finally:
            if progress:
                progress.__exit__(None, None, None)
        # the evidence is held to the contract before it is stored: a key no model knows, or
        # a value of the wrong shape, fails the step (and is not stored), naming both
        found, wrong = check_evidence(result.evidence, step.playbook or "")
        result.failures += [HostFailure("-", step.playbook or "", problem) for problem in wrong]
        result.stats = work_stats(result)  # hosts that only passed the input checks did nothing
        gate = found.get("gate") if step.kind == "gate" else None
        evidence: list[tuple[str, Any]] = [("result", {
            "status": result.status, "rc": result.rc, "stats": result.stats,
            "failures": [f.__dict__ for f in result.failures]})]
        extra = {k: v for k, v in found.items() if k != "gate"}
        if gate is not None:
            evidence.append(("gate", gate))
        if extra:
            evidence.append(("facts", extra))
        passed = result.ok and not wrong and (gate is None or gate["passed"] is True)
        if result.ok and not result.stats:  # no play matched a host: nothing was done, never "done" (N18)
            passed = False
            result.failures.append(HostFailure(
                "-", step.playbook or "", f"the step's plays match no host under --limit {limit}: nothing "
                "was done; run it with a limit that includes its hosts, or without --limit"
                if limit else "the step's plays match no host of the inventory: nothing was done"))
        if step.kind == "gate" and "gate" not in result.evidence and result.ok and not o.check:
            passed = False
            result.failures.append(
                HostFailure("-", step.playbook or "", "gate playbook returned no `gate` evidence"))
        summary = _summary(result, gate)
        state = None if o.check else ("done" if passed else "failed")
        j.finish_attempt(attempt, step.id, status="ok" if passed else "failed", state=state,
                         ident=ident, artifact_dir=str(result.artifact_dir), stats=result.stats,
                         error=None if passed else result.summary(), evidence=evidence,
                         actual_end=self._now_iso(), summary=summary)
        if passed:
            self.say(f"  ✓ {summary}")
            return
        detail = [result.summary()]
        if gate:
            detail.append(_findings(gate))
        hint = (f"fix the cause and run cutover.{self.verb} again (it resumes here)"
                + (f"; or let the gate pass: invoke cutover.override {step.id} --by NAME --reason TEXT"
                   if step.kind == "gate" else "")
                + f"\n  log: {result.artifact_dir / 'stdout'}")
        raise StepFailed(f"step {step.id} failed\n" + "\n".join(x for x in detail if x), hint)


def _summary(result, gate: dict | None) -> str:
    if gate is not None:
        return str(gate.get("summary") or ("gate passed" if gate.get("passed") else "gate failed"))
    hosts = len(result.stats)
    changed = sum(v.get("changed", 0) for v in result.stats.values())
    failed = sum(v.get("failures", 0) + v.get("dark", 0) for v in result.stats.values())
    return f"{hosts} host(s), {changed} change(s), {failed} failure(s)"


def _findings(gate: dict) -> str:
    findings = gate.get("findings") or []
    lines = [f"  gate found {len(findings)} problem(s):"] if findings else []
    for f in findings[:30]:
        if isinstance(f, dict):
            lines.append("    - " + ", ".join(f"{k}={v}" for k, v in f.items()))
        else:
            lines.append(f"    - {f}")
    if len(findings) > 30:
        lines.append(f"    … and {len(findings) - 30} more (see cutover.status --json)")
    return "\n".join(lines)


def override(opts: RunOptions, step_id: str, by: str, reason: str) -> str:
    plan, _ = lint_check(opts.plan, opts.inventory)
    step = plan.step(step_id)
    if step is None:
        raise CutoverError(f"plan {plan.plan.name} has no step {step_id!r}")
    if not by.strip() or not reason.strip():
        raise CutoverError("an override needs --by NAME and --reason TEXT", "both are recorded")
    j = Journal.open(resolve(opts.journal))
    try:
        j.bind_plan(plan, accept_change=False, by=operator())
        j.add_override(step_id, by.strip(), reason.strip())
        urls = (opts.notify_urls if opts.notify_urls is not None
                else notify_urls(plan, resolve(opts.inventory or plan.plan.inventory)))
        notify.send(urls, "override", j, plan=plan, subject=f"{step.id} {step.title}",
                    phase=plan.phase(step.phase), detail=f"{by}: {reason}", operator=operator(),
                    at=fmt(dt.datetime.now(plan.tz)), rehearsal=opts.rehearsal)
    finally:
        j.close()
    return f"override of {step_id} by {by} recorded; run cutover.{step.verb} to continue"


def confirm(opts: RunOptions, step_id: str, by: str, note: str) -> str:
    plan, _ = lint_check(opts.plan, opts.inventory)
    step = plan.step(step_id)
    if step is None:
        raise CutoverError(f"plan {plan.plan.name} has no step {step_id!r}")
    if step.kind != "manual":
        raise CutoverError(f"step {step_id} is a {step.kind} step; only manual steps are confirmed",
                           "a failed gate is let through with cutover.override")
    if not by.strip():
        raise CutoverError("a confirmation needs --by NAME", "the name is recorded")
    j = Journal.open(resolve(opts.journal))
    try:
        j.bind_plan(plan, accept_change=False, by=operator())
        j.add_confirmation(step_id, by.strip(), note)
    finally:
        j.close()
    return f"confirmation of {step_id} by {by} recorded; run cutover.{step.verb} to continue"


DATA_RESTORE_PLAYBOOK = "playbooks/data/restore-snapshot.yml"
DATA_VERIFY_PLAYBOOK = "playbooks/data/verify-snapshot.yml"
ROLLBACK_PLAYBOOK = "playbooks/deploy/rollback.yml"


def _reopened(verified: dict[str, Any]) -> list[str]:
    """Databases that are live again (not frozen) or whose rows differ from the snapshot, per
    the verification: what a restore would throw away. A missing answer counts as live."""
    out = []
    for host, dbs in sorted((verified or {}).items()):
        for db, v in sorted((dbs or {}).items()):
            differ = v.get("rows_differ_total")
            if v.get("frozen") is not True or differ != 0:
                tables = ", ".join(f"{t} {n:+d}" for t, n in (v.get("rows_differ") or {}).items())
                state = "open for business again" if v.get("frozen") is not True else "frozen"
                out.append(f"{host} {db} ({state}): {differ if differ is not None else '?'} row(s) differ "
                           "from the snapshot" + (f" ({tables})" if tables else ""))
    return out


def _rollback_stage(opts: RunOptions, journal: Journal, run_id: int, inventory: Path, name: str,
                    playbook: str, kind: str, extravars: dict[str, Any]) -> Any:
    """One playbook of the way back, its evidence recorded; a failure (or no host) ends the run."""
    progress = opts.progress_factory(name) if opts.progress_factory else None
    if progress:
        progress.__enter__()
    try:
        result = run_playbook(resolve(playbook), inventory, ident=f"run{run_id:04d}-{name}",
                              artifacts_dir=resolve(opts.artifacts) / f"run-{run_id:04d}-rollback",
                              limit=combine_limits(opts.limit, active_limit(inventory)),
                              extravars=extravars, on_progress=progress.update if progress else None)
    finally:
        if progress:
            progress.__exit__(None, None, None)
    if result.ok and not work_stats(result):  # a --limit without the hosts: nothing was rolled back
        journal.end_run(run_id, "failed")
        raise CutoverError(f"{name}: its plays match no host under --limit {opts.limit}; nothing "
                           "was rolled back there", "run it with a limit that includes those hosts")
    good, wrong = check_evidence(result.evidence, playbook)
    if wrong:  # held to the contract before it is stored, as a step's is
        journal.end_run(run_id, "failed")
        raise CutoverError(f"{name} failed:\n  " + "\n  ".join(wrong)
                           + ("" if result.ok else "\n" + result.summary()),
                           f"log: {result.artifact_dir / 'stdout'}")
    found = good.get(kind) or ([] if kind == "versions" else {})
    journal.db.execute("INSERT INTO evidence (step_id, attempt_id, kind, data, created_at)"
                       " VALUES ('rollback', NULL, ?, ?, ?)",
                       (kind, json.dumps(found, ensure_ascii=False), now_iso()))
    if not result.ok:
        journal.end_run(run_id, "failed")
        raise CutoverError(f"{name} failed:\n" + result.summary(), f"log: {result.artifact_dir / 'stdout'}")
    return found


def _refuse_or_record_discard(journal: Journal, run_id: int, verified: dict[str, Any],
                              discard: dict[str, str] | None, out: dict[str, Any]) -> None:
    """N18: restoring a snapshot over databases that are live again throws away what business
    wrote since; that needs a name and a reason, recorded, or the rollback stops here."""
    live = _reopened(verified)
    if not live:
        return
    if not discard:
        journal.end_run(run_id, "refused")
        raise CutoverError(
            "the databases have changed since the snapshot (open for business again, or written "
            "before it was taken); restoring it would discard that:\n  " + "\n  ".join(live)
            + "\nnothing was changed",
            "to discard those writes knowingly: invoke cutover.rollback --data "
            "--discard-writes-since-snapshot --by NAME --reason TEXT (recorded)")
    out["discard_writes"] = {**discard, "databases": live}
    journal.db.execute("INSERT INTO evidence (step_id, attempt_id, kind, data, created_at)"
                       " VALUES ('rollback', NULL, 'discard_writes', ?, ?)",
                       (json.dumps(out["discard_writes"], ensure_ascii=False), now_iso()))


def rollback(opts: RunOptions, data: bool = False, discard: dict[str, str] | None = None) -> dict[str, Any]:
    """Switch every component of the plan's release manifest back to its previous release;
    with `data`, then recreate every line database from the data phase's snapshot (N18),
    which must verify first (a snapshot that does not verify is refused, nothing dropped).

    Runs under the journal's lock and is recorded as a run of its own, with what every
    probe reported afterwards, and the restored row counts, as evidence."""
    plan, _ = lint_check(opts.plan, opts.inventory)
    if not plan.plan.release_manifest:
        raise CutoverError(f"plan {plan.plan.name} names no release_manifest; nothing to roll back")
    if discard is not None and (not data or not discard.get("by", "").strip()
                                or not discard.get("reason", "").strip()):
        raise CutoverError("--discard-writes-since-snapshot goes with --data, --by NAME and --reason TEXT",
                           "all are recorded in the journal and the report; nothing was changed")
    inventory = resolve(opts.inventory or plan.plan.inventory)
    if is_production(inventory) and not opts.yes:
        ask = opts.confirm_prompt
        what = ("every component, and DROP and recreate every line database from the snapshot"
                if data else "every component")
        if ask is None or not ask(f"{inventory} is a PRODUCTION inventory. Roll back {what}?"):
            raise CutoverError("not confirmed; nothing was run", "answer yes, or pass --yes")
    journal = Journal.open(resolve(opts.journal))
    lock = RunLock(journal.path)
    out: dict[str, Any] = {}
    try:
        lock.acquire("rollback")
        journal.bind_plan(plan, accept_change=opts.accept_plan_change, by=operator())
        run_id = journal.start_run("rollback", rehearsal=opts.rehearsal, check=False,
                                   plan_hash=plan.digest, options={"limit": opts.limit, "data": data},
                                   who=operator())
        extravars = rollback_vars(plan, artifacts=opts.artifacts, journal_id=journal.identity(),
                                  rehearsal=opts.rehearsal).to_extravars()
        stages = [("rollback", ROLLBACK_PLAYBOOK, "versions")]
        if data:  # the snapshot must verify before any host is touched
            stages.insert(0, ("rollback-verify", DATA_VERIFY_PLAYBOOK, "snapshot_verified"))
            stages.append(("rollback-data", DATA_RESTORE_PLAYBOOK, "data_restored"))
        for name, playbook, kind in stages:
            found = _rollback_stage(opts, journal, run_id, inventory, name, playbook, kind, extravars)
            out[kind] = found
            if name == "rollback-verify":  # before any host is touched: are the databases live again?
                _refuse_or_record_discard(journal, run_id, found, discard, out)
        journal.end_run(run_id, "done")
        return out
    finally:
        lock.release()
        journal.close()
