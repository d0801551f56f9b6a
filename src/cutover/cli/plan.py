"""`invoke plan.*`: check, show and describe plans."""

from __future__ import annotations

import json

from invoke import Context, Exit, task
from rich.table import Table

from cutover.cli.common import refusals
from cutover.engine.forecast import forecast, rehearsal_journal, step_durations
from cutover.engine.journal import Journal
from cutover.engine.journal_db import journal_exists, journal_location, shown
from cutover.paths import resolve
from cutover.plan.lint import PlanInvalid, load_plan
from cutover.plan.model import Plan
from cutover.plan.times import fmt
from cutover.ui import console


def _durations(c: Context, journal: str | None) -> dict[str, float]:
    path = journal_location(journal or c.config.cutover.journal)
    if not journal_exists(path):
        return {}
    with Journal.open(path) as the_journal:
        return the_journal.phase_durations()


@task(help={"plan": "plan file (default from invoke.yaml)",
            "inventory": "validate groups and limits against this inventory (default: the plan's)",
            "journal": "journal of an earlier rehearsal, for duration warnings"})
@refusals
def check(c: Context, plan: str | None = None, inventory: str | None = None,
          journal: str | None = None) -> None:
    """Load and lint a plan: every problem as file:line: message, exit 1 on any error."""
    path = plan or c.config.cutover.plan
    the_plan, problems = load_plan(path, inventory, _durations(c, journal))
    for problem in problems:
        print(problem)
    errors = [problem for problem in problems if problem.severity == "error"]
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
    if the_plan is None or any(problem.severity == "error" for problem in problems):
        raise PlanInvalid(problems)
    journal_path = rehearsal_journal(resolve(c.config.cutover.artifacts),
                                     journal_location(journal) if journal else None)
    expected = forecast(the_plan, step_durations(journal_path))
    if json:
        data = the_plan.model_dump(mode="json", exclude={"path"})
        data["forecast"] = {step_id: {"expected_s": guess["expected_s"], "fits": guess["fits"],
                                      "end": guess["end"].isoformat() if guess["end"] else None}
                            for step_id, guess in expected.items()}
        print(_json.dumps(data, indent=2, ensure_ascii=False))
        return
    measured = any(guess["expected_s"] is not None for guess in expected.values())
    _timeline(the_plan, expected if measured else None)
    if measured:
        late = [step_id for step_id, guess in expected.items() if not guess["fits"]]
        console.print(f"forecast from {shown(journal_path)}: " + (f"[red]{len(late)} step(s) would end after "
                      f"their due_by: {', '.join(late)}[/]" if late else "every step ends inside its window"))


_json = json


def _timeline(plan: Plan, expected: dict | None = None) -> None:
    tz = plan.tz
    console.print(f"[bold]{plan.plan.title or plan.plan.name}[/]  ({plan.plan.timezone})")
    table = Table(show_lines=False)
    cols = ["when", "until", "step", "kind", "after", "owner 责任部门", "cooperating 配合部门"]
    for col in cols + (["expected", "forecast end"] if expected else []):
        table.add_column(col, overflow="fold")
    for phase in plan.phases:
        table.add_row(f"[bold]{fmt(phase.start, tz)}[/]", f"[bold]{fmt(phase.end, tz)}[/]",
                      f"[bold]{phase.id} · {phase.verb} · {phase.title}[/]", "", "",
                      phase.owner or "", "、".join(phase.cooperating), *(["", ""] if expected else []))
        for step in phase.steps:
            extra = []
            if expected:
                guess = expected[step.id]
                took = f"{guess['expected_s']:.0f} s" if guess["expected_s"] is not None else "—"
                end = fmt(guess["end"], tz) if guess["end"] else "—"
                extra = [took, end if guess["fits"] else f"[red]{end} (after due_by)[/]"]
            table.add_row(fmt(step.start, tz), fmt(step.end, tz), f"  {step.id} {step.title}"
                          + (f" [dim]({step.requirement})[/]" if step.requirement else ""), step.kind,
                          ", ".join(step.after), step.owner or "", "、".join(step.cooperating), *extra)
    console.print(table)
    for contact in plan.plan.escalation:  # N14: whom a fault is escalated to
        console.print(f"escalation: {', '.join(contact.handles)} faults → {contact.name}"
                      + (f" ({contact.role})" if contact.role else ""), markup=False, highlight=False)


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
