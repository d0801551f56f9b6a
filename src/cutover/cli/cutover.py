"""`invoke cutover.*`: the operator's verbs."""

from __future__ import annotations

import datetime as dt
import json
import sys

from invoke import Context, Exit, task
from rich.markup import escape
from rich.table import Table

from cutover.cli.common import refusals
from cutover.engine import executor
from cutover.engine import status as status_mod
from cutover.engine.executor import Executor, RunOptions
from cutover.engine.forecast import forecast, rehearsal_journal, step_durations
from cutover.engine.journal import Journal
from cutover.errors import CutoverError
from cutover.paths import resolve
from cutover.plan.lint import check as lint_check
from cutover.plan.times import fmt
from cutover.report import render
from cutover.ui import PlaybookProgress, console

COMMON_HELP = {
    "plan": "plan file (default from invoke.yaml)",
    "inventory": "inventory (default: the plan's own)",
    "journal": "journal file (default from invoke.yaml)",
    "limit": "narrow every step to these sites, groups or hosts (Ansible pattern)",
    "check": "Ansible check mode through the same path; nothing is marked done",
    "rehearsal": "do not wait for wall-clock times; map the plan's times onto now",
    "yes": "do not ask for confirmation on a production inventory",
    "accept_plan_change": "continue a journal whose plan changed (recorded)",
    "auto_confirm": "rehearsal only: confirm manual steps automatically (recorded as 'rehearsal')",
}


def options(c: Context, plan: str | None, inventory: str | None, journal: str | None,
            **kw) -> RunOptions:
    cfg = c.config.cutover
    return RunOptions(plan=plan or cfg.plan, inventory=inventory, journal=journal or cfg.journal,
                      artifacts=cfg.artifacts, say=console.print,
                      progress_factory=PlaybookProgress, confirm_prompt=_ask, **kw)


def _ask(prompt: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{prompt} [type yes] ").strip().lower() == "yes"


def _verb(c: Context, verb: str, plan, inventory, journal, limit, check, rehearsal, yes,
          accept_plan_change, auto_confirm) -> None:
    opts = options(c, plan, inventory, journal, limit=limit, check=check, rehearsal=rehearsal,
                   yes=yes, accept_plan_change=accept_plan_change, auto_confirm=auto_confirm)
    rc = Executor(verb, opts).run()
    if rc:
        raise Exit(code=rc)


def _make_verb(verb: str, doc: str):
    @task(name=verb, help=COMMON_HELP)
    @refusals
    def run_verb(c: Context, plan: str | None = None, inventory: str | None = None,
                 journal: str | None = None, limit: str | None = None, check: bool = False,
                 rehearsal: bool = False, yes: bool = False, accept_plan_change: bool = False,
                 auto_confirm: bool = False) -> None:
        _verb(c, verb, plan, inventory, journal, limit, check, rehearsal, yes,
              accept_plan_change, auto_confirm)

    run_verb.__doc__ = doc
    run_verb.body.__doc__ = doc
    return run_verb


stop = _make_verb("stop", "Run the plan's stop steps (gates, freeze, full stop); resumes where it stopped.")
deploy = _make_verb("deploy", "Run the plan's deploy steps (data, new programs, version checks).")
restore = _make_verb("restore", "Run the plan's restore steps in the prescribed order and times.")
followup = _make_verb("followup", "Run the plan's follow-up steps (the next-day checks).")


@task(help={"plan": COMMON_HELP["plan"], "journal": COMMON_HELP["journal"],
            "json": "machine-readable output with every evidence record"})
@refusals
def status(c: Context, plan: str | None = None, journal: str | None = None,
           json: bool = False) -> None:  # the option is --json
    """Every step: state, planned vs actual times, who acted, evidence, by site."""
    cfg = c.config.cutover
    the_plan, _ = lint_check(plan or cfg.plan)
    jpath = resolve(journal or cfg.journal)
    j = Journal.open(jpath) if jpath.exists() else None
    try:
        st = status_mod.collect(the_plan, j, resolve(the_plan.plan.inventory))
    finally:
        if j:
            j.close()
    if json:
        print(_json.dumps(st, indent=2, ensure_ascii=False, default=str))
        return
    tz = the_plan.tz
    fc = forecast(the_plan, step_durations(rehearsal_journal(resolve(cfg.artifacts))))
    table = Table(title=f"{the_plan.plan.name} — {st['journal'] or 'no journal yet'}")
    for col in ("step", "phase", "state", "planned", "actual", "took", "forecast", "owner",
                "evidence / acted"):
        table.add_column(col, overflow="fold")
    colour = {"done": "green", "failed": "red", "running": "yellow", "waiting": "yellow",
              "interrupted": "yellow"}
    for s in st["steps"]:
        state = s["state"]
        planned = f"{_short(s['planned_start'], tz)}→{_short(s['planned_end'], tz)}"
        actual = f"{_short(s['actual_start'], tz)}→{_short(s['actual_end'], tz)}" if s["actual_start"] else ""
        took = f"{s['duration_s']:.0f}s" if s["duration_s"] is not None else ""
        sites = ", ".join(f"{k}: {v['hosts'] - v['failed']}/{v['hosts']}" for k, v in s["sites"].items())
        ev = "; ".join(x for x in [s["evidence_summary"], ", ".join(s["acted_by"]), sites] if x)
        f = fc[s["id"]]
        guess = "" if state == "done" or f["expected_s"] is None else (
            f"~{f['expected_s']:.0f}s, ends {fmt(f['end'], tz)[5:]}" + ("" if f["fits"] else " [red]late[/]"))
        table.add_row(f"{s['id']}\n[dim]{escape(s['title'])}[/]", s["phase"],
                      f"[{colour.get(state, 'white')}]{state}[/]", planned, actual, took, guess,
                      escape(s["owner"] or ""), escape(ev))  # names, reasons and host replies: text
    console.print(table)
    sent = st["notifications"]
    missed = [n for n in sent if not n["ok"]]
    if sent:  # N16: a message that reached nobody is not delivered, and the operator sees it
        console.print(f"notifications: {len(sent) - len(missed)} of {len(sent)} delivered"
                      + ("" if not missed else "; [red]NOT delivered[/]: " + "; ".join(
                          escape(f"{n['event']} {n['title']} ({n['targets']} target(s))")
                          for n in missed[-5:])),
                      markup=True, highlight=False)


_json = json


def _short(value: str | None, tz) -> str:
    return fmt(dt.datetime.fromisoformat(value), tz)[5:] if value else ""


@task(help={"step": "step id", "by": "who confirms (recorded)", "note": "what was done (recorded)",
            "plan": COMMON_HELP["plan"], "journal": COMMON_HELP["journal"]})
@refusals
def confirm(c: Context, step: str, by: str, note: str = "", plan: str | None = None,
            journal: str | None = None) -> None:
    """Confirm a manual step, then run its verb again to continue."""
    console.print(executor.confirm(options(c, plan, None, journal), step, by, note))


@task(help={"step": "step id", "by": "who decides (recorded)", "reason": "why (recorded)",
            "plan": COMMON_HELP["plan"], "journal": COMMON_HELP["journal"]})
@refusals
def override(c: Context, step: str, by: str, reason: str, plan: str | None = None,
             journal: str | None = None) -> None:
    """Let a failed gate (or an overdue step) pass; recorded and notified."""
    console.print(executor.override(options(c, plan, None, journal), step, by, reason))


@task(help={"plan": COMMON_HELP["plan"], "inventory": COMMON_HELP["inventory"],
            "journal": COMMON_HELP["journal"], "limit": COMMON_HELP["limit"],
            "yes": COMMON_HELP["yes"],
            "data": "also recreate every line database from the data phase's verified snapshot",
            "discard_writes_since_snapshot": "with --data once the databases are open again (after "
                                             "08:00): discard what was written since the snapshot",
            "by": "who decided to discard the writes (recorded)",
            "reason": "why (recorded)"})
@refusals
def rollback(c: Context, plan: str | None = None, inventory: str | None = None,
             journal: str | None = None, limit: str | None = None, yes: bool = False,
             data: bool = False, discard_writes_since_snapshot: bool = False, by: str = "",
             reason: str = "") -> None:
    """The way back: every component to the release it replaced, verified; with --data, the
    databases from the verified snapshot, row counts checked against its manifest. Recorded.
    Once the databases are live again, --data is refused (naming the rows that differ) unless
    --discard-writes-since-snapshot --by NAME --reason TEXT says so."""
    opts = options(c, plan, inventory, journal, limit=limit, yes=yes)
    discard = {"by": by, "reason": reason} if discard_writes_since_snapshot else None
    if (by or reason) and not discard_writes_since_snapshot:
        raise CutoverError("--by and --reason go with --discard-writes-since-snapshot", "nothing was changed")
    out = executor.rollback(opts, data=data, discard=discard)
    if out.get("discard_writes"):
        console.print(f"writes since the snapshot discarded by {by}: {reason}")
        for line in out["discard_writes"]["databases"]:
            console.print(f"  {line}")
    rows = out["versions"]
    console.print(f"rolled back: {len(rows)} probe(s) on {len({r['host'] for r in rows})} host(s) "
                  "report the previous release")
    for host, dbs in (out.get("data_restored") or {}).items():
        for db, r in dbs.items():
            console.print(f"{host} {db}: restored from the snapshot of {r['snapshot_created_at']}, "
                          f"{r['rows']:,} rows in {len(r['tables'])} tables match its manifest"
                          + (" (frozen, as the snapshot was: cutover.restore's 08:00 stage, or "
                             "invoke data.unfreeze after it, makes it read-write)"
                             if r.get("frozen") else ""))


@task(help={"plan": COMMON_HELP["plan"], "journal": COMMON_HELP["journal"],
            "output": "directory for report.md, .html and .json (default: beside the journal)"})
@refusals
def report(c: Context, plan: str | None = None, journal: str | None = None,
           output: str | None = None) -> None:
    """The record of the run: Markdown, self-contained HTML and JSON."""
    cfg = c.config.cutover
    the_plan, _ = lint_check(plan or cfg.plan)
    jpath = resolve(journal or cfg.journal)
    out = resolve(output) if output else jpath.parent
    for kind, path in render.build(the_plan, jpath, out).items():
        console.print(f"report ({kind}): {path}")
