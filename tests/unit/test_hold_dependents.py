"""A step that says `on_failure: hold_dependents` (N7: the receipt may come days after the
hand-off, while N8's deploy goes on beside it): its failure holds only what depends on it, the
other steps go on, and the run ends failed naming it; a later run does it and what waited. A
manual step with `note_required` is confirmed only with a note (N8: the tax side's version).

tests/data/sites/plan-hold.yml on tests/data/sites/inventory-counties.yml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cutover.engine import decisions
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.run import EXIT_FAILED, StepFailed
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError

from .site_runs import marked_env, marks

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "tests" / "data" / "sites" / "plan-hold.yml"


@pytest.fixture
def env(tmp_path, monkeypatch):
    return marked_env(tmp_path, monkeypatch) | {"plan": PLAN}


def opts(env, **kw) -> RunOptions:
    return RunOptions(plan=str(env["plan"]), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=True, notify_urls=[], say=kw.pop("said", []).append, **kw)


def states(env) -> dict[str, str]:
    with Journal.open(env["journal"]) as journal:
        return {row["id"]: row["state"] for row in journal.steps()}


def test_a_held_failure_lets_the_independent_steps_go_on_and_ends_the_run_failed(env, monkeypatch):
    monkeypatch.setenv("CUTOVER_TEST_FAIL", "dt-counter")
    said: list[str] = []
    with pytest.raises(StepFailed) as err:
        Executor("deploy", opts(env, said=said)).run()
    assert err.value.code == EXIT_FAILED  # failed, although s4 also waits for its confirmation
    assert "step s1 failed" in err.value.message
    assert "s4" in err.value.message  # still to confirm
    assert "held in this run by what failed: s2" in err.value.hint
    assert states(env) == {"s1": "failed", "s2": "pending", "s3": "done", "s4": "waiting"}
    assert "s3 prov-db" in marks(env)
    assert not [line for line in marks(env) if line.startswith("s2 ")]
    assert any("s2: held: it depends on s1" in line for line in said)
    with Journal.open(env["journal"]) as journal:
        assert journal.all("runs")[-1]["status"] == "failed"
    # the other side confirms with its version; the receipt comes; the next run does the rest
    with pytest.raises(CutoverError, match="confirmed with a note saying the version now running"):
        decisions.confirm(opts(env), "s4", "税务局 李", "  ")
    decisions.confirm(opts(env), "s4", "税务局 李", "tax-2023.11.2")
    monkeypatch.delenv("CUTOVER_TEST_FAIL")
    assert Executor("deploy", opts(env)).run() == 0
    assert set(states(env).values()) == {"done"}
    assert [line.split()[0] for line in marks(env)].count("s3") == 1  # nothing twice


def test_without_it_a_failure_stops_the_run_where_it_is(env, monkeypatch, tmp_path):
    doc = yaml.safe_load(PLAN.read_text(encoding="utf-8"))
    del doc["phases"][0]["steps"][0]["on_failure"]
    env["plan"] = PLAN.parent / f".variant-{tmp_path.name}.yml"
    env["plan"].write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    try:
        monkeypatch.setenv("CUTOVER_TEST_FAIL", "dt-counter")
        with pytest.raises(StepFailed, match="step s1 failed"):
            Executor("deploy", opts(env)).run()
        assert states(env) == {"s1": "failed", "s2": "pending", "s3": "pending", "s4": "pending"}
    finally:
        env["plan"].unlink()


def test_note_required_belongs_to_a_manual_step(tmp_path):
    doc = yaml.safe_load(PLAN.read_text(encoding="utf-8"))
    doc["phases"][0]["steps"][2]["note_required"] = "a version"
    bad = PLAN.parent / f".variant-{tmp_path.name}.yml"
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    try:
        with pytest.raises(CutoverError, match="only a manual step is confirmed with a note"):
            Executor("deploy", RunOptions(plan=str(bad), journal=str(tmp_path / "j.sqlite"),
                                          artifacts=str(tmp_path / "art"), rehearsal=True, say=lambda _: None)).run()
    finally:
        bad.unlink()
