"""One run of a verb as its steps see it: the session it stands on, the journal, the run's id
and clock, whom it notifies, where its artifacts go; and how a step stops the run
(`StepFailed`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cutover.engine.clock import Clock
from cutover.engine.journal import Journal
from cutover.engine.session import RunOptions, Session
from cutover.engine.states import StepState
from cutover.errors import CutoverError
from cutover.plan.model import Plan

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
    # per step: the sites this run does it for, and all the sites it touches (N17)
    todo: dict[str, frozenset[str]] = field(default_factory=dict)
    touches: dict[str, frozenset[str]] = field(default_factory=dict)
    hosts: dict[str, frozenset[str]] = field(default_factory=dict)  # the hosts it runs the step on
    notes: dict[str, list[str]] = field(default_factory=dict)  # said under the step's header
    left: list[str] = field(default_factory=list)  # steps a narrowed run left for other sites

    @property
    def opts(self) -> RunOptions:
        return self.session.opts

    @property
    def plan(self) -> Plan:
        return self.session.plan

    def site_outcome(self, step_id: str, passed: bool) -> tuple[StepState, StepState]:
        """The step's state and its sites' after this attempt: done when every site it
        touches is done, partial when some are, failed when the attempt failed."""
        if not passed:
            return StepState.FAILED, StepState.FAILED
        done = self.journal.done_sites(step_id) or set()
        every = self.touches.get(step_id, frozenset())
        whole = every <= done | self.todo.get(step_id, frozenset())
        return (StepState.DONE if whole else StepState.PARTIAL), StepState.DONE

    def say(self, text: str) -> None:
        self.session.opts.say(text)

    def now_iso(self) -> str:
        return self.clock.now().isoformat(timespec="seconds")
