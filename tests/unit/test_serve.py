"""`invoke cutover.serve`, the live status page (issue #16, item 4; N15, N16, N17), with real
parts: a journal the Executor wrote running the sites plan on local hosts (a gate failed at
Taiyuan and overridden, the province's confirmation still waiting), served by uvicorn on a free
loopback port and loaded in headless Chromium (--dump-dom after the page's script has polled,
--screenshot). A hostile step title, plan title and override reason show as text and run nothing;
a department sees only its steps; a matrix cell changes while the page stays open; a bind beyond
this machine needs a token, which every request then carries; only GET is answered."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import anyio
import pytest
import uvicorn
import yaml

from cutover.engine import decisions
from cutover.engine.executor import Executor
from cutover.engine.forecast import forecast
from cutover.engine.run import StepFailed
from cutover.engine.session import RunOptions, Session
from cutover.serve import access
from cutover.serve.app import StatusSource, create_app
from tests.integration.test_report_in_chromium import FLAGS, _Matrix, acting, marks, parse
from tests.pgcluster import throwaway_postgres
from tests.unit.test_site_matrix import INV, ROOT, run, write_plan

RESTORERS = "信息中心"  # owns the restore phase here
HELPERS = "经办处"  # cooperates in the stop phase
TEMPLATE = " {{7*7}}"  # a template in a title stays text: nothing renders it twice


def opts(plan: Path, journal: Path) -> RunOptions:
    return RunOptions(plan=str(plan), journal=str(journal), artifacts=str(journal.parent / "art"),
                      say=lambda *_: None)


def build_journal(tmp: Path) -> dict:
    """The sites plan with hostile titles and departments of its own; Taiyuan's gate failed and
    was overridden (hostile reason), Datong stopped, the province waits for a3's confirmation."""
    plan = write_plan(tmp, gate=True, a1_title=acting("step title") + TEMPLATE)
    doc = yaml.safe_load(plan.read_text(encoding="utf-8"))
    doc["plan"]["title"] = "山西省停机升级 " + acting("plan title") + TEMPLATE
    doc["phases"][0]["cooperating"] = [HELPERS]
    doc["phases"][1]["owner"] = RESTORERS
    plan.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    journal, marker, fail = tmp / "j.sqlite", tmp / "marker", tmp / "fail"
    fail.touch()
    with mock.patch.dict(os.environ, {"CUTOVER_TEST_GATE_FAIL": str(fail)}):
        with pytest.raises(StepFailed):
            run(plan, journal, "stop", "taiyuan", marker=marker)
        decisions.override(opts(plan, journal), "a1", "王处长", acting("override reason"))
        run(plan, journal, "stop", "taiyuan", marker=marker)
    with pytest.raises(StepFailed):  # a3 waits for its confirmation
        run(plan, journal, "stop", marker=marker, auto_confirm=False)
    return {"plan": plan, "journal": journal, "marker": marker}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_journal(tmp_path_factory.mktemp("serve"))


def source_for(plan: Path, journal: Path, fresh_for: float = 1.0) -> StatusSource:
    session = Session(opts(plan, journal))
    return StatusSource.of(session, journal.parent / "no-rehearsal", fresh_for=fresh_for)


@contextlib.contextmanager
def serving(app):
    """uvicorn in a thread on a free loopback port; yields the base URL."""
    sock = access.listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def site(built):
    with serving(create_app(source_for(built["plan"], built["journal"]), None)) as url:
        yield url


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("chromium is not installed: apt-get install -y chromium fonts-wqy-zenhei", pytrace=False)
    return path


def browse(chromium: str, url: str, profile: Path, budget_ms: int = 6000, *extra: str) -> str:
    """The DOM after the page's script has run for `budget_ms` of virtual time (it polls every 3 s)."""
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                           *extra, "--dump-dom", url], check=True, capture_output=True, text=True,
                          timeout=120).stdout


def cells(raw: str) -> dict[str, dict[str, tuple[str, str]]]:
    matrix = _Matrix()
    matrix.feed(raw)
    matrix.close()
    return {site: {phase: (css, text.split("\n")[0]) for phase, (css, text) in row.items()}
            for site, row in matrix.cells.items()}


def rows_of(raw: str, tag: str = "tr") -> list[str]:
    return [attrs["data-step"] for name, attrs in parse(raw).tags if name == tag and attrs.get("data-step")]


def test_the_page_shows_the_matrix_province_first_chinese_text_and_hostile_text_only_as_text(
        site, chromium, tmp_path):
    raw = browse(chromium, f"{site}/", tmp_path / "profile")
    dom = parse(raw)
    assert marks(dom) == []  # no injected script or handler ran
    assert not [tag for tag, _ in dom.tags if tag in {"img", "textarea"}]
    assert [attrs.get("src") for tag, attrs in dom.tags if tag == "script"] == ["/app.js"]
    found = cells(raw)
    assert list(found) == ["province", "taiyuan", "datong"]  # the province first (N17)
    assert {site: {phase: css for phase, (css, _) in row.items()} for site, row in found.items()} == {
        "province": {"p-stop": "waiting", "p-restore": "pending", "p-follow": "pending"},
        "taiyuan": {"p-stop": "overridden", "p-restore": "pending", "p-follow": "none"},
        "datong": {"p-stop": "done", "p-restore": "pending", "p-follow": "none"}}
    text = "".join(dom.text)
    for chinese in ("实时状态", "山西省", "太原市", "大同市", "恢复", "王处长", RESTORERS, HELPERS):
        assert chinese in text, chinese
    for field in ("step title", "plan title"):
        assert acting(field) + TEMPLATE in text, field  # shown exactly as typed
    assert acting("override reason") in text
    assert int(dom.tags[0][1]["data-polls"]) >= 1  # the script filled it in

    desktop, phone = tmp_path / "serve-page.png", tmp_path / "serve-page-phone.png"
    for shot, size in ((desktop, "1280,1400"), (phone, "412,1600")):
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'shots'}", "--virtual-time-budget=4000",
                        f"--window-size={size}", f"--screenshot={shot}", f"{site}/"],
                       check=True, capture_output=True, timeout=120)
        assert shot.stat().st_size > 20_000
    print(f"screenshots: {desktop} {phone}")


def test_a_department_sees_only_its_steps_and_what_waits_for_it_to_confirm(site, chromium, tmp_path):
    raw = browse(chromium, f"{site}/department/{quote(RESTORERS)}", tmp_path / "p1")
    assert marks(parse(raw)) == []
    assert rows_of(raw) == ["r1", "r2"]  # the steps table
    assert rows_of(raw, "div") == ["r1", "r2"]  # the timeline
    assert 'id="sites-matrix"' not in raw
    assert "nothing waits for a confirmation" in raw

    owners = browse(chromium, f"{site}/department/{quote('系统科')}", tmp_path / "p2")
    assert rows_of(owners) == ["a1", "a2", "a3", "f1"]
    waiting = owners[owners.index('id="waiting"'):]
    assert "<code>a3</code> confirm" in waiting.split("</ul>")[0]

    helpers = parse(browse(chromium, f"{site}/department/{quote(HELPERS)}", tmp_path / "p3"))
    assert [attrs["data-step"] for tag, attrs in helpers.tags if tag == "tr" and "data-step" in attrs] == [
        "a1", "a2", "a3"]
    assert "配合部门 / cooperating" in "".join(helpers.text)
    assert acting("step title") in "".join(helpers.text)

    unknown = http.client.HTTPConnection("127.0.0.1", int(site.rsplit(":", 1)[1]), timeout=30)
    unknown.request("GET", f"/department/{quote('信息中')}")
    answer = unknown.getresponse()
    assert answer.status == 404
    assert "did you mean '信息中心'?" in answer.read().decode()


def test_a_matrix_cell_changes_while_the_page_stays_open(built, chromium, tmp_path):
    """Between the page's first and second poll a3 is confirmed and the stop goes on (as an
    operator would at a terminal): the province's stop cell turns done without a reload; the
    cell keeps what it was before (data-was), which only the open page knows."""
    journal = tmp_path / "j.sqlite"
    with sqlite3.connect(built["journal"]) as old, sqlite3.connect(journal) as new:
        old.backup(new)
    plan = built["plan"]

    def confirm_and_go_on() -> None:
        decisions.confirm(opts(plan, journal), "a3", "李科长", "各市已确认")
        run(plan, journal, "stop", marker=built["marker"], auto_confirm=False)

    polls: list[str] = []
    inner = create_app(source_for(plan, journal, fresh_for=0), None)

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/api/status":
            polls.append(scope["path"])
            if len(polls) == 2:
                await anyio.to_thread.run_sync(confirm_and_go_on)
        await inner(scope, receive, send)

    with serving(app) as url:
        raw = browse(chromium, f"{url}/", tmp_path / "profile", 10000)
    assert len(polls) >= 3
    dom = parse(raw)
    assert int(dom.tags[0][1]["data-polls"]) >= 3  # one page, polled again and again
    province = next(attrs for tag, attrs in dom.tags
                    if tag == "td" and attrs.get("data-phase") == "p-stop" and "data-was" in attrs)
    assert province["class"] == "done"
    assert province["data-was"] == "waiting"
    assert cells(raw)["province"]["p-stop"][0] == "done"
    assert "李科长" in "".join(dom.text)  # the confirmation, with its name, in the log


def test_the_api_answers_get_only_and_shows_no_evidence_records_run_options_or_pids(site):
    host, port = "127.0.0.1", int(site.rsplit(":", 1)[1])
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request(method, "/api/status", body="{}")
        answer = conn.getresponse()
        assert answer.status == 405, method
        assert answer.headers["x-content-type-options"] == "nosniff"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/api/status")
    answer = conn.getresponse()
    assert answer.status == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    data = json.loads(answer.read())
    assert {key for step in data["steps"] for key in step} == {
        "id", "title", "phase", "kind", "requirement", "owner", "cooperating", "state", "attempts",
        "evidence_summary", "acted_by", "planned", "actual", "forecast", "late", "at_risk", "waiting",
        "waiting_sites"}
    text = json.dumps(data, ensure_ascii=False)
    for absent in ('"evidence"', '"options"', '"pid"', "inventory.yml", '"stats"'):
        assert absent not in text, absent
    assert [entry["text"] for entry in data["log"] if entry["kind"] == "override"] == [acting("override reason")]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("HEAD", "/")
    assert conn.getresponse().status == 200
    # a page of another site whose name was rebound to 127.0.0.1 reads nothing (no token on loopback)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/api/status", headers={"Host": f"attacker.example:{port}"})
    assert conn.getresponse().status == 400
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/api/status", headers={"Host": f"localhost:{port}"})
    assert conn.getresponse().status == 200


def free_port() -> int:
    with access.listen("127.0.0.1", 0) as sock:
        return sock.getsockname()[1]


def serve_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*INV, "cutover.serve", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def test_a_bind_beyond_this_machine_without_a_token_is_refused_and_nothing_listens(built, tmp_path):
    port = free_port()
    proc = serve_cli("--plan", str(built["plan"]), "--journal", str(built["journal"]), "--bind", "0.0.0.0",
                     "--port", str(port))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    said = out + err
    assert "--bind 0.0.0.0 would open the status page beyond this machine without a token; nothing is listening" in said
    assert "--token-file" in said
    assert "Traceback" not in said
    assert not listening(port)

    loose = tmp_path / "token"
    loose.write_text("0123456789abcdef0123\n")
    loose.chmod(0o644)
    proc = serve_cli("--plan", str(built["plan"]), "--bind", "0.0.0.0", "--port", str(port),
                     "--token-file", str(loose))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert f"--token-file {loose} may be read by others (mode 644)" in out + err
    assert "0123456789abcdef0123" not in out + err
    assert not listening(port)


def test_with_a_token_every_request_carries_it_and_it_never_shows(built, tmp_path):
    token = "s3cr3t-" + "9f" * 16
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    proc = serve_cli("--plan", str(built["plan"]), "--journal", str(built["journal"]), "--bind", "0.0.0.0",
                     "--port", str(port), "--token-file", str(token_file))
    try:
        deadline = time.monotonic() + 60
        while not listening(port):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.2)

        def get(path: str, headers: dict[str, str] | None = None, method: str = "GET"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, headers=headers or {})
            answer = conn.getresponse()
            return answer, answer.read().decode()

        for path in ("/", "/api/status", "/app.js", f"/department/{quote(RESTORERS)}"):
            assert get(path)[0].status == 401, path
        assert get("/api/status", {"Authorization": "Bearer " + token[:-1] + "0"})[0].status == 401
        answer, body = get("/api/status", {"Authorization": f"Bearer {token}"})
        assert answer.status == 200
        assert token not in body
        assert get("/api/status?token=" + token)[0].status == 200
        for method in ("POST", "PUT", "DELETE"):
            assert get("/api/status", {"Authorization": f"Bearer {token}"}, method)[0].status == 405

        # a shared link: a cookie for the page's own requests, and the token out of the address bar
        answer, _ = get(f"/?token={token}")
        assert answer.status == 303
        assert answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        answer, page = get("/", {"Cookie": cookie.split(";")[0]})
        assert answer.status == 200
        assert token not in page
        assert "实时状态" in page
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert token not in out + err
    assert f"token from {token_file}" in out


def test_late_and_at_risk_steps_are_marked_and_the_next_times_counted_down(built):
    """At risk: the forecast (how long each step took in a rehearsal) ends a step after its
    due_by; late: not done and its due_by passed on the page's clock (the rehearsal's)."""
    source = source_for(built["plan"], built["journal"])
    source.expected = forecast(source.plan, {"r1": 40 * 86400.0})  # r1 took 40 days in the rehearsal
    steps = {step["id"]: step for step in source.page()["steps"]}
    assert [step_id for step_id, step in steps.items() if step["at_risk"]] == ["r1", "r2", "f1"]
    assert steps["r1"]["forecast"].startswith("~40 d 0 h 00 min, ends ")
    assert not any(step["late"] for step in steps.values())
    first = source.page()["deadlines"][0]
    assert (first["kind"], first["step"], first["at"]) == ("due_by", "a3", "11-23 18:00")
    assert first["in"].startswith("2 d 23 h")

    later = source.now() + dt.timedelta(days=4)  # the rehearsal's clock past a3's due_by
    source.now = lambda: later
    steps = {step["id"]: step for step in source.page()["steps"]}
    assert [step_id for step_id, step in steps.items() if step["late"]] == ["a3"]
    assert [entry["step"] for entry in source.page()["deadlines"]][:1] == ["r1"]


def test_the_page_reads_a_team_journal_on_postgresql_and_shows_its_url_without_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "pg-secret-4711")  # trust authentication: libpq sends it, nobody needs it
    plan = write_plan(tmp_path)
    with throwaway_postgres("cutover", ["team"]) as pg:
        url = f"postgresql://cutover@127.0.0.1:{pg['port']}/team?application_name=page"
        with mock.patch.dict(os.environ, {"CUTOVER_TEST_MARKER": str(tmp_path / "marker")}):
            assert Executor("stop", RunOptions(plan=str(plan), journal=url, artifacts=str(tmp_path / "art"),
                                               rehearsal=True, auto_confirm=True, notify_urls=[], limit="taiyuan",
                                               say=lambda *_: None)).run() == 0
        session = Session(RunOptions(plan=str(plan), journal=url, artifacts=str(tmp_path / "art")))
        with serving(create_app(StatusSource.of(session, tmp_path / "art"), None)) as base:
            conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=30)
            conn.request("GET", "/api/status")
            answer = conn.getresponse()
            body = answer.read().decode()
    assert answer.status == 200
    data = json.loads(body)
    assert data["journal"] == url  # as shown(): no secret was in it
    assert {row["site"]: row["cells"]["p-stop"]["state"] for row in data["matrix"]["rows"]} == {
        "province": "pending", "taiyuan": "done", "datong": "pending"}
    assert "pg-secret-4711" not in body
