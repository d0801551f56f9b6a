"""State per step and site (N17): a run narrowed with --limit does a step for the sites it
reaches and records exactly those; a later run does the rest and nothing twice; a step whose
dependency is not done where its work needs it is left for later, and said so.

The inventory (tests/data/sites) is a province (prov-db) and two cities (ty-counter,
dt-counter), every host on this machine; the playbook marks each host it works on."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.run import EXIT_WAITING, StepFailed
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError

from .site_runs import marked_env, marks

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "tests" / "data" / "sites" / "plan.yml"


@pytest.fixture
def env(tmp_path, monkeypatch):
    return marked_env(tmp_path, monkeypatch)


def run(env, verb: str, limit: str | None = None, **kw) -> tuple[int, list[str]]:
    said: list[str] = []
    opts = RunOptions(plan=str(PLAN), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=True, auto_confirm=True, notify_urls=[], limit=limit, say=said.append, **kw)
    return Executor(verb, opts).run(), said


def journal_rows(env) -> tuple[dict[str, str], dict[tuple[str, str], tuple[str, int]]]:
    with Journal.open(env["journal"]) as journal:
        steps = {row["id"]: row["state"] for row in journal.steps()}
        sites = {(row["step_id"], row["site"]): (row["state"], row["run_id"]) for row in journal.all("step_sites")}
    return steps, sites


def test_a_city_then_the_province_then_all_each_site_once_in_the_notices_order(env):
    code, said = run(env, "stop", "taiyuan")
    assert code == 0
    assert marks(env) == ["a1 ty-counter"]
    assert "[2/3] a2: not part of this run (its sites, 山西省 (province), are outside --limit)" in said
    steps, sites = journal_rows(env)
    assert steps["a1"] == "partial"  # done for Taiyuan, not for Datong
    assert sites[("a1", "taiyuan")] == ("done", 1)
    assert ("a1", "datong") not in sites

    # the province's freeze waits for every city's counters (its work is above theirs)
    code, said = run(env, "stop", "province")
    assert code == 0
    assert marks(env) == ["a1 ty-counter"]
    assert "[2/3] a2: left for later: a1 is not done for 大同市 (datong)" in said
    assert said[-1] == ("cutover.stop: done within --limit province; left for the other sites or for later: "
                        "a1, a2, a3")

    code, said = run(env, "stop")
    assert code == 0
    # a1 only for Datong (Taiyuan was done), then the freeze, each host once
    assert marks(env) == ["a1 ty-counter", "a1 dt-counter", "a2 prov-db"]
    assert "  done earlier for 太原市 (taiyuan); now for 大同市 (datong)" in said
    steps, sites = journal_rows(env)
    assert steps == {"a1": "done", "a2": "done", "a3": "done", "r1": "pending", "r2": "pending"}
    assert sites[("a1", "taiyuan")] == ("done", 1)
    assert sites[("a1", "datong")] == ("done", 3)  # the journal says which run did which site
    assert sites[("a2", "province")] == ("done", 3)


def test_a_city_waits_for_the_provinces_work_above_it(env):
    run(env, "stop")
    code, said = run(env, "restore", "taiyuan")
    assert code == 0
    assert "[2/2] r2: left for later: r1 is not done for 山西省 (province)" in said
    assert [mark for mark in marks(env) if mark.startswith("r")] == []
    run(env, "restore", "province")
    run(env, "restore", "taiyuan")
    run(env, "restore")
    assert [mark for mark in marks(env) if mark.startswith("r")] == ["r1 prov-db", "r2 ty-counter", "r2 dt-counter"]
    steps, _ = journal_rows(env)
    assert steps["r2"] == "done"


def test_a_later_verb_is_refused_up_front_while_its_dependency_is_undone_for_the_sites_it_needs(env):
    run(env, "stop", "taiyuan")
    with pytest.raises(CutoverError, match=r"step r1 needs a3 \(stop\), which is pending") as caught:
        run(env, "restore")
    assert "run `invoke cutover.stop` first" in caught.value.hint
    assert [mark for mark in marks(env) if mark.startswith("r")] == []


def test_check_mode_records_no_site(env):
    code, _ = run(env, "stop", "taiyuan", check=True)
    assert code == 0
    steps, sites = journal_rows(env)
    assert steps["a1"] == "pending"
    assert sites == {}


def test_a_failing_site_fails_the_step_there_and_a_rerun_does_only_what_is_left(env, monkeypatch):
    run(env, "stop", "taiyuan")
    monkeypatch.setenv("CUTOVER_TEST_MARKER", "/nonexistent/dir/marker")  # the next marks fail
    with pytest.raises(StepFailed):
        run(env, "stop", "datong")
    steps, sites = journal_rows(env)
    assert steps["a1"] == "failed"
    assert sites[("a1", "datong")][0] == "failed"
    assert sites[("a1", "taiyuan")][0] == "done"  # not undone by another site's failure
    monkeypatch.setenv("CUTOVER_TEST_MARKER", str(env["marker"]))
    with pytest.raises(StepFailed) as caught:  # no auto-confirm: the manual step waits
        Executor("stop", RunOptions(plan=str(PLAN), journal=str(env["journal"]),
                                    artifacts=str(env["tmp"] / "art"), rehearsal=True, notify_urls=[],
                                    say=lambda *_: None)).run()
    assert caught.value.code == EXIT_WAITING
    assert marks(env) == ["a1 ty-counter", "a1 dt-counter", "a2 prov-db"]


def test_status_says_where_a_narrowed_step_stands_site_by_site(env):
    from cutover.engine.status import collect
    from cutover.plan.lint import check as lint_check

    run(env, "stop", "taiyuan")
    plan, _ = lint_check(str(PLAN))
    with Journal.open(env["journal"]) as journal:
        steps = {step["id"]: step for step in collect(plan, journal, PLAN.parent / "inventory.yml")["steps"]}
    assert steps["a1"]["state"] == "partial"
    assert steps["a1"]["site_states"] == {"taiyuan": "done"}
    assert steps["a2"]["site_states"] == {}


def _second_taiyuan_host(env) -> None:
    """Taiyuan gets a second counter host: the plan, copied, points at that inventory."""
    inventory = env["tmp"] / "inventory.yml"
    inventory.write_text((PLAN.parent / "inventory.yml").read_text().replace(
        "        ty-counter: {cutover_site: taiyuan}\n",
        "        ty-counter: {cutover_site: taiyuan}\n        ty-counter2: {cutover_site: taiyuan}\n"))
    plan = env["tmp"] / "plan.yml"
    plan.write_text(PLAN.read_text().replace("inventory: tests/data/sites/inventory.yml", f"inventory: {inventory}"))
    env["plan"] = plan


def run_plan(env, verb: str, limit: str | None = None, **kw) -> tuple[int, list[str]]:
    said: list[str] = []
    opts = RunOptions(plan=str(env.get("plan", PLAN)), journal=str(env["journal"]),
                      artifacts=str(env["tmp"] / "art"), rehearsal=True, auto_confirm=True, notify_urls=[],
                      limit=limit, say=said.append, **kw)
    return Executor(verb, opts).run(), said


def test_a_limit_naming_some_of_a_sites_hosts_runs_them_but_leaves_the_site_to_do(env):
    _second_taiyuan_host(env)
    code, said = run_plan(env, "stop", "ty-counter")
    assert code == 0
    assert any("only some of the step's hosts at 太原市 (taiyuan) are within --limit" in line for line in said)
    _, sites = journal_rows(env)
    assert ("a1", "taiyuan") not in sites or sites[("a1", "taiyuan")][0] != "done"
    run_plan(env, "stop")
    # the unlimited run does the whole of Taiyuan (ty-counter again, ty-counter2 for the first time)
    assert marks(env)[0] == "a1 ty-counter"
    assert sorted(mark for mark in marks(env)[1:] if mark.startswith("a1")) == [
        "a1 dt-counter", "a1 ty-counter", "a1 ty-counter2"]
    assert "a2 prov-db" in marks(env)


def test_check_mode_checks_every_step_without_waiting_for_dependencies(env):
    code, said = run(env, "stop", check=True)
    assert code == 0
    assert not any("left for later" in line for line in said)
    assert marks(env) == []  # check mode: the shell tasks are skipped


def test_a_site_added_after_a_step_was_done_is_done_for_it_before_anything_that_needs_it(env):
    run(env, "stop", "taiyuan")
    run(env, "stop", "datong")
    steps, _ = journal_rows(env)
    assert steps["a1"] == "done"
    _second_taiyuan_host(env)
    inventory = env["tmp"] / "inventory.yml"
    inventory.write_text(inventory.read_text()
                         .replace("ty-counter2: {cutover_site: taiyuan}", "xz-counter: {cutover_site: xinzhou}")
                         .replace('      datong: {name: 大同市, code: "140200", parent: province}\n',
                                  '      datong: {name: 大同市, code: "140200", parent: province}\n'
                                  '      xinzhou: {name: 忻州市, code: "140900", parent: province}\n'))
    code, said = run_plan(env, "stop", accept_plan_change=True)
    assert code == 0
    assert marks(env) == ["a1 ty-counter", "a1 dt-counter", "a1 xz-counter", "a2 prov-db"]
    assert not any("left for later" in line for line in said)


def test_an_override_passes_the_gate_only_where_it_failed(env, monkeypatch, tmp_path):
    from cutover.engine import decisions

    gate_plan = tmp_path / "gate.yml"
    gate_plan.write_text(PLAN.read_text().replace(
        "      - id: a1\n        title: counters stop\n        playbook: tests/data/sites/site-mark.yml\n",
        "      - id: a1\n        title: counters gate\n        kind: gate\n"
        "        playbook: tests/data/sites/site-gate.yml\n"))
    env["plan"] = gate_plan
    monkeypatch.setenv("CUTOVER_TEST_GATE_FAIL", str(tmp_path / "fail"))
    (tmp_path / "fail").touch()
    with pytest.raises(StepFailed):
        run_plan(env, "stop", "taiyuan")
    (tmp_path / "fail").unlink()
    opts = RunOptions(plan=str(gate_plan), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      say=lambda *_: None)
    decisions.override(opts, "a1", "王处长", "已线下审核")
    (tmp_path / "fail").touch()  # Datong's gate would fail too: it must be asked, not passed
    with pytest.raises(StepFailed) as caught:
        run_plan(env, "stop")
    assert "step a1 failed" in caught.value.message
    _, sites = journal_rows(env)
    assert sites[("a1", "datong")][0] == "failed"
    assert "a2 prov-db" not in marks(env)
    (tmp_path / "fail").unlink()
    run_plan(env, "stop", "taiyuan")  # the override passes Taiyuan, where the gate failed
    _, sites = journal_rows(env)
    assert sites[("a1", "taiyuan")][0] == "done"


def test_a_journal_of_one_state_per_step_narrowed_with_limit_is_refused(env):
    import json
    import sqlite3

    run(env, "stop", "taiyuan")
    db = sqlite3.connect(env["journal"])
    db.execute("DROP TABLE step_sites")
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.commit()
    db.close()
    with pytest.raises(CutoverError, match=r"run\(s\) 1 were narrowed with --limit") as caught:
        Journal.open(env["journal"])
    assert "cutover version that started it" in caught.value.hint
    db = sqlite3.connect(env["journal"])
    db.execute("UPDATE runs SET options=?", (json.dumps({"limit": None}),))
    db.commit()
    db.close()
    with Journal.open(env["journal"]) as journal:
        assert journal.meta("schema") == "4"  # 1 → 2 → 3 → 4
