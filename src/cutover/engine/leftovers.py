"""A killed run's work can outlive it: its ansible-playbook (which, its output gone, may hang
for good) and the helpers it started (an upload, an export, a remote dump's caller). Before
anything runs again over the same hosts, the orphaned ansible-playbook is stopped and the
rest of its work is waited for, or refused after `orphan_wait` seconds: two never race.
Every playbook carries a mark in its environment (cutover.ansible.runner): a step's attempt
its own (engine/run.py attempt_mark), a way-back run (cutover.rollback, cutover.abort) one
for all its stages."""

from __future__ import annotations

import time
from collections.abc import Callable

from cutover.ansible import is_driver, processes_of, stop_processes
from cutover.engine.journal import Journal
from cutover.errors import CutoverError

# the verbs that bring the window back outside the plan's steps (engine/rollback.py, engine/abort.py)
WAY_BACK_VERBS = ("rollback", "abort")


class StillAtWork(CutoverError):
    """Earlier work is still running after the wait: nothing was started."""


def way_back_mark(journal_id: str, run_id: int) -> str:
    """The mark of every playbook a way-back run starts (one stage after another)."""
    return f"{journal_id}/run{run_id:04d}-way-back"


def wait_for_leftovers(mark: str, what: str, say: Callable[[str], None], patience: float, *,
                       refused: str, again: str) -> bool:
    """Stop the ansible-playbook processes marked `mark` and wait up to `patience` seconds for
    the rest of their work; refuse (StillAtWork) if it is still at work. True if there was any."""
    pids = processes_of(mark)
    drivers = [pid for pid in pids if is_driver(pid)]
    if drivers:
        say(f"  {what} left ansible-playbook running (pid {', '.join(map(str, drivers))}); stopping it")
        stop_processes(drivers)
        pids = processes_of(mark)
    if not pids:
        return bool(drivers)
    say(f"  {what} is still at work ({len(pids)} process(es): {', '.join(map(str, pids[:8]))}); "
        f"waiting for it to end (up to {patience:.0f} s)")
    started = time.monotonic()
    while pids and time.monotonic() - started < patience:
        time.sleep(min(2.0, patience))
        pids = processes_of(mark)
    if pids:
        raise StillAtWork(f"{refused}: {what} is still at work after {patience:.0f} s (process(es) "
                          f"{', '.join(map(str, pids))}); nothing was started",
                          f"let it finish (or stop it: kill those processes), then run {again} again")
    say(f"  {what}'s work ended after {time.monotonic() - started:.0f} s")
    return True


def wait_for_earlier_way_back(journal: Journal, say: Callable[[str], None], patience: float,
                              verb: str) -> None:
    """Before any verb acts under the lock (the executor's, data.*, the way back itself): a
    killed cutover.rollback or cutover.abort may have left its playbook switching releases or
    starting services; it is stopped and its work waited for first (N18)."""
    for earlier in journal.all("runs"):
        if earlier["verb"] in WAY_BACK_VERBS:  # under the lock: none of them is at work legitimately
            wait_for_leftovers(way_back_mark(journal.identity(), earlier["id"]),
                               f"the earlier cutover.{earlier['verb']} (run {earlier['id']})", say, patience,
                               refused=f"cutover.{verb.removeprefix('cutover.')}",
                               again=f"cutover.{verb.removeprefix('cutover.')}")
