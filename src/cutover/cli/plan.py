"""`invoke plan.*`: check, show and describe plans."""

from __future__ import annotations

import json

from invoke import Context, Exit, task
from rich.table import Table

from cutover.cli.common import refusals
from cutover.engine.forecast import forecast, rehearsal_journal, step_durations
from cutover.engine.journal import Journal
from cutover.paths import resolve
from cutover.plan.lint import PlanInvalid, load_plan
from cutover.plan.model import Plan
from cutover.plan.times import fmt
from cutover.ui import console


def _durations(c: Context, journal: str | None) -> dict[str, float]:
    path = resolve(journal or c.config.cutover.journal)
    if not path.exists():
        return {}
    j = Journal.open(path)
    try:
        return j.phase_durations()
    finally:
        j.close()


@task(help={"plan": "plan file (default from invoke.yaml)",
            "inventory": "validate groups and limits against this inventory (default: the plan's)",
            "journal": "journal of an earlier rehearsal, for duration warnings"})
@refusals
def check(c: Context, plan: str | None = None, inventory: str | None = None,
          journal: str | None = None) -> None:
    """Load and lint a plan: every problem as file:line: message, exit 1 on any error."""
    path = plan or c.config.cutover.plan
    the_plan, problems = load_plan(path, inventory, _durations(c, journal))
    for p in problems:
        print(p)
    errors = [p for p in problems if p.severity == "error"]
    if the_plan is None or errors:
        raise Exit(f"{len(errors)} error(s) in {path}", code=1)
    print(f"{path}: ok — {len(the_plan.phases)} phases, {len(the_plan.steps())} steps"
          + (f", {len(problems)} warning(s)" if problems else ""))


@task(help={"plan": "plan file (default from invoke.yaml)", "json": "machine-readable",
            "journal": "rehearsal journal for the forecast (default: the latest lab.rehearse)"})
@refusals
def show(c: Context, plan: str | None = None, json: bool = False, journal: str | None = None) -> None:
    """The timeline: phases, steps, times, owners; with a rehearsal, each step's forecast."""
    the_plan, problems = load_plan(plan or c.config.cutover.plan)
    if the_plan is None or any(p.severity == "error" for p in problems):
        raise PlanInvalid(problems)
    jpath = rehearsal_journal(resolve(c.config.cutover.artifacts), resolve(journal) if journal else None)
    fc = forecast(the_plan, step_durations(jpath))
    if json:
        data = the_plan.model_dump(mode="json", exclude={"path"})
        data["forecast"] = {k: {"expected_s": v["expected_s"], "fits": v["fits"],
                                "end": v["end"].isoformat() if v["end"] else None} for k, v in fc.items()}
        print(_json.dumps(data, indent=2, ensure_ascii=False))
        return
    _timeline(the_plan, fc if any(v["expected_s"] is not None for v in fc.values()) else None)
    if any(v["expected_s"] is not None for v in fc.values()):
        late = [k for k, v in fc.items() if not v["fits"]]
        console.print(f"forecast from {jpath}: " + (f"[red]{len(late)} step(s) would end after "
                      f"their due_by: {', '.join(late)}[/]" if late else "every step ends inside its window"))


_json = json


def _timeline(plan: Plan, fc: dict | None = None) -> None:
    tz = plan.tz
    console.print(f"[bold]{plan.plan.title or plan.plan.name}[/]  ({plan.plan.timezone})")
    table = Table(show_lines=False)
    cols = ["when", "until", "step", "kind", "after", "owner 责任部门", "cooperating 配合部门"]
    for col in cols + (["expected", "forecast end"] if fc else []):
        table.add_column(col, overflow="fold")
    for phase in plan.phases:
        table.add_row(f"[bold]{fmt(phase.start, tz)}[/]", f"[bold]{fmt(phase.end, tz)}[/]",
                      f"[bold]{phase.id} · {phase.verb} · {phase.title}[/]", "", "",
                      phase.owner or "", "、".join(phase.cooperating), *(["", ""] if fc else []))
        for s in phase.steps:
            extra = []
            if fc:
                f = fc[s.id]
                took = f"{f['expected_s']:.0f} s" if f["expected_s"] is not None else "—"
                end = fmt(f["end"], tz) if f["end"] else "—"
                extra = [took, end if f["fits"] else f"[red]{end} (after due_by)[/]"]
            table.add_row(fmt(s.start, tz), fmt(s.end, tz), f"  {s.id} {s.title}"
                          + (f" [dim]({s.requirement})[/]" if s.requirement else ""), s.kind,
                          ", ".join(s.after), s.owner or "", "、".join(s.cooperating), *extra)
    console.print(table)


@task(help={"output": "write the schema here instead of stdout"})
def schema(c: Context, output: str | None = None) -> None:
    """JSON Schema of the plan format, for editors."""
    data = Plan.model_json_schema()
    text = _json.dumps(_public(data), indent=2, ensure_ascii=False)
    if output:
        resolve(output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {output}")
    else:
        print(text)


def _public(schema: dict) -> dict:
    """Drop the fields the loader fills in itself (path, digest, resolved times, phase)."""
    internal = {"path", "digest", "start", "end", "phase", "verb"}
    for name, defn in schema.get("$defs", {}).items():
        props = defn.get("properties", {})
        for key in list(props):
            if key in internal and not (name == "Phase" and key == "verb"):
                del props[key]
    for key in ("path", "digest"):
        schema.get("properties", {}).pop(key, None)
    return schema
