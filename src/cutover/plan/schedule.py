"""The plan's own shape and schedule: unique ids, owners (N15), windows, dependencies and
their order, the verbs in order, and windows an earlier rehearsal did not fit."""

from __future__ import annotations

from typing import Any

from cutover.plan.loader import LoadedYaml
from cutover.plan.model import VERBS, Plan
from cutover.plan.problems import Add, close_match

Locs = dict[str, tuple[Any, ...]]


def step_locs(plan: Plan) -> Locs:
    """Where each step is in the plan's document (for its line)."""
    return {s.id: ("phases", pi, "steps", si)
            for pi, p in enumerate(plan.phases) for si, s in enumerate(p.steps)}


def lint_ids_windows_owners(plan: Plan, doc: LoadedYaml, add: Add, locs: Locs) -> dict[str, Any]:
    by_id: dict[str, Any] = {}
    seen_phases: set[str] = set()
    for pi, phase in enumerate(plan.phases):
        if phase.id in seen_phases:
            add(("phases", pi, "id"), f"duplicate phase id {phase.id!r}", "every phase id must be unique")
        seen_phases.add(phase.id)
        if phase.start and phase.end and phase.end < phase.start:
            add(("phases", pi, "due_by"), f"phase {phase.id}: due_by {phase.due_by} is before "
                f"not_before {phase.not_before}", "swap them or fix the date")
        for si, step in enumerate(phase.steps):
            loc = ("phases", pi, "steps", si)
            if step.id in by_id:
                add((*loc, "id"), f"duplicate step id {step.id!r}",
                    f"first used at line {doc.line(locs[step.id])}; step ids are unique in a plan")
            else:
                by_id[step.id] = step
            if not step.owner:
                add(loc, f"step {step.id} has no owner (责任部门)",
                    "give the step or its phase an `owner:` (N15)")
            if step.start and step.end and step.end < step.start:
                add((*loc, "due_by"), f"step {step.id}: due_by {step.due_by or phase.due_by} is "
                    f"before not_before {step.not_before or phase.not_before}", "fix the window")
            if step.kind in ("playbook", "gate") and not step.playbook:
                add(loc, f"step {step.id} is a {step.kind} step without a playbook",
                    "add `playbook:` or make it a manual step")
    return by_id


def lint_dependencies(plan: Plan, add: Add, locs: Locs, by_id: dict[str, Any]) -> None:
    for step in plan.steps():
        loc = locs[step.id]
        for dep in step.after:
            if dep not in by_id:
                add((*loc, "after"), f"step {step.id} depends on unknown step {dep!r}",
                    close_match(dep, by_id))
                continue
            other = by_id[dep]
            if step.start and other.start and step.start < other.start:
                add((*loc, "after"), f"step {step.id} is scheduled ({_t(step.start)}) before "
                    f"{dep} ({_t(other.start)}), which it depends on",
                    "move its not_before later, or drop the dependency")
        if step.recheck_of is not None:  # N3 checked again: an earlier gate it depends on
            other = by_id.get(step.recheck_of)
            if other is None or other.kind != "gate" or step.recheck_of not in _upstream(step, by_id):
                add((*loc, "recheck_of"), f"step {step.id} checks again {step.recheck_of!r}, which is not "
                    "a gate it depends on", "name a gate step of this plan that this one comes after "
                    "(through after:)" if other is not None else close_match(step.recheck_of, by_id))
    cycle = _find_cycle({s.id: [d for d in s.after if d in by_id] for s in plan.steps()})
    if cycle:
        add((*locs[cycle[0]], "after"), "dependency cycle: " + " → ".join([*cycle, cycle[0]]),
            "a step cannot wait for itself; remove one of these `after:` entries")


def _upstream(step: Any, by_id: dict[str, Any]) -> set[str]:
    """Every step `step` depends on, through `after`, transitively."""
    seen: set[str] = set()
    todo = list(step.after)
    while todo:
        dep = todo.pop()
        if dep in seen or dep not in by_id:
            continue
        seen.add(dep)
        todo += by_id[dep].after
    return seen


def lint_verb_order(plan: Plan, add: Add, locs: Locs) -> None:
    """Each verb's steps start no earlier than every step of the verbs before it."""
    latest: dict[str, tuple[Any, Any]] = {}
    for step in plan.steps():
        if step.start and (step.verb not in latest or step.start > latest[step.verb][0]):
            latest[step.verb] = (step.start, step)
    for step in plan.steps():
        for earlier in VERBS[: VERBS.index(step.verb)]:
            if earlier in latest and step.start and step.start < latest[earlier][0]:
                other = latest[earlier][1]
                add((*locs[step.id], "not_before"), f"{step.verb} step {step.id} ({_t(step.start)}) "
                    f"is scheduled before {earlier} step {other.id} ({_t(other.start)}) it follows",
                    f"{step.verb} comes after {earlier}: fix the dates or the phase's verb")
                break


def lint_durations(plan: Plan, add: Add, durations: dict[str, float]) -> None:
    """Warn when a phase took longer in an earlier rehearsal than its window allows."""
    for pi, phase in enumerate(plan.phases):
        took = durations.get(phase.id)
        if took and phase.start and phase.end:
            window = (phase.end - phase.start).total_seconds()
            if took > window:
                add(("phases", pi), f"phase {phase.id} took {_dur(took)} in the last rehearsal "
                    f"but its window is {_dur(window)}", "widen the window or speed up its steps",
                    "warning")


def _t(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M")


def _dur(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{seconds:.0f}s"


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
