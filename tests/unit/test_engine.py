"""The executor against real playbooks on localhost (ansible-runner is not mocked), the
journal under simulated crashes, the lock, and the clock with a fake time source."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from cutover.engine import decisions
from cutover.engine.clock import Clock, RehearsalClock
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.lock import RunLock
from cutover.engine.run import EXIT_WAITING, StepFailed
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError
from cutover.inventory import combine_limits

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "plans" / "mini.yml"
UTC = dt.UTC


@pytest.fixture
def env(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv("CUTOVER_TEST_MARKER", str(marker))
    monkeypatch.setenv("CUTOVER_TEST_GATE_FAIL", str(tmp_path / "gate-fails"))
    plan = tmp_path / "mini.yml"
    plan.write_text(MINI.read_text().replace("vars: {slow_seconds: 6}", "vars: {slow_seconds: 0}"))
    return {"tmp": tmp_path, "marker": marker, "plan": plan, "journal": tmp_path / "j.sqlite"}


def opts(env, **kw) -> RunOptions:
    base = {"plan": str(env["plan"]), "journal": str(env["journal"]), "artifacts": str(env["tmp"] / "art"),
            "rehearsal": True, "say": lambda *_: None}
    base.update(kw)
    return RunOptions(**base)


def ran(env) -> list[str]:
    return [ln.split()[0] for ln in env["marker"].read_text().splitlines() if ln.endswith("end")] \
        if env["marker"].exists() else []


def states(env) -> dict[str, str]:
    j = Journal.open(env["journal"])
    try:
        return {r["id"]: r["state"] for r in j.steps()}
    finally:
        j.close()


def test_gate_failure_stops_the_run_override_lets_it_pass_and_is_recorded(env):
    (env["tmp"] / "gate-fails").touch()
    with pytest.raises(StepFailed) as err:
        Executor("stop", opts(env)).run()
    assert "step s3 failed" in err.value.message
    assert "agency=140102, problem=approval pending, ids=101" in err.value.message
    assert ran(env) == ["s1", "s2"]  # nothing after the gate ran
    assert states(env)["s3"] == "failed"
    decisions.override(opts(env), "s3", "王处长", "已线下审核")
    with pytest.raises(StepFailed) as err:  # now the manual step waits
        Executor("stop", opts(env)).run()
    assert err.value.code == EXIT_WAITING
    assert "cutover.confirm s4" in err.value.hint
    decisions.confirm(opts(env), "s4", "李科长", "checked by phone")
    assert Executor("stop", opts(env)).run() == 0
    assert ran(env) == ["s1", "s2", "s5"]  # no step repeated
    j = Journal.open(env["journal"])
    try:
        ov = j.all("overrides")
        assert [(o["step_id"], o["by"], o["reason"], o["used"]) for o in ov] == [("s3", "王处长", "已线下审核", 1)]
        assert [(c["step_id"], c["by"]) for c in j.all("confirmations")] == [("s4", "李科长")]
        kinds = [e["kind"] for e in j.evidence("s3")]
        assert kinds.count("gate") == 1  # the failing evidence is kept
        assert "override" in kinds
    finally:
        j.close()


def test_a_completed_verb_changes_nothing_when_run_again(env):
    decisions.confirm(opts(env), "s4", "李科长", "")
    assert Executor("stop", opts(env)).run() == 0
    before = env["marker"].read_text()
    assert Executor("stop", opts(env)).run() == 0
    assert env["marker"].read_text() == before


def test_check_mode_marks_nothing_done(env):
    decisions.confirm(opts(env), "s4", "x", "")
    assert Executor("stop", opts(env, check=True)).run() == 0
    assert set(states(env).values()) == {"pending"}
    assert ran(env) == []  # the shell tasks are skipped in check mode


def test_restore_refuses_before_the_stop_it_follows_is_done(env):
    with pytest.raises(CutoverError, match=r"step r1 needs s5 \(stop\), which is pending"):
        Executor("restore", opts(env)).run()
    assert ran(env) == []


def test_changed_plan_is_refused_unless_accepted_and_then_recorded(env):
    decisions.confirm(opts(env), "s4", "x", "")
    Executor("stop", opts(env)).run()
    env["plan"].write_text(env["plan"].read_text().replace("title: last", "title: the last"))
    with pytest.raises(CutoverError, match="changed since this journal's run started"):
        Executor("stop", opts(env)).run()
    assert Executor("stop", opts(env, accept_plan_change=True)).run() == 0
    j = Journal.open(env["journal"])
    try:
        assert len(j.all("plan_changes")) == 1
    finally:
        j.close()


def test_a_journal_of_another_plan_is_refused(env):
    Journal.open(env["journal"]).set_meta("plan_name", "another-plan")
    with pytest.raises(CutoverError, match="belongs to plan 'another-plan', not 'mini'"):
        Executor("stop", opts(env)).run()


def test_a_corrupted_journal_is_refused_and_left_as_it_was(env):
    env["journal"].write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CutoverError, match="damaged or not a journal"):
        Executor("stop", opts(env)).run()
    assert env["journal"].read_bytes() == b"this is not sqlite" * 100
    assert ran(env) == []


def test_a_second_operator_is_told_who_holds_the_run(env):
    holder = RunLock(env["journal"])
    holder.acquire("stop")
    try:
        with pytest.raises(CutoverError, match=r"another run holds this journal: .+@.+ \(pid \d+, cutover.stop\) since"):
            Executor("stop", opts(env)).run()
    finally:
        holder.release()


def test_a_data_task_is_refused_while_a_cutover_run_holds_the_journal(tmp_path):
    from invoke import Config, Context

    from cutover.cli.data import run_data_playbook

    journal = tmp_path / "journal.sqlite"
    ctx = Context(Config(overrides={"cutover": {"plan": str(ROOT / "plans" / "shanxi-2023-11.yml"),
                                                "journal": str(journal), "artifacts": str(tmp_path / "art")}}))
    holder = RunLock(journal)
    holder.acquire("deploy")
    try:
        with pytest.raises(CutoverError, match=r"another run holds this journal: .+ cutover.deploy\) since"):
            run_data_playbook(ctx, "export", None, None)
    finally:
        holder.release()
    assert not (tmp_path / "art").exists()  # no playbook ran
    holder.acquire("data.export")  # and the other way round
    try:
        with pytest.raises(CutoverError, match=r"\(pid \d+, data.export\) since"):
            Executor("stop", RunOptions(plan=str(ROOT / "plans" / "shanxi-2023-11.yml"), journal=str(journal),
                                        artifacts=str(tmp_path / "art"), rehearsal=True,
                                        say=lambda *_: None)).run()
    finally:
        holder.release()


def test_journal_survives_a_crash_between_begin_and_finish(env):
    """Simulated crash: an attempt begun, never finished, connection dropped."""
    from cutover.plan.lint import check

    plan, _ = check(env["plan"])
    j = Journal.open(env["journal"])
    j.bind_plan(plan, accept_change=False, by="t")
    run = j.start_run("stop", rehearsal=True, check=False, plan_hash=plan.digest, options={}, who="t")
    j.begin_attempt("s1", run, check=False, actual_start="2023-11-20T18:00:00+08:00")
    j.db.close()  # the process dies here: no finish, no end_run
    j2 = Journal.open(env["journal"])
    assert j2.step("s1")["state"] == "running"
    assert j2.interrupted_runs()[0]["id"] == run
    j2.close()
    decisions.confirm(opts(env), "s4", "x", "")
    assert Executor("stop", opts(env)).run() == 0
    assert ran(env) == ["s1", "s2", "s5"]
    j3 = Journal.open(env["journal"])
    try:
        assert j3.all("runs")[0]["status"] == "crashed"
        assert [a["status"] for a in j3.all("attempts") if a["step_id"] == "s1"] == ["interrupted", "ok"]
    finally:
        j3.close()


def test_a_transaction_cut_short_leaves_nothing_half_written(env):
    j = Journal.open(env["journal"])

    def crash_inside_a_transaction() -> None:
        with j.tx():
            j.add_confirmation("s4", "x", "")
            raise RuntimeError("crash inside the transaction")

    try:
        with pytest.raises(RuntimeError):
            crash_inside_a_transaction()
        assert j.all("confirmations") == []
    finally:
        j.close()
    assert sqlite3.connect(env["journal"]).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class FakeTime:
    def __init__(self, start: dt.datetime) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> dt.datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += dt.timedelta(seconds=seconds)


def test_real_clock_waits_until_not_before_with_a_countdown():
    fake = FakeTime(dt.datetime(2023, 11, 20, 9, 58, tzinfo=UTC))
    clock = Clock(now=fake.now, sleep=fake.sleep)
    ticks: list[float] = []
    waited = clock.wait_until(dt.datetime(2023, 11, 20, 10, 0, tzinfo=UTC), tick=ticks.append)
    assert waited == 120
    assert fake.t == dt.datetime(2023, 11, 20, 10, 0, tzinfo=UTC)
    assert ticks[0] == 120
    assert ticks == sorted(ticks, reverse=True)
    assert clock.overdue(dt.datetime(2023, 11, 20, 9, 0, tzinfo=UTC))


def test_rehearsal_clock_maps_plan_times_onto_now_and_never_waits():
    fake = FakeTime(dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    anchor = dt.datetime(2023, 11, 20, 10, 0, tzinfo=UTC)
    clock = RehearsalClock(anchor, now=fake.now, sleep=fake.sleep)
    assert clock.planned(anchor) == fake.t
    assert clock.planned(anchor + dt.timedelta(hours=3)) == fake.t + dt.timedelta(hours=3)
    assert clock.wait_until(anchor + dt.timedelta(days=3)) == 0
    assert fake.slept == []
    assert not clock.overdue(anchor - dt.timedelta(days=1))


def test_real_clock_refuses_a_step_past_due_unless_overridden(env):
    fake = FakeTime(dt.datetime(2023, 11, 24, 0, 0, tzinfo=UTC))  # after the stop's due_by
    clock = Clock(now=fake.now, sleep=fake.sleep)
    with pytest.raises(StepFailed, match="step s1 is past its due_by 2023-11-23 18:00"):
        Executor("stop", opts(env, rehearsal=False, clock=clock)).run()
    decisions.override(opts(env), "s1", "值班长", "窗口延长")
    with pytest.raises(StepFailed, match="step s2 is past its due_by"):
        Executor("stop", opts(env, rehearsal=False, clock=clock)).run()
    assert ran(env) == ["s1"]


def test_production_inventory_asks_for_confirmation(env, tmp_path):
    inv = tmp_path / "prod.yml"
    inv.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   "      cutover_environment: production\n      cutover_site: province\n"
                   "  vars:\n    cutover_sites: {province: {name: 山西省}}\n")
    with pytest.raises(CutoverError, match="not confirmed; nothing was run"):
        Executor("stop", opts(env, inventory=str(inv), confirm_prompt=lambda _: False)).run()
    assert not env["journal"].exists() or states(env).get("s1", "pending") == "pending"
    asked: list[str] = []
    decisions.confirm(opts(env), "s4", "x", "")
    assert Executor("stop", opts(env, inventory=str(inv),
                                   confirm_prompt=lambda p: asked.append(p) or True)).run() == 0
    assert "PRODUCTION" in asked[0]


def test_limits_are_intersected():
    lab = ROOT / "inventories" / "lab"
    assert combine_limits(lab, "core", "city_taiyuan") == "core,&city_taiyuan"
    assert combine_limits(lab, "core", None, "all:!counter-x") == "core,!counter-x"
    assert combine_limits(lab, None, "db1,db2") == "db1,db2"
    assert combine_limits(lab, "db1,core-qyyl", "core") == "db1,core-qyyl,&core"


def test_forecast_uses_rehearsal_durations_and_flags_a_step_that_would_end_late(env):
    from cutover.engine.forecast import forecast, step_durations
    from cutover.plan.lint import check

    decisions.confirm(opts(env), "s4", "x", "")
    assert Executor("stop", opts(env)).run() == 0
    took = step_durations(env["journal"])
    assert set(took) == {"s1", "s2", "s3", "s4", "s5"}
    assert all(v >= 0 for v in took.values())
    plan, _ = check(env["plan"])
    fc = forecast(plan, {"s1": 3600.0, "s2": 2 * 86400.0, "s3": 86400.0})
    assert fc["s1"]["end"].isoformat() == "2023-11-20T19:00:00+08:00"
    assert fc["s2"]["start"] == fc["s1"]["end"]  # waits for its dependency
    assert fc["s2"]["fits"] is True  # ends 11-22 19:00, due 11-23 18:00
    assert fc["s3"]["fits"] is False  # ends 11-23 19:00: an hour late
    assert fc["s5"]["expected_s"] is None


def test_a_step_whose_plays_match_no_host_under_the_limit_is_not_part_of_the_run_never_done(env):
    """Seen: `--limit counter-taiyuan` marked the screening (hosts: db) done with "0 host(s)",
    and the next unlimited run skipped it. A step none of whose hosts the limit reaches is
    not part of that run: said so, left as it was, done by the next run (N17, N18)."""
    inv = env["tmp"] / "inventory.yml"
    inv.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
                   "    elsewhere:\n      ansible_connection: local\n"
                   "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n")
    env["plan"].write_text(env["plan"].read_text().replace("inventory: tests/data/inventory.yml",
                                                           f"inventory: {inv}"))
    said: list[str] = []
    assert Executor("stop", opts(env, limit="elsewhere", say=said.append)).run() == 0
    assert "[1/5] s1: not part of this run (its sites, the inventory, are outside --limit)" in said
    assert said[-1].startswith("cutover.stop: done within --limit elsewhere; left for the other sites or for later: s1")
    assert states(env)["s1"] == "pending"
    assert ran(env) == []
    with pytest.raises(StepFailed):  # the manual step s4 waits; s1 ran for real this time
        Executor("stop", opts(env)).run()
    assert ran(env) == ["s1", "s2"]
    assert states(env)["s1"] == "done"


def test_a_step_whose_limit_and_the_operators_share_no_host_is_not_part_of_the_run(env):
    inv = env["tmp"] / "inventory.yml"
    inv.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   "    elsewhere:\n      ansible_connection: local\n")
    env["plan"].write_text(env["plan"].read_text()
                           .replace("inventory: tests/data/inventory.yml", f"inventory: {inv}")
                           .replace("        title: first\n", "        title: first\n        limit: localhost\n", 1))
    said: list[str] = []
    assert Executor("stop", opts(env, limit="elsewhere", say=said.append)).run() == 0
    assert any(line.startswith("[1/5] s1: not part of this run") for line in said)
    assert states(env)["s1"] == "pending"
    assert ran(env) == []


def rows(journal: Path) -> dict[str, list[tuple]]:
    """Every row of the journal's decision and run tables, and its meta (the plan's hash)."""
    db = sqlite3.connect(journal)
    try:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in ("runs", "steps", "attempts", "confirmations", "overrides", "plan_changes", "meta")}
    finally:
        db.close()


def test_a_real_window_on_a_rehearsals_journal_is_refused_and_so_is_the_reverse(env):
    """A rehearsal confirms its manual steps by itself: a real window run on its journal would
    skip them as done (a review found it). Either way round, refused before any wait or write,
    even with --accept-plan-change after the plan was edited."""
    with pytest.raises(StepFailed):  # a check run first (it marks nothing done, so does not count)
        Executor("stop", opts(env, rehearsal=False, yes=True, check=True)).run()
    (env["tmp"] / "gate-fails").touch()  # the rehearsal runs s1 and s2, then its gate fails
    with pytest.raises(StepFailed):
        Executor("stop", opts(env)).run()
    assert ran(env) == ["s1", "s2"]
    env["plan"].write_text(env["plan"].read_text().replace("slow_seconds: 0", "slow_seconds: 1"))
    before = rows(env["journal"])
    with pytest.raises(CutoverError) as err:
        Executor("stop", opts(env, rehearsal=False, yes=True, accept_plan_change=True)).run()
    assert "holds a rehearsal's runs (run 2: cutover.stop by" in err.value.message
    assert "cutover.stop as the real window is refused" in err.value.message
    assert "never share a journal" in err.value.hint
    assert ran(env) == ["s1", "s2"]
    assert rows(env["journal"]) == before  # no plan change accepted, no run, nothing
    real = env["tmp"] / "real.sqlite"
    j = Journal.open(real)
    try:  # what a real window's first run leaves in its journal
        j.end_run(j.start_run("stop", rehearsal=False, check=False, plan_hash="x", options={},
                              who="ops\x1b]0;pwned\x07"), "failed")
    finally:
        j.close()
    with pytest.raises(CutoverError) as err:
        Executor("stop", opts(env, journal=str(real))).run()
    assert "holds a real window's runs" in err.value.message
    assert "as a rehearsal is refused" in err.value.message
    assert "\x1b" not in str(err.value)  # the name from a shared journal cannot drive the terminal
    assert "ops\ufffd]0;pwned\ufffd" in str(err.value)


def test_a_journal_that_holds_both_kinds_already_does_not_block_the_way_back(env):
    """An older checkout on a shared journal may have mixed it: only the first mix is refused."""
    j = Journal.open(env["journal"])
    try:
        for rehearsal in (True, False):
            j.end_run(j.start_run("stop", rehearsal=rehearsal, check=False, plan_hash="x", options={},
                                  who="ops"), "failed")
    finally:
        j.close()
    (env["tmp"] / "gate-fails").touch()
    with pytest.raises(StepFailed, match="step s3 failed"):  # not refused: it ran up to the gate
        Executor("stop", opts(env, accept_plan_change=True)).run()


def test_a_check_run_leaves_no_decision_behind_it_neither_takes_an_override_nor_confirms(env):
    """A colleague's preview (--check) must not use the duty chief's override, nor, with
    --auto-confirm, confirm a manual step for the run that does the work (a review found both)."""
    (env["tmp"] / "gate-fails").touch()
    with pytest.raises(StepFailed):
        Executor("stop", opts(env)).run()
    decisions.override(opts(env), "s3", "王处长", "已线下审核")
    before = rows(env["journal"])
    said: list[str] = []
    assert Executor("stop", opts(env, check=True, auto_confirm=True, say=said.append)).run() == 0
    assert any("confirmed by rehearsal: confirmed automatically in a rehearsal (check mode: not recorded)"
               in line for line in said), said
    after = rows(env["journal"])
    assert after["overrides"] == before["overrides"]  # still unused
    assert after["confirmations"] == before["confirmations"] == []
    assert {r[0]: r[1] for r in after["steps"]} == {r[0]: r[1] for r in before["steps"]}
    with pytest.raises(StepFailed) as err:  # the real run uses the override, then waits at s4
        Executor("stop", opts(env)).run()
    assert err.value.code == EXIT_WAITING
    assert states(env)["s3"] == "done"
