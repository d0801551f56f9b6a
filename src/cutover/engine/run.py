"""One run of a verb as its steps see it: the session it stands on, the journal, the run's id
and clock, whom it notifies, where its artifacts go; and how a step stops the run
(`StepFailed`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cutover.engine.clock import Clock
from cutover.engine.journal import Journal
from cutover.engine.session import RunOptions, Session
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

    @property
    def opts(self) -> RunOptions:
        return self.session.opts

    @property
    def plan(self) -> Plan:
        return self.session.plan

    def say(self, text: str) -> None:
        self.session.opts.say(text)

    def now_iso(self) -> str:
        return self.clock.now().isoformat(timespec="seconds")
