"""What the per-site tests (test_site_state, test_site_waves) share: a place for the marker
file the playbook tests/data/sites/site-mark.yml appends "<step> <host>" to, and reading it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def marked_env(tmp_path: Path, monkeypatch: Any) -> dict[str, Any]:
    """A temporary journal and marker file; the marker's path in CUTOVER_TEST_MARKER; none of
    the playbook's failure switches set."""
    for name in ("CUTOVER_TEST_FAIL", "CUTOVER_TEST_FAIL_ONCE", "CUTOVER_TEST_BAD_INPUT", "CUTOVER_TEST_HOLD"):
        monkeypatch.delenv(name, raising=False)
    marker = tmp_path / "marker"
    monkeypatch.setenv("CUTOVER_TEST_MARKER", str(marker))
    return {"tmp": tmp_path, "marker": marker, "journal": tmp_path / "j.sqlite"}


def marks(env: dict[str, Any]) -> list[str]:
    """Every "<step> <host>" the playbook marked, in order."""
    return env["marker"].read_text().splitlines() if env["marker"].exists() else []


def wait_for(predicate: Any, timeout: float = 60, every: float = 0.1) -> None:
    """Until predicate() holds (a process seen from outside: a journal row, a mark), or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("condition not reached in time")
