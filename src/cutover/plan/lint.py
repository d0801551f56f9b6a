"""`plan.check`: every problem as `file:line: message`, with a hint. Never a traceback.

Errors stop a run before the first host is touched; warnings are printed and recorded.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cutover.contract import ENGINE_VARS, OPERATOR_ONLY_VARS, PLAN_ROLE_OPTIONS, RELEASE_PLAYBOOKS
from cutover.data import sql
from cutover.errors import CutoverError
from cutover.inventory import load_inventory
from cutover.paths import resolve
from cutover.plan.loader import LoadedYaml, load_yaml
from cutover.plan.model import VERBS, Plan, ValidationError, digest_of, resolve_times
from cutover.yamlsafe import YamlRefused, safe_load


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    hint: str = ""
    severity: str = "error"  # error, warning

    def __str__(self) -> str:
        tail = f"\n    hint: {self.hint}" if self.hint else ""
        label = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}: {label}{self.message}{tail}"


class PlanInvalid(CutoverError):
    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        super().__init__("\n".join(str(p) for p in problems) +
                         f"\n{len(errors)} error(s): the plan was not run", code=1)
        self.problems = problems


def _pydantic_message(err: dict[str, Any]) -> tuple[str, str]:
    kind, loc = err["type"], err["loc"]
    field = str(loc[-1]) if loc else "plan"
    if kind == "extra_forbidden":
        return f"unknown key {field!r}", "check the spelling against docs/plan-reference.md"
    if kind == "missing":
        return f"missing required key {field!r}", "see docs/plan-reference.md for required keys"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{field}: {err['input']!r} is not one of {expected}", ""
    if kind == "string_pattern_mismatch":
        return f"{field}: {err['input']!r} is not a valid id", "use lower-case letters, digits, - _ ."
    if kind == "too_short":
        return f"{field}: must not be empty", ""
    msg = err["msg"].removeprefix("Value error, ")
    return f"{field}: {msg}", ""


def load_plan(path: str | Path, inventory: str | Path | None = None,
              journal_durations: dict[str, float] | None = None) -> tuple[Plan | None, list[Problem]]:
    """Load, validate and lint a plan. Returns the plan (None if unusable) and problems."""
    path = resolve(path)
    doc = load_yaml(path)  # syntax errors raise with file:line
    name = str(path.relative_to(resolve("."))) if path.is_relative_to(resolve(".")) else str(path)
    problems: list[Problem] = []

    def add(loc: tuple[Any, ...], message: str, hint: str = "", severity: str = "error",
            at: tuple[str, int] | None = None) -> None:
        """A problem at loc in the plan, or `at` (file, line) in another file."""
        file, line = at or (name, doc.line(loc))
        problems.append(Problem(file, line, message, hint, severity))

    if not isinstance(doc.data, dict):
        add((), "a plan is a mapping with `plan:` and `phases:`")
        return None, problems
    try:
        plan = Plan.model_validate(doc.data)
    except ValidationError as exc:
        for err in exc.errors():
            add(tuple(err["loc"]), *_pydantic_message(err))
        return None, sorted(problems, key=lambda p: p.line)
    plan.path, plan.digest = path, digest_of(path)
    time_errors: list[tuple[tuple[Any, ...], str, str]] = []
    resolve_times(plan, time_errors)
    for loc, msg, hint in time_errors:
        add(loc, msg, hint)
    _lint(plan, doc, add, inventory, journal_durations or {})
    problems.sort(key=lambda p: (p.line, p.severity))
    return plan, problems


def check(path: str | Path, inventory: str | Path | None = None,
          journal_durations: dict[str, float] | None = None) -> tuple[Plan, list[Problem]]:
    """Load and lint; raise PlanInvalid when there is any error."""
    plan, problems = load_plan(path, inventory, journal_durations)
    if plan is None or any(p.severity == "error" for p in problems):
        raise PlanInvalid(problems)
    return plan, problems


def _step_locs(plan: Plan) -> dict[str, tuple[Any, ...]]:
    return {s.id: ("phases", pi, "steps", si)
            for pi, p in enumerate(plan.phases) for si, s in enumerate(p.steps)}


def _lint(plan: Plan, doc: LoadedYaml, add, inventory: str | Path | None,
          durations: dict[str, float]) -> None:
    locs = _step_locs(plan)
    by_id = _lint_ids_windows_owners(plan, doc, add, locs)
    _lint_dependencies(plan, add, locs, by_id)
    _lint_verb_order(plan, add, locs)
    _lint_playbooks(plan, add, locs)
    _lint_data_exclusion(plan, add)
    _lint_inventory(plan, add, locs, inventory)
    _lint_release_manifest(plan, add, locs)
    _lint_engine_vars(plan, add, locs)
    _lint_durations(plan, add, durations)


def _lint_ids_windows_owners(plan: Plan, doc: LoadedYaml, add, locs) -> dict[str, Any]:
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


def _lint_dependencies(plan: Plan, add, locs, by_id: dict[str, Any]) -> None:
    for step in plan.steps():
        loc = locs[step.id]
        for dep in step.after:
            if dep not in by_id:
                add((*loc, "after"), f"step {step.id} depends on unknown step {dep!r}",
                    _close_match(dep, by_id))
                continue
            other = by_id[dep]
            if step.start and other.start and step.start < other.start:
                add((*loc, "after"), f"step {step.id} is scheduled ({_t(step.start)}) before "
                    f"{dep} ({_t(other.start)}), which it depends on",
                    "move its not_before later, or drop the dependency")
    cycle = _find_cycle({s.id: [d for d in s.after if d in by_id] for s in plan.steps()})
    if cycle:
        add((*locs[cycle[0]], "after"), "dependency cycle: " + " → ".join([*cycle, cycle[0]]),
            "a step cannot wait for itself; remove one of these `after:` entries")


def _lint_verb_order(plan: Plan, add, locs) -> None:
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


def _lint_durations(plan: Plan, add, durations: dict[str, float]) -> None:
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


def _close_match(word: str, known) -> str:
    match = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {match[0]!r}?" if match else "check the step ids in this plan"


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


# ------------------------------------------------------------------ playbooks and tags


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


def _lint_playbooks(plan: Plan, add, locs) -> None:
    for step in plan.steps():
        if not step.playbook:
            continue
        loc = locs[step.id]
        path = resolve(step.playbook)
        if not path.is_file():
            add((*loc, "playbook"), f"step {step.id}: playbook {step.playbook} does not exist",
                "paths are relative to the project root (e.g. playbooks/stop/freeze.yml)")
            continue
        try:
            offered = playbook_tags(path) | {"always", "all"}
        except YamlRefused as exc:
            add((*loc, "playbook"), exc.problem, exc.hint, at=(_rel(Path(exc.file)), exc.line))
            continue
        for tag in step.tags:
            if tag not in offered:
                add((*loc, "tags"), f"step {step.id}: playbook {step.playbook} has no tag {tag!r}",
                    f"tags it has: {', '.join(sorted(offered - {'always', 'all'})) or 'none'}")


# ------------------------------------------------------------------ inventory


def _lint_inventory(plan: Plan, add, locs, inventory: str | Path | None) -> None:
    inv_path = resolve(inventory or plan.plan.inventory)
    try:
        data = load_inventory(inv_path)
    except YamlRefused as exc:
        add(("plan", "inventory"), exc.problem, exc.hint, at=(_rel(Path(exc.file)), exc.line))
        return
    except CutoverError as exc:
        add(("plan", "inventory"), str(exc).splitlines()[0], "fix the inventory or pass --inventory")
        return
    hostvars = data.get("_meta", {}).get("hostvars", {})
    hosts = set(hostvars)
    groups = {g for g in data if g != "_meta"}
    _lint_export_fragments(hostvars, add, inv_path)
    production = any(hv.get("cutover_environment") == "production" for hv in hostvars.values())
    plain_ftp = sorted(h for h, hv in hostvars.items()
                       if str(hv.get("si_drop_protocol", "")).lower() == "ftp")
    if production and plain_ftp:  # N6: personal data and the drop's password in clear text
        add(("plan", "inventory"), f"the production inventory {_rel(inv_path)} hands the data over by plain "
            f"ftp (si_drop_protocol of {', '.join(plain_ftp[:3])}): clear text, unverified",
            "use sftp (si_drop_known_hosts) or ftps (si_drop_ca_file)",
            at=_inventory_line(inv_path, "si_drop_protocol"))
    targets = any(hv.get("cutover_notify_urls") for hv in hostvars.values())
    if production and not plan.plan.notify and not targets:
        add(("plan", "notify"), f"the production inventory {_rel(inv_path)} and the plan notify nobody (N16)",
            "set cutover_notify_urls in the inventory (secrets from the vault) or plan.notify", "warning")
    for step in plan.steps():
        patterns = [("limit", step.limit)] if step.limit else []
        if step.playbook and resolve(step.playbook).is_file():
            patterns += [("playbook", h) for h in play_hosts(resolve(step.playbook))]
        for field, pattern in patterns:
            _check_pattern(step, field, pattern, hosts, groups, add, locs, inv_path)


DATA_PLAYBOOKS = ("playbooks/data/screen.yml", "playbooks/data/export.yml", "playbooks/data/handoff.yml",
                  "playbooks/data/reconcile.yml")


def _lint_data_exclusion(plan: Plan, add) -> None:
    """N5: which lines are kept back (城居保 in the notice) is stated, never defaulted: a plan
    without it would hand every line over and still reconcile."""
    data_steps = [s.id for s in plan.steps() if s.playbook in DATA_PLAYBOOKS]
    if not data_steps:
        return
    value = plan.plan.vars.get("cutover_data_exclude_lines")
    if value is None:
        add(("plan", "vars") if plan.plan.vars else ("plan",),
            f"the plan hands data over ({', '.join(data_steps)}) but does not say which lines it "
            "keeps back", "set plan.vars.cutover_data_exclude_lines: [cjyl] as the notice says "
            "(write [] to hand over every line)")
    elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        add(("plan", "vars", "cutover_data_exclude_lines"),
            f"cutover_data_exclude_lines must be a list of line ids, not {value!r}", "e.g. [cjyl]")


def _lint_export_fragments(hostvars: dict[str, Any], add, inv_path: Path) -> None:
    """Every row filter and quality rule in si_export is one SQL expression: no comment
    marker, no `;` (the rules come from the receiving organisation: untrusted, N5)."""
    seen: set[tuple[str, str]] = set()
    for hv in hostvars.values():
        spec = hv.get("si_export")
        if not isinstance(spec, dict):
            continue
        pieces = [(f"si_export.tables[{t.get('name')}].where", t.get("where"))
                  for t in spec.get("tables") or [] if isinstance(t, dict) and t.get("where") is not None]
        pieces += [(f"si_export.quality_rules[{r.get('name')}]", r.get("check"))
                   for r in spec.get("quality_rules") or [] if isinstance(r, dict)]
        for where, text in pieces:
            problem = sql.fragment_problem(text)
            if problem and (where, str(text)) not in seen:
                seen.add((where, str(text)))
                add(("plan", "inventory"), f"{where} {problem}",
                    "fix the rule in the inventory; the screening and the export refuse it too",
                    at=_inventory_line(inv_path, str(text)))


def _inventory_line(inv_path: Path, text: str) -> tuple[str, int]:
    """The file and line of the inventory where text is written (its first line), best effort."""
    needle = text.strip().splitlines()[0].strip() if text.strip() else text
    files = sorted(inv_path.rglob("*.y*ml")) if inv_path.is_dir() else [inv_path]
    for f in files:
        try:
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if needle and needle in line:
                    return _rel(f), n
        except (OSError, UnicodeDecodeError):
            continue
    return _rel(inv_path), 1


def _lint_release_manifest(plan: Plan, add, locs) -> None:
    """The release manifest is read by the deploy's playbooks on the hosts; a file that
    cannot be loaded safely is refused here, before any host is touched. A step whose
    playbook checks the hosts against it (cutover.contract.RELEASE_PLAYBOOKS) needs it."""
    needing = [s for s in plan.steps() if s.playbook in RELEASE_PLAYBOOKS]
    if not plan.plan.release_manifest:
        for step in needing:
            add((*locs[step.id], "playbook"), f"step {step.id} runs {step.playbook}, which checks every host "
                "against the release manifest, but the plan names no release_manifest",
                "set plan.release_manifest (e.g. releases/shanxi-2023-11.yml)")
        return
    path = resolve(plan.plan.release_manifest)
    if not path.is_file():
        if needing:
            add(("plan", "release_manifest"), f"release_manifest {plan.plan.release_manifest} does not exist "
                f"(steps {', '.join(s.id for s in needing)} check every host against it)",
                "paths are relative to the project root, e.g. releases/shanxi-2023-11.yml")
        return
    try:
        load_yaml(path)
    except YamlRefused as exc:
        add(("plan", "release_manifest"), exc.problem, exc.hint, at=(_rel(Path(exc.file)), exc.line))
    except CutoverError as exc:
        add(("plan", "release_manifest"), exc.message, exc.hint)


def _lint_engine_vars(plan: Plan, add, locs) -> None:
    """What a plan's vars may not set: they travel as extra vars, which win over everything a
    playbook sets itself. The engine's own variables (cutover.contract.PlaybookVars), the
    operator-only switches, the playbooks' internal `_*` names and the roles' inputs (except
    cutover.contract.PLAN_ROLE_OPTIONS) would each override a check without a word."""
    roles = sorted(p.name for p in resolve("roles").iterdir() if p.is_dir())

    def problem(key: str) -> str | None:
        if key in ENGINE_VARS:
            return "which the engine passes to every playbook"
        if key in OPERATOR_ONLY_VARS:
            return "which only an operator's -e may set (never a plan: it switches a check off)"
        if key.startswith("_"):
            return "a playbook's internal name (it would override what the playbook computes)"
        role = next((r for r in roles if key.startswith(r + "_")), None)
        if role and key not in PLAN_ROLE_OPTIONS:
            return (f"an input of the role {role}, which its playbooks set (as an extra var it would "
                    "override every use of the role)")
        return None

    hint = "remove it; see docs/plan-reference.md for what a plan's vars may set"
    for key in plan.plan.vars:
        why = problem(key)
        if why:
            add(("plan", "vars", key), f"plan.vars sets {key}, {why}", hint)
    for step in plan.steps():
        for key in step.vars:
            why = problem(key)
            if why:
                add((*locs[step.id], "vars", key), f"step {step.id} sets {key}, {why}", hint)


def play_hosts(path: Path) -> list[str]:
    """The `hosts:` patterns of a playbook's plays (templated ones are skipped)."""
    try:
        plays = safe_load(path.read_text(encoding="utf-8"), path) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError, YamlRefused):  # refusals: _lint_playbooks
        return []
    return [str(p["hosts"]) for p in plays if isinstance(p, dict) and isinstance(p.get("hosts"), str)
            and "{{" not in p["hosts"]]


def _check_pattern(step, field, pattern, hosts, groups, add, locs, inv_path) -> None:
    for raw in re.split(r"[:,]", pattern):
        term = raw.strip().lstrip("!&")
        if not term or "{{" in term or term in groups or term in hosts or term in ("all", "localhost"):
            continue
        if any(ch in term for ch in "*?[") and fnmatch.filter(hosts | groups, term):
            continue
        what = "limit" if field == "limit" else f"playbook {step.playbook} targets"
        add((*locs[step.id], field), f"step {step.id}: {what} {term!r}, which matches no host "
            f"or group in inventory {_rel(inv_path)}", _close_match(term, groups | hosts))


def _rel(path: Path) -> str:
    root = resolve(".")
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
