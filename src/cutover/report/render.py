"""Render the record of a run from the journal, with Jinja2 templates in templates/report/.

The record is what an auditor reads: where each phase stands at each site, planned vs actual
(N17); per step the owner and cooperating departments, planned and actual times, result and
evidence; overrides and confirmations with names and reasons; the data phase's screening,
snapshot, export and reconciliation tables (N5–N7); version tables; notifications sent.
Secrets never reach it: the journal holds only evidence that playbooks returned (no_log tasks
return none) and this module adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from cutover.engine import status as status_mod
from cutover.engine.journal import Journal
from cutover.engine.journal_db import Where
from cutover.paths import ROOT, resolve
from cutover.plan.model import Plan
from cutover.plan.times import fmt

_LOADER = jinja2.FileSystemLoader(str(ROOT / "templates" / "report"))


def _markdown_text(value: Any) -> Any:
    """Every value the Markdown shows stays on its line and inside its table cell: a newline
    becomes a space, and `\\` and `|` are backslash-escaped (GFM reads `\\|` as text, also in
    code spans inside a table). Markdown is not HTML: `<` is left as it is."""
    if not isinstance(value, str):
        return value
    value = " ".join(value.splitlines())
    return value.replace("\\", "\\\\").replace("|", "\\|")


# Everything a report shows may come from outside the plan (titles, reasons, notes, the
# receiver's receipt, what hosts answered): the HTML autoescapes every value, always.
# select_autoescape(["html"]) would not do it: it matches names ending in .html, not .html.j2.
_HTML = jinja2.Environment(loader=_LOADER, autoescape=True, trim_blocks=True, lstrip_blocks=True,
                           undefined=jinja2.StrictUndefined)
_MARKDOWN = jinja2.Environment(loader=_LOADER, autoescape=False, finalize=_markdown_text,  # noqa: S701 - Markdown
                               trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def _local(value: str | None, plan: Plan) -> str:
    return fmt(dt.datetime.fromisoformat(value), plan.tz) if value else "—"


def _span(span: dict[str, str | None] | None, plan: Plan) -> str:
    """A planned or actual start → end, short (the year left out); "—" when it has no start."""
    if not span or not span["start"]:
        return "—"
    return f"{_local(span['start'], plan)[5:]} → {_local(span['end'], plan)[5:] if span['end'] else '…'}"


def _latest(st: dict[str, Any], key: str) -> Any:
    """The latest value a playbook recorded under `key` (set_stats), in step order."""
    found = None
    for s in st["steps"]:
        for e in s["evidence"]:
            if e["kind"] == "facts" and e["data"].get(key):
                found = e["data"][key]
    return found


def _versions(st: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_latest(st, "versions") or [])


def _snapshots(st: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per database of the data phase's snapshot (N5, N18), with its verification."""
    verified = _latest(st, "snapshot_verified") or {}
    rows = []
    for host, res in (_latest(st, "snapshot") or {}).items():
        for db, r in (res.get("databases") or {}).items():
            check = (verified.get(host) or {}).get(db) or {}
            test = check.get("test_restore") or {}
            rows.append({"host": host, "database": db, "dir": f"{res.get('dir')}/{db}", **r,
                         "rows": sum((r.get("tables") or {}).values()),
                         "verified": bool(check.get("verified")),
                         "test_restore_rows": test.get("rows")})
    return rows


def _gantt(st: dict[str, Any], plan: Plan) -> Markup:
    """Planned vs actual, one row per step, as inline SVG.

    Grey: the plan's window for the step (not_before → due_by) on the plan's time line.
    Colour: when the step actually ran, on the run's time line. In a real window both
    lines are the same days; in a rehearsal the run takes minutes, so each line is scaled
    to its own span (both are labelled), which still shows order and overlap.

    Markup built here, so every value from the journal or the plan goes through escape()."""
    steps = [s for s in st["steps"] if s["planned_start"] or s["actual_start"]]
    if not steps:
        return Markup("")

    def span(pairs: list[tuple[dt.datetime, dt.datetime]]) -> tuple[dt.datetime, float] | None:
        if not pairs:
            return None
        t0, t1 = min(a for a, _ in pairs), max(b for _, b in pairs)
        return t0, max((t1 - t0).total_seconds(), 1.0)

    def when(a: str | None, b: str | None) -> tuple[dt.datetime, dt.datetime] | None:
        if not a:
            return None
        start = dt.datetime.fromisoformat(a)
        return start, dt.datetime.fromisoformat(b) if b else start

    planned = {s["id"]: when(s["planned_start"], s["planned_end"]) for s in steps}
    actual = {s["id"]: when(s["actual_start"], s["actual_end"]) for s in steps}
    p_span = span([v for v in planned.values() if v])
    a_span = span([v for v in actual.values() if v])
    width, row, label = 900, 20, 230
    colour = {"done": "#2e7d32", "failed": "#c62828", "running": "#f9a825", "waiting": "#f9a825",
              "partial": "#0277bd"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + label + 20}" '
           f'height="{row * len(steps) + 50}" font-family="sans-serif" font-size="11">']

    def bar(interval: tuple[dt.datetime, dt.datetime], scale, y: float, h: float, fill: str, tip: str) -> str:
        start, end = interval
        x = label + (start - scale[0]).total_seconds() / scale[1] * width
        w = max((end - start).total_seconds() / scale[1] * width, 2)
        return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h}" fill="{fill}">'
                f"<title>{escape(tip)}</title></rect>")

    for index, step in enumerate(steps):
        y = 30 + index * row
        out.append(f'<text x="4" y="{y + 12}">{escape(step["id"])}</text>')
        if planned[step["id"]] and p_span:
            out.append(bar(planned[step["id"]], p_span, y + 1, 6, "#bbb", f"planned: {step['title']}"))
        if actual[step["id"]] and a_span:
            took = (actual[step["id"]][1] - actual[step["id"]][0]).total_seconds()
            out.append(bar(actual[step["id"]], a_span, y + 8, 9, colour.get(step["state"], "#777"),
                           f"actual: {step['title']}: {took:.0f} s, {step['state']}"))
    if p_span:
        out.append(f'<text x="{label}" y="12" fill="#777">planned {fmt(p_span[0], plan.tz)} → '
                   f"{fmt(p_span[0] + dt.timedelta(seconds=p_span[1]), plan.tz)}</text>")
    if a_span:
        out.append(f'<text x="{label}" y="24">actual {fmt(a_span[0], plan.tz)} → '
                   f"{fmt(a_span[0] + dt.timedelta(seconds=a_span[1]), plan.tz)}</text>")
    out.append("</svg>")
    return Markup("\n".join(out))  # noqa: S704 - every outside value above is escaped


def build(plan: Plan, journal_path: Where, out_dir: Path) -> dict[str, Path]:
    with Journal.open(journal_path, create=False) as journal:
        collected = status_mod.collect(plan, journal, resolve(plan.plan.inventory))
    ctx = {"plan": plan, "st": collected, "versions": _versions(collected), "gantt": _gantt(collected, plan),
           "screening": _latest(collected, "screening") or [], "snapshots": _snapshots(collected),
           "exports": _latest(collected, "export") or [],
           "excluded": _latest(collected, "export_excluded") or [],
           "handoff": _latest(collected, "handoff") or {},
           "reconciliation": _latest(collected, "reconciliation") or {},
           "local": lambda v: _local(v, plan), "span": lambda v: _span(v, plan),
           "generated": fmt(dt.datetime.now(plan.tz)),
           "phases": plan.phases}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"report.{kind}" for kind in ("json", "md", "html")}
    text = json.dumps(collected, indent=2, ensure_ascii=False, default=str)
    paths["json"].write_text(text + "\n", encoding="utf-8")
    paths["md"].write_text(_MARKDOWN.get_template("report.md.j2").render(**ctx), encoding="utf-8")
    paths["html"].write_text(_HTML.get_template("report.html.j2").render(**ctx), encoding="utf-8")
    return paths
