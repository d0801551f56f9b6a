"""How a phase's sites move (N17): in waves, each wave a run of the playbook on its own
hosts that starts after the one before it ended; and what one site's failure does, with
`on_site_failure: continue` (the others go on, the failed site is reported and brought back
alone with --limit) and with halt (nothing after the failed stage starts).

tests/data/sites/inventory-counties.yml: a province (prov-db), two cities (ty-counter,
dt-counter) and a county of Taiyuan (xd-counter), every host on this machine; the playbook
marks each host it works on, and fails the host CUTOVER_TEST_FAIL names."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from cutover.engine import decisions
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.run import StepFailed
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError
from cutover.plan.lint import load_plan

from .site_runs import marked_env, marks

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "tests" / "data" / "sites" / "plan-waves.yml"


@pytest.fixture
def env(tmp_path, monkeypatch):
    out = marked_env(tmp_path, monkeypatch) | {"plan": PLAN}
    yield out
    if out["plan"] != PLAN:  # this test's variant only: tests run side by side (-n)
        out["plan"].unlink(missing_ok=True)


def variant(env, change) -> None:
    """A copy of the plan with `change(doc)` applied, beside the original (its paths are the project's)."""
    doc = yaml.safe_load(PLAN.read_text(encoding="utf-8"))
    change(doc)
    path = PLAN.parent / f".variant-{env['tmp'].name}.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    env["plan"] = path


def run(env, verb: str, limit: str | None = None) -> tuple[int, list[str]]:
    said: list[str] = []
    opts = RunOptions(plan=str(env["plan"]), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=True, auto_confirm=True, notify_urls=[], limit=limit, say=said.append)
    return Executor(verb, opts).run(), said


def site_rows(env) -> dict[tuple[str, str], str]:
    with Journal.open(env["journal"]) as journal:
        return {(row["step_id"], row["site"]): row["state"] for row in journal.all("step_sites")}


def test_waves_run_level_by_level_in_batches_each_after_the_last_ended(env):
    code, said = run(env, "stop")
    assert code == 0
    assert marks(env) == ["a1 xd-counter", "a1 ty-counter", "a1 dt-counter"]  # the county, then each city
    assert [line for line in said if "wave " in line] == [
        "  wave 1/3: counties: 小店区 (1 host(s))", "  wave 2/3: cities: 太原市 (1 host(s))",
        "  wave 3/3: cities: 大同市 (1 host(s))"]
    with Journal.open(env["journal"]) as journal:
        attempts = [row for row in journal.all("attempts") if row["step_id"] == "a1"]
        sites = {row["site"]: row["attempt_id"] for row in journal.all("step_sites")}
        assert journal.step("a1")["state"] == "done"
    assert len(attempts) == 3
    for before, after in itertools.pairwise(attempts):  # no host of wave k+1 before wave k ended
        assert after["started_at"] >= before["ended_at"]
    assert [sites[site] for site in ("taiyuan-c01", "taiyuan", "datong")] == [a["id"] for a in attempts]


def test_with_continue_a_wave_whose_only_site_failed_lets_the_next_waves_go_on(env, monkeypatch):
    variant(env, lambda doc: doc["phases"][0].update(waves=["cities", "counties"], on_site_failure="continue"))
    monkeypatch.setenv("CUTOVER_TEST_FAIL", "dt-counter")
    with pytest.raises(StepFailed, match=r"a1 failed at 大同市 \(datong\)"):
        run(env, "stop")
    assert marks(env) == ["a1 ty-counter", "a1 xd-counter"]  # Taiyuan, (Datong failed), then the county
    rows = site_rows(env)
    assert (rows[("a1", "taiyuan")], rows[("a1", "datong")], rows[("a1", "taiyuan-c01")]) == ("done", "failed", "done")


def test_a_level_no_wave_names_is_refused_before_any_host(env):
    variant(env, lambda doc: doc["phases"][0].update(waves=["cities"]))
    with pytest.raises(CutoverError, match=r"step a1 works at counties sites, but the waves of phase "
                                           r"w-stop are cities: those hosts would never run"):
        run(env, "stop")
    assert marks(env) == []


def test_with_continue_a_failed_city_holds_up_only_itself_and_comes_back_alone(env, monkeypatch):
    run(env, "stop")
    env["marker"].unlink()
    monkeypatch.setenv("CUTOVER_TEST_FAIL", "dt-counter")
    said: list[str] = []
    opts = RunOptions(plan=str(env["plan"]), journal=str(env["journal"]), artifacts=str(env["tmp"] / "a"),
                      rehearsal=True, auto_confirm=True, notify_urls=[], say=said.append)
    with pytest.raises(StepFailed) as failed:
        Executor("restore", opts).run()
    assert "r2 failed at 大同市 (datong)" in failed.value.message
    assert "invoke cutover.restore --limit datong" in failed.value.hint
    assert "  ✗ failed at 大同市 (datong); the other sites went on (on_site_failure: continue)" in "\n".join(said)
    # every other site came back, and the stage after the counters' started (the province);
    # the later check of every counter is held where the counters' restore failed
    done = marks(env)
    assert [done[0], sorted(done[1:3]), done[3], sorted(done[4:])] == [
        "r1 prov-db", ["r2 ty-counter", "r2 xd-counter"], "r3 prov-db", ["r4 ty-counter", "r4 xd-counter"]]
    assert "[4/4] r4: held at 大同市 (datong) (r2 failed at 大同市 (datong)): it runs there when that is done" in said
    rows = site_rows(env)
    assert rows[("r2", "datong")] == "failed"
    assert ("r4", "datong") not in rows
    assert rows[("r2", "taiyuan")] == rows[("r2", "taiyuan-c01")] == rows[("r3", "province")] == "done"
    with Journal.open(env["journal"]) as journal:
        told = [(row["event"], row["title"]) for row in journal.all("notifications")]
    assert ("site_failure", "[sites-waves] 站点失败，其他站点继续: r2 counters back: 大同市 (datong)") in told

    monkeypatch.setenv("CUTOVER_TEST_FAIL", "")  # fixed
    code, _ = run(env, "restore", "datong")
    assert code == 0
    assert marks(env)[6:] == ["r2 dt-counter", "r4 dt-counter"]  # only the failed city, nothing twice
    assert site_rows(env)[("r2", "datong")] == site_rows(env)[("r4", "datong")] == "done"
    with Journal.open(env["journal"]) as journal:
        states = {row["id"]: row["state"] for row in journal.steps()}
    assert states["r2"] == states["r4"] == "done"


def test_with_halt_nothing_after_the_failed_stage_starts(env, monkeypatch):
    variant(env, lambda doc: doc["phases"][2].update(on_site_failure="halt"))
    run(env, "stop")
    env["marker"].unlink()
    monkeypatch.setenv("CUTOVER_TEST_FAIL", "dt-counter")
    with pytest.raises(StepFailed, match="step r2 failed"):
        run(env, "restore")
    assert marks(env) == ["r1 prov-db"]  # one counter's failure stopped every counter, and r3
    rows = site_rows(env)
    # Datong failed; the others were stopped by its failure, not failed themselves
    assert [rows[("r2", site)] for site in ("datong", "taiyuan", "taiyuan-c01")] == [
        "failed", "interrupted", "interrupted"]
    assert ("r3", "province") not in rows

    # the next stage starts when every site of this one is done or let pass by name and reason:
    # the override lets Datong pass (as it is); the sites merely stopped run the stage now
    opts = RunOptions(plan=str(env["plan"]), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=True, notify_urls=[], say=lambda _: None)
    decisions.override(opts, "r2", "王工", "大同柜面线下恢复")
    monkeypatch.setenv("CUTOVER_TEST_FAIL", "")  # brought back by hand
    code, said = run(env, "restore")
    assert code == 0
    assert "  passed at 大同市 (datong) by override of 王工: 大同柜面线下恢复" in said
    done = marks(env)
    assert sorted(done[1:3]) == ["r2 ty-counter", "r2 xd-counter"]  # not Datong's
    assert done[3] == "r3 prov-db"
    assert sorted(done[4:]) == ["r4 dt-counter", "r4 ty-counter", "r4 xd-counter"]
    with Journal.open(env["journal"]) as journal:
        attempts = [row["status"] for row in journal.all("attempts") if row["step_id"] == "r2"]
    assert attempts == ["failed", "overridden", "ok"]


def test_a_run_once_failure_stops_every_site_even_with_continue_and_none_is_recorded_done(env, monkeypatch):
    """Ansible counts a run_once task's failure against one host but stops them all: the
    others did not finish their work, so no site is done and nothing after starts."""
    variant(env, lambda doc: doc["phases"][2]["steps"][0].update(tags=["once"]))
    run(env, "stop")
    env["marker"].unlink()
    monkeypatch.setenv("CUTOVER_TEST_FAIL_ONCE", "1")
    with pytest.raises(StepFailed, match="step r2 failed"):
        run(env, "restore")
    assert [line for line in marks(env) if not line.startswith("start ")] == ["r1 prov-db"]
    rows = site_rows(env)
    assert "done" not in {rows[("r2", site)] for site in ("datong", "taiyuan", "taiyuan-c01")}
    assert ("r3", "province") not in rows


def test_a_failed_input_check_at_one_host_is_everyones_failure_even_with_continue(env, monkeypatch):
    variant(env, lambda doc: doc["phases"][1].update(on_site_failure="continue"))
    run(env, "stop")
    monkeypatch.setenv("CUTOVER_TEST_BAD_INPUT", "ty-counter")
    said: list[str] = []
    opts = RunOptions(plan=str(env["plan"]), journal=str(env["journal"]), artifacts=str(env["tmp"] / "a"),
                      rehearsal=True, auto_confirm=True, notify_urls=[], say=said.append)
    with pytest.raises(StepFailed, match="step r1 failed"):
        Executor("restore", opts).run()
    assert not any("the other sites went on" in line for line in said)


def test_a_restore_step_that_proves_something_is_never_let_pass(env, monkeypatch):
    variant(env, lambda doc: doc["phases"][3]["steps"][1].update(evidence=["versions"]))
    run(env, "stop")
    with pytest.raises(StepFailed, match="returned no `versions` evidence"):
        run(env, "restore")
    opts = RunOptions(plan=str(env["plan"]), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=True, notify_urls=[], say=lambda _: None)
    decisions.override(opts, "r4", "Mallory", "skip it")
    with pytest.raises(StepFailed, match="returned no `versions` evidence") as again:
        run(env, "restore")
    assert "cutover.override r4" not in again.value.hint


def test_continue_refuses_a_play_that_halts_every_site(env):
    variant(env, lambda doc: doc["phases"][2]["steps"][0].update(tags=["fatal"]))
    _, problems = load_plan(env["plan"])
    errors = [problem.message for problem in problems if problem.severity == "error"]
    assert any("on_site_failure is continue, but play 'Counters that halt every site when one fails, "
               "whatever the plan says'" in message for message in errors), errors


def test_waves_name_each_level_once_and_wave_size_needs_waves(env):
    variant(env, lambda doc: doc["phases"][0].update(waves=["cities", "cities"]))
    _, problems = load_plan(env["plan"])
    assert any("a level is named twice in waves" in problem.message for problem in problems)
    variant(env, lambda doc: doc["phases"][1].update(wave_size=2))
    _, problems = load_plan(env["plan"])
    assert any("wave_size batches the sites of each wave" in problem.message for problem in problems)
