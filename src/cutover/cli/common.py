"""Shared by the Invoke collections: turning refusals into clean exits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from invoke import Exit

from cutover.errors import CutoverError


def refusals(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A CutoverError becomes a message and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CutoverError as exc:
            raise Exit(f"error: {exc}", code=exc.code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper
