"""`invoke cutover.*`: the operator's verbs."""

from __future__ import annotations

import datetime as dt
import json
import sys

from invoke import Context, Exit, task
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cutover.cli import detach as detach_mod
from cutover.cli.common import COMMON_HELP, refusals
from cutover.cli.serve import serve  # noqa: F401 - cutover.serve, the live status page: from_module takes it
from cutover.engine import abort as abort_mod
from cutover.engine import decisions
from cutover.engine import rollback as rollback_mod
from cutover.engine import status as status_mod
from cutover.engine.executor import Executor
from cutover.engine.forecast import forecast, rehearsal_journal, step_durations
from cutover.engine.journal_db import is_url
from cutover.engine.session import RunOptions, Session
from cutover.engine.states import StepState
from cutover.engine.waiting import left_text
from cutover.errors import CutoverError
from cutover.paths import resolve
from cutover.plan.times import fmt
from cutover.report import render
from cutover.ui import PlaybookProgress, console

VERB_HELP = {**COMMON_HELP, "detach": "run in a session of its own, logged under the artifacts directory: a "
                                      "closed terminal or dropped SSH session does not end it (follow with "
                                      "cutover.status or tail -f LOG)"}


def options(c: Context, plan: str | None, inventory: str | None, journal: str | None,
            **kw) -> RunOptions:
    cfg = c.config.cutover
    return RunOptions(plan=plan or cfg.plan, inventory=inventory, journal=journal or cfg.journal,
                      artifacts=cfg.artifacts, say=say_text,
                      progress_factory=PlaybookProgress, confirm_prompt=_ask, **kw)


def say_text(text: str) -> None:
    """What the engine says, as text: it carries names, notes and reasons operators typed,
    which are never Rich markup or emoji codes (a name `[/b]` would stop the run)."""
    console.print(text, markup=False, emoji=False)


def _ask(prompt: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{prompt} [type yes] ").strip().lower() == "yes"


def _verb(c: Context, verb: str, plan, inventory, journal, limit, check, rehearsal, yes,
          accept_plan_change, auto_confirm, detach) -> None:
    opts = options(c, plan, inventory, journal, limit=limit, check=check, rehearsal=rehearsal,
                   yes=yes, accept_plan_change=accept_plan_change, auto_confirm=auto_confirm)
    if detach:
        detach_mod.detach(c, verb, opts)
        return
    rc = Executor(verb, opts).run()
    if rc:
        raise Exit(code=rc)


def _make_verb(verb: str, doc: str):
    @task(name=verb, help=VERB_HELP)
    @refusals
    def run_verb(c: Context, plan: str | None = None, inventory: str | None = None,
                 journal: str | None = None, limit: str | None = None, check: bool = False,
                 rehearsal: bool = False, yes: bool = False, accept_plan_change: bool = False,
                 auto_confirm: bool = False, detach: bool = False) -> None:
        _verb(c, verb, plan, inventory, journal, limit, check, rehearsal, yes,
              accept_plan_change, auto_confirm, detach)

    run_verb.__doc__ = doc
    run_verb.body.__doc__ = doc
    return run_verb


stop = _make_verb("stop", "Run the plan's stop steps (gates, freeze, full stop); resumes where it stopped.")
deploy = _make_verb("deploy", "Run the plan's deploy steps (data, new programs, version checks).")
restore = _make_verb("restore", "Run the plan's restore steps in the prescribed order and times.")
followup = _make_verb("followup", "Run the plan's follow-up steps (the next-day checks).")


@task(help={"plan": COMMON_HELP["plan"], "journal": COMMON_HELP["journal"],
            "json": "machine-readable output with every evidence record (sites_matrix: by site)",
            "site": "only this site (a site id of cutover_sites): its row and the steps that touch it"})
@refusals
def status(c: Context, plan: str | None = None, journal: str | None = None,
           json: bool = False, site: str | None = None) -> None:  # the option is --json
    """Every site × phase, then every step: state, planned vs actual times, who acted, evidence."""
    cfg = c.config.cutover
    session = Session(options(c, plan, None, journal))
    the_plan = session.plan
    with session.existing_journal() as the_journal:
        collected = status_mod.collect(the_plan, the_journal, session.inventory)
    if site is not None:
        collected = status_mod.for_site(collected, site)
    if json:
        print(_json.dumps(collected, indent=2, ensure_ascii=False, default=str))
        return
    tz = the_plan.tz
    called = collected["called_off"]
    if called:  # N14: before anything else, the window is over
        console.print(Text(f"CALLED OFF by {called['by']} at {_short(called['at'], tz)} (cutover.abort run "
                           f"{called['run']}, {called['status']}): {called['reason']}", style="bold red"))
    for sleeper in collected["sleeping"]:
        say_text(_sleeper_text(sleeper, tz))
    if collected["sites_matrix"]:
        console.print(_matrix_table(collected["sites_matrix"], tz))
    expected = forecast(the_plan, step_durations(rehearsal_journal(resolve(cfg.artifacts))))
    table = Table(title=f"{the_plan.plan.name} — {collected['journal'] or 'no journal yet'}")
    for col in ("step", "phase", "state", "planned", "actual", "took", "forecast", "owner",
                "evidence / acted"):
        table.add_column(col, overflow="fold")
    colour = {"done": "green", "failed": "red", "running": "yellow", "waiting": "yellow",
              "interrupted": "yellow", "partial": "cyan", "overridden": "magenta"}
    for step in collected["steps"]:
        state = step["state"]
        planned = f"{_short(step['planned_start'], tz)}→{_short(step['planned_end'], tz)}"
        actual = (f"{_short(step['actual_start'], tz)}→{_short(step['actual_end'], tz)}"
                  if step["actual_start"] else "")
        took = f"{step['duration_s']:.0f}s" if step["duration_s"] is not None else ""
        sites = ", ".join(f"{site}: {hosts['hosts'] - hosts['failed']}/{hosts['hosts']}"
                          for site, hosts in step["sites"].items())
        if step["site_states"]:  # N17: where a step narrowed with --limit stands, site by site
            done = sorted(site for site, site_state in step["site_states"].items() if site_state == "done")
            others = sorted(f"{site} {site_state}" for site, site_state in step["site_states"].items()
                            if site_state != "done")
            sites = "; ".join(part for part in [sites, f"done for {', '.join(done)}" if done else "",
                                                ", ".join(others)] if part)
        evidence = "; ".join(part for part in [step["evidence_summary"], ", ".join(step["acted_by"]), sites]
                             if part)
        if step["site_confirmations"]:  # N11, N12: each site confirms; who has, who is still to
            per_site = step["site_confirmations"]
            evidence += (f"\n{per_site['level']} confirmed: "
                         + (", ".join(f"{site} ({row['by']})" for site, row in per_site["confirmed"].items())
                            or "none")
                         + (f"; waiting: {', '.join(per_site['waiting'])}" if per_site["waiting"] else ""))
        guess = _forecast_cell(expected[step["id"]], state, tz)
        shown = f"[{colour.get(state, 'white')}]{escape(state)}[/]"
        here = step.get("state_at_site")
        if here and here != state:  # --site: where the step stands at that site, then overall
            shown = f"[{colour.get(here, 'white')}]{escape(here)}[/] at {escape(site or '')}\n({shown})"
        table.add_row(f"{step['id']}\n[dim]{escape(step['title'])}[/]", step["phase"],
                      shown, planned, actual, took, guess,
                      escape(step["owner"] or ""), escape(evidence))  # names, reasons and host replies: text
    console.print(table)
    sent = collected["notifications"]
    missed = [message for message in sent if not message["ok"]]
    if sent:  # N16: a message that reached nobody is not delivered, and the operator sees it
        console.print(f"notifications: {len(sent) - len(missed)} of {len(sent)} delivered"
                      + ("" if not missed else "; [red]NOT delivered[/]: " + "; ".join(
                          escape(f"{message['event']} {message['title']} ({message['targets']} target(s))")
                          for message in missed[-5:])),
                      markup=True, highlight=False)
    for told in collected["escalations"][-5:]:  # N14: who was told of the last faults
        where = f" at {escape(told['sites'])}" if told["sites"] else ""
        console.print(f"escalated to {escape(told['contact'])} ({escape(told['kinds'])}): "
                      f"{escape(told['event'])} {escape(told['step_id'])}{where}"
                      + ("" if told["ok"] else " [red]NOT delivered[/]"), markup=True, highlight=False)


_json = json


def _sleeper_text(sleeper: dict, tz) -> str:
    """run 7 (cutover.restore, alice@ops1, pid 4711) waits for r1 until 2023-12-01 08:00 (3 h 04 min)"""
    until = dt.datetime.fromisoformat(sleeper["until"])
    who = f"run {sleeper['run']} (cutover.{sleeper['verb']}, {sleeper['operator']}"
    if not sleeper["alive"]:
        return (f"{who}) was waiting for {sleeper['step']} until {fmt(until, tz)}, but its process is "
                "gone: the next run of a verb records it as crashed")
    left = (until - dt.datetime.now(dt.UTC)).total_seconds()
    when = (f"in {left_text(left)}; the journal is free meanwhile" if left > 0
            else "time reached: it goes on as soon as the journal is free")
    return f"{who}, pid {sleeper['pid']}) waits for {sleeper['step']} until {fmt(until, tz)} ({when})"

# N17: the province, its cities and counties carry out the window together; the matrix says
# where each phase stands at each site. Short words, coloured; "—": the phase has no work there.
CELL = {"done": ("done", "green"), "overridden": ("overridden", "magenta"), "failed": ("FAILED", "bold red"),
        "running": ("running", "yellow"), "waiting": ("waiting", "yellow"), "partial": ("partial", "cyan"),
        "pending": ("pending", "dim")}


def _matrix_table(matrix: dict, tz) -> Table:
    # one column per phase, headed by its short id (n9-core → n9): fifteen phases fit a
    # terminal; the step list below has the titles
    ids = [phase["id"] for phase in matrix["phases"]]
    heads = [_short_id(phase_id) for phase_id in ids]
    heads = [head if heads.count(head) == 1 else phase_id for head, phase_id in zip(heads, ids, strict=True)]
    table = Table(title="by site (N17)", caption=", ".join(
        f"{head} {phase_id}" for head, phase_id in zip(heads, ids, strict=True) if head != phase_id),
        caption_justify="left")
    table.add_column("site", no_wrap=True)
    for head in heads:  # ids are the plan's: text, never markup
        table.add_column(Text(head), overflow="fold")
    table.add_column("actual", overflow="fold")
    indent = {"province": "", "cities": "  ", "counties": "    "}
    for row in matrix["rows"]:
        cells = []
        for phase in matrix["phases"]:
            cell = row["cells"][phase["id"]]
            word, style = CELL.get(cell["state"], (cell["state"], "white")) if cell else ("—", "dim")
            cells.append(Text(word, style=style))
        actual = row["actual"]
        took = (f"{_short(actual['start'], tz)}→{_short(actual['end'], tz)}" if actual["start"] else "")
        table.add_row(Text(f"{indent.get(row['level'], '')}{row['name']} ({row['site']})"), *cells, took)
    return table


def _short_id(phase_id: str) -> str:
    head = phase_id.split("-", 1)[0]
    return head if head[:1] == "n" and head[1:].isdigit() else phase_id


def _short(value: str | None, tz) -> str:
    return fmt(dt.datetime.fromisoformat(value), tz)[5:] if value else ""


def _forecast_cell(forecast_of_step: dict, state: str, tz) -> str:
    if state == StepState.DONE or forecast_of_step["expected_s"] is None:
        return ""
    return (f"~{forecast_of_step['expected_s']:.0f}s, ends {fmt(forecast_of_step['end'], tz)[5:]}"
            + ("" if forecast_of_step["fits"] else " [red]late[/]"))


@task(help={"step": "step id", "by": "who confirms (recorded)", "note": "what was done (recorded)",
            "site": "for a step confirmed site by site (sites: in the plan): the site that confirms; "
                    "may be given more than once",
            "plan": COMMON_HELP["plan"], "journal": COMMON_HELP["journal"]},
      iterable=["site"])
@refusals
def confirm(c: Context, step: str, by: str, note: str = "", site: list[str] | None = None,
            plan: str | None = None, journal: str | None = None) -> None:
    """Confirm a manual step (with --site, for one site of a step each site confirms), then
    run its verb again to continue."""
    said = decisions.confirm(options(c, plan, None, journal), step, by, note, site or [])
    say_text(said)  # names typed by operators: text


@task(help={"step": "step id", "by": "who decides (recorded)", "reason": "why (recorded)",
            "plan": COMMON_HELP["plan"], "journal": COMMON_HELP["journal"]})
@refusals
def override(c: Context, step: str, by: str, reason: str, plan: str | None = None,
             journal: str | None = None) -> None:
    """Let a failed gate (or an overdue step) pass; recorded and notified."""
    say_text(decisions.override(options(c, plan, None, journal), step, by, reason))


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
    out = rollback_mod.rollback(opts, data=data, discard=discard)
    if out.get("discard_writes"):
        say_text(f"writes since the snapshot discarded by {by}: {reason}")
        for line in out["discard_writes"]["databases"]:
            say_text(f"  {line}")
    probes = out["versions"]
    hosts = {probe["host"] for probe in probes}
    console.print(f"rolled back: {len(probes)} probe(s) on {len(hosts)} host(s) report the previous release")
    for host, databases in (out.get("data_restored") or {}).items():
        for database, restored in databases.items():
            console.print(f"{host} {database}: restored from the snapshot of "
                          f"{restored['snapshot_created_at']}, {restored['rows']:,} rows in "
                          f"{len(restored['tables'])} tables match its manifest"
                          + (" (frozen, as the snapshot was: cutover.restore's 08:00 stage, or "
                             "invoke data.unfreeze after it, makes it read-write)"
                             if restored.get("frozen") else ""))


@task(help={"plan": COMMON_HELP["plan"], "inventory": COMMON_HELP["inventory"],
            "journal": COMMON_HELP["journal"], "yes": COMMON_HELP["yes"],
            "rehearsal": "recorded as a rehearsal (the lab)",
            "accept_plan_change": COMMON_HELP["accept_plan_change"],
            "by": "who called the window off (recorded, notified)",
            "reason": "why (recorded, notified)",
            "past_point_of_no_return": "call it off although a step marked point_of_no_return has run "
                                       "(recorded with --by and --reason)"})
@refusals
def abort(c: Context, by: str = "", reason: str = "", past_point_of_no_return: bool = False,
          plan: str | None = None, inventory: str | None = None, journal: str | None = None,
          yes: bool = False, rehearsal: bool = False, accept_plan_change: bool = False) -> None:
    """Call the window off (N14, N18): everything back as before the stop, in the restore's
    order and checked: the previous release where the deploy switched one, databases read-write,
    services started, the notice removed, timed jobs as before; a hand-off already made is
    reported as withdrawn. Past the plan's point_of_no_return only with --past-point-of-no-return.
    The plan's verbs no longer run in this journal afterwards."""
    opts = options(c, plan, inventory, journal, yes=yes, rehearsal=rehearsal,
                   accept_plan_change=accept_plan_change)
    out = abort_mod.abort(opts, by, reason, past_point_of_no_return=past_point_of_no_return)
    probes = out.get("versions") or []
    console.print(f"called off: {len(out['stages'])} stage(s) done ({', '.join(out['stages'])}); "
                  f"{len(probes)} probe(s) on {len({probe['host'] for probe in probes})} host(s) report the "
                  "release that ran before the window")
    if out.get("jobs_untouched"):
        say_text("timed jobs left as they were (this window never switched them off) on "
                 f"{', '.join(sorted(out['jobs_untouched']))}")  # host names: text, not markup


@task(help={"plan": COMMON_HELP["plan"], "journal": COMMON_HELP["journal"],
            "output": "directory for report.md, .html and .json (default: beside the journal; for a "
                      "PostgreSQL journal, the artifacts directory)"})
@refusals
def report(c: Context, plan: str | None = None, journal: str | None = None,
           output: str | None = None) -> None:
    """The record of the run: Markdown, self-contained HTML and JSON."""
    session = Session(options(c, plan, None, journal))
    where = session.journal_path
    beside = resolve(c.config.cutover.artifacts) if is_url(where) else where.parent
    out = resolve(output) if output else beside
    for kind, path in render.build(session.plan, session.journal_path, out).items():
        console.print(f"report ({kind}): {path}")
