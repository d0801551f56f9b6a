"""Status and report by site (N17: the province, its cities and counties carry out the window
together): the site × phase matrix, from the journal's state per step and site.

Runs are driven as in test_site_state.py: the inventory of tests/data/sites (a province and
two cities, every host on this machine), its plan with a follow-up phase that works at the
province only, so the cities have no work in it (—)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from markupsafe import escape

from cutover.engine import decisions
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.run import EXIT_WAITING, StepFailed
from cutover.engine.session import RunOptions
from cutover.engine.status import collect, for_site
from cutover.errors import CutoverError
from cutover.plan.lint import check
from cutover.report import render

ROOT = Path(__file__).resolve().parents[2]
SITES = ROOT / "tests" / "data" / "sites"
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
FOLLOW = """  - id: p-follow
    title: 次日
    verb: followup
    not_before: "2023-12-02 08:00"
    due_by: "2023-12-02 18:00"
    owner: 系统科
    steps:
      - id: f1
        title: province check
        playbook: tests/data/sites/site-mark.yml
        tags: [db]
        after: [r2]
"""
HOSTILE_SITE = "<script>alert('site')</script><img src=x onerror=alert(2)>\"'& a|b [red]x[/red]"
HOSTILE_TITLE = "<script>alert('step')</script>\"onerror=alert(3) [bold]y[/bold]"


def write_plan(tmp: Path, *, gate: bool = False, datong_name: str | None = None,
               a1_title: str | None = None) -> Path:
    """The sites plan with a follow-up phase; optionally a1 as a gate, Datong renamed, a1 retitled."""
    doc = yaml.safe_load((SITES / "plan.yml").read_text(encoding="utf-8"))
    doc["phases"].append(yaml.safe_load(FOLLOW)[0])
    a1 = doc["phases"][0]["steps"][0]
    if gate:
        a1.update(kind="gate", playbook="tests/data/sites/site-gate.yml")
    if a1_title is not None:
        a1["title"] = a1_title
    if datong_name is not None:
        inventory = yaml.safe_load((SITES / "inventory.yml").read_text(encoding="utf-8"))
        inventory["all"]["vars"]["cutover_sites"]["datong"]["name"] = datong_name
        (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory, allow_unicode=True), encoding="utf-8")
        doc["plan"]["inventory"] = str(tmp / "inventory.yml")
    path = tmp / "plan.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run(plan: Path, journal: Path, verb: str, limit: str | None = None, *, marker: Path,
        auto_confirm: bool = True) -> int:
    opts = RunOptions(plan=str(plan), journal=str(journal), artifacts=str(journal.parent / "art"),
                      rehearsal=True, auto_confirm=auto_confirm, notify_urls=[], limit=limit,
                      say=lambda *_: None)
    with mock.patch.dict(os.environ, {"CUTOVER_TEST_MARKER": str(marker)}):
        return Executor(verb, opts).run()


@pytest.fixture
def env(tmp_path):
    return {"tmp": tmp_path, "journal": tmp_path / "j.sqlite", "marker": tmp_path / "marker",
            "plan": write_plan(tmp_path)}


def matrix(env) -> dict:
    plan, _ = check(str(env["plan"]))
    with Journal.open(env["journal"]) as journal:
        return collect(plan, journal, SITES / "inventory.yml")["sites_matrix"]


def states(found: dict) -> dict[str, dict[str, str | None]]:
    return {row["site"]: {phase: cell and cell["state"] for phase, cell in row["cells"].items()}
            for row in found["rows"]}


def test_a_city_done_under_limit_is_done_there_pending_elsewhere_and_dash_where_the_phase_has_no_work(env):
    assert run(env["plan"], env["journal"], "stop", "taiyuan", marker=env["marker"]) == 0
    found = matrix(env)
    assert [(row["site"], row["name"], row["level"]) for row in found["rows"]] == [
        ("province", "山西省", "province"), ("taiyuan", "太原市", "cities"), ("datong", "大同市", "cities")]
    assert [phase["id"] for phase in found["phases"]] == ["p-stop", "p-restore", "p-follow"]
    assert states(found) == {
        "province": {"p-stop": "pending", "p-restore": "pending", "p-follow": "pending"},
        "taiyuan": {"p-stop": "done", "p-restore": "pending", "p-follow": None},
        "datong": {"p-stop": "pending", "p-restore": "pending", "p-follow": None}}
    taiyuan = found["rows"][1]
    cell = taiyuan["cells"]["p-stop"]
    assert cell["steps"] == {"a1": "done"}
    assert cell["planned"] == {"start": "2023-11-20T18:00:00+08:00", "end": "2023-11-23T18:00:00+08:00"}
    assert cell["actual"]["start"] is not None
    assert cell["actual"]["start"] <= cell["actual"]["end"]
    assert taiyuan["actual"] == cell["actual"]
    assert taiyuan["planned"] == {"start": "2023-11-20T18:00:00+08:00", "end": "2023-12-02T00:00:00+08:00"}
    assert found["rows"][2]["actual"] == {"start": None, "end": None}

    # the rest without a confirmation: the province waits for it, Datong is done
    with pytest.raises(StepFailed) as caught:
        run(env["plan"], env["journal"], "stop", marker=env["marker"], auto_confirm=False)
    assert caught.value.code == EXIT_WAITING
    assert {site: cells["p-stop"] for site, cells in states(matrix(env)).items()} == {
        "province": "waiting", "taiyuan": "done", "datong": "done"}
    run(env["plan"], env["journal"], "stop", marker=env["marker"])
    assert {site: cells["p-stop"] for site, cells in states(matrix(env)).items()} == {
        "province": "done", "taiyuan": "done", "datong": "done"}


def test_a_site_that_failed_is_failed_and_the_others_keep_their_state(env):
    run(env["plan"], env["journal"], "stop", "taiyuan", marker=env["marker"])
    with pytest.raises(StepFailed):
        run(env["plan"], env["journal"], "stop", "datong", marker=Path("/nonexistent/dir/marker"))
    assert {site: cells["p-stop"] for site, cells in states(matrix(env)).items()} == {
        "province": "pending", "taiyuan": "done", "datong": "failed"}


def test_a_gate_passed_by_override_is_overridden_at_that_site(env, tmp_path):
    env["plan"] = write_plan(tmp_path, gate=True)
    fail = tmp_path / "fail"
    fail.touch()
    with mock.patch.dict(os.environ, {"CUTOVER_TEST_GATE_FAIL": str(fail)}):
        with pytest.raises(StepFailed):
            run(env["plan"], env["journal"], "stop", "taiyuan", marker=env["marker"])
        assert states(matrix(env))["taiyuan"]["p-stop"] == "failed"
        decisions.override(RunOptions(plan=str(env["plan"]), journal=str(env["journal"]),
                                      artifacts=str(tmp_path / "art"), say=lambda *_: None),
                           "a1", "王处长", "已线下审核")
        run(env["plan"], env["journal"], "stop", "taiyuan", marker=env["marker"])
    found = matrix(env)
    assert states(found)["taiyuan"]["p-stop"] == "overridden"
    assert found["rows"][1]["cells"]["p-stop"]["steps"] == {"a1": "overridden"}
    assert states(found)["datong"]["p-stop"] == "pending"


def test_a_step_done_before_sites_were_recorded_is_done_at_every_site_it_touches(env):
    run(env["plan"], env["journal"], "stop", marker=env["marker"])
    db = sqlite3.connect(env["journal"])
    db.execute("DELETE FROM step_sites WHERE step_id='a1'")
    db.commit()
    db.close()
    found = matrix(env)
    assert {site: cells["p-stop"] for site, cells in states(found).items()} == {
        "province": "done", "taiyuan": "done", "datong": "done"}
    assert found["rows"][1]["cells"]["p-stop"]["actual"]["start"]  # the step's own times


def test_an_inventory_without_sites_has_no_matrix():
    plan, _ = check(str(ROOT / "tests" / "data" / "plans" / "mini.yml"))
    collected = collect(plan, None, ROOT / "tests" / "data" / "inventory.yml")
    assert collected["sites_matrix"] is None
    assert len(collected["steps"]) == len(plan.steps())
    with pytest.raises(CutoverError, match="no sites to narrow to") as caught:
        for_site(collected, "taiyuan")
    assert caught.value.hint == "leave --site out; the status shows every step"


# ------------------------------------------------------------ the CLI and the report


def build_site_report(tmp: Path, datong_name: str = HOSTILE_SITE, a1_title: str = HOSTILE_TITLE) -> dict:
    """Taiyuan stopped, Datong failed, the province not yet: a real journal of the sites plan
    (Datong's name and a1's title given), and the project's own report of it. The Chromium
    test uses it too."""
    tmp.mkdir(parents=True, exist_ok=True)
    plan = write_plan(tmp, datong_name=datong_name, a1_title=a1_title)
    journal = tmp / "j.sqlite"
    run(plan, journal, "stop", "taiyuan", marker=tmp / "marker")
    with pytest.raises(StepFailed):
        run(plan, journal, "stop", "datong", marker=Path("/nonexistent/dir/marker"))
    the_plan, _ = check(str(plan))
    return {"plan": plan, "journal": journal, "paths": render.build(the_plan, journal, tmp / "report")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_site_report(tmp_path_factory.mktemp("site-report"))


def status(built, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*INV, "cutover.status", "--plan", str(built["plan"]), "--journal",
                           str(built["journal"]), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=180, check=False, env={**os.environ, "COLUMNS": "250"})


def test_status_json_has_the_matrix_and_site_narrows_it_and_the_steps(built):
    proc = status(built, "--json", "--site", "taiyuan")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["site"] == "taiyuan"
    rows = data["sites_matrix"]["rows"]
    assert [row["site"] for row in rows] == ["taiyuan"]
    assert {phase: cell and cell["state"] for phase, cell in rows[0]["cells"].items()} == {
        "p-stop": "done", "p-restore": "pending", "p-follow": None}
    assert [(step["id"], step["state"], step["state_at_site"]) for step in data["steps"]] == [
        ("a1", "failed", "done"), ("r2", "pending", "pending")]

    whole = json.loads(status(built, "--json").stdout)
    assert [row["site"] for row in whole["sites_matrix"]["rows"]] == ["province", "taiyuan", "datong"]
    assert whole["sites_matrix"]["rows"][2]["name"] == HOSTILE_SITE  # the JSON keeps it exactly
    assert whole["sites_matrix"]["rows"][2]["cells"]["p-stop"]["state"] == "failed"
    assert len(whole["steps"]) == 6


def test_status_prints_the_matrix_province_first_with_names_as_text(built):
    proc = status(built)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "by site (N17)" in out
    assert out.index("山西省 (province)") < out.index("太原市 (taiyuan)") < out.index(f"{HOSTILE_SITE} (datong)")
    assert "[red]x[/red]" in out  # shown as typed, not taken as markup
    assert "[bold]y[/bold]" in out
    row = next(line for line in out.splitlines() if "太原市 (taiyuan)" in line)
    assert re.search(r"│ done +│ pending +│ — +│", row), row

    narrowed = status(built, "--site", "datong").stdout
    assert "(datong)" in narrowed
    assert "太原市 (taiyuan)" not in narrowed
    assert "r1" not in narrowed  # the province's steps are not Datong's


def test_status_refuses_an_unknown_site_naming_the_nearest(built):
    proc = status(built, "--site", "taiyun")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "--site 'taiyun' is not a site of the inventory (its sites: province, taiyuan, datong)" in out
    assert "did you mean 'taiyuan'?" in out
    assert "Traceback" not in out


def test_the_report_has_the_matrix_in_every_format_and_escapes_names_in_html(built):
    paths = built["paths"]
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [row["site"] for row in data["sites_matrix"]["rows"]] == ["province", "taiyuan", "datong"]

    md = paths["md"].read_text(encoding="utf-8")
    assert "## 各地 / by site (N17)" in md
    assert re.search(r"^\| 山西省 \(`province`\) \| province \| pending \| pending \| pending \| "
                     r"11-20 18:00 → 12-02 18:00 \| — \|$", md, re.MULTILINE), md
    assert re.search(r"^\| 太原市 \(`taiyuan`\) \| cities \| done \d\d-\d\d \d\d:\d\d → \d\d-\d\d \d\d:\d\d "
                     r"\| pending \| — \|", md, re.MULTILINE)
    datong = next(line for line in md.splitlines() if "(`datong`)" in line)
    assert HOSTILE_SITE.replace("|", "\\|") in datong  # the row stays whole
    assert "| **failed** " in datong

    html = paths["html"].read_text(encoding="utf-8")
    assert '<table id="sites-matrix" class="matrix">' in html
    assert str(escape(HOSTILE_SITE)) in html
    assert str(escape(HOSTILE_TITLE)) in html
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert '<td data-phase="p-stop" class="failed">failed' in html
    assert '<td data-phase="p-follow" class="none">—</td>' in html
