"""What `plan.check` reports: a problem at `file:line` with a hint, and the refusal that
carries them. Every check module reports through an `Add` callback, so none of them needs
to know how a location in the plan becomes a line."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cutover.errors import CutoverError
from cutover.paths import resolve


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    hint: str = ""
    severity: str = "error"  # error, warning

    def __str__(self) -> str:
        tail = f"\n    hint: {self.hint}" if self.hint else ""
        label = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}: {label}{self.message}{tail}"


class PlanInvalid(CutoverError):
    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        super().__init__("\n".join(str(p) for p in problems) +
                         f"\n{len(errors)} error(s): the plan was not run", code=1)
        self.problems = problems


class Add(Protocol):
    """Report a problem at `loc` in the plan, or at `at` (file, line) in another file."""

    def __call__(self, loc: tuple[Any, ...], message: str, hint: str = "", severity: str = "error",
                 at: tuple[str, int] | None = None) -> None: ...


def close_match(word: str, known: Any, fallback: str = "check the step ids in this plan") -> str:
    match = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {match[0]!r}?" if match else fallback


def rel(path: Path) -> str:
    """A path as the operator wrote it: relative to the checkout when it is inside it."""
    root = resolve(".")
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
