"""Render the record of a run from the journal, with Jinja2 templates in templates/report/.

The record is what an auditor reads: per step the owner and cooperating departments,
planned and actual times, result and evidence; overrides and confirmations with names and
reasons; version tables; notifications sent. Secrets never reach it: the journal holds only
evidence that playbooks returned (no_log tasks return none) and this module adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import escape

from cutover.engine import status as status_mod
from cutover.engine.journal import Journal
from cutover.paths import ROOT, resolve
from cutover.plan.model import Plan
from cutover.plan.times import fmt

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "templates" / "report")),
                          autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                          lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def _local(value: str | None, plan: Plan) -> str:
    return fmt(dt.datetime.fromisoformat(value), plan.tz) if value else "—"


def _versions(st: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for s in st["steps"]:
        for e in s["evidence"]:
            if e["kind"] == "facts" and isinstance(e["data"].get("versions"), list):
                rows = [dict(r, step=s["id"]) for r in e["data"]["versions"]]  # the latest table wins
    return rows


def _gantt(st: dict[str, Any], plan: Plan) -> str:
    """Planned (grey) vs actual (coloured) bars per step, as inline SVG."""
    steps = [s for s in st["steps"] if s["actual_start"]]
    if not steps:
        return ""
    starts = [dt.datetime.fromisoformat(s["actual_start"]) for s in steps]
    ends = [dt.datetime.fromisoformat(s["actual_end"] or s["actual_start"]) for s in steps]
    t0, t1 = min(starts), max(ends)
    span = max((t1 - t0).total_seconds(), 1.0)
    width, row, label = 900, 18, 230
    colour = {"done": "#2e7d32", "failed": "#c62828", "running": "#f9a825", "waiting": "#f9a825"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + label + 20}" '
           f'height="{row * len(steps) + 40}" font-family="sans-serif" font-size="11">']
    for i, (s, a, b) in enumerate(zip(steps, starts, ends, strict=True)):
        y = 20 + i * row
        x = label + (a - t0).total_seconds() / span * width
        w = max((b - a).total_seconds() / span * width, 2)
        out.append(f'<text x="4" y="{y + 12}">{escape(s["id"])}</text>')
        out.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" '
                   f'fill="{colour.get(s["state"], "#777")}"><title>{escape(s["title"])}: '
                   f'{(b - a).total_seconds():.0f} s</title></rect>')
    out.append(f'<text x="{label}" y="12">{fmt(t0, plan.tz)}</text>')
    out.append(f'<text x="{label + width - 100}" y="12">{fmt(t1, plan.tz)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def build(plan: Plan, journal_path: Path, out_dir: Path) -> dict[str, Path]:
    j = Journal.open(journal_path, create=False)
    try:
        st = status_mod.collect(plan, j, resolve(plan.plan.inventory))
    finally:
        j.close()
    ctx = {"plan": plan, "st": st, "versions": _versions(st), "gantt": _gantt(st, plan),
           "local": lambda v: _local(v, plan), "generated": fmt(dt.datetime.now(plan.tz)),
           "phases": plan.phases}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"report.{kind}" for kind in ("json", "md", "html")}
    text = json.dumps(st, indent=2, ensure_ascii=False, default=str)
    paths["json"].write_text(text + "\n", encoding="utf-8")
    paths["md"].write_text(_env.get_template("report.md.j2").render(**ctx), encoding="utf-8")
    paths["html"].write_text(_env.get_template("report.html.j2").render(**ctx), encoding="utf-8")
    return paths
