"""Time for the executor: the real wall clock, or a rehearsal clock.

Real: a step waits for its `not_before` (with a countdown) and is refused after its
`due_by` unless overridden. Rehearsal: nothing waits; the plan's times are mapped onto now
(planned start of the verb's first step = the moment the run starts) so planned vs actual
is still recorded and comparable.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable


def now_iso() -> str:
    """The wall clock's now as the journal and the lock record it: UTC, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Clock:
    rehearsal = False

    def __init__(self, now: Callable[[], dt.datetime] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._sleep = sleep or time.sleep

    def now(self) -> dt.datetime:
        return self._now()

    def planned(self, t: dt.datetime | None) -> dt.datetime | None:
        """A plan time on this clock's time line."""
        return t

    def wait_until(self, t: dt.datetime | None, tick: Callable[[float], None] | None = None) -> float:
        """Block until `t` (real clock). Returns the seconds waited."""
        waited = 0.0
        if t is None:
            return waited
        while (left := (t - self.now()).total_seconds()) > 0:
            if tick:
                tick(left)
            step = min(left, 1.0 if left < 60 else 10.0)
            self._sleep(step)
            waited += step
        return waited

    def overdue(self, due: dt.datetime | None) -> bool:
        return due is not None and self.now() > due


class RehearsalClock(Clock):
    rehearsal = True

    def __init__(self, anchor: dt.datetime | None, now: Callable[[], dt.datetime] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        super().__init__(now, sleep)
        self.offset = (self.now() - anchor) if anchor else dt.timedelta(0)

    def planned(self, t: dt.datetime | None) -> dt.datetime | None:
        return t + self.offset if t else None

    def wait_until(self, t, tick=None) -> float:
        return 0.0

    def overdue(self, due) -> bool:
        return False
