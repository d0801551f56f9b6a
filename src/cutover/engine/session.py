"""What every verb stands on, set up one way: the options it was given, the plan (linted) and
its inventory, the question asked before a production inventory is touched, and the journal
bound to the plan, held under the run lock by whatever changes hosts.

    session = Session(opts)                                   # lint; the inventory
    session.ask_if_production("Roll back every component?", "answer yes, or pass --yes")
    with session.journal(lock="rollback") as journal:         # open, lock, bind the plan
        ...
    with session.existing_journal() as journal:               # status, report: only looks
        ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.ansible.runner import Progress
from cutover.engine.clock import Clock
from cutover.engine.journal import Journal, operator
from cutover.engine.journal_db import journal_exists, journal_location
from cutover.engine.leftovers import wait_for_earlier_way_back
from cutover.engine.lock import RunLock
from cutover.engine.scope import Scope
from cutover.errors import CutoverError
from cutover.inventory import is_production, run_limit
from cutover.paths import resolve
from cutover.plan.lint import check as lint_check
from cutover.plan.model import Step
from cutover.sites import site_limit


@dataclass
class RunOptions:
    plan: str
    journal: str
    artifacts: str
    inventory: str | None = None
    rehearsal: bool = False
    check: bool = False
    limit: str | None = None
    yes: bool = False
    accept_plan_change: bool = False
    auto_confirm: bool = False  # rehearsals only: manual steps confirmed as "rehearsal"
    notify_urls: list[str] | None = None  # None: the plan's own list
    clock: Clock | None = None  # tests inject a fake time source
    say: Callable[[str], None] = print
    progress_factory: Callable[[str], Any] | None = None
    confirm_prompt: Callable[[str], bool] | None = None
    orphan_wait: float = 1800.0  # seconds to wait for a killed run's work still running (N18)

    @contextlib.contextmanager
    def progress(self, name: str) -> Iterator[Callable[[Progress], None] | None]:
        """The operator's view of one playbook run, open while it runs: yields the run's
        `on_progress` (None when nobody watches)."""
        if self.progress_factory is None:
            yield None
            return
        display = self.progress_factory(name)
        with display:
            yield display.update


class Session:
    """One verb's footing. Constructing it lints the plan (with `warn`, the lint's warnings
    are said, measured against the phase durations the journal recorded)."""

    def __init__(self, opts: RunOptions, *, warn: bool = False) -> None:
        self.opts = opts
        self.journal_path = journal_location(opts.journal)  # a file, or a postgresql:// URL (no secret)
        durations: dict[str, float] = {}
        if warn and journal_exists(self.journal_path):
            with Journal.open(self.journal_path) as journal:
                durations = journal.phase_durations()
        self.plan, warnings = lint_check(opts.plan, opts.inventory, durations)
        if warn:
            for warning in warnings:
                opts.say(str(warning))
        self.inventory: Path = resolve(opts.inventory or self.plan.plan.inventory)
        self._scope: Scope | None = None
        self.run_lock: RunLock | None = None  # while held: a run sets it aside to sleep
        self.operator_limit = self._site_limit(opts.limit, "--limit") if opts.limit is not None else None

    def scope(self) -> Scope:
        """Which sites each step touches and this run reaches (read once per verb)."""
        if self._scope is None:
            self._scope = Scope.of(self.inventory)
        return self._scope

    def _site_limit(self, pattern: str, where: str) -> str:
        scope = self.scope()  # one reading of the inventory per verb, for limits and sites alike
        return site_limit(pattern, (scope.tree, scope.hosts, set(scope.members)), where, str(self.inventory))

    def limit(self, step_limit: str | None = None) -> str | None:
        """The `--limit` of one playbook run: the step's limit and the operator's, sites
        spelled as hosts, within the hosts that are there."""
        step = self._site_limit(step_limit, "the step's limit") if step_limit else None
        return run_limit(self.inventory, step, self.operator_limit)

    def step(self, step_id: str) -> Step:
        step = self.plan.step(step_id)
        if step is None:
            raise CutoverError(f"plan {self.plan.plan.name} has no step {step_id!r}")
        return step

    def ask_if_production(self, question: str, hint: str) -> None:
        """On a production inventory, nothing runs unless the operator answers yes."""
        if not is_production(self.inventory):
            return
        ask = self.opts.confirm_prompt
        if ask is None or not ask(f"{self.inventory} is a PRODUCTION inventory. {question}"):
            raise CutoverError("not confirmed; nothing was run", hint)

    @contextlib.contextmanager
    def locked(self, verb: str) -> Iterator[None]:
        """Under the journal's run lock, as `verb`: never beside another run on this journal."""
        with RunLock(self.journal_path) as lock:
            lock.acquire(verb)
            self.run_lock = lock
            try:
                with self.existing_journal() as journal:  # a killed way back's work never races this
                    if journal is not None:
                        wait_for_earlier_way_back(journal, self.opts.say, self.opts.orphan_wait, verb)
                yield
            finally:
                self.run_lock = None

    @contextlib.contextmanager
    def journal(self, *, lock: str | None = None, accept_change: bool = False,
                starts_run: str = "") -> Iterator[Journal]:
        """The journal, bound to the plan (a changed plan is refused unless `accept_change`,
        which is recorded), and with `lock`, under the run lock as that verb. With `starts_run`
        (what is about to run, e.g. "cutover.stop"), a journal of the other kind (rehearsal or
        real window) is refused first, before any wait and any write, and again under the lock."""
        if starts_run:
            with self.existing_journal() as journal:
                if journal is not None:
                    journal.refuse_mixed_runs(self.opts.rehearsal, starts_run)
        with Journal.open(self.journal_path) as journal, \
                self.locked(lock) if lock else contextlib.nullcontext():
            if starts_run:
                journal.refuse_mixed_runs(self.opts.rehearsal, starts_run)
            note = journal.bind_plan(self.plan, accept_change=accept_change, by=operator())
            if note:
                self.opts.say(note)
            yield journal

    @contextlib.contextmanager
    def existing_journal(self) -> Iterator[Journal | None]:
        """The journal as it is, for what only looks (None when there is none yet): never
        created, bound to the plan or locked."""
        if not journal_exists(self.journal_path):
            yield None
            return
        with Journal.open(self.journal_path) as journal:
            yield journal

    def journal_identity(self) -> str:
        """The journal's id, as the plan's steps pass it; '' when there is no journal yet."""
        with self.existing_journal() as journal:
            return journal.identity() if journal else ""
