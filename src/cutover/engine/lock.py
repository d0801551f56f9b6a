"""One run at a time: an flock beside the journal. The kernel drops it when the holder
dies, so a crash never leaves a stale lock; the file says who holds it and since when.

A run that sleeps until a step's `not_before` lets go of the lock (`set_aside`): the others
(confirm, override, data.*, the way back, another site's run) may act meanwhile; two never
act at once. Its own flock, `RunPresence`, says meanwhile that it is alive."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cutover.engine.clock import now_iso
from cutover.engine.journal import operator
from cutover.errors import CutoverError


def _holder(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}


def holder_text(holder: dict[str, Any]) -> str:
    """`alice@ops1 (pid 4711, cutover.stop) since 2023-11-20T10:00:00+00:00`"""
    held = str(holder.get("verb", "?"))
    return (f"{holder.get('operator', 'someone')} (pid {holder.get('pid', '?')}, "
            f"{held if '.' in held else 'cutover.' + held}) since {holder.get('since', '?')}")


def _write_holder(fd: int, verb: str, **more: Any) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"operator": operator(), "pid": os.getpid(), "verb": verb,
                              "since": now_iso(), **more}).encode(), 0)


class RunLock:
    def __init__(self, journal_path: Path) -> None:
        self.path = Path(f"{journal_path}.lock")
        self.fd: int | None = None
        self.verb = ""

    def acquire(self, verb: str, wait: Callable[[str], None] | None = None) -> None:
        """Take the lock, or refuse naming who holds it; with `wait`, tell `wait` who holds
        it and wait for it instead."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if wait is None:
                os.close(fd)
                raise CutoverError(
                    f"another run holds this journal: {holder_text(holder)}",
                    "wait for it to finish, or coordinate with that operator; one run at a time",
                ) from None
            wait(holder_text(holder))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        _write_holder(fd, verb)
        self.fd, self.verb = fd, verb

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    @contextlib.contextmanager
    def set_aside(self, wait: Callable[[str], None]) -> Iterator[None]:
        """Let go of the lock while the body sleeps; take it back after, waiting (told to
        `wait`) while another holds it. Interrupted, the run ends without taking it back."""
        verb = self.verb
        self.release()
        yield
        self.acquire(verb, wait=wait)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class RunPresence:
    """A run's own flock, held from its start to its end (`journal.sqlite.run-7.alive`, which
    says its pid): whoever finds the run unfinished in the journal while it sleeps without
    the run lock can tell a sleeper from a run whose process is gone."""

    def __init__(self, journal_path: Path, run_id: int) -> None:
        self.path = self.path_of(journal_path, run_id)
        self.fd: int | None = None
        self.run_id = run_id

    @staticmethod
    def path_of(journal_path: Path, run_id: int) -> Path:
        return Path(f"{journal_path}.run-{run_id}.alive")

    def __enter__(self) -> RunPresence:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new run's id: nobody else holds it
        _write_holder(fd, "run", run=self.run_id)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None

    @classmethod
    def alive(cls, journal_path: Path, run_id: int) -> dict[str, Any] | None:
        """The holder (pid, operator) of a run whose process is alive; None when it is gone
        (its file is left, unlocked, or there is none: a run of an older cutover)."""
        try:
            fd = os.open(cls.path_of(journal_path, run_id), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd) or {"pid": "?"}
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    @classmethod
    def forget(cls, journal_path: Path, run_id: int) -> None:
        """A gone run's file (under the run lock, once the run is recorded as crashed)."""
        cls.path_of(journal_path, run_id).unlink(missing_ok=True)
