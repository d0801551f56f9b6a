"""Gates that watch until their time (N1, N3): a gate with `poll` whose verdict is "not yet" is
checked again every interval until its due_by on a real clock (each check an attempt, what is
missing said each time), not failed for good at the first look; a gate with `recheck_of`
checks again what an earlier gate let pass by override, and fails only on what is new.

tests/data/sites/plan-gates.yml: g1 (poll 2h, due 18:00), then g2 (recheck_of g1); the real
ansible-playbook on local hosts; a clock whose sleeps move its time (nothing really waits)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cutover.engine import decisions
from cutover.engine.clock import Clock
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.run import StepFailed
from cutover.engine.session import RunOptions
from cutover.plan.lint import check

from ..step_hooks import before_step

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "tests" / "data" / "sites" / "plan-gates.yml"
START = dt.datetime(2023, 11, 20, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


class FakeTime:
    """now() and sleep() of a Clock: sleeping moves now; `at_sleep` runs once, at the first sleep."""

    def __init__(self, at_sleep=None) -> None:
        self.now, self.slept, self.at_sleep = START, 0.0, at_sleep

    def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
        self.slept += seconds
        if self.at_sleep:
            self.at_sleep()
            self.at_sleep = None


@pytest.fixture
def env(tmp_path, monkeypatch):
    switch = tmp_path / "not-ready"
    switch.touch()
    monkeypatch.setenv("CUTOVER_TEST_GATE_FAIL", str(switch))
    monkeypatch.setenv("CUTOVER_TEST_GATE_FINDINGS", "agency=140102 approval 101 pending")
    return {"tmp": tmp_path, "switch": switch, "journal": tmp_path / "j.sqlite"}


def run(env, time: FakeTime | None = None, said: list[str] | None = None) -> int:
    opts = RunOptions(plan=str(PLAN), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=time is None, notify_urls=[], say=(said if said is not None else []).append,
                      clock=Clock(now=lambda: time.now, sleep=time.sleep) if time else None)
    return Executor("stop", opts).run()


def attempts(env, step: str) -> list[str]:
    with Journal.open(env["journal"]) as journal:
        return [a["status"] for a in journal.all("attempts") if a["step_id"] == step]


def test_a_polling_gate_is_checked_again_until_it_passes_saying_what_is_missing(env):
    time = FakeTime(at_sleep=env["switch"].unlink)  # the plans are generated during the first wait
    said: list[str] = []
    assert run(env, time, said) == 0
    assert attempts(env, "g1") == ["failed", "ok"]
    assert time.slept == 2 * 3600
    told = "\n".join(said)
    assert "not yet: step g1 failed" in told
    assert "agency=140102 approval 101 pending" in told  # what is still missing
    assert "checked again at 2023-11-20 11:00" in told


def test_a_polling_gate_fails_once_its_next_check_would_be_past_its_due_by(env):
    time = FakeTime()
    with pytest.raises(StepFailed, match="step g1 failed"):
        run(env, time)
    assert attempts(env, "g1") == ["failed"] * 5  # 09:00, 11:00, 13:00, 15:00, 17:00; 19:00 is past 18:00
    assert time.now == START + dt.timedelta(hours=8)


def test_a_rehearsal_checks_a_polling_gate_once(env):
    with pytest.raises(StepFailed, match="step g1 failed"):
        run(env)
    assert attempts(env, "g1") == ["failed"]


def test_a_recheck_passes_on_what_the_override_accepted_and_fails_on_what_is_new(env, monkeypatch):
    with pytest.raises(StepFailed):
        run(env)
    opts = RunOptions(plan=str(PLAN), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      say=lambda _: None)
    decisions.override(opts, "g1", "张工", "审批101已线下完成")
    said: list[str] = []
    assert run(env, said=said) == 0  # g2 finds only approval 101, which the override accepted
    assert any("nothing new since g1 was let pass: 1 finding(s) accepted then" in line for line in said)
    # a window where a new approval arrives during the day: the recheck fails on it
    env["journal"] = env["tmp"] / "j2.sqlite"
    with pytest.raises(StepFailed):
        run(env)
    decisions.override(RunOptions(plan=str(PLAN), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                                  say=lambda _: None), "g1", "张工", "审批101已线下完成")
    monkeypatch.setenv("CUTOVER_TEST_GATE_FINDINGS", "agency=140102 approval 101 pending,agency=140105 approval 117 pending")
    with pytest.raises(StepFailed, match="step g2 failed") as err:
        run(env)
    assert "approval 117 pending" in err.value.message


def test_a_recheck_of_a_gate_that_passed_on_its_own_accepts_nothing(env):
    env["switch"].unlink()

    not_ready_again_at_g2 = before_step({"g2": env["switch"].touch})  # an approval arrives between the checks
    opts = RunOptions(plan=str(PLAN), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=True, notify_urls=[], say=lambda _: None, progress_factory=not_ready_again_at_g2)
    with pytest.raises(StepFailed, match="step g2 failed"):
        Executor("stop", opts).run()
    assert attempts(env, "g1") == ["ok"]


def test_poll_and_recheck_of_are_checked_by_plan_check(tmp_path):
    text = PLAN.read_text(encoding="utf-8")
    for bad, message in ((text.replace("poll: 2h", "poll: soon"), "poll is an interval such as 30s"),
                         (text.replace("recheck_of: g1", "recheck_of: g3"), "checks again 'g3', which is not a gate"),
                         (text.replace("        recheck_of: g1\n", "        recheck_of: g1\n        poll: 1m\n")
                          .replace("kind: gate\n        playbook: tests/data/sites/site-gate.yml\n        tags: [counters]\n        after",
                                   "kind: playbook\n        playbook: tests/data/sites/site-gate.yml\n        tags: [counters]\n        after"),
                          "only a gate")):
        plan = PLAN.parent / f".variant-{tmp_path.name}.yml"
        plan.write_text(bad, encoding="utf-8")
        try:
            with pytest.raises(Exception, match=message):
                check(plan)
        finally:
            plan.unlink()


def test_a_polling_gate_leaves_the_journal_free_between_its_checks(env):
    """issue #15: between two checks (hours, N1) the run holds no lock: another operator's
    verb takes it, and the journal says the run waits for g1 until its next check."""
    from cutover.engine.lock import RunLock

    seen: list[tuple[str, str]] = []

    def meanwhile() -> None:
        other = RunLock(env["journal"])
        other.acquire("data.screen")  # refused while the polling run holds the journal
        other.release()
        with Journal.open(env["journal"]) as journal:
            seen.extend((row["waits_for"], row["waits_until"]) for row in journal.sleeping_runs())
        env["switch"].unlink()

    assert run(env, FakeTime(at_sleep=meanwhile)) == 0
    assert seen == [("g1", (START + dt.timedelta(hours=2)).isoformat())]
    assert attempts(env, "g1") == ["failed", "ok"]


def test_a_polling_gate_tells_its_owner_once_when_it_has_failed_not_at_every_look(env, tmp_path):
    # N14: four "not yet" looks between 09:00 and 17:00 are no fault; the fifth, at the end, is
    variant = PLAN.parent / f".variant-{tmp_path.name}.yml"
    variant.write_text(PLAN.read_text(encoding="utf-8").replace(
        "  inventory: tests/data/sites/inventory-counties.yml\n",
        "  inventory: tests/data/sites/inventory-counties.yml\n  escalation:\n    - name: 参保管理处\n"
        "      handles: [business, system]\n      notify: ['json://127.0.0.1:9/x']\n"), encoding="utf-8")
    try:
        time = FakeTime()
        opts = RunOptions(plan=str(variant), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                          notify_urls=[], say=lambda _: None, clock=Clock(now=lambda: time.now, sleep=time.sleep))
        with pytest.raises(StepFailed, match="step g1 failed"):
            Executor("stop", opts).run()
        with Journal.open(env["journal"]) as journal:
            told = [(row["event"], row["step_id"]) for row in journal.all("escalations")]
        assert attempts(env, "g1") == ["failed"] * 5
        assert told == [("failure", "g1")]
    finally:
        variant.unlink()


def test_a_recheck_compares_ids_as_sets_fewer_is_covered_one_more_is_new():
    from cutover.engine.playbook_step import _covered
    accepted = {"line": "qyyl", "agency": "140102", "problem": "approval pending", "ids": "51,60"}
    assert _covered({**accepted, "ids": "60,51"}, accepted)  # the order the database gave
    assert _covered({**accepted, "ids": "60"}, accepted)  # 51 handled since
    assert not _covered({**accepted, "ids": "51,60,61"}, accepted)  # 61 arrived during the day
    assert not _covered({**accepted, "agency": "140105", "ids": "51"}, accepted)
    assert _covered("counters not ready", "counters not ready")
    assert not _covered("counters not ready", "another")
