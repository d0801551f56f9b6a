"""Confirmation per site (#14 item 5; N11: each city tracks its counter business, N12: each
channel is tested): a manual step with `sites: cities` is confirmed by each city with
`cutover.confirm STEP --site SITE`, and is done when the last city has confirmed.

The inventory (tests/data/sites) is a province and two cities, Taiyuan and Datong; the plan
is a copy of tests/data/sites/plan.yml with such a step, a4, after the counters stop (a1)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cutover.engine import decisions
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.run import EXIT_WAITING, StepFailed
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError
from cutover.plan.lint import load_plan

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "tests" / "data" / "sites" / "plan.yml"
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
A4 = ("        after: [a2]\n"
      "      - id: a4\n"
      "        title: 各市跟踪检查柜面业务办理情况\n"
      "        kind: manual\n"
      "        sites: cities\n"
      "        after: [a1]\n")


def plan_text(step: str = A4) -> str:
    text = PLAN.read_text()
    assert "        after: [a2]\n  - id: p-restore" in text
    return text.replace("        after: [a2]\n  - id: p-restore", f"{step}  - id: p-restore")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CUTOVER_TEST_MARKER", str(tmp_path / "marker"))
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text())
    return {"tmp": tmp_path, "plan": plan, "journal": tmp_path / "j.sqlite"}


def opts(env, **kw) -> RunOptions:
    return RunOptions(plan=str(env["plan"]), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=True, notify_urls=[], **kw)


def run(env, limit: str | None = None, **kw) -> list[str]:
    said: list[str] = []
    assert Executor("stop", opts(env, limit=limit, say=said.append, **kw)).run() == 0
    return said


def waits(env, limit: str | None = None) -> StepFailed:
    with pytest.raises(StepFailed) as caught:
        Executor("stop", opts(env, limit=limit, say=lambda *_: None)).run()
    assert caught.value.code == EXIT_WAITING
    return caught.value


def confirm(env, site: str, by: str = "王五", note: str = "") -> str:
    return decisions.confirm(opts(env, say=lambda *_: None), "a4", by, note, [site])


def states(env) -> tuple[str, dict[str, str]]:
    with Journal.open(env["journal"]) as journal:
        return journal.step("a4")["state"], journal.site_states("a4")


def cli(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*INV, "cutover.confirm", *args, "--plan", str(env["plan"]),
                           "--journal", str(env["journal"])],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


def test_the_step_waits_until_the_last_city_has_confirmed(env):
    from cutover.engine.status import collect

    decisions.confirm(opts(env, say=lambda *_: None), "a3", "张三", "")  # the whole-step one
    refused = waits(env)
    assert "step a4 (各市跟踪检查柜面业务办理情况) waits for confirmation from 大同市 (datong), 太原市 (taiyuan)" \
        in refused.message
    assert "invoke cutover.confirm a4 --site datong --by NAME [--note TEXT]" in refused.hint
    assert states(env) == ("waiting", {"taiyuan": "waiting", "datong": "waiting"})

    assert confirm(env, "taiyuan", note="柜面正常") == ("confirmation of a4 for 太原市 (taiyuan) by 王五 recorded; "
                                                       "still to confirm: datong")
    refused = waits(env)
    assert "waits for confirmation from 大同市 (datong)" in refused.message
    assert "taiyuan" not in refused.message
    assert "invoke cutover.confirm a4 --site datong --by NAME" in refused.hint
    assert states(env) == ("waiting", {"taiyuan": "done", "datong": "waiting"})
    with Journal.open(env["journal"]) as journal:
        evidence = [record["data"] for record in journal.evidence("a4") if record["kind"] == "confirmation"]
        assert [(e["site"], e["by"], e["note"]) for e in evidence] == [("taiyuan", "王五", "柜面正常")]
        plan, _ = load_plan(env["plan"])
        shown = {s["id"]: s for s in collect(plan, journal, PLAN.parent / "inventory.yml")["steps"]}
    assert shown["a4"]["site_confirmations"]["waiting"] == ["datong"]
    assert list(shown["a4"]["site_confirmations"]["confirmed"]) == ["taiyuan"]
    assert shown["a3"]["site_confirmations"] is None

    confirm(env, "datong", by="赵六")
    said = run(env)
    assert "  大同市 (datong): confirmed by 赵六" in said
    assert said[-1] == "cutover.stop: all steps done"
    assert states(env) == ("done", {"taiyuan": "done", "datong": "done"})


def test_a_run_narrowed_to_one_city_deals_only_with_that_citys_confirmation(env):
    refused = waits(env, "taiyuan")  # a1 for Taiyuan; a2 and a3 are the province's
    assert "waits for confirmation from 太原市 (taiyuan)" in refused.message
    assert "datong" not in refused.message + refused.hint
    assert states(env) == ("waiting", {"taiyuan": "waiting"})
    confirm(env, "taiyuan")
    said = run(env, "taiyuan")
    assert "  太原市 (taiyuan): confirmed by 王五" in said
    assert states(env) == ("partial", {"taiyuan": "done"})  # Datong has not confirmed: not done
    said = run(env, "taiyuan")
    assert any(line.endswith("a4: done earlier for 太原市 (taiyuan); skipped") for line in said)


def test_a_rehearsal_with_auto_confirm_confirms_each_city_as_rehearsal(env):
    run(env, auto_confirm=True)
    assert states(env) == ("done", {"taiyuan": "done", "datong": "done"})
    with Journal.open(env["journal"]) as journal:
        rows = journal.confirmed_sites("a4")
    assert {site: row["by"] for site, row in rows.items()} == {"taiyuan": "rehearsal", "datong": "rehearsal"}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["a4", "--by", "王五"], "step a4 is confirmed site by site (cities): name the site with --site\n"
                                 "  hint: still to confirm: taiyuan, datong"),
        (["a4", "--site", "taiyaun", "--by", "王五"], "--site 'taiyaun' is no site of inventory"),
        (["a4", "--site", "taiyaun", "--by", "王五"], "did you mean 'taiyuan'?"),
        (["a4", "--site", "province", "--by", "王五"],
         "step a4 is confirmed by each of the cities; 山西省 (province) is of level province"),
        (["a3", "--site", "taiyuan", "--by", "王五"],
         "step a3 is confirmed once, for the whole step: --site does not apply"),
    ],
)
def test_confirm_refuses_a_missing_unknown_or_wrong_site_and_records_nothing(env, args, said):
    proc = cli(env, *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert said in out
    assert "Traceback" not in out
    assert not env["journal"].exists()  # a refusal writes nothing, not even a new journal


def test_a_city_confirms_once_and_hostile_text_is_stored_as_given(env):
    note = "$(rm -rf /) <script>alert(1)</script> `id` '; DROP TABLE confirmations; --"
    by = "[red]王五[/red]"
    proc = cli(env, "a4", "--site", "taiyuan", "--by", by, "--note", note)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"by {by} recorded; still to confirm: datong" in " ".join(proc.stdout.split())  # text, not markup
    with Journal.open(env["journal"]) as journal:
        rows = journal.all("confirmations")
    assert [(row["step_id"], row["site"], row["by"], row["note"]) for row in rows] == [("a4", "taiyuan", by, note)]

    proc = cli(env, "a4", "--site", "taiyuan", "--by", "赵六")
    assert proc.returncode == 1
    assert f"step a4 is already confirmed for 太原市 (taiyuan) by {by} at {rows[0]['at']}" in proc.stderr
    assert "still to confirm: datong" in proc.stderr
    with Journal.open(env["journal"]) as journal:
        assert len(journal.all("confirmations")) == 1  # the second one changed nothing


def test_what_the_engine_says_is_printed_as_text_never_as_markup():
    from cutover.cli.cutover import say_text
    from cutover.ui import console

    with console.capture() as captured:
        say_text("  confirmed by [/red]王五 :smile: [bold]x: $(rm -rf /)")  # markup would raise here
    assert captured.get() == "  confirmed by [/red]王五 :smile: [bold]x: $(rm -rf /)\n"


V2_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE confirmations (
    id INTEGER PRIMARY KEY, step_id TEXT NOT NULL, by TEXT NOT NULL, note TEXT NOT NULL,
    at TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '2');
INSERT INTO confirmations (step_id, by, note, at) VALUES ('a3', '张三', '已完成', '2023-11-20T18:00:00+08:00');
"""


def test_a_v2_journal_is_migrated_in_place_its_confirmations_for_the_whole_step(tmp_path):
    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    db.executescript(V2_DDL)
    db.close()
    with Journal.open(path) as journal:
        assert journal.meta("schema") == "4"  # migrated on to the current schema
        assert journal.confirmation("a3")["by"] == "张三"
        assert journal.confirmation("a3")["site"] == ""
        assert journal.confirmed_sites("a3") == {}
        journal.add_confirmation("a4", "王五", "", "taiyuan")
    with Journal.open(path) as journal:  # opened again: nothing more to migrate
        assert journal.meta("schema") == "4"  # migrated on to the current schema
        assert list(journal.confirmed_sites("a4")) == ["taiyuan"]
        assert journal.confirmation("a4") is None  # a city's confirmation is not the whole step's


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (A4.replace("sites: cities", "sites: counties"),
         "step a4: sites: counties, but inventory tests/data/sites/inventory.yml has no site of that level"),
        (A4.replace("sites: cities", "sites: citys"), "sites: 'citys' is not one of"),
        (A4.replace("kind: manual", "kind: wait"), "only a manual step is confirmed site by site"),
    ],
)
def test_plan_check_refuses_sites_it_cannot_mean_at_its_line(tmp_path, step, message):
    path = tmp_path / "plan.yml"
    path.write_text(plan_text(step))
    _, problems = load_plan(path)
    found = [problem for problem in problems if message in problem.message]
    assert found, problems
    line = path.read_text().splitlines().index("        " + step.splitlines()[4].strip()) + 1
    assert (found[0].file, found[0].line, found[0].severity) == (str(path), line, "error")


def test_a_wrong_site_through_the_api_is_refused_too(env):
    with pytest.raises(CutoverError, match="is of level province"):
        confirm(env, "province")


def test_cities_still_to_confirm_hold_up_only_what_needs_their_confirmation(env):
    """The cities confirm over hours: what does not need the step (here the freeze, a2) goes
    on; what does (a5) is left for later, said so; the run ends waiting (exit 3)."""
    env["plan"].write_text(PLAN.read_text().replace(
        "      - id: a2\n",
        "      - id: a4\n        title: 各市跟踪检查柜面业务办理情况\n        kind: manual\n"
        "        sites: cities\n        after: [a1]\n"
        "      - id: a5\n        title: 汇总各市跟踪情况\n        kind: manual\n        after: [a4]\n"
        "      - id: a2\n"))
    decisions.confirm(opts(env, say=lambda *_: None), "a3", "张三", "")
    decisions.confirm(opts(env, say=lambda *_: None), "a5", "李四", "")
    said: list[str] = []
    with pytest.raises(StepFailed) as caught:
        Executor("stop", opts(env, say=said.append)).run()
    assert caught.value.code == EXIT_WAITING
    assert "step a4 (各市跟踪检查柜面业务办理情况) waits for confirmation from" in caught.value.message
    marked = (env["tmp"] / "marker").read_text().splitlines()
    assert sorted(marked) == ["a1 dt-counter", "a1 ty-counter", "a2 prov-db"]  # the freeze went on
    assert any(line.startswith("[3/5] a5: left for later: a4 is not done for") for line in said), said
    with Journal.open(env["journal"]) as journal:
        st = {row["id"]: row["state"] for row in journal.steps()}
    assert [st[step] for step in ("a2", "a3", "a4", "a5")] == ["done", "done", "waiting", "pending"]
