"""The states the journal stores, as the text it stores them (and the status and the report
show them)."""

from __future__ import annotations

from enum import StrEnum


class StepState(StrEnum):
    """Where a step of the plan stands."""

    PENDING = "pending"  # never run
    RUNNING = "running"  # an attempt is at work (or its run crashed: checked again first)
    DONE = "done"  # succeeded, evidence stored, for every site it touches; never run again
    PARTIAL = "partial"  # done for some of its sites (a run narrowed with --limit); the rest to do
    FAILED = "failed"  # the last attempt failed; the next run tries again
    WAITING = "waiting"  # a manual step waits for `cutover.confirm`
    INTERRUPTED = "interrupted"  # left running by a run that did not finish


class RunStatus(StrEnum):
    """How a run of a verb (or of the way back) ended."""

    RUNNING = "running"
    SLEEPING = "sleeping"  # waits for a step's not_before without the lock (runs.waits_for/until)
    DONE = "done"
    FAILED = "failed"
    WAITING = "waiting"  # stopped at a manual step
    ABORTED = "aborted"  # interrupted (Ctrl-C) or ended by an unexpected error
    CRASHED = "crashed"  # found still running by the next run: its process is gone
    REFUSED = "refused"  # the way back refused to discard writes made since the snapshot
    CALLED_OFF = "called_off"  # woke to find the window called off (cutover.abort) meanwhile


class AttemptStatus(StrEnum):
    """How one attempt at a step ended."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    CONFIRMED = "confirmed"  # a manual step, by the confirmation recorded
    OVERRIDDEN = "overridden"  # a failed gate, let through by an override
    INTERRUPTED = "interrupted"
