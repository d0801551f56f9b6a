"""Shared by the Invoke collections: the common options' help, turning refusals into clean exits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from invoke import Exit

from cutover.errors import CutoverError

COMMON_HELP = {
    "plan": "plan file (default from invoke.yaml)",
    "inventory": "inventory (default: the plan's own)",
    "journal": "journal: a file, or a postgresql://HOST:PORT/DBNAME URL shared by a team (no password in it: "
               "PGPASSWORD, ~/.pgpass or PGSERVICEFILE); default from invoke.yaml",
    "limit": "narrow every step to these sites, groups or hosts (Ansible pattern)",
    "check": "Ansible check mode through the same path; nothing is marked done",
    "rehearsal": "do not wait for wall-clock times; map the plan's times onto now",
    "yes": "do not ask for confirmation on a production inventory",
    "accept_plan_change": "continue a journal whose plan changed (recorded)",
    "auto_confirm": "rehearsal only: confirm manual steps automatically (recorded as 'rehearsal')",
}


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
