"""What the plan's steps run: each playbook exists and offers the step's tags, and the
`hosts:` patterns of its plays (checked against the inventory by cutover.plan.inventory)."""

from __future__ import annotations

import copy
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

from cutover.contract import EVIDENCE
from cutover.paths import resolve
from cutover.plan.model import Plan
from cutover.plan.problems import Add, close_match, rel
from cutover.yamlsafe import YamlRefused, safe_load


@cache
def playbook_tags(path: Path) -> frozenset[str]:
    """Tags a playbook offers: on plays, tasks, blocks, roles and what they import."""
    tags: set[str] = set()
    seen: set[Path] = set()

    def from_tasks(items: Any, base: Path) -> None:
        if not isinstance(items, list):
            return
        for item in items:
            if not isinstance(item, dict):
                continue
            tags.update(_as_list(item.get("tags")))
            for key in ("block", "rescue", "always"):
                from_tasks(item.get(key), base)
            for key in ("ansible.builtin.import_tasks", "import_tasks", "ansible.builtin.include_tasks",
                        "include_tasks"):
                target = item.get(key)
                if isinstance(target, dict):
                    target = target.get("file")
                if isinstance(target, str) and "{{" not in target:
                    from_file(base / target, base)
            for key in ("ansible.builtin.import_role", "import_role", "ansible.builtin.include_role",
                        "include_role"):
                if isinstance(item.get(key), dict):
                    from_role(str(item[key].get("name", "")))

    def from_role(name: str) -> None:
        role_dir = resolve("roles") / name.rsplit(".", maxsplit=1)[-1]
        for f in sorted((role_dir / "tasks").glob("*.yml")):
            from_file(f, f.parent)

    def from_file(f: Path, base: Path) -> None:
        if f in seen or not f.is_file():
            return
        seen.add(f)
        try:
            data = safe_load(f.read_text(encoding="utf-8"), f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return
        from_tasks(data, f.parent)

    try:
        plays = safe_load(path.read_text(encoding="utf-8"), path) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return frozenset()
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, dict):
            continue
        tags.update(_as_list(play.get("tags")))
        target = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if isinstance(target, str):
            tags.update(playbook_tags((path.parent / target).resolve()))
        for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            from_tasks(play.get(key), path.parent)
        for role in _as_list(play.get("roles")):
            name = role.get("role", role.get("name")) if isinstance(role, dict) else role
            if isinstance(role, dict):
                tags.update(_as_list(role.get("tags")))
            if isinstance(name, str):
                from_role(name)
    return frozenset(tags)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",")]
    return list(value) if isinstance(value, list) else [value]


def lint_playbooks(plan: Plan, add: Add, locs: dict[str, tuple[Any, ...]]) -> None:
    for step in plan.steps():
        loc = locs[step.id]
        # a step's `evidence:` is what its run must hand back to be done (the engine refuses
        # the step without it), so a key must be one a playbook can publish
        for key in step.evidence:
            if key not in EVIDENCE:
                add((*loc, "evidence"), f"step {step.id}: evidence {key!r} is not evidence any playbook "
                    "publishes", close_match(key, EVIDENCE, f"known: {', '.join(sorted(EVIDENCE))}"))
        if step.evidence and not step.playbook:
            add((*loc, "evidence"), f"step {step.id}: declares evidence but runs no playbook",
                "evidence comes from a playbook's set_stats; remove `evidence:` or give the step a playbook")
        if not step.playbook:
            continue
        path = resolve(step.playbook)
        if not path.is_file():
            add((*loc, "playbook"), f"step {step.id}: playbook {step.playbook} does not exist",
                "paths are relative to the project root (e.g. playbooks/stop/freeze.yml)")
            continue
        try:
            offered = playbook_tags(path) | {"always", "all"}
        except YamlRefused as exc:
            add((*loc, "playbook"), exc.problem, exc.hint, at=(rel(Path(exc.file)), exc.line))
            continue
        for tag in step.tags:
            if tag not in offered:
                add((*loc, "tags"), f"step {step.id}: playbook {step.playbook} has no tag {tag!r}",
                    f"tags it has: {', '.join(sorted(offered - {'always', 'all'})) or 'none'}")


def _plays(path: Path) -> list[dict[str, Any]]:
    """The plays of a playbook that name their hosts (unreadable: none; lint_playbooks says why)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return copy.deepcopy(_parsed_plays(text, str(path)))


@lru_cache(maxsize=256)
def _parsed_plays(text: str, path: str) -> list[dict[str, Any]]:
    """`_plays` of a playbook's text: one lint asks for the same playbook's plays dozens of
    times (each step, each check), and parsing YAML is the slow part; the same text parses
    to the same plays."""
    try:
        plays = safe_load(text, path) or []
    except (yaml.YAMLError, YamlRefused):
        return []
    return [p for p in plays if isinstance(p, dict) and isinstance(p.get("hosts"), str)] \
        if isinstance(plays, list) else []


def play_hosts(path: Path) -> list[str]:
    """The `hosts:` patterns of a playbook's plays (templated ones are skipped)."""
    return [str(p["hosts"]) for p in _plays(path) if "{{" not in p["hosts"]]


def work_plays(path: Path, tags: list[str]) -> list[dict[str, Any]]:
    """The plays that do a step's work: those its tags select (every play without tags), not
    the input checks each entry playbook begins with (`tags: [always]`)."""
    wanted = set(tags)
    out = []
    for play in _plays(path):
        own = {str(tag) for tag in _as_list(play.get("tags"))}
        if own == {"always"}:
            continue
        if not wanted or not own or own & (wanted | {"always"}):
            out.append(play)
    return out


def _stops_every_host(play: dict[str, Any]) -> str | None:
    """What in a play stops all its hosts when one fails, or runs once for all: the play's
    any_errors_fatal, serial or max_fail_percentage, a task's (or block's) any_errors_fatal
    or run_once. Roles and included files are not read: the engine also refuses at run time
    to count a site done when its hosts were stopped by another's failure."""
    if play.get("any_errors_fatal") is True:
        return "says any_errors_fatal: true"
    for key in ("serial", "max_fail_percentage"):
        if play.get(key) is not None:
            return f"says {key}"

    def walk(tasks: Any) -> str | None:
        for task in tasks if isinstance(tasks, list) else []:
            if not isinstance(task, dict):
                continue
            if task.get("any_errors_fatal") is True or task.get("run_once") not in (None, False):
                key = "any_errors_fatal: true" if task.get("any_errors_fatal") is True else "run_once"
                return f"has a task ({task.get('name', 'unnamed')!r}) with {key}"
            found = walk(task.get("block")) or walk(task.get("rescue")) or walk(task.get("always"))
            if found:
                return found
        return None

    return next(filter(None, (walk(play.get(key)) for key in ("pre_tasks", "tasks", "post_tasks"))), None)


def lint_site_failure(plan: Plan, add: Add, locs: dict[str, tuple[Any, ...]]) -> None:
    """A phase that lets the other sites go on when one fails (N17) needs plays that let
    them: a play or task that stops every host at the first failure, or a task run once for
    all, would make one site's failure everyone's."""
    for pi, phase in enumerate(plan.phases):
        if phase.on_site_failure != "continue":
            continue
        for step in phase.steps:
            path = resolve(step.playbook) if step.playbook else None
            for play in work_plays(path, step.tags) if path and path.is_file() else []:
                why = _stops_every_host(play)
                if why:
                    add(("phases", pi, "on_site_failure"),
                        f"phase {phase.id}: on_site_failure is continue, but play {play.get('name')!r} of "
                        f"{step.playbook} (step {step.id}) {why}: one site's failure would stop every site",
                        "leave it out of that play (ansible.cfg halts by default; the engine lets a "
                        "continue phase go on), or say on_site_failure: halt")
