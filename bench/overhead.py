"""Orchestration overhead: the stop side's playbooks through `cutover.stop` (plan load and
lint, journal, lock, notifications, progress, the ansible-runner wrapper) against the same
playbooks run with plain `ansible-playbook`, one after another, in one session.

Both paths do the same real work: the lab starts up (as `lab.up` or a rehearsal leaves it)
and is brought back to its pre-window state (all services up) by an untimed plain run of
playbooks/restore/restore.yml after each timed stop, and the rounds alternate A/B so drift
on this 2-core machine hits both. Prints the per-round seconds, the CPU each side took (this
process, and the ansible processes it waited for) and the ratio of means. Needs the lab:
`./inv lab.up` first; it measures the lab that is up (122 hosts: `./inv lab.up --cities 11
--counties 9`).

    .venv/bin/python bench/overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.playbook_step import step_vars
from cutover.engine.session import RunOptions
from cutover.inventory import run_limit
from cutover.paths import LAB_INVENTORY, ROOT
from cutover.plan.lint import check

PLAN = ROOT / "plans" / "shanxi-2023-11.yml"


def cpu() -> tuple[float, float]:
    """CPU seconds so far of this process (the engine, and ansible-runner's reading of the
    events) and of the processes it has waited for (ansible-playbook and its workers)."""
    own, waited = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, waited.ru_utime + waited.ru_stime


def cpu_since(before: tuple[float, float]) -> str:
    now = cpu()
    return f"this process {now[0] - before[0]:.1f} CPU-s, ansible {now[1] - before[1]:.1f} CPU-s"


def through_cutover(journal: str, artifacts: Path) -> float:
    opts = RunOptions(plan=str(PLAN), journal=journal, artifacts=str(artifacts), rehearsal=True,
                      auto_confirm=True, say=lambda *_: None)
    started = time.perf_counter()
    Executor("stop", opts).run()
    return time.perf_counter() - started


def playbook(path: str, extravars: dict, tags: list[str], limit: str | None) -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(LAB_INVENTORY),
           str(ROOT / path), "-e", json.dumps(extravars)]
    if tags:
        cmd += ["--tags", ",".join(tags)]
    limit = run_limit(LAB_INVENTORY, limit)
    if limit:
        cmd += ["--limit", limit]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{path} failed:\n{proc.stdout[-3000:]}")


def plain(plan, n: int, tmp: Path) -> float:
    started = time.perf_counter()
    for step in plan.steps("stop"):
        if step.playbook:  # the variables the engine passes (cutover.contract)
            extravars = step_vars(plan, step, artifacts=str(tmp / "plain"), journal_id="",
                                  rehearsal=True).to_extravars()
            playbook(step.playbook, extravars, step.tags, step.limit)
    return time.perf_counter() - started


def back_to_before_the_window(plan, journal: str | None = None) -> None:
    """Undo the stop just timed. The stop side only ran: the hosts still run the release before
    the window, which the restore's release check would refuse; said so, not skipped silently.
    The timed jobs come back from the record that stop wrote, under its journal's id (none for
    plain ansible-playbook runs), as only that window's record may switch them on."""
    window = ""
    if journal is not None:
        with Journal.open(journal) as opened:
            window = opened.identity()
    playbook("playbooks/restore/restore.yml", {
        "cutover_restore_without_release": True, "cutover_journal_id": window,
        "cutover_data_exclude_lines": plan.plan.vars["cutover_data_exclude_lines"]}, [], None)


def side_by_side(name_a: str, a: list[float], name_b: str, b: list[float], digits: int = 1) -> str:
    """'A mean … (sd …); B mean … (sd …); ratio A/B', the line each bench here ends with."""
    return (f"{name_a} mean {statistics.mean(a):.{digits}f} s (sd {statistics.pstdev(a):.{digits}f}); "
            f"{name_b} mean {statistics.mean(b):.{digits}f} s (sd {statistics.pstdev(b):.{digits}f}); "
            f"ratio {statistics.mean(a) / statistics.mean(b):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plan, _ = check(PLAN)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        a, b = [], []
        for n in range(1, args.rounds + 1):  # the lab is up, as lab.up or a rehearsal leaves it
            journal = str(tmp_path / f"j{n}.sqlite")
            before = cpu()
            try:
                a.append(through_cutover(journal, tmp_path / "art"))
                used_a = cpu_since(before)
            finally:  # a failed stop too: the lab is left as it was found, not stopped
                back_to_before_the_window(plan, journal)
            before = cpu()
            try:
                b.append(plain(plan, n, tmp_path))
                used_b = cpu_since(before)
            finally:
                back_to_before_the_window(plan)
            print(f"round {n}: cutover.stop {a[-1]:.1f} s ({used_a}), "
                  f"ansible-playbook {b[-1]:.1f} s ({used_b})", flush=True)
    print(side_by_side("cutover.stop", a, "ansible-playbook", b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
