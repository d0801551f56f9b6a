"""What plan.check said, as a test reads it: its errors as text, and the line a text is on."""

from __future__ import annotations

from pathlib import Path


def errors(problems) -> list[str]:
    return [str(p) for p in problems if p.severity == "error"]


def line_of(path: Path, needle: str, after: int = 0) -> int:
    """The first line (1-based) after line `after` that holds `needle`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if n > after and needle in line)
