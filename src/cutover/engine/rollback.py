"""`cutover.rollback`: the way back. Every component of the release manifest back to the
release it replaced, verified; with `data`, every line database recreated from the data
phase's snapshot (N18), which must verify first, and which is refused, naming the rows that
differ, once the databases are live again, unless the operator knowingly discards those
writes (recorded). Runs under the journal's lock, recorded as a run of its own."""

from __future__ import annotations

from typing import Any

from cutover.ansible import run_playbook
from cutover.contract import PlaybookVars, check_evidence, work_stats
from cutover.engine.journal import Journal, operator
from cutover.engine.leftovers import way_back_mark
from cutover.engine.session import RunOptions, Session
from cutover.engine.states import RunStatus
from cutover.errors import CutoverError
from cutover.paths import resolve
from cutover.plan.model import Plan

DATA_RESTORE_PLAYBOOK = "playbooks/data/restore-snapshot.yml"
DATA_VERIFY_PLAYBOOK = "playbooks/data/verify-snapshot.yml"
ROLLBACK_PLAYBOOK = "playbooks/deploy/rollback.yml"
EVIDENCE_STEP = "rollback"  # the way back's evidence is recorded under this step id


def rollback_vars(plan: Plan, *, artifacts: str, journal_id: str, rehearsal: bool) -> PlaybookVars:
    """What the way back's playbooks receive (cutover.contract)."""
    return PlaybookVars.for_plan(plan, artifacts=artifacts, journal_id=journal_id, rehearsal=rehearsal)


def rollback(opts: RunOptions, data: bool = False, discard: dict[str, str] | None = None) -> dict[str, Any]:
    """Switch every component of the plan's release manifest back to its previous release;
    with `data`, then recreate every line database from the data phase's snapshot (N18),
    which must verify first (a snapshot that does not verify is refused, nothing dropped).

    Runs under the journal's lock and is recorded as a run of its own, with what every
    probe reported afterwards, and the restored row counts, as evidence."""
    session = Session(opts)
    plan = session.plan
    if not plan.plan.release_manifest:
        raise CutoverError(f"plan {plan.plan.name} names no release_manifest; nothing to roll back")
    if discard is not None and (not data or not discard.get("by", "").strip()
                                or not discard.get("reason", "").strip()):
        raise CutoverError("--discard-writes-since-snapshot goes with --data, --by NAME and --reason TEXT",
                           "all are recorded in the journal and the report; nothing was changed")
    if not opts.yes:
        what = ("every component, and DROP and recreate every line database from the snapshot"
                if data else "every component")
        session.ask_if_production(f"Roll back {what}?", "answer yes, or pass --yes")
    out: dict[str, Any] = {}
    with session.journal(lock="rollback", accept_change=opts.accept_plan_change,
                         starts_run="cutover.rollback") as journal:
        run_id = journal.start_run("rollback", rehearsal=opts.rehearsal, check=False,
                                   plan_hash=plan.digest, options={"limit": opts.limit, "data": data},
                                   who=operator())
        extravars = rollback_vars(plan, artifacts=opts.artifacts, journal_id=journal.identity(),
                                  rehearsal=opts.rehearsal).to_extravars()
        stages = [("rollback", ROLLBACK_PLAYBOOK, "versions")]
        if data:  # the snapshot must verify before any host is touched
            stages.insert(0, ("rollback-verify", DATA_VERIFY_PLAYBOOK, "snapshot_verified"))
            stages.append(("rollback-data", DATA_RESTORE_PLAYBOOK, "data_restored"))
        for name, playbook, kind in stages:
            if name == "rollback-data" and "discard_writes" in out:  # recorded with name and reason
                extravars = {**extravars, "cutover_discard_writes_since_snapshot": True}
            found = _stage(session, journal, run_id, name, playbook, kind, extravars)
            out[kind] = found
            if name == "rollback-verify":  # before any host is touched: are the databases live again?
                _refuse_or_record_discard(journal, run_id, found, discard, out)
        journal.end_run(run_id, RunStatus.DONE)
        return out


def _stage(session: Session, journal: Journal, run_id: int, name: str, playbook: str, kind: str,
           extravars: dict[str, Any]) -> Any:
    """One playbook of the way back, its evidence recorded; a failure (or no host) ends the run."""
    good = run_stage(session, journal, run_id, name=name, playbook=playbook, extravars=extravars,
                     evidence_step=EVIDENCE_STEP, run_dir=f"run-{run_id:04d}-rollback", keep=(kind,))
    return good.get(kind) or ([] if kind == "versions" else {})


def run_stage(session: Session, journal: Journal, run_id: int, *, name: str, playbook: str,
              extravars: dict[str, Any], evidence_step: str, run_dir: str, tags: list[str] | None = None,
              limit: str | None = None, keep: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One playbook run of a recorded run outside the plan's steps (the way back, a call-off):
    its evidence held to the contract and kept under `evidence_step` (only the kinds in `keep`,
    when given); a failure, or a run whose plays matched no host, ends the run FAILED."""
    opts = session.opts
    with opts.progress(name) as on_progress:
        result = run_playbook(resolve(playbook), session.inventory, ident=f"run{run_id:04d}-{name}",
                              mark=way_back_mark(journal.identity(), run_id),  # a later run waits for it
                              artifacts_dir=resolve(opts.artifacts) / run_dir, tags=tags,
                              limit=limit if limit is not None else session.limit(),
                              extravars=extravars, on_progress=on_progress)
    log = f"log: {result.artifact_dir / 'stdout'}"
    # a --limit without the hosts (Ansible refuses a limit that leaves none with rc 1): nothing done there
    if not work_stats(result) and (result.ok or (opts.limit and result.rc == 1)):
        journal.end_run(run_id, RunStatus.FAILED)
        raise CutoverError(f"{name}: its plays match no host under --limit {opts.limit}; nothing "
                           "was done there", "run it with a limit that includes those hosts")
    good, wrong = check_evidence(result.evidence, playbook)
    if wrong:  # held to the contract before it is stored, as a step's is
        journal.end_run(run_id, RunStatus.FAILED)
        raise CutoverError(f"{name} failed:\n  " + "\n  ".join(wrong)
                           + ("" if result.ok else "\n" + result.summary()), log)
    for kind, found in good.items():
        if keep is None or kind in keep:
            journal.add_evidence(evidence_step, kind, found)
    if not result.ok:
        journal.end_run(run_id, RunStatus.FAILED)
        raise CutoverError(f"{name} failed:\n" + result.summary(), log)
    return good


def _reopened(verified: dict[str, Any]) -> list[str]:
    """Databases that are live again (not frozen) or whose rows differ from the snapshot, per
    the verification: what a restore would throw away. A missing answer counts as live."""
    out = []
    for host, databases in sorted((verified or {}).items()):
        for database, answer in sorted((databases or {}).items()):
            differ = answer.get("rows_differ_total")
            if answer.get("frozen") is not True or differ != 0:
                tables = ", ".join(f"{table} {rows:+d}"
                                   for table, rows in (answer.get("rows_differ") or {}).items())
                state = "open for business again" if answer.get("frozen") is not True else "frozen"
                out.append(f"{host} {database} ({state}): {differ if differ is not None else '?'} row(s) "
                           "differ from the snapshot" + (f" ({tables})" if tables else ""))
    return out


def _refuse_or_record_discard(journal: Journal, run_id: int, verified: dict[str, Any],
                              discard: dict[str, str] | None, out: dict[str, Any]) -> None:
    """N18: restoring a snapshot over databases that are live again throws away what business
    wrote since; that needs a name and a reason, recorded, or the rollback stops here."""
    live = _reopened(verified)
    if not live:
        return
    if not discard:
        journal.end_run(run_id, RunStatus.REFUSED)
        raise CutoverError(
            "the databases have changed since the snapshot (open for business again, or written "
            "before it was taken); restoring it would discard that:\n  " + "\n  ".join(live)
            + "\nnothing was changed",
            "to discard those writes knowingly: invoke cutover.rollback --data "
            "--discard-writes-since-snapshot --by NAME --reason TEXT (recorded)")
    out["discard_writes"] = {**discard, "databases": live}
    journal.add_evidence(EVIDENCE_STEP, "discard_writes", out["discard_writes"])
