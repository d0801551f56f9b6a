"""The one contract between the engine and the playbooks (issue #13).

**What a playbook receives.** `PlaybookVars`: the variables the engine passes, built by
every caller that runs a plan's playbooks (the executor for a step and for the way back,
`invoke data.*`, `invoke verify.versions`) and turned into extra vars by its one
`to_extravars()`. The plan's own `vars` and a step's `vars` are the plan author's and merge
in under the engine's. `PLAN_VARS` names the `cutover_*` variables a playbook reads that the
plan (or an operator's `-e`) supplies instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from cutover.paths import resolve

if TYPE_CHECKING:
    from cutover.plan.model import Plan, Step

# ---------------------------------------------------------------------------- the inputs


class PlaybookVars(BaseModel):
    """The variables every playbook of a plan receives. A field left `None` is not passed;
    a field no playbook reads does not belong here."""

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
}
