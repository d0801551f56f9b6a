"""The journal: the truth about a run, in SQLite.

A step is `done` only after its playbook succeeded and its evidence is stored, in one
transaction. A crash leaves the step `running`; the next run sees that and checks it again.
Writes are synchronous (WAL, synchronous=FULL) so a killed process loses nothing it
reported as done.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cutover.engine.clock import now_iso
from cutover.engine.states import AttemptStatus, RunStatus, StepState
from cutover.errors import CutoverError

SCHEMA_VERSION = 4  # 2: step_sites, each step's state per site (N17); 3: confirmations per site;
# 4: what a run sleeps for (runs.waits_for, waits_until): it waits without the lock
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, verb TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT,
    status TEXT NOT NULL, operator TEXT NOT NULL, rehearsal INTEGER NOT NULL,
    check_mode INTEGER NOT NULL, plan_hash TEXT NOT NULL, options TEXT NOT NULL,
    waits_for TEXT, waits_until TEXT);
CREATE TABLE IF NOT EXISTS steps (
    id TEXT PRIMARY KEY, phase TEXT NOT NULL, verb TEXT NOT NULL, kind TEXT NOT NULL,
    title TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
    planned_start TEXT, planned_end TEXT, actual_start TEXT, actual_end TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, last_run INTEGER, summary TEXT);
CREATE TABLE IF NOT EXISTS step_sites (
    step_id TEXT NOT NULL, site TEXT NOT NULL, state TEXT NOT NULL, run_id INTEGER,
    attempt_id INTEGER, at TEXT NOT NULL, PRIMARY KEY (step_id, site));
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY, step_id TEXT NOT NULL, run_id INTEGER NOT NULL,
    started_at TEXT NOT NULL, ended_at TEXT, status TEXT NOT NULL, ident TEXT,
    artifact_dir TEXT, check_mode INTEGER NOT NULL DEFAULT 0, stats TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY, step_id TEXT NOT NULL, attempt_id INTEGER, kind TEXT NOT NULL,
    data TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS overrides (
    id INTEGER PRIMARY KEY, step_id TEXT NOT NULL, by TEXT NOT NULL, reason TEXT NOT NULL,
    at TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS confirmations (
    id INTEGER PRIMARY KEY, step_id TEXT NOT NULL, by TEXT NOT NULL, note TEXT NOT NULL,
    at TEXT NOT NULL, site TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS plan_changes (
    id INTEGER PRIMARY KEY, old_hash TEXT NOT NULL, new_hash TEXT NOT NULL, by TEXT NOT NULL,
    at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, title TEXT NOT NULL,
    body TEXT NOT NULL, targets INTEGER NOT NULL, ok INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS escalations (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, kinds TEXT NOT NULL,
    contact TEXT NOT NULL, step_id TEXT NOT NULL, sites TEXT NOT NULL, title TEXT NOT NULL,
    body TEXT NOT NULL, targets INTEGER NOT NULL, ok INTEGER NOT NULL);
"""


def operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _summary(said: list[str], keep: int = 3) -> str:
    """What quick_check reported, its first lines (it can list thousands)."""
    lines = [line.strip() for row in said for line in row.splitlines()
             if line.strip() and not line.startswith("*** in database")]
    more = f" (and {len(lines) - keep} more)" if len(lines) > keep else ""
    return "; ".join(lines[:keep]) + more


def _damaged_hint(path: Path) -> str:
    return ("nothing was run and the file was left as it is. Restore the journal from its backup "
            f"or copy; or, knowingly, move it aside (mv {path} {path}.damaged) and start a new "
            "journal, which will not know what the old one recorded as done. cutover never "
            "recreates a journal by itself")


def _migrate_from_1(conn: sqlite3.Connection, path: Path) -> None:
    """Schema 1 kept one state per step: a step done under --limit was recorded done for
    every site. Such a journal cannot say where its steps really stand, so it is refused
    (and left as it is); one whose runs were never narrowed is taken as done everywhere."""
    narrowed = [row[0] for row in conn.execute("SELECT id, options FROM runs").fetchall()
                if (json.loads(row[1] or "{}") or {}).get("limit")]
    if narrowed:
        raise CutoverError(f"journal {path} was written by a cutover that kept one state per step, and "
                           f"run(s) {', '.join(map(str, narrowed))} were narrowed with --limit: which sites "
                           "they did cannot be known", "finish this window with the cutover version that "
                           "started it, or start a new journal knowingly")
    conn.execute("UPDATE meta SET value='2' WHERE key='schema'")


def _migrate_from_2(conn: sqlite3.Connection) -> None:
    """Schema 3 says which site a confirmation is for ('' : the whole step, as every
    confirmation of schema 2 was). Additive, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(confirmations)")}
        if "site" not in columns:
            conn.execute("ALTER TABLE confirmations ADD COLUMN site TEXT NOT NULL DEFAULT ''")
        conn.execute("UPDATE meta SET value='3' WHERE key='schema'")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate_from_3(conn: sqlite3.Connection) -> None:
    """Schema 4 records the step a run sleeps for and until when (NULL: it does not sleep,
    as no run of schema 3 did). Additive, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        for column in ("waits_for", "waits_until"):
            if column not in columns:
                conn.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
        conn.execute("UPDATE meta SET value='4' WHERE key='schema'")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _close_quietly(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


def call_off_text(called: dict[str, Any]) -> str:
    """'called off by NAME (WHEN, cutover.abort run N, STATUS): REASON' of a journal.called_off() row."""
    how = called["options"]
    reason = " ".join(str(how.get("reason", "")).split())  # one line: it is an operator's text
    return (f"called off by {' '.join(str(how.get('by', '?')).split())} ({called['started_at']}, "
            f"cutover.abort run {called['id']}, {called['status']}): {reason}")


class Journal:
    """One journal file per plan: `with Journal.open(path) as journal:` (or close() it)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.db = conn

    # ----------------------------------------------------------- opening

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Journal:
        path = Path(path)
        if not path.exists() and not create:
            raise CutoverError(f"no journal at {path}", "run a cutover verb first")
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = None
        try:
            conn = sqlite3.connect(path, timeout=10, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")  # the first read: a file that is no database fails here
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            # before anything is written: a damaged journal is refused and left as it is
            said = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
            if said != ["ok"]:
                raise CutoverError(f"journal {path} is damaged: SQLite's PRAGMA quick_check reports: "
                                   f"{_summary(said)}", _damaged_hint(path))
            conn.executescript(SCHEMA)
            version = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(version[0]) in (1, 2, 3):
                if int(version[0]) == 1:  # step_sites made above; a step done before was done everywhere
                    _migrate_from_1(conn, path)
                if int(version[0]) <= 2:
                    _migrate_from_2(conn)
                _migrate_from_3(conn)
            elif int(version[0]) != SCHEMA_VERSION:
                raise CutoverError(f"journal {path} has schema {version[0]}, this cutover reads "
                                   f"{SCHEMA_VERSION}", "use the cutover version that wrote it")
        except sqlite3.DatabaseError as exc:
            _close_quietly(conn)
            raise CutoverError(f"journal {path} is damaged or not a journal: {exc}",
                               _damaged_hint(path)) from None
        except CutoverError:
            _close_quietly(conn)
            raise
        return cls(path, conn)

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def identity(self) -> str:
        """A random id made once per journal: what belongs to this cutover (its snapshot)
        is told apart from what an earlier rehearsal of the same plan left behind."""
        value = self.meta("journal_id")
        if value is None:
            value = uuid.uuid4().hex
            with self.tx():
                self.set_meta("journal_id", value)
        return value

    def bind_plan(self, plan, *, accept_change: bool, by: str) -> str | None:
        """Tie the journal to a plan. Returns a message when an accepted change was recorded."""
        name, digest = self.meta("plan_name"), self.meta("plan_hash")
        if name is None:
            with self.tx():
                self.set_meta("plan_name", plan.plan.name)
                self.set_meta("plan_hash", plan.digest)
                self.set_meta("plan_path", str(plan.path))
                self._sync_steps(plan)
            return None
        if name != plan.plan.name:
            raise CutoverError(
                f"journal {self.path} belongs to plan {name!r}, not {plan.plan.name!r}",
                "pass the journal of this plan with --journal, or a new path for a new journal")
        if digest != plan.digest:
            if not accept_change:
                raise CutoverError(
                    f"plan {plan.path} changed since this journal's run started "
                    f"(hash {digest[:12]} → {plan.digest[:12]})",
                    "review the change; rerun with --accept-plan-change to continue (recorded)")
            with self.tx():
                self.db.execute("INSERT INTO plan_changes (old_hash, new_hash, by, at) VALUES (?,?,?,?)",
                                (digest, plan.digest, by, now_iso()))
                self.set_meta("plan_hash", plan.digest)
                self._sync_steps(plan)
            return f"plan change {digest[:12]} → {plan.digest[:12]} accepted by {by} (recorded)"
        self._sync_steps(plan)
        return None

    def _sync_steps(self, plan) -> None:
        for step in plan.steps():
            self.db.execute(
                "INSERT INTO steps (id, phase, verb, kind, title, planned_start, planned_end)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET phase=excluded.phase,"
                " verb=excluded.verb, kind=excluded.kind, title=excluded.title,"
                " planned_start=excluded.planned_start, planned_end=excluded.planned_end",
                (step.id, step.phase, step.verb, step.kind, step.title, _iso(step.start), _iso(step.end)))

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction (BEGIN IMMEDIATE); inside another, part of that one."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ----------------------------------------------------------- runs and steps

    def start_run(self, verb: str, *, rehearsal: bool, check: bool, plan_hash: str,
                  options: dict[str, Any], who: str) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (verb, started_at, status, operator, rehearsal, check_mode,"
            " plan_hash, options) VALUES (?,?,?,?,?,?,?,?)",
            (verb, now_iso(), RunStatus.RUNNING, who, int(rehearsal), int(check), plan_hash,
             json.dumps(options, ensure_ascii=False)))
        return int(cur.lastrowid)

    def end_run(self, run_id: int, status: RunStatus) -> None:
        self.db.execute("UPDATE runs SET ended_at=?, status=?, waits_for=NULL, waits_until=NULL WHERE id=?",
                        (now_iso(), status, run_id))

    def interrupted_runs(self) -> list[sqlite3.Row]:
        """Runs not ended: at work (or crashed), or asleep until a step's time (alive or not:
        engine/lock.py's RunPresence tells)."""
        return self.db.execute("SELECT * FROM runs WHERE status IN (?, ?) ORDER BY id",
                               (RunStatus.RUNNING, RunStatus.SLEEPING)).fetchall()

    def run_sleeps(self, run_id: int, step_id: str, until: str) -> None:
        """The run lets go of the lock until `until`, the not_before of `step_id`."""
        self.db.execute("UPDATE runs SET status=?, waits_for=?, waits_until=? WHERE id=?",
                        (RunStatus.SLEEPING, step_id, until, run_id))

    def run_wakes(self, run_id: int) -> None:
        self.db.execute("UPDATE runs SET status=?, waits_for=NULL, waits_until=NULL WHERE id=?",
                        (RunStatus.RUNNING, run_id))

    def sleeping_runs(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs WHERE status=? ORDER BY id",
                               (RunStatus.SLEEPING,)).fetchall()

    def called_off(self) -> dict[str, Any] | None:
        """The window's call-off (`cutover.abort`), its latest run, once one started (whatever its
        end): the plan's verbs no longer go on in this journal. None: not called off."""
        row = self.db.execute("SELECT * FROM runs WHERE verb='abort' ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else {**dict(row), "options": json.loads(row["options"])}

    def refuse_if_called_off(self, what: str) -> None:
        """Once `cutover.abort` started, the window is over in this journal (N14, N18): `what`
        (a verb, data.*, a decision) is refused, saying by whom, when and why."""
        called = self.called_off()
        if called is not None:
            raise CutoverError(f"the window was {call_off_text(called)}; {what} is refused",
                               "the plan's verbs, data.* and decisions no longer act in this journal. A "
                               "call-off that did not finish: invoke cutover.abort again. A new window: "
                               "a new journal (--journal PATH)")

    def mark_run_crashed(self, run_id: int) -> None:
        self.db.execute("UPDATE runs SET status=?, ended_at=COALESCE(ended_at, ?) WHERE id=?",
                        (RunStatus.CRASHED, now_iso(), run_id))

    def step(self, step_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM steps WHERE id=?", (step_id,)).fetchone()

    def steps(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM steps").fetchall()

    def begin_attempt(self, step_id: str, run_id: int, *, check: bool, actual_start: str,
                      sites: Iterable[str] = ()) -> int:
        """An attempt at the step for `sites` (those of its sites this run is for)."""
        with self.tx():
            cur = self.db.execute(
                "INSERT INTO attempts (step_id, run_id, started_at, status, check_mode)"
                " VALUES (?,?,?,?,?)", (step_id, run_id, now_iso(), AttemptStatus.RUNNING, int(check)))
            if not check:
                self.set_site_states(step_id, set(sites), StepState.RUNNING, run_id=run_id,
                                     attempt_id=int(cur.lastrowid))
                self.db.execute(
                    "UPDATE steps SET state=?, attempts=attempts+1, last_run=?,"
                    " actual_start=COALESCE(actual_start, ?), actual_end=NULL WHERE id=?",
                    (StepState.RUNNING, run_id, actual_start, step_id))
            return int(cur.lastrowid)

    def finish_attempt(self, attempt_id: int, step_id: str, *, status: AttemptStatus, state: StepState | None,
                       ident: str | None = None, artifact_dir: str | None = None,
                       stats: dict | None = None, error: str | None = None,
                       evidence: list[tuple[str, Any]] = (), actual_end: str | None = None,
                       summary: str | None = None, sites: Iterable[str] = (),
                       site_state: StepState | None = None, failed_sites: Iterable[str] = ()) -> None:
        """Close an attempt and, unless in check mode (state None), move the step and the
        sites it was for (to site_state; `failed_sites` of them, where it failed while the
        others went on, to failed). Atomic."""
        with self.tx():
            self.db.execute(
                "UPDATE attempts SET ended_at=?, status=?, ident=?, artifact_dir=?, stats=?, error=?"
                " WHERE id=?", (now_iso(), status, ident, artifact_dir,
                                json.dumps(stats or {}), error, attempt_id))
            for kind, data in evidence:
                self.add_evidence(step_id, kind, data, attempt_id=attempt_id)
            if state is not None:
                self.db.execute("UPDATE steps SET state=?, actual_end=?, summary=? WHERE id=?",
                                (state, actual_end, summary, step_id))
                failed = set(failed_sites)
                if site_state is not None:
                    self.set_site_states(step_id, set(sites) - failed, site_state, attempt_id=attempt_id,
                                         run_id=self._run_of(attempt_id))
                self.set_site_states(step_id, failed, StepState.FAILED, attempt_id=attempt_id,
                                     run_id=self._run_of(attempt_id))

    def open_attempts(self, step_id: str) -> list[sqlite3.Row]:
        """Attempts of a step still marked running (their run crashed or was killed)."""
        return self.db.execute("SELECT id, run_id, started_at FROM attempts WHERE step_id=? AND status=?"
                               " ORDER BY id", (step_id, AttemptStatus.RUNNING)).fetchall()

    def abandon_running(self, step_id: str) -> None:
        """A step left `running` by a crash: close its open attempt as interrupted."""
        with self.tx():
            self.db.execute("UPDATE attempts SET status=?, ended_at=? WHERE step_id=? AND status=?",
                            (AttemptStatus.INTERRUPTED, now_iso(), step_id, AttemptStatus.RUNNING))
            self.db.execute("UPDATE steps SET state=? WHERE id=? AND state=?",
                            (StepState.INTERRUPTED, step_id, StepState.RUNNING))
            self.db.execute("UPDATE step_sites SET state=?, at=? WHERE step_id=? AND state=?",
                            (StepState.INTERRUPTED, now_iso(), step_id, StepState.RUNNING))

    def _run_of(self, attempt_id: int) -> int | None:
        row = self.db.execute("SELECT run_id FROM attempts WHERE id=?", (attempt_id,)).fetchone()
        return int(row[0]) if row else None

    def site_states(self, step_id: str) -> dict[str, str]:
        """The step's state at each site it was run for (N17)."""
        rows = self.db.execute("SELECT site, state FROM step_sites WHERE step_id=?", (step_id,)).fetchall()
        return {row["site"]: row["state"] for row in rows}

    def done_sites(self, step_id: str) -> set[str] | None:
        """The sites the step is done for; None: done everywhere (recorded before sites were)."""
        row = self.step(step_id)
        states = self.site_states(step_id)
        if row is not None and row["state"] == StepState.DONE and not states:
            return None
        return {site for site, state in states.items() if state == StepState.DONE}

    def contained_failures(self, step_id: str) -> set[str]:
        """The sites where the step failed while the others went on (on_site_failure:
        continue): failed by an attempt that recorded the failure as those sites' own."""
        rows = self.db.execute(
            "SELECT s.site, e.data FROM step_sites s JOIN evidence e ON e.attempt_id = s.attempt_id"
            " AND e.step_id = s.step_id AND e.kind = 'site_failure' WHERE s.step_id=? AND s.state=?",
            (step_id, StepState.FAILED)).fetchall()
        return {row["site"] for row in rows if row["site"] in json.loads(row["data"]).get("sites", [])}

    def set_site_states(self, step_id: str, sites: set[str], state: StepState, *, run_id: int | None = None,
                        attempt_id: int | None = None) -> None:
        for site in sorted(sites):
            self.db.execute("INSERT INTO step_sites (step_id, site, state, run_id, attempt_id, at)"
                            " VALUES (?,?,?,?,?,?) ON CONFLICT(step_id, site) DO UPDATE SET"
                            " state=excluded.state, run_id=excluded.run_id, attempt_id=excluded.attempt_id,"
                            " at=excluded.at", (step_id, site, state, run_id, attempt_id, now_iso()))

    def set_state(self, step_id: str, state: StepState, summary: str | None = None) -> None:
        self.db.execute("UPDATE steps SET state=?, summary=COALESCE(?, summary) WHERE id=?",
                        (state, summary, step_id))

    def add_evidence(self, step_id: str, kind: str, data: Any, *, attempt_id: int | None = None) -> None:
        """Store what a step's attempt (or the way back, step_id 'rollback') found, as JSON."""
        self.db.execute("INSERT INTO evidence (step_id, attempt_id, kind, data, created_at)"
                        " VALUES (?,?,?,?,?)", (step_id, attempt_id, kind,
                                                json.dumps(data, ensure_ascii=False, default=str), now_iso()))

    # ----------------------------------------------------------- people

    def add_override(self, step_id: str, by: str, reason: str) -> None:
        self.db.execute("INSERT INTO overrides (step_id, by, reason, at) VALUES (?,?,?,?)",
                        (step_id, by, reason, now_iso()))

    def open_override(self, step_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM overrides WHERE step_id=? AND used=0 ORDER BY id DESC",
                               (step_id,)).fetchone()

    def use_override(self, override_id: int) -> None:
        self.db.execute("UPDATE overrides SET used=1 WHERE id=?", (override_id,))

    def add_confirmation(self, step_id: str, by: str, note: str, site: str = "") -> None:
        """A confirmation of the step, for one site of it ('' : the whole step)."""
        self.db.execute("INSERT INTO confirmations (step_id, by, note, at, site) VALUES (?,?,?,?,?)",
                        (step_id, by, note, now_iso(), site))

    def confirmation(self, step_id: str, site: str = "") -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM confirmations WHERE step_id=? AND site=? ORDER BY id DESC",
                               (step_id, site)).fetchone()

    def confirmed_sites(self, step_id: str) -> dict[str, sqlite3.Row]:
        """The sites a per-site step is confirmed for, each with its (first) confirmation."""
        rows = self.db.execute("SELECT * FROM confirmations WHERE step_id=? AND site<>'' ORDER BY id DESC",
                               (step_id,)).fetchall()
        return {row["site"]: row for row in rows}  # the earliest row of a site is written last

    def record_notification(self, event: str, title: str, body: str, targets: int, ok: bool) -> None:
        self.db.execute("INSERT INTO notifications (at, event, title, body, targets, ok)"
                        " VALUES (?,?,?,?,?,?)", (now_iso(), event, title, body, targets, int(ok)))

    def record_escalation(self, *, event: str, kinds: list[str], contact: str, step_id: str, sites: str,
                          title: str, body: str, targets: int, ok: bool) -> None:
        """Who was told of a fault (N14), what, and whether it reached them. A table of its own,
        added where missing when a journal is opened: older journals simply have none."""
        self.db.execute("INSERT INTO escalations (at, event, kinds, contact, step_id, sites, title, body,"
                        " targets, ok) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (now_iso(), event, ",".join(kinds), contact, step_id, sites, title, body, targets,
                         int(ok)))

    # ----------------------------------------------------------- reading

    def evidence(self, step_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT kind, data, created_at FROM evidence WHERE step_id=? ORDER BY id",
                               (step_id,)).fetchall()
        return [{"kind": row["kind"], "data": json.loads(row["data"]), "at": row["created_at"]}
                for row in rows]

    def all(self, table: str) -> list[dict[str, Any]]:
        assert table in {"runs", "steps", "step_sites", "attempts", "evidence", "overrides", "confirmations",
                         "plan_changes", "notifications", "escalations"}
        return [dict(row) for row in self.db.execute(f"SELECT * FROM {table} ORDER BY rowid")]  # noqa: S608 - fixed names

    def phase_durations(self) -> dict[str, float]:
        """Seconds each phase took in the journal's runs (first start to last end)."""
        rows = self.db.execute("SELECT phase, MIN(actual_start) started, MAX(actual_end) ended FROM steps"
                               " WHERE state=? GROUP BY phase", (StepState.DONE,)).fetchall()
        return {row["phase"]: _seconds(row["started"], row["ended"]) for row in rows
                if row["started"] and row["ended"]}

    def step_durations(self) -> dict[str, float]:
        """Seconds each done step took."""
        rows = self.db.execute("SELECT id, actual_start, actual_end FROM steps WHERE state=?"
                               " AND actual_start IS NOT NULL AND actual_end IS NOT NULL",
                               (StepState.DONE,)).fetchall()
        return {row["id"]: _seconds(row["actual_start"], row["actual_end"]) for row in rows}

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _seconds(started: str, ended: str) -> float:
    return (dt.datetime.fromisoformat(ended) - dt.datetime.fromisoformat(started)).total_seconds()
