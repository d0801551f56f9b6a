"""A run that sleeps until a step's not_before holds no lock meanwhile (issue #15): others
confirm, override, take the lock and run verbs; it wakes to what they did, waits for a lock
another verb holds, stops when the window was called off; one killed while it slept is
recorded crashed; one started with --detach outlives its terminal.

The sleeping run is the executor on a real clock, shifted so that the mini plan's
2023-11-20 18:00 is a few seconds ahead (`Dial`), in a thread of this process; the other
operators are other processes (`invoke cutover.*`, a lock holder), as in production."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cutover.engine.clock import Clock
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.session import RunOptions
from cutover.engine.waiting import CalledOff

from .site_runs import wait_for

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "plans" / "mini.yml"
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
STOP_AT = dt.datetime(2023, 11, 20, 18, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # the mini plan's not_before


@pytest.fixture
def env(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    switches = {"CUTOVER_TEST_MARKER": str(marker), "CUTOVER_TEST_GATE_FAIL": str(tmp_path / "gate-fails")}
    for name, value in switches.items():
        monkeypatch.setenv(name, value)  # the sleeping run's playbooks, in this process
    plan = tmp_path / "mini.yml"
    plan.write_text(MINI.read_text().replace("vars: {slow_seconds: 6}", "vars: {slow_seconds: 0}"))
    return {"tmp": tmp_path, "marker": marker, "plan": plan, "journal": tmp_path / "j.sqlite",
            "environ": {**os.environ, **switches, "INVOKE_CUTOVER_ARTIFACTS": str(tmp_path / "art")}}


class Dial:
    """The wall clock, shifted so that `at` is now; `forward` moves it on."""

    def __init__(self, at: dt.datetime) -> None:
        self.shift = at - dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.shift

    def forward(self, seconds: float) -> None:
        self.shift += dt.timedelta(seconds=seconds)


def opts_of(env, **kw) -> RunOptions:
    return RunOptions(plan=str(env["plan"]), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"), **kw)


class Sleeper:
    """`cutover.stop` on the dial's clock, in a thread: what it said, how it ended."""

    def __init__(self, env, dial: Dial, **kw) -> None:
        self.said: list[str] = []
        self.rc: int | None = None
        self.error: BaseException | None = None
        # on the dial's clock (it sleeps as a real window's run does), recorded as a rehearsal:
        # the tests' other runs are rehearsals, and a journal is never both (refuse_mixed_runs)
        kw = {"rehearsal": True, **kw}
        opts = opts_of(env, clock=Clock(now=dial.now), say=self.said.append, notify_urls=[], **kw)
        self.thread = threading.Thread(target=self._run, args=(opts,), daemon=True)
        self.thread.start()

    def _run(self, opts: RunOptions) -> None:
        try:
            self.rc = Executor("stop", opts).run()
        except BaseException as exc:
            self.error = exc

    def text(self) -> str:
        return "\n".join(self.said)

    def end(self) -> None:
        self.thread.join(timeout=180)
        assert not self.thread.is_alive(), self.text()


def cli(env, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run([*INV, *args, "--plan", str(env["plan"]), "--journal", str(env["journal"])],
                          capture_output=True, text=True, cwd=ROOT, env=env["environ"], timeout=timeout,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def runs(env) -> list[dict]:
    with Journal.open(env["journal"]) as journal:
        return journal.all("runs")



def asleep(env, run_id: int) -> bool:
    if not env["journal"].exists():
        return False
    rows = {row["id"]: row for row in runs(env)}
    return run_id in rows and rows[run_id]["status"] == "sleeping"


def marks(env) -> list[str]:
    lines = env["marker"].read_text().splitlines() if env["marker"].exists() else []
    return [line.split()[0] for line in lines if line.endswith(" end")]


def test_while_a_run_sleeps_others_override_confirm_and_lock_and_it_wakes_to_what_they_did(env):
    (env["tmp"] / "gate-fails").touch()
    with pytest.raises(subprocess.CalledProcessError):  # an earlier run stopped at the failed gate s3
        subprocess.run([*INV, "cutover.stop", "--rehearsal", "--plan", str(env["plan"]), "--journal",
                        str(env["journal"])], cwd=ROOT, env=env["environ"], capture_output=True, check=True)
    dial = Dial(STOP_AT - dt.timedelta(seconds=50))
    sleeper = Sleeper(env, dial)
    wait_for(lambda: asleep(env, 2))
    row = runs(env)[1]
    assert (row["waits_for"], dt.datetime.fromisoformat(row["waits_until"])) == ("s3", STOP_AT)
    assert "s3 gate: not before 2023-11-20 18:00; run 2 waits (" in sleeper.text()
    # a second operator, from other processes: the lock is free, and what they decide is recorded
    held = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from cutover.engine.lock import RunLock
        lock = RunLock({str(env["journal"])!r}); lock.acquire("data.export"); lock.release(); print("held")""")],
        capture_output=True, text=True, env=env["environ"], timeout=60, check=False)
    assert held.stdout.strip() == "held", held.stderr
    cli(env, "cutover.override", "s3", "--by", "王处长", "--reason", "已线下审核")
    cli(env, "cutover.confirm", "s4", "--by", "李科长")
    assert marks(env) == ["s1", "s2"]  # the sleeper did nothing meanwhile
    dial.forward(50)
    sleeper.end()
    assert sleeper.rc == 0, (sleeper.error, sleeper.text())
    assert "2023-11-20 18:00: run 2 goes on, with the journal as it is now" in sleeper.text()
    assert "gate passed by override of 王处长: 已线下审核" in sleeper.text()
    assert "confirmed by 李科长" in sleeper.text()
    assert marks(env) == ["s1", "s2", "s5"]
    assert [run["status"] for run in runs(env)] == ["failed", "done"]


def test_a_run_that_sleeps_is_left_alone_by_a_run_that_does_the_work_meanwhile_and_repeats_none(env):
    dial = Dial(STOP_AT - dt.timedelta(seconds=50))
    sleeper = Sleeper(env, dial)
    wait_for(lambda: asleep(env, 1))
    other = cli(env, "cutover.stop", "--rehearsal", "--auto-confirm")  # the lock is free: it runs
    assert "recorded as crashed" not in other.stdout  # the sleeper lives
    assert asleep(env, 1)
    dial.forward(50)
    sleeper.end()
    assert sleeper.rc == 0, (sleeper.error, sleeper.text())
    assert "[1/5] s1: done earlier (" in sleeper.text()
    assert marks(env) == ["s1", "s2", "s5"]  # each step once
    assert [run["status"] for run in runs(env)] == ["done", "done"]


def test_a_run_that_wakes_while_another_verb_holds_the_journal_waits_and_says_who(env):
    cli(env, "cutover.confirm", "s4", "--by", "李科长")
    dial = Dial(STOP_AT - dt.timedelta(seconds=50))
    sleeper = Sleeper(env, dial)
    wait_for(lambda: asleep(env, 1))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from cutover.engine.lock import RunLock
        lock = RunLock({str(env["journal"])!r}); lock.acquire("data.export"); print("held", flush=True)
        sys.stdin.readline(); released = time.time(); lock.release(); print(released, flush=True)""")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env["environ"])
    try:
        assert holder.stdout.readline().strip() == "held"
        dial.forward(50)
        wait_for(lambda: "the journal is held by" in sleeper.text())
        said = next(line for line in sleeper.said if "the journal is held by" in line)
        assert re.search(rf"2023-11-20 18:00 reached; the journal is held by .+@.+ \(pid {holder.pid}, "
                         r"data\.export\) since .+: waiting for it", said), said
        time.sleep(2)
        assert marks(env) == []  # nothing acts beside the holder
        out, _ = holder.communicate("\n", timeout=30)
    finally:
        holder.kill()
    released = dt.datetime.fromtimestamp(float(out.strip()), dt.UTC)
    sleeper.end()
    assert sleeper.rc == 0, (sleeper.error, sleeper.text())
    assert marks(env) == ["s1", "s2", "s5"]
    with Journal.open(env["journal"]) as journal:
        first = min(attempt["started_at"] for attempt in journal.all("attempts"))
    assert dt.datetime.fromisoformat(first) >= released.replace(microsecond=0)


def test_a_window_called_off_while_a_run_slept_ends_it_before_its_next_step(env):
    """A real `cutover.abort` while one site's stop sleeps: the call-off takes the free lock
    and brings the window back; the sleeper wakes to it and does nothing more."""
    from cutover.engine import abort

    env["plan"] = ROOT / "tests" / "data" / "sites" / "plan-abort.yml"
    rehearsal = {"rehearsal": True, "auto_confirm": True, "notify_urls": [], "say": lambda _: None}
    Executor("stop", opts_of(env, limit="taiyuan", **rehearsal)).run()  # the window has started
    dial = Dial(STOP_AT - dt.timedelta(seconds=50))
    sleeper = Sleeper(env, dial, limit="datong")
    wait_for(lambda: asleep(env, 2))
    abort.abort(opts_of(env, **rehearsal), "值班长", "the tax side is not ready")
    dial.forward(50)
    sleeper.end()
    assert isinstance(sleeper.error, CalledOff), sleeper.text()
    assert ("while run 2 waited, the window was called off by 值班长 (" in sleeper.error.message)
    assert "cutover.abort run 3, done): the tax side is not ready; cutover.stop stops at a1, nothing more " \
        "was done" in sleeper.error.message
    assert not [line for line in env["marker"].read_text().splitlines() if line.startswith("a1 dt-")]
    assert [run["status"] for run in runs(env)] == ["done", "called_off", "done"]


def test_a_run_killed_while_it_slept_is_shown_gone_and_recorded_crashed_by_the_next(env):
    """A real `invoke cutover.stop` waiting for tomorrow: the status shows it waiting, with
    its pid; killed, the status says its process is gone, and the next run records it."""
    tomorrow = dt.datetime.now(STOP_AT.tzinfo).replace(second=0, microsecond=0) + dt.timedelta(days=1)
    text = env["plan"].read_text()
    for old, days in (("2023-11-20 18:00", 0), ("2023-11-23 18:00", 3), ("2023-12-01 08:00", 10),
                      ("2023-12-01 24:00", 11)):
        text = text.replace(f'"{old}"', f'"{tomorrow + dt.timedelta(days=days):%Y-%m-%d %H:%M}"')
    env["plan"].write_text(text)
    proc = subprocess.Popen([*INV, "cutover.stop", "--plan", str(env["plan"]), "--journal", str(env["journal"])],
                            cwd=ROOT, env=env["environ"], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is not None or asleep(env, 1))
        assert proc.poll() is None
        shown = cli(env, "cutover.status").stdout
        assert re.search(rf"run 1 \(cutover\.stop, .+@.+, pid {proc.pid}\) waits for s1 until "
                         rf"{tomorrow:%Y-%m-%d %H:%M} \(in 23 h 5\d min; the journal is free meanwhile\)",
                         shown), shown
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    gone = cli(env, "cutover.status").stdout
    assert re.search(r"run 1 \(cutover\.stop, .+\) was waiting for s1 until .+, but its process is gone", gone), gone
    # the next run of this real window records it, then waits for tomorrow in its turn
    said = env["tmp"] / "after.out"
    with open(said, "wb") as out:
        after = subprocess.Popen([*INV, "cutover.stop", "--plan", str(env["plan"]), "--journal",
                                  str(env["journal"])], cwd=ROOT, env=env["environ"], stdout=out,
                                 start_new_session=True)
    try:
        wait_for(lambda: after.poll() is not None or asleep(env, 2))
        assert after.poll() is None, said.read_text()
    finally:
        os.killpg(after.pid, signal.SIGKILL)
        after.wait(timeout=10)
    assert re.search(r"run 1 \(cutover\.stop, .+\) ended without closing: recorded as crashed",
                     said.read_text()), said.read_text()
    assert [run["status"] for run in runs(env)] == ["crashed", "sleeping"]


def test_a_detached_run_outlives_the_terminal_that_started_it(env):
    """--detach: the terminal's whole process group is killed mid-step (a dropped SSH
    session); the run, in a session of its own, finishes and the journal shows it done."""
    env["plan"].write_text(MINI.read_text())  # s2 takes 6 s
    terminal = subprocess.Popen(
        ["bash", "-c", shlex.join([*INV, "cutover.stop", "--rehearsal", "--auto-confirm", "--detach", "--plan",
                                   str(env["plan"]), "--journal", str(env["journal"])]) + "; sleep 600"],
        cwd=ROOT, env=env["environ"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        said = terminal.stdout.readline()
        match = re.match(r"cutover\.stop runs detached: run 1, pid (\d+), in a session of its own", said)
        assert match, said
        pid = int(match[1])
        log = Path(terminal.stdout.readline().split("log:", 1)[1].strip())
        assert log.parent == env["tmp"] / "art" / "detached"
        assert os.getsid(pid) == pid != os.getsid(terminal.pid)
        wait_for(lambda: env["marker"].exists() and "s2 start" in env["marker"].read_text())
    finally:
        os.killpg(terminal.pid, signal.SIGKILL)  # the terminal and everything in its group
        terminal.wait(timeout=10)
    wait_for(lambda: runs(env)[0]["status"] != "running", timeout=120)
    assert runs(env)[0]["status"] == "done", log.read_text()
    conn = sqlite3.connect(env["journal"])
    assert {row[0] for row in conn.execute("SELECT state FROM steps WHERE verb='stop'")} == {"done"}
    # the run is recorded done a moment before its last line reaches the log (CI, under load)
    wait_for(lambda: "cutover.stop: all steps done" in log.read_text(), timeout=30)


V3_RUNS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, verb TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT,
    status TEXT NOT NULL, operator TEXT NOT NULL, rehearsal INTEGER NOT NULL,
    check_mode INTEGER NOT NULL, plan_hash TEXT NOT NULL, options TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '3');
INSERT INTO runs VALUES (1, 'stop', '2023-11-20T10:00:00+00:00', NULL, 'running', 'a@b', 0, 0, 'h', '{}');
"""


def test_a_v3_journal_is_migrated_in_place_its_unfinished_run_still_found(tmp_path):
    path = tmp_path / "v3.sqlite"
    db = sqlite3.connect(path)
    db.executescript(V3_RUNS)
    db.close()
    with Journal.open(path) as journal:
        assert journal.meta("schema") == "4"
        [run] = journal.interrupted_runs()  # the next run records it as crashed, as before
        assert (run["id"], run["status"], run["waits_for"], run["waits_until"]) == (1, "running", None, None)
        assert journal.called_off() is None
    with Journal.open(path) as journal:  # opened again: nothing more to migrate
        assert journal.meta("schema") == "4"


WAIT_ONLY = """\
plan: {name: hour, timezone: Asia/Shanghai, inventory: tests/data/inventory.yml}
phases:
  - id: p-stop
    title: 停
    verb: stop
    not_before: "2023-11-20 18:00"
    due_by: "2023-11-23 18:00"
    owner: 系统科
    steps:
      - {id: w1, title: the hour, kind: wait}
"""


def test_a_long_wait_frees_the_journal_throughout_and_counts_down_sparingly(tmp_path):
    """Three hours on a fake time source: at every sleep another verb could take the lock,
    and the countdown says where it stands every 10 minutes, then every minute, then every
    10 seconds, not every 10 seconds for hours (a detached run's log stays readable)."""
    from cutover.engine.lock import RunLock

    plan = tmp_path / "hour.yml"
    plan.write_text(WAIT_ONLY)
    journal = tmp_path / "j.sqlite"
    now = [STOP_AT - dt.timedelta(hours=3)]
    free = []

    def sleep(seconds: float) -> None:
        other = RunLock(journal)
        other.acquire("data.export")  # raises while the sleeping run holds the lock
        other.release()
        free.append(seconds)
        now[0] += dt.timedelta(seconds=seconds)

    said: list[str] = []
    opts = RunOptions(plan=str(plan), journal=str(journal), artifacts=str(tmp_path / "art"),
                      clock=Clock(now=lambda: now[0], sleep=sleep), say=said.append)
    assert Executor("stop", opts).run() == 0
    assert sum(free) == 3 * 3600
    assert "[1/1] w1 the hour: not before 2023-11-20 18:00; run 1 waits (3 h 00 min) without holding the journal" in "\n".join(said)
    countdown = [line.split(": ", 1)[1] for line in said if line.startswith("  waiting for 2023-11-20 18:00: ")]
    assert countdown[:2] == ["2 h 50 min", "2 h 40 min"]
    assert countdown[-2:] == ["20 s", "10 s"]
    assert 70 <= len(countdown) <= 80
    assert [(run["status"], run["waits_for"]) for run in runs({"journal": journal})] == [("done", None)]
