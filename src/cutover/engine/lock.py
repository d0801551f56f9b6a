"""One run at a time: an flock beside the journal. The kernel drops it when the holder
dies, so a crash never leaves a stale lock; the file says who holds it and since when.

A run that sleeps until a step's `not_before` lets go of the lock (`set_aside`): the others
(confirm, override, data.*, the way back, another site's run) may act meanwhile; two never
act at once. Its own flock, `RunPresence`, says meanwhile that it is alive.

On a PostgreSQL journal (controllers on several machines) both are session advisory locks,
each on a connection of its own held as long as the lock: the server drops them when the
holder's connection dies, as the kernel drops an flock. Who holds them is a row of
`cutover_holders`. Advisory locks belong to one database, and a journal is one database: the
keys below name the lock, the database names the journal."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from cutover.engine.clock import now_iso
from cutover.engine.journal import operator
from cutover.engine.journal_db import Where, connect, is_url
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


REFUSAL_HINT = "wait for it to finish, or coordinate with that operator; one run at a time"


def _write_holder(fd: int, verb: str, **more: Any) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"operator": operator(), "pid": os.getpid(), "verb": verb,
                              "since": now_iso(), **more}).encode(), 0)


RUN_LOCK = 0x63757431  # the advisory lock keys (classid, objid): (RUN_LOCK, 0) the run lock,
RUN_PRESENCE = 0x63757432  # (RUN_PRESENCE, N) run N's presence
HOLDERS = """CREATE TABLE IF NOT EXISTS cutover_holders (
    name TEXT PRIMARY KEY, operator TEXT NOT NULL, pid INTEGER NOT NULL, verb TEXT NOT NULL,
    since TEXT NOT NULL, run INTEGER)"""


class PgSeat:
    """A session advisory lock on a connection of its own, and its holder's row (`name`)."""

    def __init__(self, url: str, key: tuple[int, int], name: str) -> None:
        self.url, self.key, self.name = url, key, name
        self.conn: psycopg.Connection | None = None

    def take(self, verb: str, *, wait: bool = False, run: int | None = None) -> bool:
        """Take the lock (with `wait`, waiting for it) and write who holds it; False when
        another holds it."""
        conn = connect(self.url, purpose="lock")
        try:
            # a controller whose machine vanishes is noticed within about two minutes
            for setting, value in (("idle", 60), ("interval", 10), ("count", 6)):
                conn.execute(f"SET tcp_keepalives_{setting} = {value}")
            if wait:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", self.key)
            elif not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", self.key).fetchone()[0]:
                conn.close()
                return False
            conn.execute(HOLDERS)  # under the lock: only one makes it
            conn.execute("INSERT INTO cutover_holders VALUES (%s, %s, %s, %s, %s, %s)"
                         " ON CONFLICT (name) DO UPDATE SET operator=excluded.operator, pid=excluded.pid,"
                         " verb=excluded.verb, since=excluded.since, run=excluded.run",
                         (self.name, operator(), os.getpid(), verb, now_iso(), run))
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        return True

    def give_back(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("DELETE FROM cutover_holders WHERE name=%s", (self.name,))
            self.conn.close()  # the server lets go of the lock with the session
            self.conn = None

    @staticmethod
    def holder(url: str, key: tuple[int, int], name: str) -> dict[str, Any] | None:
        """Who holds the lock `key`, None when nobody does ({} when the holder wrote no row)."""
        with connect(url, purpose="status") as conn:
            held = conn.execute("SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE"
                                " d.datname = current_database() AND l.locktype = 'advisory' AND l.granted"
                                " AND l.classid = %s AND l.objid = %s AND l.objsubid = 2", key).fetchone()
            if held is None:
                return None
            if conn.execute("SELECT to_regclass('cutover_holders')").fetchone()[0] is None:
                return {}
            row = conn.execute("SELECT * FROM cutover_holders WHERE name=%s", (name,)).fetchone()
            return {column: value for column, value in dict(row or {}).items() if column != "name"}


class RunLock:
    def __init__(self, journal_path: Where) -> None:
        self.url = str(journal_path) if is_url(journal_path) else None
        self.path = Path(f"{journal_path}.lock")
        self.fd: int | None = None
        self.seat = PgSeat(self.url, (RUN_LOCK, 0), "run lock") if self.url else None
        self.verb = ""

    def acquire(self, verb: str, wait: Callable[[str], None] | None = None) -> None:
        """Take the lock, or refuse naming who holds it; with `wait`, tell `wait` who holds
        it and wait for it instead."""
        if self.seat is not None:
            self._acquire_pg(self.seat, verb, wait)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if wait is None:
                os.close(fd)
                raise CutoverError(f"another run holds this journal: {holder_text(holder)}",
                                   REFUSAL_HINT) from None
            wait(holder_text(holder))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        _write_holder(fd, verb)
        self.fd, self.verb = fd, verb

    def _acquire_pg(self, seat: PgSeat, verb: str, wait: Callable[[str], None] | None) -> None:
        if not seat.take(verb):
            holder = PgSeat.holder(seat.url, seat.key, seat.name) or {}
            if wait is None:
                raise CutoverError(f"another run holds this journal: {holder_text(holder)}", REFUSAL_HINT)
            wait(holder_text(holder))
            seat.take(verb, wait=True)
        self.verb = verb

    def release(self) -> None:
        if self.seat is not None:
            self.seat.give_back()
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
    says its pid; on PostgreSQL an advisory lock): whoever finds the run unfinished in the
    journal while it sleeps without the run lock can tell a sleeper from a run whose process
    is gone, from any machine."""

    def __init__(self, journal_path: Where, run_id: int) -> None:
        self.path = self.path_of(journal_path, run_id)
        self.fd: int | None = None
        self.run_id = run_id
        self.seat = self._seat(journal_path, run_id)

    @staticmethod
    def _seat(journal_path: Where, run_id: int) -> PgSeat | None:
        if not is_url(journal_path):
            return None
        return PgSeat(str(journal_path), (RUN_PRESENCE, run_id), f"run {run_id}")

    @staticmethod
    def path_of(journal_path: Where, run_id: int) -> Path:
        return Path(f"{journal_path}.run-{run_id}.alive")

    def __enter__(self) -> RunPresence:
        if self.seat is not None:
            if not self.seat.take("run", run=self.run_id):  # a new run's id: nobody else holds it
                raise CutoverError(f"run {self.run_id}'s presence is held by another process")
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new run's id: nobody else holds it
        _write_holder(fd, "run", run=self.run_id)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.seat is not None:
            self.seat.give_back()
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None

    @classmethod
    def alive(cls, journal_path: Where, run_id: int) -> dict[str, Any] | None:
        """The holder (pid, operator) of a run whose process is alive; None when it is gone
        (its file is left, unlocked, or there is none: a run of an older cutover)."""
        seat = cls._seat(journal_path, run_id)
        if seat is not None:
            holder = PgSeat.holder(seat.url, seat.key, seat.name)
            return None if holder is None else holder or {"pid": "?"}
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
    def forget(cls, journal_path: Where, run_id: int) -> None:
        """A gone run's file (under the run lock, once the run is recorded as crashed); on
        PostgreSQL its holder row."""
        if is_url(journal_path):
            with connect(str(journal_path), purpose="lock") as conn:
                if conn.execute("SELECT to_regclass('cutover_holders')").fetchone()[0] is not None:
                    conn.execute("DELETE FROM cutover_holders WHERE name=%s", (f"run {run_id}",))
            return
        cls.path_of(journal_path, run_id).unlink(missing_ok=True)
