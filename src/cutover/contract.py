"""The one contract between the engine and the playbooks (issue #13).

Both directions live here, so a playbook and the Python that runs it cannot drift apart:

* **What a playbook receives.** `PlaybookVars`: the variables the engine passes, built by
  every caller that runs a plan's playbooks (the executor for a step and for the way back,
  `invoke data.*`, `invoke verify.versions`) and turned into extra vars by its one
  `to_extravars()`. The plan's own `vars` and a step's `vars` are the plan author's and
  merge in under the engine's. `PLAN_VARS` names the `cutover_*` variables a playbook reads
  that the plan (or an operator's `-e`) supplies instead. Every entry playbook checks what
  it needs in its first play, `INPUT_PLAY`, tagged `always`.
* **What a playbook hands back.** Every key a playbook publishes with
  `ansible.builtin.set_stats` has one model in `EVIDENCE`; `check_evidence` holds a
  playbook's stats to them before anything stores or reads them. A key the contract does
  not know, or a value of the wrong shape, is refused, naming the key and the playbook.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, StrictBool, TypeAdapter, ValidationError

from cutover.paths import resolve

if TYPE_CHECKING:
    from cutover.ansible import PlaybookResult
    from cutover.plan.model import Plan, Step

# ---------------------------------------------------------------------------- the inputs


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

# Set by an operator's `-e` only (bench/overhead.py brings a lab back before a window), never by
# a plan: `plan.check` refuses it in plan.vars and a step's vars (a plan that could say it would
# start every host of a real window unchecked).
OPERATOR_ONLY_VARS: dict[str, str] = {
    "cutover_restore_without_release": "restore.yml: true starts the services without checking their "
                                       "programs against a release manifest (a lab brought back before "
                                       "a window); never inside one",
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


# ---------------------------------------------------------------------------- the evidence
# Shapes are fixed (a list is a list, a required field is there, a flag is a real boolean);
# what is genuinely open (a gate's extra tables, a receiver's own words) is allowed as is.


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Nothing(_Closed):
    """`{}`: a step whose work did not run (check mode) or that was refused before it had
    a result records nothing."""


class Gate(_Open):
    """A gate's verdict (kind: gate steps): it passes only when `passed` is true."""

    passed: StrictBool
    summary: str
    findings: list[dict[str, Any] | str] = []
    requirement: str | None = None


class VersionRow(_Open):
    """What one probe of one component found on one host (roles/version_verify)."""

    host: str
    component: str
    expected: str | int | float
    probe: str
    found: Any
    ok: StrictBool


class FrozenDatabase(_Open):
    frozen: StrictBool
    guarded: StrictBool
    sessions_ended: int
    probe: str
    business_probe: str


class UnfrozenDatabase(_Open):
    frozen: StrictBool
    changed: StrictBool


class SnapshotTaken(_Open):
    files: int
    bytes: int
    database_bytes: int
    seconds: float
    toc_entries: int
    created_at: str
    tables: dict[str, int]
    manifest_sha256: str


class SnapshotKept(_Closed):
    skipped: str  # why this window's verified snapshot was kept


class SnapshotHost(_Open):
    changed: StrictBool
    dir: str
    databases: dict[str, SnapshotTaken | SnapshotKept]


class ScratchRestore(_Open):
    """verify-snapshot with pg_data_test_restore: the snapshot restored into a scratch database."""

    tables: int
    rows: int
    differences: dict[str, Any]


class VerifiedDatabase(_Open):
    verified: StrictBool
    frozen: StrictBool | None = None
    rows_differ: dict[str, int] = {}
    rows_differ_total: int | None = None
    test_restore: ScratchRestore | None = None


class RestoredDatabase(_Open):
    tables: dict[str, int]
    rows: int
    snapshot_created_at: str
    frozen: StrictBool


class ScreenedTable(_Open):
    table: str
    rows: int
    to_hand_over: int
    held_back: int
    by_rule: dict[str, int]


class ScreenedLine(_Open):
    line: str
    title: str
    database: str
    tables: list[ScreenedTable]
    rows: int
    held_back: int


class ExportedTable(_Open):
    table: str
    rows: int
    bytes: int
    sha256: str
    checksum: str


class ExportedLine(_Open):
    """A line's export manifest (its tables without the SQL), src/cutover/data/export.py."""

    format: str
    line: str
    title: str
    database: str
    server_version: str
    snapshot_at: str
    isolation: str
    tables: list[ExportedTable]
    rejected: dict[str, dict[str, int]]
    rows: int
    bytes: int


class SentFile(_Open):
    file: str
    bytes: int
    sha256: str
    resumed_at: int | None
    skipped: StrictBool


class Notified(_Open):
    targets: int
    delivered: StrictBool


class Handoff(_Open):
    """What is on the drop, src/cutover/data/handoff.py."""

    drop: str
    path: str
    files: list[SentFile]
    index_sha256: str
    bytes: int
    resumed: list[str]
    rows: dict[str, int]
    notified: Notified


class ReconciledTable(_Open):
    line: str
    table: str
    sent_rows: int | None
    received_rows: int | None
    sent_checksum: str | None
    received_checksum: Any  # the receiver's, as it wrote it
    status: str


class BackupFile(_Open):
    line: str
    file: str
    status: str


class Reconciliation(_Open):
    """The receipt against the manifests, src/cutover/data/reconcile.py."""

    batch: str
    receipt: str
    received_at: Any  # the receiver's words
    receiver: Any
    tables: list[ReconciledTable]
    backup: list[BackupFile]
    passed: StrictBool
    mismatches: int
    backup_mismatches: int


Host = str
Database = str

# One model per set_stats key (and so per meaning): the key → its shape.
EVIDENCE: dict[str, Any] = {
    "gate": Gate,  # stop/gate-*.yml, followup/check-jobs.yml
    "versions": list[VersionRow],  # roles/version_verify: deploy, verify-versions, rollback
    "collection_freeze": dict[Host, list[str]],  # stop/freeze-collection.yml: URLs answering the notice
    "freeze": dict[Host, dict[Database, FrozenDatabase]],  # data/freeze.yml
    "unfreeze": dict[Host, dict[Database, UnfrozenDatabase]],  # data/unfreeze.yml
    "snapshot": dict[Host, SnapshotHost | Nothing],  # data/snapshot.yml
    "snapshot_verified": dict[Host, dict[Database, VerifiedDatabase]],  # data/verify-snapshot.yml
    "data_restored": dict[Host, dict[Database, RestoredDatabase]],  # data/restore-snapshot.yml
    "screening": list[ScreenedLine],  # data/screen.yml
    "screening_excluded": list[str],
    "export": list[ExportedLine],  # data/export.yml
    "export_excluded": list[str],
    "handoff": Handoff | Nothing,  # data/handoff.yml
    "reconciliation": Reconciliation | Nothing,  # data/reconcile.yml
}
_ADAPTERS = {key: TypeAdapter(shape) for key, shape in EVIDENCE.items()}


def _short(exc: ValidationError, most: int = 3) -> str:
    """pydantic's errors, one line each: where in the value, and what is wrong."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:most]:
        where = ".".join(str(p) for p in err["loc"]) or "(the value)"
        got = "" if err["type"] == "missing" else repr(err.get("input"))
        got = f" (got {got[:60] + '…' if len(got) > 60 else got})" if got else ""
        parts.append(f"{where}: {err['msg']}{got}")
    more = f"; and {len(errors) - most} more" if len(errors) > most else ""
    return "; ".join(parts) + more


def check_evidence(evidence: dict[str, Any], playbook: str | Path) -> tuple[dict[str, Any], list[str]]:
    """Hold a playbook's set_stats to the contract: (the keys that conform, each value as
    the playbook published it, and one message per key that does not)."""
    good: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in evidence.items():
        adapter = _ADAPTERS.get(key)
        if adapter is None:
            problems.append(f"{playbook} published evidence `{key}`, which the contract does not know "
                            f"(cutover.contract.EVIDENCE: {', '.join(sorted(EVIDENCE))})")
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            problems.append(f"{playbook} published evidence `{key}` of the wrong shape: {_short(exc)}")
            continue
        good[key] = value
    return good, problems
