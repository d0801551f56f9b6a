"""Escalation (N14): a fault is told to the escalation contact that owns its kind, with the
step, the sites and the evidence; the journal records who was told what, when, and whether
it reached them.

The notice gives two owners: system-level faults go to the section that coordinates the
vendors and the cloud provider; business-continuity problems to the division that drafts
the contingency plan. How each fault routes (docs/plan-reference.md, "Escalation"):

- a failed step (its playbook, its evidence contract): the step's `fault`, by default
  `system` for a playbook step (something in the systems broke) and `business` for a gate
  that found problems (a gate checks that the agencies finished their business: N1, N3);
  a gate that gave no verdict (its playbook broke) is `system`;
- a site failure (`on_site_failure: continue`): the step's kind as above, and `business`:
  that site's people are without the service the others have again;
- a missed `due_by`: `business`, whatever the step: the times were announced to the
  agencies and the public, and a late stage is a continuity question;
- an override: every contact: it waives a safeguard, which all who answer for the window
  must know.
"""

from __future__ import annotations

from pathlib import Path

from cutover.engine import notify
from cutover.plan.model import FAULT_KINDS, Contact, Plan, Step

EVENTS = ("failure", "site_failure", "overdue", "override")
KIND_NAMES = {"system": "系统级故障 / system", "business": "业务衔接 / business continuity"}
MOST_LINES = 40  # of evidence in one message; the journal and the report have the rest


def fault_kind(step: Step, verdict: bool = True) -> str:
    """Whose the step's own failure is: its (or its phase's) `fault`, else business for a gate
    that gave its verdict and system for anything else."""
    return step.fault or ("business" if step.kind == "gate" and verdict else "system")


def kinds_of(event: str, step: Step, verdict: bool = True) -> tuple[str, ...]:
    """The kinds of fault an event is (the module's docstring says why)."""
    if event == "failure":
        return (fault_kind(step, verdict),)
    if event == "site_failure":
        return tuple(dict.fromkeys((fault_kind(step, verdict), "business")))
    if event == "overdue":
        return ("business",)
    if event == "override":
        return FAULT_KINDS
    raise ValueError(f"no escalation for event {event!r}")


def owners(plan: Plan, kinds: tuple[str, ...]) -> list[Contact]:
    return [contact for contact in plan.plan.escalation if set(contact.handles) & set(kinds)]


def contact_urls(plan: Plan, inventory: Path) -> dict[str, list[str]]:
    """Each contact's apprise URLs: its `notify`, then its `notify_var` from the inventory."""
    out: dict[str, list[str]] = {}
    for contact in plan.plan.escalation:
        urls = list(contact.notify)
        if contact.notify_var:
            urls += [url for url in notify.inventory_urls(inventory, contact.notify_var) if url not in urls]
        out[contact.name] = urls
    return out


def escalate(plan: Plan, journal, urls: dict[str, list[str]], *, event: str, step: Step, sites: str,
             evidence: str, at: str, operator: str, rehearsal: bool,
             verdict: bool = True) -> list[tuple[str, bool]]:
    """Tell each contact that owns the event's kind; record each message. Returns (contact,
    delivered) per contact told: delivered only when the contact had a target and every
    target took it. `verdict`: False for a gate that gave none."""
    kinds = kinds_of(event, step, verdict)
    lines = [line for line in evidence.splitlines() if line.strip()]
    if len(lines) > MOST_LINES:
        lines = [*lines[:MOST_LINES], f"… and {len(lines) - MOST_LINES} more line(s): see cutover.status"]
    told = []
    for contact in owners(plan, kinds):
        mine = [kind for kind in kinds if kind in contact.handles]
        title, body = notify.render(
            event, plan=plan, subject=f"{step.id} {step.title}", phase=plan.phase(step.phase), detail="",
            operator=operator, at=at, rehearsal=rehearsal,
            escalation={"contact": contact, "kinds": [KIND_NAMES[kind] for kind in mine], "step": step,
                        "sites": sites, "evidence": lines})
        targets = urls.get(contact.name, [])
        ok = notify.deliver(targets, title, body)
        journal.record_escalation(event=event, kinds=mine, contact=contact.name, step_id=step.id, sites=sites,
                                  title=title, body=body, targets=len(targets), ok=ok)
        told.append((contact.name, ok))
    return told
