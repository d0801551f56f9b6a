"""The crash sweep (N18: nothing lost): the shipped plan on the lab, its executor killed with
SIGKILL while a step is `running` (seen from outside, in the journal; the product has no
hook for it), then resumed, at several steps in one pass through the window. At the end the
journal and the lab must be as after the clean rehearsal (test_rehearse): every step done,
none done twice, every service, timer, program version and business table the same.

It runs with `invoke test --sweep` only (a rehearsal with five kills and resumes costs about
ten minutes of CI, whose budget is 30): there it kills at every playbook step of the plan.
CI's default run keeps the engine's own kill-and-resume tests with real playbooks
(tests/unit/test_crash_resume.py). `CUTOVER_SWEEP=five` kills at five representative steps
(a gate, the snapshot, the hand-off, the deploy, a restore stage) when asked for."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cutover.lab import lab as labmod

from .conftest import CITIES, SCALE, SEED
from .outcome import journal_outcome, lab_outcome

pytestmark = [pytest.mark.lab, pytest.mark.sweep]
ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "plans" / "shanxi-2023-11.yml"
VERBS = ("stop", "deploy", "restore", "followup")
REPRESENTATIVE = ["n1-gate-collection-plan", "n5-snapshot", "n6-upload-notify", "n8-deploy-verify",
                  "n11-restore-counters"]


def _targets() -> list[str]:
    if os.environ.get("CUTOVER_SWEEP") != "five":
        from cutover.plan.lint import check

        plan, _ = check(PLAN)
        return [s.id for s in plan.steps() if s.kind in ("playbook", "gate")]
    return REPRESENTATIVE


def _state(journal: Path, step: str) -> str | None:
    if not journal.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute("SELECT state FROM steps WHERE id=?", (step,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _verb(verb: str, journal: Path, artifacts: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), f"cutover.{verb}", "--plan", str(PLAN),
         "--journal", str(journal), "--rehearsal", "--auto-confirm", "--yes"],
        cwd=ROOT, env={**os.environ, "INVOKE_CUTOVER_ARTIFACTS": str(artifacts)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.fixture(scope="module")
def sweep(lab, tmp_path_factory):
    # before the window again: unfrozen, the clean rehearsal's snapshot gone
    labmod.up(cities=CITIES, scale=SCALE, seed=SEED, faults=[], say=print, reset=True)
    tmp = tmp_path_factory.mktemp("sweep")
    journal, artifacts = tmp / "journal.sqlite", tmp / "art"
    targets, killed, outputs = list(_targets()), [], []
    started = time.monotonic()
    for verb in VERBS:
        for _ in range(len(targets) + 2):  # a run per kill, and the run that finishes the verb
            proc = _verb(verb, journal, artifacts)
            victim = None
            while proc.poll() is None:
                victim = next((t for t in targets if _state(journal, t) == "running"), None)
                if victim:
                    time.sleep(1.5)  # well into the step: its playbook is at work
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.1)
            out, _ = proc.communicate(timeout=1800)
            outputs.append(out)
            if victim:
                targets.remove(victim)
                killed.append(victim)
                continue
            assert proc.returncode == 0, out[-4000:]
            break
    seconds = time.monotonic() - started
    print(f"crash sweep: {len(killed)} step(s) killed mid-run and resumed in {seconds:.0f} s: {killed}")
    return {"journal": journal, "killed": killed, "targets": targets, "outputs": outputs, "seconds": seconds}


def test_every_target_step_was_killed_while_running_and_resumed(sweep):
    assert sweep["targets"] == []  # none was missed
    assert len(sweep["killed"]) == len(_targets())
    resumed = "\n".join(sweep["outputs"])
    for step in sweep["killed"]:
        assert f"{step}: was left running by a run that did not finish" in resumed


def test_no_step_is_lost_and_none_is_done_twice(sweep):
    out = journal_outcome(sweep["journal"])
    assert {s: v for s, v in out["states"].items() if v != "done"} == {}
    assert {s: n for s, n in out["times_done"].items() if n != 1} == {}


def test_the_lab_is_as_after_a_clean_rehearsal(sweep, lab_vars, clean_outcome):
    swept = lab_outcome(journal_outcome(sweep["journal"])["snapshot"], lab_vars)
    assert swept["healthy"]
    assert {k: v for k, v in swept["rows_since_snapshot"].items() if v} == {}
    assert clean_outcome, "the clean rehearsal's outcome (test_rehearse) was not recorded in this session"
    for key in ("services", "timers", "cron"):
        assert swept[key] == clean_outcome[key], key
