"""SIGKILL the executor mid-step and at a step boundary, then resume: no finished step is
repeated and none is skipped. The executor runs as `invoke cutover.stop` in its own
process group, as an operator runs it; the kill takes its ansible-playbook child too."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .site_runs import wait_for

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "plans" / "mini.yml"


@pytest.fixture
def env(tmp_path):
    marker = tmp_path / "marker"
    journal = tmp_path / "j.sqlite"
    environ = {**os.environ, "CUTOVER_TEST_MARKER": str(marker),
               "CUTOVER_TEST_GATE_FAIL": str(tmp_path / "no-such-switch"),
               "INVOKE_CUTOVER_ARTIFACTS": str(tmp_path / "art")}
    return {"tmp": tmp_path, "marker": marker, "journal": journal, "environ": environ}


def start(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "cutover.stop", "--plan",
         str(env.get("plan", MINI)),
         "--journal", str(env["journal"]), "--rehearsal", "--auto-confirm"],
        cwd=ROOT, env=env["environ"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def state(env, step: str) -> str | None:
    if not env["journal"].exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{env['journal']}?mode=ro", uri=True, timeout=1)
        row = conn.execute("SELECT state FROM steps WHERE id=?", (step,)).fetchone()
        conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None



def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def marks(env) -> list[str]:
    return env["marker"].read_text().splitlines() if env["marker"].exists() else []


def finish(env) -> str:
    proc = start(env)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    return out


def test_killed_mid_step_resumes_at_that_step(env):
    proc = start(env)
    wait_for(lambda: "s2 start" in marks(env))  # s2 sleeps 6 s after this line
    kill(proc)
    assert state(env, "s1") == "done"
    assert state(env, "s2") == "running"
    out = finish(env)
    assert "s2: was left running by a run that did not finish; checking it again" in out
    ends = [m for m in marks(env) if m.endswith(" end")]
    assert ends == ["s1 end", "s2 end", "s5 end"]  # s1 not repeated, s2 completed, none skipped


def test_killed_at_a_step_boundary_repeats_nothing(env):
    proc = start(env)
    wait_for(lambda: state(env, "s1") == "done")
    kill(proc)
    out = finish(env)
    assert "s1: done earlier" in out
    starts = [m for m in marks(env) if m.endswith(" start")]
    assert starts.count("s1 start") == 1
    assert [m for m in marks(env) if m.endswith(" end")] == ["s1 end", "s2 end", "s5 end"]
    conn = sqlite3.connect(env["journal"])
    assert {r[0] for r in conn.execute("SELECT state FROM steps WHERE verb='stop'")} == {"done"}
    assert conn.execute("SELECT status FROM runs ORDER BY id").fetchall() == [("crashed",), ("done",)]


def test_a_resumed_step_waits_for_the_killed_attempts_work_and_never_races_it(env):
    """N18: the killed run's work (here a local process, like the hand-off's upload) goes on;
    the resumed run waits for it to end before the step runs again."""
    plan = env["tmp"] / "mini.yml"
    plan.write_text(MINI.read_text().replace(
        "        playbook: tests/data/playbooks/mark.yml\n        vars: {slow_seconds: 6}",
        "        playbook: tests/data/playbooks/slow-work.yml\n        vars: {work_seconds: 20}"))
    env["plan"] = plan
    proc = start(env)
    wait_for(lambda: "s2 work-start" in marks(env))
    kill(proc)
    assert "s2 work-end" not in marks(env)
    out = finish(env)
    assert "the earlier attempt run0001-s2-a2 is still at work" in out, out
    work = [m for m in marks(env) if m.startswith("s2 work")]
    assert work == ["s2 work-start", "s2 work-end", "s2 work-start", "s2 work-end"]


def test_resuming_one_journal_leaves_another_journals_running_attempt_alone(env, tmp_path_factory):
    """Two journals on one controller number their runs and attempts alike (run0001-s2-a2).
    A resumed step waits for, or stops, what its own killed attempt left running: never the
    attempt of the same name that another journal is running at that moment."""
    other_tmp = tmp_path_factory.mktemp("other")
    other = {"tmp": other_tmp, "marker": other_tmp / "marker", "journal": other_tmp / "j.sqlite",
             "plan": other_tmp / "mini.yml",
             "environ": {**env["environ"], "CUTOVER_TEST_MARKER": str(other_tmp / "marker"),
                         "INVOKE_CUTOVER_ARTIFACTS": str(other_tmp / "art")}}
    other["plan"].write_text(MINI.read_text().replace("slow_seconds: 6", "slow_seconds: 300")
                             .replace("inventory: tests/data/", f"inventory: {ROOT}/tests/data/"))
    proc = start(env)
    wait_for(lambda: "s2 start" in marks(env))
    kill(proc)  # leaves run0001-s2-a2 open in the first journal
    busy = start(other)
    try:
        wait_for(lambda: "s2 start" in marks(other))  # the other journal's run0001-s2-a2 works
        finish(env)
        assert busy.poll() is None, busy.communicate()[0]
        assert "s2 end" not in marks(other)
    finally:
        kill(busy)
