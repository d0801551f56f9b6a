"""A test's action just before a named step starts: the executor opens one progress object per
playbook run (RunOptions.progress_factory); this one runs (and forgets) the action given for
that step, then watches nothing. Shared by the unit and the lab tests."""

from __future__ import annotations

from collections.abc import Callable


def before_step(actions: dict[str, Callable[[], None]]):
    """A progress_factory running `actions[step]` once, when the step's playbook is about to
    start; the dict may be filled later (a test adds its action before the run)."""

    class BeforeStep:
        def __init__(self, step: str) -> None:
            action = actions.pop(step, None)
            if action:
                action()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def update(self, progress) -> None:
            return None

    return BeforeStep
