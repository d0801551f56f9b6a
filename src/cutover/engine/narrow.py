"""What a run narrowed with `--limit` does with each step (N17): the sites of the step it
reaches, those not done yet, and whether its dependencies are done where that work needs
them (engine/scope.py says which sites a step touches). The executor asks
`this_runs_part` before each step; a cross-verb dependency is checked up front with `missing`."""

from __future__ import annotations

from cutover.engine.journal import Journal
from cutover.engine.run import Run
from cutover.engine.session import Session
from cutover.engine.states import StepState
from cutover.plan.model import Step


def this_runs_part(run: Run, step: Step, number: int, total: int) -> bool:
    """Decide what this run does of the step (N17): the hosts of its sites within --limit
    that are not done yet, once its dependencies are done where that work needs them; else
    say why not. A site is recorded done only when every host the step has there ran: a
    limit naming some of a site's hosts runs those and leaves the site to do. Check mode
    records nothing, so it checks every step without waiting for dependencies."""
    session, journal = run.session, run.journal
    scope = session.scope()
    touches = frozenset(scope.step_sites(step))
    done_rows = journal.done_sites(step.id)
    done = set(touches) if done_rows is None else done_rows
    head = f"[{number}/{total}] {step.id}"
    if journal.step(step.id)["state"] == StepState.DONE and touches <= done:
        run.say(f"{head}: done earlier ({journal.step(step.id)['summary'] or 'ok'}); skipped")
        return False
    reached = reached_sites(session, step)
    if touches and not reached:
        run.say(f"{head}: not part of this run (its sites, {site_names(session, set(touches))}, "
                "are outside --limit)")
        run.left.append(step.id)
        return False
    todo = reached - done
    if touches and not todo:
        run.say(f"{head}: done earlier for {site_names(session, set(reached))}; skipped")
        return False
    held = {site: dep for site, dep in held_sites(session, journal, step).items() if site in todo}
    if held:  # an earlier step failed there while the others went on: its later work waits
        said = "; ".join(f"{dep} failed at {site_names(session, {site})}" for site, dep in held.items())
        run.say(f"{head}: held at {site_names(session, set(held))} ({said}): it runs there when that is done")
        run.left.append(step.id)
        todo -= held.keys()
        if not todo:
            return False
    if not run.opts.check:
        waits = {dep: missing for dep in step.after
                 if (missing := undone_at(session, journal, dep, todo or reached)) is not None}
        if waits:
            said = "; ".join(f"{dep} is not done for "
                             f"{site_names(session, missing) if missing else 'its sites'}"
                             for dep, missing in waits.items())
            run.say(f"{head}: left for later: {said}")
            run.left.append(step.id)
            return False
    hosts = scope.step_hosts(step)
    chosen = hosts & scope.limit_hosts(session.opts.limit)
    whole = frozenset(site for site in todo if {h for h in hosts if scope.site_of(h) == site} <= chosen)
    run.todo[step.id], run.touches[step.id] = whole, touches
    run.hosts[step.id] = frozenset(host for host in chosen if scope.site_of(host) in todo)
    notes = []
    if done - {""}:
        notes.append(f"done earlier for {site_names(session, done)}; "
                     f"now for {site_names(session, set(todo))}")
    if todo - whole:
        notes.append(f"only some of the step's hosts at {site_names(session, set(todo - whole))} are within "
                     "--limit: they run, and those sites stay to do until all their hosts have")
    run.notes[step.id] = notes
    return True


def reached_sites(session: Session, step: Step) -> frozenset[str]:
    """The sites of the step this run reaches (all of them without --limit)."""
    scope = session.scope()
    if not step.playbook and session.opts.limit is None:  # every site confirms, hosts or none
        return frozenset(scope.step_sites(step))
    reached = scope.limit_hosts(session.opts.limit)  # the controller too, without a limit: the root
    if not step.playbook:
        return frozenset(scope.step_sites(step) & scope.sites_of(reached))
    return frozenset(scope.sites_of(scope.step_hosts(step) & reached))


def undone_at(session: Session, journal: Journal, dep: str, sites: frozenset[str]) -> set[str] | None:
    """The sites the dependency is not done at that work at `sites` waits for; None: it is done.
    A site where a dependency of an on_site_failure: continue phase failed while others
    succeeded holds up only its own work: the other sites go on (N17)."""
    row = journal.step(dep)
    done = journal.done_sites(dep)
    if done is None:
        return None
    other = session.plan.step(dep)
    scope = session.scope()
    theirs = scope.step_sites(other) if other else set()
    contained = failed_while_others_went_on(session, journal, dep) if done else set()
    need = set().union(*(scope.related(site, theirs) - (contained - {site}) for site in sites)) \
        if theirs else set()
    missing = need - done
    if not missing and (theirs or (row is not None and row["state"] == StepState.DONE)):
        return None
    return missing


def held_sites(session: Session, journal: Journal, step: Step) -> dict[str, str]:
    """The sites where a step this one comes after (directly or not) failed while the other
    sites went on (on_site_failure: continue), with that step: no later work starts there."""
    plan, held = session.plan, {}
    upstream, queue = set(), list(step.after)
    while queue:
        dep = queue.pop()
        if dep not in upstream and (other := plan.step(dep)) is not None:
            upstream.add(dep)
            queue.extend(other.after)
    for dep in sorted(upstream):
        for site in failed_while_others_went_on(session, journal, dep):
            held.setdefault(site, dep)
    return held


def failed_while_others_went_on(session: Session, journal: Journal, step_id: str) -> set[str]:
    """The sites where the step failed while the others went on, as the journal recorded it
    (a failure of every site, or of no host, never is), when its phase lets them go on."""
    step = session.plan.step(step_id)
    phase = session.plan.phase(step.phase) if step else None
    if phase is None or phase.on_site_failure != "continue":
        return set()
    return journal.contained_failures(step_id)


def site_names(session: Session, sites: set[str]) -> str:
    tree = session.scope().tree
    shown = [tree.label(site) if site else "the inventory" for site in sorted(sites)]
    return ", ".join(shown[:6]) + (f" and {len(shown) - 6} more" if len(shown) > 6 else "")
