"""The plan's escalation contacts (N14): each kind of fault has an owner, each contact a
name of its own and somewhere to be told. A fault that would reach nobody is found here,
before the window, not during it."""

from __future__ import annotations

from cutover.plan.model import FAULT_KINDS, Plan
from cutover.plan.problems import Add


def lint_escalation(plan: Plan, add: Add) -> None:
    contacts = plan.plan.escalation
    if not contacts:  # no escalation: faults go to the plan's notify targets only
        return
    names: dict[str, int] = {}
    for index, contact in enumerate(contacts):
        loc = ("plan", "escalation", index)
        if contact.name in names:
            add((*loc, "name"), f"escalation contact {contact.name!r} is named twice",
                "each contact has a name of its own: the journal records who was told by name")
        names.setdefault(contact.name, index)
        if not contact.notify and not contact.notify_var:
            add(loc, f"escalation contact {contact.name!r} has no target: a fault would reach nobody",
                "give it `notify:` (apprise URLs) or `notify_var:` (an inventory variable holding them, "
                "secrets from the vault)")
    for kind in FAULT_KINDS:
        if not any(kind in contact.handles for contact in contacts):
            add(("plan", "escalation"), f"no escalation contact handles {kind} faults (N14)",
                f"add {kind} to the `handles:` of the contact who owns them")
