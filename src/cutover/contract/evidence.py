"""What a playbook hands back: one model per key it publishes with set_stats, and the check
that holds a playbook's stats to them before anything stores or reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, TypeAdapter, ValidationError

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
    # restore/restore.yml in a call-off (cutover.abort): the jobs hosts this window switched nothing off on
    "jobs_untouched": list[Host],
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
