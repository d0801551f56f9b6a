"""N14: a fault is told to the escalation contact that owns its kind (a failed step: the system
section; a failed gate, a missed due_by: the business division; an override, a site that
failed while the others went on: both), with the step, the sites and the evidence; the
journal records who was told what and when, and the report lists it.

Real playbooks on localhost, a real journal, and real deliveries: apprise posts each message
to a small HTTP receiver on this machine, one path per contact."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from cutover.engine import decisions
from cutover.engine.clock import Clock
from cutover.engine.escalation import contact_urls, kinds_of
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.run import StepFailed
from cutover.engine.session import RunOptions
from cutover.plan.lint import load_plan
from cutover.report import render

from .site_runs import marked_env

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "plans" / "mini.yml"
SHIPPED = ROOT / "plans" / "shanxi-2023-11.yml"
SITES = ROOT / "tests" / "data" / "sites" / "plan-waves.yml"
SYSTEM, BUSINESS = "省工伤保险中心系统科", "省社保局参保管理处"
# what a host, an operator or a plan's author may type: markup, a forged line of the message,
# a template that must stay text
HOSTILE = "<script>alert(1)</script>{{ 7*7 }}\n操作人 / operator: mallory"


class Receiver:
    """Every message apprise delivered, by the path it was posted to."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.got.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[dict]:
        return [message for at, message in self.got if at == path]


@pytest.fixture
def receiver():
    got = Receiver()
    yield got
    got.server.shutdown()
    got.server.server_close()


def contacts(port: int) -> list[dict]:
    return [{"name": SYSTEM, "role": "协调运营商、云服务商", "handles": ["system"],
             "notify": [f"json://127.0.0.1:{port}/system"]},
            {"name": BUSINESS, "role": "制定应急解决方案", "handles": ["business"],
             "notify": [f"json://127.0.0.1:{port}/business"]}]


@pytest.fixture
def env(tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("CUTOVER_TEST_MARKER", str(tmp_path / "marker"))
    monkeypatch.setenv("CUTOVER_TEST_GATE_FAIL", str(tmp_path / "gate-fails"))
    doc = yaml.safe_load(MINI.read_text(encoding="utf-8"))
    doc["plan"]["escalation"] = contacts(receiver.port)
    doc["phases"][0]["steps"][1]["vars"] = {"slow_seconds": 0}
    doc["phases"][0]["steps"][2]["title"] = HOSTILE  # s3, the gate
    out = {"tmp": tmp_path, "journal": tmp_path / "j.sqlite", "doc": doc, "plan": tmp_path / "plan.yml"}
    write(out)
    return out


def write(env) -> None:
    env["plan"].write_text(yaml.safe_dump(env["doc"], allow_unicode=True, sort_keys=False), encoding="utf-8")


def opts(env, **kw) -> RunOptions:
    said: list[str] = kw.pop("said", [])
    return RunOptions(plan=str(env["plan"]), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=kw.pop("rehearsal", True), notify_urls=[], say=said.append, **kw)


def escalations(env) -> list[dict]:
    with Journal.open(env["journal"]) as journal:
        return journal.all("escalations")


def test_a_failed_gate_goes_to_the_business_owner_an_override_to_both_the_report_lists_them(env, receiver):
    (env["tmp"] / "gate-fails").touch()
    said: list[str] = []
    with pytest.raises(StepFailed, match="step s3 failed"):
        Executor("stop", opts(env, said=said)).run()
    assert f"  escalated to {BUSINESS}" in said
    (told,) = escalations(env)
    assert (told["contact"], told["kinds"], told["event"], told["step_id"], told["ok"]) == (
        BUSINESS, "business", "failure", "s3", 1)
    assert receiver.to("/system") == []
    (message,) = receiver.to("/business")
    assert message["title"].startswith(f"[mini] 应急响应 / escalation to {BUSINESS}: 失败: s3 ")
    body = message["message"]
    assert "故障类别 / fault: 业务衔接 / business continuity" in body
    assert "站点 / sites: the inventory" in body
    assert "  |     - agency=140102, problem=approval pending, ids=101" in body  # the gate's evidence
    # the hostile title stays on its line, as text: no forged operator, no template run
    assert "步骤 / step: s3 <script>alert(1)</script>{{ 7*7 }} 操作人 / operator: mallory" in body.splitlines()
    assert [line for line in body.splitlines() if line.startswith("操作人 / operator:")] == [
        body.splitlines()[-1]]
    assert "mallory" not in body.splitlines()[-1]

    decisions.override(opts(env), "s3", "王处长", "<b>已线下审核</b>")
    told = escalations(env)[1:]
    assert sorted((row["contact"], row["event"], row["kinds"]) for row in told) == [
        (SYSTEM, "override", "system"), (BUSINESS, "override", "business")]
    (to_system,) = receiver.to("/system")
    assert "override by 王处长: <b>已线下审核</b>" in to_system["message"]
    assert "the step is failed: agency 140102 has 1 pending approval" in to_system["message"]

    # the report: who was told what and when; the HTML shows outside text as text
    plan, _ = load_plan(env["plan"])
    paths = render.build(plan, env["journal"], env["tmp"] / "report")
    html, md = paths["html"].read_text(), paths["md"].read_text()
    report = json.loads(paths["json"].read_text())
    assert [(row["contact"], row["event"]) for row in report["escalations"]] == [
        (BUSINESS, "failure"), (SYSTEM, "override"), (BUSINESS, "override")]
    assert "<script>alert(1)" not in html
    assert "<b>已线下审核" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;已线下审核&lt;/b&gt;" in html
    section = md.split("## 应急响应 / escalations (N14)")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`s3`" in line]
    assert [row.split(" | ")[1:4] for row in rows] == [
        [f"**{BUSINESS}**", "business", "failure"], [f"**{SYSTEM}**", "system", "override"],
        [f"**{BUSINESS}**", "business", "override"]]
    assert all(row.endswith("| yes |") for row in rows)


def test_a_failed_playbook_step_goes_to_the_system_owner_only(env, receiver):
    env["doc"]["phases"][0]["steps"][0]["playbook"] = "tests/data/playbooks/fails.yml"
    write(env)
    with pytest.raises(StepFailed, match="step s1 failed"):
        Executor("stop", opts(env)).run()
    assert [(row["contact"], row["kinds"], row["step_id"]) for row in escalations(env)] == [
        (SYSTEM, "system", "s1")]
    assert receiver.to("/business") == []
    (message,) = receiver.to("/system")
    assert "localhost: Fail | Stop with a message an operator can act on: agency 140107 has a pending approval" \
        in message["message"]


def test_a_missed_due_by_goes_to_the_business_owner(env, receiver):
    now = dt.datetime(2023, 11, 24, 0, 0, tzinfo=dt.UTC)  # after the stop phase's due_by
    clock = Clock(now=lambda: now, sleep=lambda _: None)
    with pytest.raises(StepFailed, match="step s1 is past its due_by 2023-11-23 18:00"):
        Executor("stop", opts(env, rehearsal=False, clock=clock)).run()
    assert [(row["contact"], row["event"], row["kinds"]) for row in escalations(env)] == [
        (BUSINESS, "overdue", "business")]
    (message,) = receiver.to("/business")
    assert "due_by 2023-11-23 18:00, now 2023-11-24 08:00: not started" in message["message"]
    assert receiver.to("/system") == []


def test_a_steps_own_fault_kind_routes_it_and_a_contact_nobody_reaches_is_recorded_not_told(env, receiver):
    env["doc"]["phases"][0]["steps"][0].update(playbook="tests/data/playbooks/fails.yml", fault="business")
    env["doc"]["plan"]["escalation"][1]["notify"] = ["json://127.0.0.1:9/closed"]
    write(env)
    said: list[str] = []
    with pytest.raises(StepFailed):
        Executor("stop", opts(env, said=said)).run()
    (told,) = escalations(env)
    assert (told["contact"], told["kinds"], told["ok"], told["targets"]) == (BUSINESS, "business", 0, 1)
    assert f"  warning: the escalation to {BUSINESS} was not delivered (its notify, notify_var)" in said
    assert receiver.got == []


def test_check_mode_tells_nobody(env, receiver):
    env["doc"]["phases"][0]["steps"][0]["playbook"] = "tests/data/playbooks/fails.yml"
    write(env)
    with pytest.raises(StepFailed):
        Executor("stop", opts(env, check=True)).run()
    assert escalations(env) == []
    assert receiver.got == []


def test_a_site_failing_while_the_others_go_on_goes_to_both(tmp_path, monkeypatch, receiver):
    env = marked_env(tmp_path, monkeypatch)
    doc = yaml.safe_load(SITES.read_text(encoding="utf-8"))
    doc["plan"]["escalation"] = contacts(receiver.port)
    doc["phases"][0].update(waves=["cities", "counties"], on_site_failure="continue")
    plan = SITES.parent / f".variant-{tmp_path.name}.yml"  # beside the original: its paths are the project's
    plan.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("CUTOVER_TEST_FAIL", "dt-counter")
    try:
        with pytest.raises(StepFailed, match=r"a1 failed at 大同市 \(datong\)"):
            Executor("stop", RunOptions(plan=str(plan), journal=str(env["journal"]), artifacts=str(tmp_path / "a"),
                                        rehearsal=True, auto_confirm=True, notify_urls=[],
                                        say=lambda _: None)).run()
    finally:
        plan.unlink()
    with Journal.open(env["journal"]) as journal:
        told = [(row["contact"], row["event"], row["sites"]) for row in journal.all("escalations")]
    assert told == [(SYSTEM, "site_failure", "大同市 (datong)"), (BUSINESS, "site_failure", "大同市 (datong)")]
    assert "站点 / sites: 大同市 (datong)" in receiver.to("/business")[0]["message"]


# ---------------------------------------------------------------- plan.check (fail closed)

def lint_problems(tmp_path: Path, change) -> list[str]:
    doc = yaml.safe_load(MINI.read_text(encoding="utf-8"))
    doc["plan"]["escalation"] = contacts(9)
    change(doc["plan"]["escalation"])
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    _, problems = load_plan(path)
    return [str(problem) for problem in problems if problem.severity == "error"]


def test_plan_check_refuses_a_kind_of_fault_nobody_owns_with_file_and_line(tmp_path):
    problems = lint_problems(tmp_path, lambda people: people.pop())
    line = (tmp_path / "plan.yml").read_text().splitlines().index("  escalation:") + 2  # its list
    assert problems == [f"{tmp_path / 'plan.yml'}:{line}: no escalation contact handles business faults (N14)\n"
                        "    hint: add business to the `handles:` of the contact who owns them"]


def test_plan_check_refuses_a_contact_without_kinds_a_target_or_a_name_of_its_own(tmp_path):
    assert any("missing required key 'handles'" in p
               for p in lint_problems(tmp_path, lambda people: people[0].pop("handles")))
    assert any("handles: 'vendors' is not one of" in p or "'vendors'" in p
               for p in lint_problems(tmp_path, lambda people: people[0].update(handles=["vendors"])))
    assert any(f"escalation contact '{SYSTEM}' has no target: a fault would reach nobody" in p
               for p in lint_problems(tmp_path, lambda people: people[0].pop("notify")))
    assert any(f"escalation contact '{SYSTEM}' is named twice" in p
               for p in lint_problems(tmp_path, lambda people: people[1].update(name=SYSTEM)))
    assert any(f"escalation contact '{SYSTEM}': no host of inventory tests/data/inventory.yml sets "
               "cutover_escalation_urls, so a fault would reach nobody" in p
               for p in lint_problems(tmp_path, lambda people: people[0].update(
                   notify=[], notify_var="cutover_escalation_urls")))


def test_a_contacts_inventory_variable_is_resolved_as_ansible_does(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    h1:\n      ansible_connection: local\n  vars:\n    port: 28090\n"
                   "    on_call: [\"json://127.0.0.1:{{ port }}/on-call\"]\n")
    doc = yaml.safe_load(MINI.read_text(encoding="utf-8"))
    doc["plan"]["inventory"] = str(inv)
    doc["plan"]["escalation"] = contacts(9)
    doc["plan"]["escalation"][0]["notify_var"] = "on_call"
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    plan, problems = load_plan(path)
    assert plan is not None
    assert problems == []
    assert contact_urls(plan, inv) == {SYSTEM: ["json://127.0.0.1:9/system", "json://127.0.0.1:28090/on-call"],
                                       BUSINESS: ["json://127.0.0.1:9/business"]}


# ---------------------------------------------------------------- the shipped plan

def test_the_shipped_plans_stand_by_starts_on_12_01_once_the_core_is_back():
    plan, problems = load_plan(SHIPPED)
    assert problems == []
    standby = plan.step("n14-emergency-standby")
    assert (standby.requirement, standby.verb, standby.after) == ("N14", "restore", ["n9-restore-core"])
    assert standby.start.isoformat() == "2023-12-01T08:00:00+08:00"  # the notice: 从12月1日起


def test_the_shipped_plan_routes_each_fault_to_the_contact_the_notice_names():
    plan, _ = load_plan(SHIPPED)
    owner = {contact.name: contact.handles for contact in plan.plan.escalation}
    assert owner == {SYSTEM: ["system"], BUSINESS: ["business"]}
    assert kinds_of("failure", plan.step("n9-restore-core")) == ("system",)
    assert kinds_of("failure", plan.step("n3-gate-payments-approvals")) == ("business",)
    assert kinds_of("failure", plan.step("n13-check-job-volumes")) == ("system",)  # fault: system
    assert kinds_of("failure", plan.step("n13-check-job-volumes"), verdict=False) == ("system",)
    assert kinds_of("overdue", plan.step("n9-restore-core")) == ("business",)
    assert kinds_of("site_failure", plan.step("n11-restore-counters")) == ("system", "business")
