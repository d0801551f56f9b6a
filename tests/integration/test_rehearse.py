"""`invoke lab.rehearse`, the README's main job, on the lab the session brought up: the
whole shipped plan on the rehearsal clock (stop, deploy, restore, followup), then the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from cutover.lab import artifacts
from cutover.plan.lint import check as lint_check
from tests.integration.test_report_in_chromium import parse
from tests.unit.test_serve import cells, rows_of

from .conftest import CITIES, SCALE, host, shape, status_json
from .devtools import Page

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "plans" / "shanxi-2023-11.yml"
DEPARTMENT = "省工伤保险中心数据科"  # owns the data phases (N5-N7), cooperates elsewhere


@pytest.fixture(scope="module")
def rehearsal(lab, tmp_path_factory):
    out = tmp_path_factory.mktemp("rehearsal")
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "lab.rehearse",
         "--cities", str(CITIES), "--scale", str(SCALE), "--no-fresh"],
        cwd=ROOT, env={**os.environ, "INVOKE_CUTOVER_ARTIFACTS": str(out)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(proc.stdout or ()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 1800
    try:
        # the page is watched on the side: if Chromium or the page fails, the rehearsal's own
        # tests still run and only the page's test fails, with the reason
        try:
            page = watch_the_status_page(proc, out, tmp_path_factory.mktemp("page"), deadline)
        except Exception as exc:  # kept whole for the page's own test
            page = {"error": "".join(traceback.format_exception(exc))[-4000:]}
        with contextlib.suppress(subprocess.TimeoutExpired):  # killed below; its output is shown
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:  # the rehearsal and every ansible process it started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        reader.join(30)
    output = "".join(said)
    print(output[-6000:])
    assert proc.returncode == 0, output[-6000:]
    run_dir = (out / "rehearsals" / "latest").resolve()
    return {"out": output, "dir": run_dir, "db": sqlite3.connect(run_dir / "journal.sqlite"), "page": page}


def states(matrix: dict) -> dict[tuple[str, str], str]:
    """{(site, phase): state} of the page's matrix (a cell's first class is its state)."""
    return {(site, phase): (css.split() or ["none"])[0] for site, row in matrix.items()
            for phase, (css, _) in row.items()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def watch_the_status_page(rehearsal: subprocess.Popen, out: Path, tmp: Path, deadline: float) -> dict:
    """#16 item 4 (N15, N16): `invoke cutover.serve` over the rehearsal's journal from the
    moment it exists, and ONE Chromium page open on it for the whole window: what the page
    shows is read every few seconds (never reloaded), screenshots mid-window and at the end,
    then the view of one department. Gives up at `deadline` (the rehearsal's own)."""
    while not (found := sorted(out.glob("rehearsals/*/journal.sqlite"))):
        assert rehearsal.poll() is None, "the rehearsal ended before it made a journal"
        assert time.monotonic() < deadline, "the rehearsal made no journal before the deadline"
        time.sleep(1)
    port = _free_port()
    log = tmp / "serve.log"
    with open(log, "wb") as said:
        serve = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "cutover.serve",
                                  "--journal", str(found[0]), "--port", str(port)], cwd=ROOT,
                                 stdout=said, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    seen: list[dict] = []
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=5):
                    break
            except OSError:
                assert serve.poll() is None, f"cutover.serve ended: {log.read_text()[-2000:]}"
                time.sleep(0.5)
        else:
            raise AssertionError(f"cutover.serve did not answer within a minute: {log.read_text()[-2000:]}")
        with Page(shutil.which("chromium") or "/usr/bin/chromium", tmp / "profile", f"{url}/") as page:
            shot = None
            while rehearsal.poll() is None:
                assert time.monotonic() < deadline, "the rehearsal outlived the page's deadline"
                time.sleep(8)
                raw = page.html()
                seen.append({"cells": cells(raw), "polls": int(page.evaluate(
                    "Number(document.documentElement.dataset.polls || 0)") or 0)})
                states = {css.split()[0] for row in seen[-1]["cells"].values() for css, _ in row.values() if css}
                if shot is None and "done" in states and states - {"done", "none", ""}:
                    shot = page.screenshot(tmp / "serve-mid-window.png")
            time.sleep(7)  # two of the page's polls after the last step
            raw = page.html()
            final = page.screenshot(tmp / "serve-page.png")
            page.call("Page.navigate", url=f"{url}/department/{quote(DEPARTMENT)}")
            time.sleep(7)
            department = page.html()
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(10)
    return {"seen": seen, "final": raw, "final_png": final, "mid_png": shot, "department": department,
            "shots": tmp}


def test_every_step_is_done_and_the_report_location_is_printed(rehearsal):
    states = dict(rehearsal["db"].execute("SELECT id, state FROM steps"))
    assert states
    assert set(states.values()) == {"done"}, {k: v for k, v in states.items() if v != "done"}
    assert f"report (html): {rehearsal['dir'] / 'report.html'}" in rehearsal["out"]
    runs = rehearsal["db"].execute("SELECT verb, status FROM runs ORDER BY id").fetchall()
    assert runs == [("stop", "done"), ("deploy", "done"), ("restore", "done"), ("followup", "done")]


def test_restore_stages_start_in_the_notices_order(rehearsal):
    rows = rehearsal["db"].execute(
        "SELECT id FROM steps WHERE verb='restore' AND id LIKE 'n%-restore-%' ORDER BY actual_start, rowid")
    assert [r[0] for r in rows] == ["n9-restore-core", "n10-restore-interfaces", "n11-restore-counters",
                                    "n12-restore-online", "n13-restore-jobs"]


def test_every_component_runs_the_new_release_by_every_probe(rehearsal):
    evidence = rehearsal["db"].execute(
        "SELECT data FROM evidence WHERE step_id='n12-verify-versions' AND kind='facts'").fetchone()
    rows = json.loads(evidence[0])["versions"]
    assert rows
    assert all(r["ok"] and r["found"] == artifacts.NEW for r in rows)
    assert {r["probe"].split()[0] for r in rows} == {"file", "http"}


def test_a_timer_off_before_the_window_is_still_off_and_the_others_are_back(rehearsal):
    t = host("jobs1")
    assert not t.service("si-job-legacy-export.timer").is_enabled
    assert t.service("si-job-stats-report.timer").is_enabled
    assert t.service("si-job-cert-pause-restore.timer").is_running
    cron = t.file("/etc/cron.d/si-job-card-extract").content_string
    assert any(line.startswith("15 4 * * *") for line in cron.splitlines())


def test_channels_work_again_without_the_notice(rehearsal):
    body = json.dumps({"line": "gs"}).encode()
    req = urllib.request.Request("http://127.0.0.1:28080/online/collection", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10)
        code = 200
    except urllib.error.HTTPError as exc:
        code = exc.code
    assert code == 400  # reaches the core service (incomplete request), no 503 notice


def test_notifications_reached_the_labs_receiver_and_are_recorded(rehearsal):
    with urllib.request.urlopen("http://127.0.0.1:28090/messages", timeout=5) as resp:
        titles = [m.get("title", "") for m in json.loads(resp.read())["messages"]]
    assert any("开始: n4-full-stop" in t for t in titles)
    assert any("完成: n13-jobs" in t for t in titles)
    recorded = rehearsal["db"].execute("SELECT count(*), min(ok) FROM notifications").fetchone()
    assert recorded[0] >= 2 * 15  # start and end of every phase
    assert recorded[1] == 1


def test_the_report_shows_owners_times_and_chinese_titles(rehearsal):
    html = (rehearsal["dir"] / "report.html").read_text()
    md = (rehearsal["dir"] / "report.md").read_text()
    data = json.loads((rehearsal["dir"] / "report.json").read_text())
    for text in ("运行记录", "省工伤保险中心系统科", "恢复各险种业务系统", "<svg"):
        assert text in html
    assert "| `n9-restore-core` 恢复核心业务系统，检查服务和数据库运行 (N9)" in md
    assert {s["state"] for s in data["steps"]} == {"done"}


def test_the_journal_and_report_hold_the_data_phases_manifests_and_reconciliation(rehearsal):
    rows = rehearsal["db"].execute("SELECT step_id, data FROM evidence WHERE kind='facts'"
                                   " AND step_id IN ('prep-data-screening', 'n5-snapshot', 'n5-export',"
                                   " 'n7-reconcile-receipt')")
    facts = {step: json.loads(data) for step, data in rows}
    assert {m["line"] for m in facts["n5-export"]["export"]} == {"qyyl", "jgyl", "zynj", "gs", "sy"}
    assert set(facts["n5-snapshot"]["snapshot"]["db1"]["databases"]) >= {"si_qyyl", "si_cjyl"}
    assert facts["n7-reconcile-receipt"]["reconciliation"]["passed"] is True
    md = (rehearsal["dir"] / "report.md").read_text()
    assert "### 导出 / export (N5) — not exported: cjyl" in md
    assert "every table matches" in md
    assert "| qyyl | contribution |" in md
    assert "row(s) fail `id-no-18-digits`" in md
    # what the screening counted before the window is what the export held back inside it
    screened = {m["line"]: m["held_back"] for m in facts["prep-data-screening"]["screening"]}
    held = {m["line"]: sum(sum(r.values()) for r in m["rejected"].values()) for m in facts["n5-export"]["export"]}
    assert screened == held
    assert all(n > 0 for n in held.values())
    assert "### 筛选 / screening (N5, before the window)" in md
    assert "person: `id-no-18-digits` " in md


def test_next_day_check_compares_each_jobs_volume_with_its_baseline(rehearsal):
    data = rehearsal["db"].execute(
        "SELECT data FROM evidence WHERE step_id='n13-check-job-volumes' AND kind='gate'").fetchone()
    gate = json.loads(data[0])
    assert gate["passed"] is True
    jobs = {j["job"]: j for j in gate["jobs"]}
    # exactly the jobs on when this window stopped (its baseline): not legacy-export, off before it
    assert set(jobs) == {"stats-report", "cert-pause-restore", "card-extract"}
    assert gate["findings"] == []
    # a baseline of 0 rows would be a finding (N13): each job had rows to compare with
    assert all(j["ran_after_restore"] and j["rows"] == j["baseline_rows"] > 0 for j in jobs.values())


def test_no_vault_secret_appears_in_the_journal_report_or_any_artifact(rehearsal):
    import yaml

    vault = yaml.safe_load((ROOT / "inventories" / "lab" / "group_vars" / "all" / "vault.yml").read_text())
    secrets = [str(v) for v in vault.values()]
    assert secrets
    rehearsal["db"].commit()
    leaks = []
    for path in rehearsal["dir"].rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaks += [f"{path}: {s[:4]}…" for s in secrets if s.encode() in data]
    assert leaks == []


def test_the_html_report_reads_right_in_headless_chromium(rehearsal, tmp_path):
    """What a reader sees: Chromium renders the page (screenshot), and the text is there."""
    html = rehearsal["dir"] / "report.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1400,1800",
                    html.as_uri()], check=True, capture_output=True, timeout=120)
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG")
    assert len(png) > 20_000  # a rendered page of text and tables, not a blank one
    dom = subprocess.run(["chromium", *flags, "--dump-dom", html.as_uri()], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    for text in ("运行记录", "恢复各险种业务系统", "省工伤保险中心系统科", "n13-restore-jobs",
                 "核对 / reconciliation (N7)", "every table matches"):
        assert text in dom
    (rehearsal["dir"] / "report.png").write_bytes(png)  # kept beside the report for a look


def test_the_clean_window_leaves_every_step_done_once_and_the_data_as_the_snapshot(rehearsal, lab_vars,
                                                                                   clean_outcome):
    from .outcome import journal_outcome, lab_outcome

    journal = journal_outcome(rehearsal["dir"] / "journal.sqlite")
    assert {s: n for s, n in journal["times_done"].items() if n != 1} == {}
    lab = lab_outcome(journal["snapshot"], lab_vars)
    assert lab["healthy"]
    assert lab["rows_since_snapshot"]
    assert {k: v for k, v in lab["rows_since_snapshot"].items() if v} == {}
    clean_outcome.update(lab)  # the crash sweep compares its outcome with this one


def test_the_status_page_followed_the_window_in_one_open_page_and_shows_a_departments_steps(rehearsal):
    """#16: what the rest of the province watches. One page, never reloaded, polled on and on;
    its matrix moved from work to be done to every phase done; the screenshots are kept beside
    the report; a department's view lists only the steps it owns or cooperates on."""
    page = rehearsal["page"]
    assert "error" not in page, page.get("error")
    seen = page["seen"]
    assert len(seen) >= 10
    polls = [s["polls"] for s in seen]
    assert polls == sorted(polls)
    assert polls[-1] > polls[0] + 10
    first = states(seen[0]["cells"])
    assert "province" in seen[0]["cells"]
    assert any(state != "done" for state in first.values())
    final = states(cells(page["final"]))
    assert set(final.values()) <= {"done", "none"}
    assert any(first[key] != "done" and final[key] == "done" for key in first)
    # the open page itself saw cells change (it keeps what each was; a reload would forget)
    assert any(attrs.get("data-was") for tag, attrs in parse(page["final"]).tags if tag == "td")
    assert page["final_png"].startswith(b"\x89PNG")
    assert len(page["final_png"]) > 20_000
    assert page["mid_png"] is not None
    assert page["mid_png"].startswith(b"\x89PNG")
    (rehearsal["dir"] / "serve-page.png").write_bytes(page["final_png"])  # kept for a look
    (rehearsal["dir"] / "serve-mid-window.png").write_bytes(page["mid_png"])
    plan, _ = lint_check(str(PLAN))
    theirs = {step.id for phase in plan.phases for step in phase.steps
              if DEPARTMENT in (step.owner, *step.cooperating)}
    shown = set(rows_of(page["department"]))
    assert shown <= theirs, shown - theirs
    assert {"n5-snapshot", "n5-export"} <= shown


def test_a_second_process_reads_a_sqlite_journal_as_it_read_the_shared_one(rehearsal, shared_status):
    """#16 (N15, N16): `cutover.status --json` of this rehearsal's SQLite journal, from another
    process, is made as the stop side's on the ops host's PostgreSQL was (test_stop_side, run
    before): the same top-level keys, the same keys in each list's items (conftest.shape), the
    same steps in the same order."""
    assert shared_status, ("test_stop_side's status of the shared journal is missing: test_stop_side was not "
                           "selected in this session, or failed before its status test (see its result)")
    local = status_json(rehearsal["dir"] / "journal.sqlite")
    assert {step["state"] for step in local["steps"]} == {"done"}
    assert set(local) == set(shared_status)
    for key in local:
        if local[key] and shared_status[key]:  # a list empty in one window says nothing of its items
            assert shape(local[key]) == shape(shared_status[key]), key
    assert [(s["id"], s["phase"], s["verb"]) for s in local["steps"]] == [
        (s["id"], s["phase"], s["verb"]) for s in shared_status["steps"]]
