"""Orchestration overhead: the stop side's playbooks through `cutover.stop` (plan load and
lint, journal, lock, notifications, progress, the ansible-runner wrapper) against the same
playbooks run with plain `ansible-playbook`, one after another, in one session.

Both paths run the same idempotent work on a lab that is already stopped (the first,
untimed round brings it there), alternating A/B so drift on this 2-core machine hits both.
Prints the per-round seconds and the ratio of means. Needs the lab: `./inv lab.up` first.

    .venv/bin/python bench/overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cutover.engine.executor import Executor, RunOptions, combine_limits
from cutover.lab.lab import active_limit
from cutover.lab.topology import LAB_INVENTORY
from cutover.paths import ROOT
from cutover.plan.lint import check

PLAN = ROOT / "plans" / "shanxi-2023-11.yml"


def through_cutover(tmp: Path, n: int) -> float:
    opts = RunOptions(plan=str(PLAN), journal=str(tmp / f"j{n}.sqlite"), artifacts=str(tmp / "art"),
                      rehearsal=True, auto_confirm=True, say=lambda *_: None)
    started = time.perf_counter()
    Executor("stop", opts).run()
    return time.perf_counter() - started


def plain(plan, n: int) -> float:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    started = time.perf_counter()
    for step in plan.steps("stop"):
        if not step.playbook:
            continue
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(LAB_INVENTORY),
               str(ROOT / step.playbook), "-e", json.dumps({**step.vars, "cutover_step": step.id})]
        if step.tags:
            cmd += ["--tags", ",".join(step.tags)]
        limit = combine_limits(step.limit, active_limit(LAB_INVENTORY))
        if limit:
            cmd += ["--limit", limit]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plan, _ = check(PLAN)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        print("warm-up round (brings the lab to the stopped state, not timed)", flush=True)
        through_cutover(tmp_path, 0)
        a, b = [], []
        for n in range(1, args.rounds + 1):
            a.append(through_cutover(tmp_path, n))
            b.append(plain(plan, n))
            print(f"round {n}: cutover.stop {a[-1]:.1f} s, ansible-playbook {b[-1]:.1f} s", flush=True)
    ratio = statistics.mean(a) / statistics.mean(b)
    print(f"cutover.stop mean {statistics.mean(a):.1f} s (sd {statistics.pstdev(a):.1f}); "
          f"ansible-playbook mean {statistics.mean(b):.1f} s (sd {statistics.pstdev(b):.1f}); "
          f"ratio {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
