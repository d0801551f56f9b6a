"""Text from outside the plan's author reaches the report: the plan's title, the reasons and
notes people type, the receiver's receipt and what hosts answer when asked their version. The
HTML shows it as text (autoescaped), the Markdown keeps its rows whole, the JSON keeps it exact."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from markupsafe import escape

from cutover.engine.clock import now_iso
from cutover.engine.journal import Journal
from cutover.plan.lint import check
from cutover.report import render

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "plans" / "mini.yml"


def hostile(field: str) -> str:
    """A string that is markup, breaks out of attributes and Markdown table rows, named by field."""
    return (f"<script>alert('{field}')</script><img src=x onerror=alert(2)>\"'& "
            f"a|b \\| c\nnext line [{field}]")


FIELDS = ("plan title", "step title", "operator", "override by", "override reason",
          "confirmation by", "confirmation note", "receipt", "receiver", "received_at",
          "reconciled table", "version component", "version found", "version probe",
          "step summary", "notification title", "escalation contact", "escalation sites",
          "escalation title")


def build_hostile_report(tmp: Path, hostile: Callable[[str], str] = hostile) -> dict[str, Path]:
    """A real plan and journal with `hostile(field)` in every field above, rendered by the
    project's own report function. The Chromium test uses it with a payload that acts."""
    tmp.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load(MINI.read_text(encoding="utf-8"))
    doc["plan"]["title"] = hostile("plan title")
    doc["phases"][0]["steps"][0]["title"] = hostile("step title")
    plan_path = tmp / "hostile.yml"
    plan_path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    plan, _ = check(plan_path)
    j = Journal.open(tmp / "journal.sqlite")
    try:
        j.bind_plan(plan, accept_change=False, by="test")
        run = j.start_run("stop", rehearsal=True, check=False, plan_hash=plan.digest, options={},
                          who=hostile("operator"))
        reconciliation = {
            "batch": "b1", "receipt": hostile("receipt"), "receiver": hostile("receiver"),
            "received_at": hostile("received_at"), "passed": False, "mismatches": 1,
            "backup_mismatches": 0, "backup": [{"line": "qyyl", "file": "t.csv", "status": "match"}],
            "tables": [{"line": "qyyl", "table": hostile("reconciled table"), "sent_rows": 3,
                        "received_rows": 2, "sent_checksum": "a", "received_checksum": "b",
                        "status": "rows differ by -1"}]}
        versions = [{"host": "localhost", "component": hostile("version component"),
                     "expected": "2.0.0", "found": hostile("version found"),
                     "probe": hostile("version probe"), "ok": False}]
        for step_id, facts, summary in (("s1", {"reconciliation": reconciliation}, hostile("step summary")),
                                        ("s2", {"versions": versions}, None)):
            attempt = j.begin_attempt(step_id, run, check=False, actual_start=now_iso())
            j.finish_attempt(attempt, step_id, status="ok", state="done", stats={},
                             evidence=[("result", {"status": "successful", "rc": 0, "stats": {},
                                                   "failures": []}), ("facts", facts)],
                             actual_end=now_iso(), summary=summary)
        j.add_override("s3", hostile("override by"), hostile("override reason"))
        j.add_confirmation("s4", hostile("confirmation by"), hostile("confirmation note"))
        j.record_notification("failure", hostile("notification title"), "body", 1, True)
        j.record_escalation(event="failure", kinds=["system"], contact=hostile("escalation contact"),
                            step_id="s1", sites=hostile("escalation sites"), title=hostile("escalation title"),
                            body=hostile("escalation message"), targets=1, ok=False)
        j.end_run(run, "failed")
    finally:
        j.close()
    return render.build(plan, tmp / "journal.sqlite", tmp / "report")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    paths = build_hostile_report(tmp_path_factory.mktemp("hostile"))
    return {kind: path.read_text(encoding="utf-8") for kind, path in paths.items()}


def test_the_html_shows_every_outside_field_as_escaped_text(report):
    html = report["html"]
    for field in FIELDS:
        assert str(escape(hostile(field))) in html, field
    assert "&lt;script&gt;alert(" in html
    assert "<script" not in html.lower()  # the report itself has no script: any is injected
    assert "<img" not in html.lower()
    assert "onerror=alert(2)>" not in html


def test_the_gantt_escapes_step_titles_in_its_tooltips(report):
    assert f"<title>planned: {escape(hostile('step title'))}</title>" in report["html"]


def test_the_json_keeps_every_outside_field_exactly(report):
    data = json.loads(report["json"])
    steps = {s["id"]: s for s in data["steps"]}
    assert steps["s1"]["title"] == hostile("step title")
    assert steps["s1"]["evidence_summary"] == hostile("step summary")
    assert data["runs"][0]["operator"] == hostile("operator")
    assert [(o["by"], o["reason"]) for o in data["overrides"]] == [
        (hostile("override by"), hostile("override reason"))]
    assert [(c["by"], c["note"]) for c in data["confirmations"]] == [
        (hostile("confirmation by"), hostile("confirmation note"))]
    assert data["notifications"][0]["title"] == hostile("notification title")
    assert [(e["contact"], e["sites"], e["body"]) for e in data["escalations"]] == [
        (hostile("escalation contact"), hostile("escalation sites"), hostile("escalation message"))]
    facts = {s: next(e["data"] for e in steps[s]["evidence"] if e["kind"] == "facts") for s in ("s1", "s2")}
    rec = facts["s1"]["reconciliation"]
    assert (rec["receipt"], rec["receiver"], rec["received_at"], rec["tables"][0]["table"]) == (
        hostile("receipt"), hostile("receiver"), hostile("received_at"), hostile("reconciled table"))
    v = facts["s2"]["versions"][0]
    assert (v["component"], v["found"], v["probe"]) == (
        hostile("version component"), hostile("version found"), hostile("version probe"))


def _cells(row: str) -> int:
    """The cells of a GFM table row as GitHub splits it: `\\` escapes the next character,
    so `\\|` is text and only a bare `|` ends a cell."""
    return sum(1 for m in re.finditer(r"\\.|\|", row) if m.group() == "|") - 1


def test_the_markdown_keeps_each_value_on_its_line_and_every_table_row_whole(report):
    md = report["md"]
    for field in FIELDS:
        text = hostile(field)
        if field == "step summary":  # the evidence column already turned | into /
            text = text.replace("|", "/")
        as_text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
        assert as_text in md, field
    assert "\nnext line" not in md
    lines = md.splitlines()
    tables = 0
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            tables += 1
            width = _cells(lines[i - 1])
            assert width == line.count("---")
            for row in lines[i + 1:]:
                if not row.startswith("|"):
                    break
                assert _cells(row) == width, row
    assert tables >= 3  # steps, reconciliation, versions
