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
from cutover.engine.executor import combine_limits
from cutover.engine.journal import Journal
from cutover.engine.lock import RunLock
from cutover.errors import CutoverError
from cutover.lab.lab import active_limit
from cutover.paths import resolve
from cutover.plan.lint import check as lint_check
from cutover.plan.model import Plan
from cutover.ui import PlaybookProgress, console

HELP = {"plan": "plan file (default from invoke.yaml)", "inventory": "inventory (default: the plan's own)"}


def data_playbook_vars(plan: Plan, *, artifacts: str, journal_id: str,
                       extra: dict[str, Any] | None = None) -> PlaybookVars:
    """What a data playbook run alone receives: what the plan's own step would (cutover.contract)."""
    return PlaybookVars.for_plan(plan, artifacts=artifacts, journal_id=journal_id, options=extra)


def run_data_playbook(c: Context, name: str, plan: str | None, inventory: str | None,
                      extra: dict[str, Any] | None = None, *, show: Any = None,
                      journal: str | None = None) -> dict[str, Any]:
    """Run playbooks/data/<name>.yml with the plan's variables and the journal's id (the
    default journal's, or `journal`); a failure is a refusal (after `show(evidence)`, when
    given, so that what was found is seen either way)."""
    cfg = c.config.cutover
    p, _ = lint_check(plan or cfg.plan, inventory)
    inv = resolve(inventory or p.plan.inventory)
    playbook = f"playbooks/data/{name}.yml"
    # the journal's lock: never beside a cutover.* run (or another data.*) that is at work
    # on the same databases, export directory and drop
    with RunLock(resolve(journal or cfg.journal)) as lock, PlaybookProgress(f"data.{name}") as progress:
        lock.acquire(f"data.{name}")
        extravars = data_playbook_vars(p, artifacts=cfg.artifacts, journal_id=journal_identity(c, journal),
                                       extra=extra).to_extravars()
        result = run_playbook(resolve(playbook), inv,
                              ident=f"data-{name}-{int(time.time())}",
                              artifacts_dir=resolve(cfg.artifacts) / "data-runs",
                              limit=combine_limits(active_limit(inv)), extravars=extravars,
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


def journal_identity(c: Context, journal: str | None = None) -> str:
    """The journal's id, as the plan's steps pass it; '' when there is no journal yet."""
    path = resolve(journal or c.config.cutover.journal)
    if not path.exists():
        return ""
    j = Journal.open(path)
    try:
        return j.identity()
    finally:
        j.close()


@task(help=HELP)
@refusals
def screen(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Check the export's filters and quality rules on the live databases; count what they hold back (N5)."""
    ev = run_data_playbook(c, "screen", plan, inventory)
    for m in ev.get("screening") or []:
        console.print(f"{m['line']} {m['title']}: {len(m['tables'])} tables, {m['rows']:,} rows; "
                      f"{m['held_back']:,} will be held back for fixing after the cutover")
        for t in m["tables"]:
            if t["held_back"]:
                rules = ", ".join(f"{k} {v:,}" for k, v in t["by_rule"].items())
                console.print(f"  {t['table']}: {t['held_back']:,} of {t['rows']:,} ({rules})")
    if ev.get("screening_excluded"):
        console.print(f"not handed over (the plan excludes them): {', '.join(ev['screening_excluded'])}")


@task(help=HELP)
@refusals
def freeze(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Make every line database read-only, end open sessions, prove a write fails (N5)."""
    ev = run_data_playbook(c, "freeze", plan, inventory)
    for host, dbs in (ev.get("freeze") or {}).items():
        for db, r in dbs.items():
            console.print(f"{host} {db}: read-only, {r['sessions_ended']} session(s) ended; "
                          f"a test write was refused: {r['probe']}; business role "
                          f"{r.get('business_probe', '?')}")


@task(help=HELP)
@refusals
def unfreeze(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Make every line database read-write again and prove the business role writes (after a
    rollback --data past 08:00, which brings them back frozen as the snapshot was)."""
    ev = run_data_playbook(c, "unfreeze", plan, inventory)
    for host, dbs in (ev.get("unfreeze") or {}).items():
        for db in dbs:
            console.print(f"{host} {db}: read-write; a test write by its business role worked")


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
        ev = run_data_playbook(c, "verify-snapshot", plan, inventory, extra, journal=journal)
        for host, dbs in (ev.get("snapshot_verified") or {}).items():
            for db, r in dbs.items():
                tr = r.get("test_restore")
                console.print(f"{host} {db}: verified" + (f", test restore {tr['rows']:,} rows match"
                                                          if tr else ""))
        return
    ev = run_data_playbook(c, "snapshot", plan, inventory, extra, journal=journal)
    for host, res in (ev.get("snapshot") or {}).items():
        for db, r in (res.get("databases") or {}).items():
            if "skipped" in r:
                console.print(f"{host} {db}: {r['skipped']}")
            else:
                console.print(f"{host} {db}: {r['files']} files, {r['bytes'] / 1048576:.1f} MiB "
                              f"in {r['seconds']:.1f} s → {res['dir']}/{db}")


@task(help=HELP)
@refusals
def export(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Export every line the plan hands over, with manifests and quality holds (N5)."""
    ev = run_data_playbook(c, "export", plan, inventory)
    for m in ev.get("export") or []:
        held = sum(sum(v.values()) for v in m["rejected"].values())
        console.print(f"{m['line']} {m['title']}: {len(m['tables'])} tables, {m['rows']:,} rows, "
                      f"{m['bytes'] / 1048576:.1f} MiB; {held} row(s) held back for fixing after the cutover")
    if ev.get("export_excluded"):
        console.print(f"not exported (the plan excludes them): {', '.join(ev['export_excluded'])}")


@task(help=HELP)
@refusals
def handoff(c: Context, plan: str | None = None, inventory: str | None = None) -> None:
    """Upload the export to the drop (resumable, verified there) and notify the receiver (N6)."""
    ev = run_data_playbook(c, "handoff", plan, inventory).get("handoff") or {}
    console.print(f"{len(ev.get('files', []))} file(s), {ev.get('bytes', 0):,} bytes at "
                  f"{ev.get('drop')}/{ev.get('path')}; "
                  f"resumed: {', '.join(ev.get('resumed') or []) or 'none'}")


@task(help={**HELP, "json": "machine-readable output"})
@refusals
def reconcile(c: Context, plan: str | None = None, inventory: str | None = None,
              json_: bool = False) -> None:
    """Compare the receiver's receipt with the manifests table by table; exit 1 on any difference (N7)."""

    def show(ev: dict[str, Any]) -> None:
        res = ev.get("reconciliation") or {}
        if json_:
            print(json.dumps(res, ensure_ascii=False, indent=2))
        elif res:
            console.print(table_text(res), markup=False, highlight=False)

    res = run_data_playbook(c, "reconcile", plan, inventory, show=show).get("reconciliation") or {}
    if not json_:
        console.print(f"every table matches; the backup copy matches ({len(res['backup'])} file(s))")
