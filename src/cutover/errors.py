"""One error type for refusals the operator must act on: a message and what to do."""

from __future__ import annotations


class CutoverError(Exception):
    """A clear refusal. `str()` is the whole message an operator sees, hint included."""

    def __init__(self, message: str, hint: str = "", code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code

    def __str__(self) -> str:
        text = f"{self.message}\n  hint: {self.hint}" if self.hint else self.message
        return terminal_safe(text)


def terminal_safe(text: str) -> str:
    """`text` with every character a terminal would act on instead of show (escape sequences,
    carriage returns, bidi overrides) replaced: an error names strings from outside the plan
    (an operator's name from a shared journal, a host's reply)."""
    return "".join(ch if ch == "\n" or ch.isprintable() else "\ufffd" for ch in text)
