"""`cutover.status`: every step with its state, planned and actual times, who acted and
what evidence it left, grouped by site where the inventory has sites."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cutover.engine.journal import Journal
from cutover.engine.states import StepState
from cutover.errors import CutoverError
from cutover.inventory import hostvars
from cutover.plan.model import Plan, Step
from cutover.sites import SiteTree


def _dt(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _evidence_summary(evidence: list[dict[str, Any]]) -> str:
    for record in reversed(evidence):
        if record["kind"] == "gate":
            gate = record["data"]
            return str(gate.get("summary") or ("passed" if gate.get("passed") else "failed"))
        if record["kind"] == "override":
            return f"override: {record['data']['by']}: {record['data']['reason']}"
        if record["kind"] == "confirmation":
            return f"confirmed by {record['data']['by']}"
    for record in reversed(evidence):
        if record["kind"] == "result":
            stats = record["data"].get("stats", {})
            changed = sum(host_stats.get("changed", 0) for host_stats in stats.values())
            return f"{len(stats)} host(s), {changed} change(s)"
    return ""


def _site_confirmations(step: Step, tree: SiteTree,
                        confirmations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """For a step each site of a level confirms (N11, N12): who confirmed where, who is still to."""
    if not step.sites:
        return None
    confirmed = {row["site"]: {"by": row["by"], "note": row["note"], "at": row["at"]}
                 for row in reversed(confirmations) if row["step_id"] == step.id and row["site"]}
    level = tree.at_level(step.sites)
    return {"level": step.sites, "confirmed": {site: confirmed[site] for site in level if site in confirmed},
            "waiting": [site for site in level if site not in confirmed]}


def collect(plan: Plan, journal: Journal | None, inventory=None) -> dict[str, Any]:
    sites: dict[str, str] = {}
    tree = SiteTree({}, {})
    if inventory is not None:
        try:
            every_host = hostvars(inventory)
            sites = {host: variables["cutover_site"] for host, variables in every_host.items()
                     if variables.get("cutover_site")}
            tree = SiteTree.from_hostvars(every_host)
        except CutoverError:  # status must show even with a broken inventory
            sites = {}
    rows = {row["id"]: dict(row) for row in journal.steps()} if journal else {}
    overrides = journal.all("overrides") if journal else []
    confirmations = journal.all("confirmations") if journal else []
    attempts = journal.all("attempts") if journal else []
    out_steps = []
    for step in plan.steps():
        row = rows.get(step.id, {})
        evidence = journal.evidence(step.id) if journal else []
        start, end = _dt(row.get("actual_start")), _dt(row.get("actual_end"))
        last = next((attempt for attempt in reversed(attempts)
                     if attempt["step_id"] == step.id and not attempt["check_mode"]), None)
        by_site: dict[str, dict[str, int]] = {}
        if last and last.get("stats"):
            for host, host_stats in json.loads(last["stats"]).items():
                site = by_site.setdefault(sites.get(host, "—"), {"hosts": 0, "failed": 0})
                site["hosts"] += 1
                site["failed"] += int(bool(host_stats.get("failures") or host_stats.get("dark")))
        out_steps.append({
            "id": step.id, "title": step.title, "phase": step.phase, "verb": step.verb,
            "kind": step.kind, "requirement": step.requirement,
            "owner": step.owner, "cooperating": step.cooperating,
            "state": row.get("state", StepState.PENDING),
            "planned_start": step.start.isoformat() if step.start else None,
            "planned_end": step.end.isoformat() if step.end else None,
            "actual_start": row.get("actual_start"), "actual_end": row.get("actual_end"),
            "duration_s": (end - start).total_seconds() if start and end else None,
            "attempts": row.get("attempts", 0),
            "acted_by": [f"override: {override['by']}" for override in overrides
                         if override["step_id"] == step.id]
            + [f"confirmed: {confirmation['by']}"
               + (f" for {confirmation['site']}" if confirmation["site"] else "")
               for confirmation in confirmations if confirmation["step_id"] == step.id],
            "evidence_summary": row.get("summary") or _evidence_summary(evidence),
            "evidence": evidence,
            "sites": by_site,
            "site_states": journal.site_states(step.id) if journal else {},
            "site_confirmations": _site_confirmations(step, tree, confirmations),
        })
    return {
        "plan": plan.plan.name, "plan_hash": plan.digest,
        "journal": str(journal.path) if journal else None,
        "runs": journal.all("runs") if journal else [],
        "steps": out_steps,
        "overrides": overrides, "confirmations": confirmations,
        "notifications": journal.all("notifications") if journal else [],
        # N18: who let a data rollback discard writes made since the snapshot, and which
        "discarded_writes": [record["data"] | {"at": record["at"]} for record in journal.evidence("rollback")
                             if record["kind"] == "discard_writes"] if journal else [],
    }
