"""One run at a time: an flock beside the journal. The kernel drops it when the holder
dies, so a crash never leaves a stale lock; the file says who holds it and since when."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from cutover.engine.clock import now_iso
from cutover.engine.journal import operator
from cutover.errors import CutoverError


class RunLock:
    def __init__(self, journal_path: Path) -> None:
        self.path = Path(f"{journal_path}.lock")
        self.fd: int | None = None

    def acquire(self, verb: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                holder = {}
            os.close(fd)
            held = str(holder.get("verb", "?"))
            raise CutoverError(
                f"another run holds this journal: {holder.get('operator', 'someone')} "
                f"(pid {holder.get('pid', '?')}, {held if '.' in held else 'cutover.' + held}) "
                f"since {holder.get('since', '?')}",
                "wait for it to finish, or coordinate with that operator; one run at a time",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"operator": operator(), "pid": os.getpid(), "verb": verb,
                                  "since": now_iso()}).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
