"""`invoke data.*`: the data phase's steps (N5–N7), each usable alone.

They run the very playbooks the plan's data phase runs, with the plan's variables, but
outside the journal (holding its lock, so never beside a running cutover.*): for a dry run
before the window, a re-check, or a repair after a failure. Inside a cutover,
`invoke cutover.stop` (the screening) and `invoke cutover.deploy` run them as journaled steps.
"""

from __future__ import annotations

import json
import time
from typing import Any

from invoke import Context, task

from cutover.ansible import run_playbook
from cutover.cli.common import refusals
from cutover.contract import PlaybookVars, check_evidence
from cutover.data.reconcile import table_text
from cutover.engine.session import RunOptions, Session
from cutover.errors import CutoverError
from cutover.inventory import run_limit
from cutover.paths import resolve
from cutover.plan.model import Plan
from cutover.ui import PlaybookProgress, console


def say(text: str) -> None:
    """Print what the hosts, the inventory and the receiver reported, as text: a table or
    title like `si_export.tables[person]` is never read as console markup."""
    console.print(text, markup=False, highlight=False)

HELP = {"plan": "plan file (default from invoke.yaml)", "inventory": "inventory (default: the plan's own)"}


def data_playbook_vars(plan: Plan, *, artifacts: str, journal_id: str,
                       extra: dict[str, Any] | None = None) -> PlaybookVars:
    """What a data playbook run alone receives (cutover.contract): the engine's variables
    (plan name, journal id, artifacts) and the plan's `vars`, as for the plan's step, but not
    that step's own `vars` and never the rehearsal flag; a task's options come as `extra`."""
    return PlaybookVars.for_plan(plan, artifacts=artifacts, journal_id=journal_id, options=extra)


def run_data_playbook(c: Context, name: str, plan: str | None, inventory: str | None,
                      extra: dict[str, Any] | None = None, *, show: Any = None,
                      journal: str | None = None, bind_journal: bool = False) -> dict[str, Any]:
    """Run playbooks/data/<name>.yml with the plan's variables and the journal's id (the
    default journal's, or `journal`); a failure is a refusal (after `show(evidence)`, when
    given, so that what was found is seen either way). With `bind_journal` the journal is
    created (and bound to the plan) if there is none yet: what the step makes carries its id."""
    cfg = c.config.cutover
    session = Session(RunOptions(plan=plan or cfg.plan, inventory=inventory, journal=journal or cfg.journal,
                                 artifacts=cfg.artifacts))
    playbook = f"playbooks/data/{name}.yml"
    # the journal's lock: never beside a cutover.* run (or another data.*) that is at work
    # on the same databases, export directory and drop
    held = session.journal(lock=f"data.{name}") if bind_journal else session.locked(f"data.{name}")
    with PlaybookProgress(f"data.{name}") as progress, held as bound:
        if name != "unfreeze":  # a called-off window hands nothing over, freezes nothing (N14, N18)
            with session.existing_journal() as the_journal:
                if the_journal is not None:
                    the_journal.refuse_if_called_off(f"data.{name}")
        journal_id = bound.identity() if bind_journal else session.journal_identity()
        extravars = data_playbook_vars(session.plan, artifacts=cfg.artifacts,
                                       journal_id=journal_id, extra=extra).to_extravars()
        result = run_playbook(resolve(playbook), session.inventory,
                              ident=f"data-{name}-{int(time.time())}",
                              artifacts_dir=resolve(cfg.artifacts) / "data-runs",
                              limit=run_limit(session.inventory), extravars=extravars,
                              on_progress=progress.update)
    evidence, wrong = check_evidence(result.evidence, playbook)
    if wrong:
        raise CutoverError(f"data.{name} failed\n  " + "\n  ".join(wrong)
                           + ("" if result.ok else f"\n{result.summary()}"),
                           f"log: {result.artifact_dir / 'stdout'}")
    if show is not None:
        show(evidence)
    if not result.ok:
        raise CutoverError(f"data.{name} failed\n{result.summary()}",
                           f"log: {result.artifact_dir / 'stdout'}")
    return evidence


@task(help=HELP)
@refusals
def screen(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Check the export's filters and quality rules on the live databases; count what they hold back (N5)."""
    evidence = run_data_playbook(c, "screen", plan, inventory)
    for line in evidence.get("screening") or []:
        say(f"{line['line']} {line['title']}: {len(line['tables'])} tables, {line['rows']:,} rows; "
                      f"{line['held_back']:,} will be held back for fixing after the cutover")
        for table in line["tables"]:
            if table["held_back"]:
                rules = ", ".join(f"{rule} {rows:,}" for rule, rows in table["by_rule"].items())
                say(f"  {table['table']}: {table['held_back']:,} of {table['rows']:,} ({rules})")
    if evidence.get("screening_excluded"):
        say("not handed over (the plan excludes them): "
                      f"{', '.join(evidence['screening_excluded'])}")


@task(help=HELP)
@refusals
def freeze(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Make every line database read-only, end open sessions, prove a write fails (N5)."""
    evidence = run_data_playbook(c, "freeze", plan, inventory)
    for host, databases in (evidence.get("freeze") or {}).items():
        for database, frozen in databases.items():
            say(f"{host} {database}: read-only, {frozen['sessions_ended']} session(s) ended; "
                          f"a test write was refused: {frozen['probe']}; business role "
                          f"{frozen.get('business_probe', '?')}")


@task(help=HELP)
@refusals
def unfreeze(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Make every line database read-write again and prove the business role writes (after a
    rollback --data past 08:00, which brings them back frozen as the snapshot was)."""
    evidence = run_data_playbook(c, "unfreeze", plan, inventory)
    for host, databases in (evidence.get("unfreeze") or {}).items():
        for database in databases:
            say(f"{host} {database}: read-write; a test write by its business role worked")


@task(help={**HELP, "verify": "only verify the existing snapshot (re-hash, pg_restore --list)",
            "test_restore": "verify by restoring into a scratch database and comparing row counts",
            "dir": "snapshot directory on the database host (default: the role's)",
            "replace": "replace a snapshot that another window (journal) made: its way back is lost",
            "journal": "the window's journal (default from invoke.yaml): its id marks the snapshot"})
@refusals
def snapshot(c: Context, plan: str | None = None, inventory: str | None = None, verify: bool = False,
             test_restore: bool = False, dir: str | None = None, replace: bool = False,
             journal: str | None = None) -> None:
    """Take (or with --verify, check) the verified snapshot of every line database (N5, N18).
    Made under the journal's id, as the plan's own step makes it; one that another window
    made is never replaced without --replace."""
    extra: dict[str, Any] = {"pg_data_test_restore": test_restore, "pg_data_snapshot_replace": replace}
    if dir:
        extra["pg_data_snapshot_dir"] = dir
    if verify or test_restore:
        evidence = run_data_playbook(c, "verify-snapshot", plan, inventory, extra, journal=journal)
        for host, databases in (evidence.get("snapshot_verified") or {}).items():
            for database, verified in databases.items():
                restored = verified.get("test_restore")
                say(f"{host} {database}: verified"
                              + (f", test restore {restored['rows']:,} rows match" if restored else ""))
        return
    # the snapshot carries the journal's id (created now if this is the window's first act), so
    # the plan's own snapshot step keeps it instead of refusing it as another window's
    evidence = run_data_playbook(c, "snapshot", plan, inventory, extra, journal=journal, bind_journal=True)
    for host, taken in (evidence.get("snapshot") or {}).items():
        for database, dump in (taken.get("databases") or {}).items():
            if "skipped" in dump:
                say(f"{host} {database}: {dump['skipped']}")
            else:
                say(f"{host} {database}: {dump['files']} files, {dump['bytes'] / 1048576:.1f} MiB "
                              f"in {dump['seconds']:.1f} s → {taken['dir']}/{database}")


@task(help=HELP)
@refusals
def export(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Export every line the plan hands over, with manifests and quality holds (N5)."""
    evidence = run_data_playbook(c, "export", plan, inventory)
    for manifest in evidence.get("export") or []:
        held = sum(sum(by_rule.values()) for by_rule in manifest["rejected"].values())
        say(f"{manifest['line']} {manifest['title']}: {len(manifest['tables'])} tables, "
                      f"{manifest['rows']:,} rows, {manifest['bytes'] / 1048576:.1f} MiB; "
                      f"{held} row(s) held back for fixing after the cutover")
    if evidence.get("export_excluded"):
        say(f"not exported (the plan excludes them): {', '.join(evidence['export_excluded'])}")


@task(help=HELP)
@refusals
def handoff(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Upload the export to the drop (resumable, verified there) and notify the receiver (N6)."""
    handed = run_data_playbook(c, "handoff", plan, inventory).get("handoff") or {}
    say(f"{len(handed.get('files', []))} file(s), {handed.get('bytes', 0):,} bytes at "
                  f"{handed.get('drop')}/{handed.get('path')}; "
                  f"resumed: {', '.join(handed.get('resumed') or []) or 'none'}")


@task(help={**HELP, "json": "machine-readable output"})
@refusals
def reconcile(c: Context, plan: str | None = None, inventory: str | None = None,
              json_: bool = False) -> None:
    """Compare the receiver's receipt with the manifests table by table; exit 1 on any difference (N7)."""

    def show(evidence: dict[str, Any]) -> None:
        reconciliation = evidence.get("reconciliation") or {}
        if json_:
            print(json.dumps(reconciliation, ensure_ascii=False, indent=2))
        elif reconciliation:
            say(table_text(reconciliation))

    reconciliation = run_data_playbook(c, "reconcile", plan, inventory, show=show).get("reconciliation") or {}
    if not json_:
        say("every table matches; the backup copy matches "
                      f"({len(reconciliation['backup'])} file(s))")
