"""One run of a verb as its steps see it: the session it stands on, the journal, the run's id
and clock, whom it notifies, where its artifacts go; and how a step stops the run
(`StepFailed`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cutover.engine import escalation, notify
from cutover.engine.clock import Clock
from cutover.engine.journal import Journal, operator
from cutover.engine.session import RunOptions, Session
from cutover.engine.states import StepState
from cutover.errors import CutoverError
from cutover.plan.model import Phase, Plan, Step
from cutover.plan.times import fmt

EXIT_FAILED = 1
EXIT_WAITING = 3  # a manual step waits for `cutover.confirm`


class StepFailed(CutoverError):
    pass


def attempt_ident(run_id: int, step_id: str, attempt_id: int) -> str:
    """The ident of a step's attempt: its artifacts' directory."""
    return f"run{run_id:04d}-{step_id}-a{attempt_id}"


def attempt_mark(journal_id: str, ident: str) -> str:
    """The mark an attempt's processes carry: the ident within its journal. Two journals on
    one controller number their runs and attempts alike, so the ident alone would let a
    resumed step of one journal stop or wait for the other's work."""
    return f"{journal_id}/{ident}"


@dataclass(frozen=True)
class Run:
    session: Session
    journal: Journal
    verb: str
    run_id: int
    clock: Clock
    notify_urls: list[str]
    artifacts: Path  # this run's own directory: run-NNNN-<verb>
    escalation_urls: dict[str, list[str]] = field(default_factory=dict)  # per escalation contact (N14)
    # per step: the sites this run does it for, and all the sites it touches (N17)
    todo: dict[str, frozenset[str]] = field(default_factory=dict)
    touches: dict[str, frozenset[str]] = field(default_factory=dict)
    hosts: dict[str, frozenset[str]] = field(default_factory=dict)  # the hosts it runs the step on
    notes: dict[str, list[str]] = field(default_factory=dict)  # said under the step's header
    left: list[str] = field(default_factory=list)  # steps a narrowed run left for other sites
    # steps that failed at some sites while the others went on (on_site_failure: continue)
    failed_sites: dict[str, set[str]] = field(default_factory=dict)
    # per-site confirmations still missing: (what, how to give them); the run ends waiting
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def opts(self) -> RunOptions:
        return self.session.opts

    @property
    def plan(self) -> Plan:
        return self.session.plan

    def site_outcome(self, step_id: str, passed: bool,
                     sites: frozenset[str] | None = None) -> tuple[StepState, StepState]:
        """The step's state and its sites' after an attempt for `sites` (default: all this run
        does it for): done when every site it touches is done, partial when some are, failed
        when the attempt failed."""
        if not passed:
            return StepState.FAILED, StepState.FAILED
        done = self.journal.done_sites(step_id) or set()
        every = self.touches.get(step_id, frozenset())
        whole = every <= done | (self.todo.get(step_id, frozenset()) if sites is None else sites)
        return (StepState.DONE if whole else StepState.PARTIAL), StepState.DONE

    def notify(self, event: str, subject: str, phase: Phase | None = None, detail: str = "") -> None:
        """Tell the plan's and the inventory's targets (never in check mode); say so when
        nobody, or not everybody, was reached."""
        if self.opts.check:
            return
        delivered = notify.send(self.notify_urls, event, self.journal, plan=self.plan, subject=subject,
                                phase=phase, detail=detail, operator=operator(),
                                at=fmt(self.clock.now(), self.plan.tz), rehearsal=self.opts.rehearsal)
        if not delivered:
            self.say(f"  warning: notification '{subject}' was not delivered to every target"
                     if self.notify_urls else f"  warning: notification '{subject}' reached nobody: no "
                     "target (the plan's notify, the inventory's cutover_notify_urls)")

    def escalate(self, event: str, step: Step, sites: str, evidence: str, verdict: bool = True) -> None:
        """Tell the escalation contacts that own this fault (N14; never in check mode); say
        whom, and when a message reached nobody."""
        if self.opts.check or not self.plan.plan.escalation:
            return
        told = escalation.escalate(self.plan, self.journal, self.escalation_urls, event=event, step=step,
                                   sites=sites, evidence=evidence, operator=operator(),
                                   at=fmt(self.clock.now(), self.plan.tz), rehearsal=self.opts.rehearsal,
                                   verdict=verdict)
        for contact, ok in told:
            self.say(f"  escalated to {contact}" if ok else
                     f"  warning: the escalation to {contact} was not delivered (its notify, notify_var)")

    def say(self, text: str) -> None:
        self.session.opts.say(text)

    def now_iso(self) -> str:
        return self.clock.now().isoformat(timespec="seconds")
