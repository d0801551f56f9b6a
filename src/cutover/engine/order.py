"""The order a verb's steps run in: every step after the steps it depends on; among the steps
that are ready, the earliest planned start first, then the plan's own order."""

from __future__ import annotations

import datetime as dt
import heapq

from cutover.plan.model import Step


def ordered(steps: list[Step], plan_order: dict[str, int]) -> list[Step]:
    """Dependency order; among ready steps, the earliest planned start, then plan order."""
    ids = {step.id for step in steps}
    waiting_on = {step.id: sum(1 for dep in step.after if dep in ids) for step in steps}
    dependents: dict[str, list[Step]] = {step.id: [] for step in steps}
    for step in steps:
        for dep in step.after:
            if dep in ids:
                dependents[dep].append(step)
    never = dt.datetime.max.replace(tzinfo=dt.UTC)

    def key(step: Step) -> tuple:
        return (step.start or never, plan_order[step.id], step.id)

    ready = [(*key(step), step) for step in steps if waiting_on[step.id] == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        *_, step = heapq.heappop(ready)
        out.append(step)
        for dependent in dependents[step.id]:
            waiting_on[dependent.id] -= 1
            if waiting_on[dependent.id] == 0:
                heapq.heappush(ready, (*key(dependent), dependent))
    return out
