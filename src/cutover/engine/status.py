"""`cutover.status`: every step with its state, planned and actual times, who acted and
what evidence it left, grouped by site where the inventory has sites."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cutover.engine.journal import Journal
from cutover.errors import CutoverError
from cutover.lab.topology import load_inventory
from cutover.plan.model import Plan


def _dt(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _evidence_summary(ev: list[dict[str, Any]]) -> str:
    for e in reversed(ev):
        if e["kind"] == "gate":
            g = e["data"]
            return str(g.get("summary") or ("passed" if g.get("passed") else "failed"))
        if e["kind"] == "override":
            return f"override: {e['data']['by']}: {e['data']['reason']}"
        if e["kind"] == "confirmation":
            return f"confirmed by {e['data']['by']}"
    for e in reversed(ev):
        if e["kind"] == "result":
            stats = e["data"].get("stats", {})
            return f"{len(stats)} host(s), {sum(v.get('changed', 0) for v in stats.values())} change(s)"
    return ""


def collect(plan: Plan, journal: Journal | None, inventory=None) -> dict[str, Any]:
    sites: dict[str, str] = {}
    if inventory is not None:
        try:
            hv = load_inventory(inventory).get("_meta", {}).get("hostvars", {})
            sites = {h: v.get("cutover_site", "") for h, v in hv.items() if v.get("cutover_site")}
        except CutoverError:  # status must show even with a broken inventory
            sites = {}
    rows = {r["id"]: dict(r) for r in journal.steps()} if journal else {}
    overrides = journal.all("overrides") if journal else []
    confirmations = journal.all("confirmations") if journal else []
    attempts = journal.all("attempts") if journal else []
    out_steps = []
    for step in plan.steps():
        r = rows.get(step.id, {})
        ev = journal.evidence(step.id) if journal else []
        start, end = _dt(r.get("actual_start")), _dt(r.get("actual_end"))
        last = next((a for a in reversed(attempts) if a["step_id"] == step.id and not a["check_mode"]), None)
        by_site: dict[str, dict[str, int]] = {}
        if last and last.get("stats"):
            for host, st in json.loads(last["stats"]).items():
                site = sites.get(host, "—")
                agg = by_site.setdefault(site, {"hosts": 0, "failed": 0})
                agg["hosts"] += 1
                agg["failed"] += int(bool(st.get("failures") or st.get("dark")))
        out_steps.append({
            "id": step.id, "title": step.title, "phase": step.phase, "verb": step.verb,
            "kind": step.kind, "requirement": step.requirement,
            "owner": step.owner, "cooperating": step.cooperating,
            "state": r.get("state", "pending"),
            "planned_start": step.start.isoformat() if step.start else None,
            "planned_end": step.end.isoformat() if step.end else None,
            "actual_start": r.get("actual_start"), "actual_end": r.get("actual_end"),
            "duration_s": (end - start).total_seconds() if start and end else None,
            "attempts": r.get("attempts", 0),
            "acted_by": [f"override: {o['by']}" for o in overrides if o["step_id"] == step.id]
            + [f"confirmed: {c['by']}" for c in confirmations if c["step_id"] == step.id],
            "evidence_summary": r.get("summary") or _evidence_summary(ev),
            "evidence": ev,
            "sites": by_site,
        })
    return {
        "plan": plan.plan.name, "plan_hash": plan.digest,
        "journal": str(journal.path) if journal else None,
        "runs": journal.all("runs") if journal else [],
        "steps": out_steps,
        "overrides": overrides, "confirmations": confirmations,
        "notifications": journal.all("notifications") if journal else [],
        # N18: who let a data rollback discard writes made since the snapshot, and which
        "discarded_writes": [e["data"] | {"at": e["at"]} for e in journal.evidence("rollback")
                             if e["kind"] == "discard_writes"] if journal else [],
    }
