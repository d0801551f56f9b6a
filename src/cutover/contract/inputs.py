"""What a playbook receives (the engine's variables, the plan's and the operator's) and how
a run's work is told from the input checks every entry playbook starts with."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from cutover.paths import resolve

if TYPE_CHECKING:
    from cutover.ansible import PlaybookResult
    from cutover.plan.model import Plan, Step


class PlaybookVars(BaseModel):
    """The variables every playbook of a plan receives. A field left `None` is not passed.

    Which playbook needs which of them is said, and checked, by the playbook itself (its
    first play, `INPUT_PLAY`); a field no playbook reads does not belong here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # the plan's name: the snapshot's name on the database host, the hand-off's batch
    cutover_plan: str | None = None
    # the journal's random id (empty: no journal yet): a snapshot is kept, or refused, by it
    cutover_journal_id: str | None = None
    # <artifacts>/data/<plan>: where the export lives, across runs
    cutover_data_dir: str | None = None
    # a rehearsal (times mapped onto now; the next-day check starts the jobs itself)
    cutover_rehearsal: bool | None = None
    # the step's id (the restore's smoke records say which step wrote them)
    cutover_step: str | None = None
    # the plan's release manifest: what every host must run (deploy, restore, versions)
    cutover_release_manifest: str | None = None
    # verify.versions: a stopped service's HTTP probe fails (true) or reads "not running"
    cutover_require_running: bool | None = None
    # cutover.abort (N14, N18): the window is called off, so every host must run the release the
    # manifest replaces (its `previous`), and timed jobs this window never switched off stay as
    # they are (restore, verify-versions)
    cutover_abort: bool | None = None
    # the plan author's variables: plan.vars, then the step's vars (which win)
    plan_vars: dict[str, Any] = {}
    step_vars: dict[str, Any] = {}
    # a caller's options for the playbook's roles (e.g. pg_data_test_restore)
    options: dict[str, Any] = {}

    @classmethod
    def for_plan(cls, plan: Plan, *, artifacts: str | Path, journal_id: str, rehearsal: bool = False,
                 step: Step | None = None, options: dict[str, Any] | None = None) -> PlaybookVars:
        """What a playbook of `plan` receives (of `step`, when it runs as one)."""
        manifest = plan.plan.release_manifest
        return cls(cutover_plan=plan.plan.name, cutover_journal_id=journal_id,
                   cutover_data_dir=str(resolve(artifacts) / "data" / plan.plan.name),
                   cutover_rehearsal=rehearsal, cutover_step=step.id if step else None,
                   cutover_release_manifest=str(resolve(manifest)) if manifest else None,
                   plan_vars=dict(plan.plan.vars), step_vars=dict(step.vars) if step else {},
                   options=dict(options or {}))

    def to_extravars(self) -> dict[str, Any]:
        """The extra vars: the plan's vars, the step's, the caller's options, then the
        engine's own (which a plan's vars cannot override: `plan.check` refuses them)."""
        engine = {name: getattr(self, name) for name in ENGINE_VARS if getattr(self, name) is not None}
        return {**self.plan_vars, **self.step_vars, **self.options, **engine}


ENGINE_VARS: tuple[str, ...] = tuple(n for n in PlaybookVars.model_fields if n.startswith("cutover_"))

# `cutover_*` variables a playbook reads that the plan's `vars` (or a step's) supply, or an
# operator's `-e` when a playbook runs alone: never the engine.
PLAN_VARS: dict[str, str] = {
    "cutover_data_exclude_lines": "plan.vars: the insurance lines kept back (N5), a list; [] hands every "
                                  "line over (screen, export, handoff, reconcile, restore)",
    "cutover_period": "a gate step's vars: the period checked, YYYYMM (N1, N3)",
    "cutover_notice_from": "the notice's start as the plan writes it (freeze-collection, full-stop; "
                           "their default: the shipped plan's)",
    "cutover_notice_until": "when the channels come back, as the plan writes it (freeze-collection, "
                            "full-stop; their default: the shipped plan's)",
    "cutover_restart": "deploy.yml: restart each service on its new release instead of leaving it "
                       "stopped for the window (default false)",
    "cutover_job_tolerance": "check-jobs.yml: the share by which a job's output may differ from its "
                             "baseline (default 0.2)",
    "cutover_job_allow_empty": "check-jobs.yml: the timed jobs whose baseline of 0 rows is normal, a list "
                               "of names (default []: a 0-row baseline is a finding, N13)",
}

# Set by an operator's `-e` only (bench/overhead.py brings a lab back before a window), never by
# a plan: `plan.check` refuses it in plan.vars and a step's vars (a plan that could say it would
# start every host of a real window unchecked).
OPERATOR_ONLY_VARS: dict[str, str] = {
    "cutover_restore_without_release": "restore.yml: true starts the services without checking their "
                                       "programs against a release manifest (a lab brought back before "
                                       "a window); never inside one",
    "cutover_discard_writes_since_snapshot": "restore-snapshot.yml: true restores the snapshot over "
                                             "databases written since it, discarding those writes (N18); "
                                             "cutover.rollback --data sets it only after recording the "
                                             "operator's --discard-writes-since-snapshot, name and reason",
}

# A role's inputs (`<role>_*`) are its playbook's to set: a plan's vars travel as extra vars, which
# win over every include of the role (`version_verify_components: []` would verify nothing). These
# few are the plan author's on purpose.
PLAN_ROLE_OPTIONS: frozenset[str] = frozenset({"pg_data_test_restore"})

# The first play of every entry playbook: it asserts the inputs (tags: [always]). Hosts
# that only passed it did no work: the engine leaves them out of a step's hosts.
INPUT_PLAY = "Check inputs"

# Entry playbooks that check every host against the release manifest: a plan that runs one
# names its release_manifest (restore.yml: unless cutover_restore_without_release is true).
RELEASE_PLAYBOOKS = ("playbooks/deploy/deploy.yml", "playbooks/deploy/verify-versions.yml",
                     "playbooks/deploy/rollback.yml", "playbooks/restore/restore.yml")


def work_stats(result: PlaybookResult) -> dict[str, dict[str, int]]:
    """The per-host stats of a playbook's work: a host that only passed the input checks
    (`INPUT_PLAY`, which runs whatever the tags) did nothing, and is left out; one that
    failed them stays. No host left: the step's plays matched none (N18: never done)."""
    worked = {h for play, hosts in result.hosts_by_play.items() if play != INPUT_PLAY for h in hosts}
    return {h: s for h, s in result.stats.items()
            if h in worked or s.get("failures") or s.get("dark")}
