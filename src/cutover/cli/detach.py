"""`cutover.stop|deploy|restore|followup --detach`: a run that outlives the operator's terminal.

The restore waits from early morning until 20:00 (N9–N13); an operator's SSH session that
drops meanwhile must not end the window. The verb is started again, as the same command, in
a session of its own (no controlling terminal, so no hang-up reaches it), its input from
/dev/null and its output to a log under the artifacts directory. The plan is checked and the
production question asked here, in the operator's terminal, and this command waits until the
run has started (its run recorded in the journal) or was refused, which it then shows."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

from invoke import Context, Exit

from cutover.engine.journal import Journal
from cutover.engine.journal_db import Where, journal_exists
from cutover.engine.lock import RunPresence
from cutover.engine.session import RunOptions, Session
from cutover.paths import ROOT, resolve

START_PATIENCE = 300.0  # seconds for the plan's and the inventory's checks before the first step


def command_of(verb: str, opts: RunOptions) -> list[str]:
    """The same verb with the same options (answered yes: the question was asked here)."""
    flags = [f"--plan={opts.plan}", f"--journal={opts.journal}"]
    if opts.inventory:
        flags.append(f"--inventory={opts.inventory}")
    if opts.limit is not None:
        flags.append(f"--limit={opts.limit}")
    flags += [flag for flag, given in (("--check", opts.check), ("--rehearsal", opts.rehearsal),
                                       ("--accept-plan-change", opts.accept_plan_change),
                                       ("--auto-confirm", opts.auto_confirm)) if given]
    return [sys.executable, "-m", "invoke", "--search-root", str(ROOT), f"cutover.{verb}", *flags, "--yes"]


def detach(c: Context, verb: str, opts: RunOptions) -> None:
    session = Session(opts)  # a plan or inventory mistake is said here, in the operator's terminal
    if not opts.check and not opts.yes:
        session.ask_if_production(f"Run cutover.{verb} of plan {session.plan.plan.name} now, detached?",
                                  "answer yes at the prompt, or pass --yes")
    artifacts = resolve(c.config.cutover.artifacts)
    log = artifacts / "detached" / f"cutover-{verb}-{dt.datetime.now():%Y%m%dT%H%M%S}-{os.getpid()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with session.existing_journal() as journal:
        last = max((row["id"] for row in journal.all("runs")), default=0) if journal else 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "INVOKE_CUTOVER_ARTIFACTS": str(artifacts)}
    with log.open("ab") as out:
        child = subprocess.Popen(command_of(verb, opts), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env, start_new_session=True)
    run_id = _wait_for_start(child, session.journal_path, last)
    if child.poll() is not None and run_id is None:  # refused, or done already: show what it said
        opts.say(log.read_text(errors="replace").rstrip())
        opts.say(f"(log: {log})")
        if child.returncode:
            raise Exit(code=child.returncode)
        return
    started = f"run {run_id}" if run_id else "still checking the plan and the inventory (see the log)"
    opts.say(f"cutover.{verb} runs detached: {started}, pid {child.pid}, in a session of its own (a closed "
             "terminal or a dropped SSH session does not end it)\n"
             f"  log:     {log}\n"
             f"  follow:  tail -f {log}   or   invoke cutover.status\n"
             f"  stop it: kill -INT -- -{child.pid}   (Ctrl-C to its process group; the verb resumes "
             "where it stopped)")


def _wait_for_start(child: subprocess.Popen, journal_path: Where, last: int) -> int | None:
    """The run the child recorded (a run after `last` whose process is the child), or None
    when the child ended first or is still checking after START_PATIENCE."""
    deadline = time.monotonic() + START_PATIENCE
    while time.monotonic() < deadline and child.poll() is None:
        if journal_exists(journal_path):
            with Journal.open(journal_path) as journal:
                for row in journal.interrupted_runs():
                    holder = RunPresence.alive(journal_path, row["id"]) if row["id"] > last else None
                    if holder and holder.get("pid") == child.pid:
                        return int(row["id"])
        time.sleep(0.3)
    return None
