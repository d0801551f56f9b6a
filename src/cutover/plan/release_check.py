"""The release manifest the plan points at (`plan.release_manifest`), checked as the plan is:
every problem as `file:line: message` with what to do, before any host is touched.

`manifest_problems` loads a manifest with the line of every value, validates it against
cutover.plan.release.ReleaseManifest (unknown keys refused) and resolves its references;
`lint_release_manifest` is plan.check's part; `load_manifest` is for a command that only
needs a valid manifest (verify.versions).
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from cutover.contract import RELEASE_PLAYBOOKS
from cutover.errors import CutoverError
from cutover.paths import resolve
from cutover.plan.loader import load_yaml
from cutover.plan.model import Plan
from cutover.plan.problems import Add, Problem, close_match, rel
from cutover.plan.release import PROBE_KINDS, Probes, ReleaseManifest, findings
from cutover.yamlsafe import YamlRefused

DOC = "docs/plan-reference.md, \"The release manifest\""
# what a value that breaks a field's pattern should be, and how to get it right
PATTERNS = {
    "sha256": ("a sha256 (64 lower-case hex digits)", "`sha256sum FILE` prints it"),
    "version": ("a version", "letters, digits and . _ + ~ : -, starting with a letter or digit "
                "(it names /opt/<component>/releases/<version>)"),
    "name": ("a component name", "letters, digits and . _ @ -, starting with a letter or digit "
             "(it names the systemd unit and /opt/<name>/)"),
    "group": ("an inventory group", "letters, digits and _, not starting with a digit"),
    "release": ("a release name", "letters, digits and . _ -, e.g. shanxi-2023-11"),
}
PATTERNS["previous"] = PATTERNS["version"]


def manifest_problems(path: Path, groups: set[str] | None = None) -> tuple[ReleaseManifest | None,
                                                                           list[Problem]]:
    """The manifest (None when it does not validate) and every problem in it; with the
    inventory's groups, a component whose group no host is in is one. Raises YamlRefused
    (file:line) or CutoverError when the file cannot be read as YAML at all."""
    doc = load_yaml(path, missing_hint="paths are relative to the project root, e.g. releases/NAME.yml",
                    empty_hint="a release manifest has `release:`, `artifacts:`, `components:` and `probes:`")
    name = rel(path)
    if not isinstance(doc.data, dict):
        return None, [Problem(name, doc.line(()), "a release manifest is a mapping with `release:`, "
                              "`artifacts:`, `components:` and `probes:`", f"see {DOC}")]
    try:
        manifest = ReleaseManifest.model_validate(doc.data)
    except ValidationError as exc:
        problems = [Problem(name, doc.line(tuple(err["loc"])), *_message(err)) for err in exc.errors()]
        return None, sorted(problems, key=lambda p: p.line)
    problems = [Problem(name, doc.line(loc), message, hint, severity)
                for loc, message, hint, severity in findings(manifest, groups)]
    return manifest, sorted(problems, key=lambda p: (p.line, p.severity))


def load_manifest(path: Path) -> ReleaseManifest:
    """A valid release manifest, or a CutoverError naming every problem with file:line."""
    manifest, problems = manifest_problems(path)
    errors = [p for p in problems if p.severity == "error"]
    if manifest is None or errors:
        raise CutoverError("\n".join(map(str, errors)) + f"\n{len(errors)} error(s) in the release manifest")
    return manifest


def lint_release_manifest(plan: Plan, add: Add, locs: dict[str, tuple[Any, ...]],
                          groups: set[str] | None = None) -> None:
    """The release manifest is read by the deploy's playbooks on the hosts; a file that
    cannot be loaded safely, or breaks the model, is refused here, before any host is
    touched. A step whose playbook checks the hosts against it
    (cutover.contract.RELEASE_PLAYBOOKS) needs it."""
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
        _, problems = manifest_problems(path, groups)
    except YamlRefused as exc:
        add(("plan", "release_manifest"), exc.problem, exc.hint, at=(rel(Path(exc.file)), exc.line))
        return
    except CutoverError as exc:
        add(("plan", "release_manifest"), exc.message, exc.hint)
        return
    for p in problems:
        add(("plan", "release_manifest"), p.message, p.hint, p.severity, at=(p.file, p.line))


def _message(err: Any) -> tuple[str, str]:
    """A pydantic error as the operator's message and hint."""
    kind, loc = err["type"], tuple(err["loc"])
    owner, info = _field_at(loc)
    key = str(loc[-1]) if loc else "release manifest"
    value = err.get("input")
    hint = f"{key}: {info.description}" if info and info.description else f"see {DOC}"
    message = f"{key}: {err['msg'].removeprefix('Value error, ')}"
    if kind == "extra_forbidden" and owner is Probes:
        message = f"unknown probe kind {key!r}"
        hint = close_match(key, PROBE_KINDS, "probe kinds: " + ", ".join(PROBE_KINDS))
    elif kind == "extra_forbidden" and owner is not None:
        keys = list(owner.model_fields)
        message, hint = f"unknown key {key!r} in {owner.what}", close_match(key, keys, f"{owner.what} has: "
                                                                            + ", ".join(keys))
    elif kind == "missing":
        message = f"missing required key {key!r}" + (f" in {owner.what}" if owner else "")
    elif kind == "string_pattern_mismatch" and key in PATTERNS:
        what, hint = PATTERNS[key]
        message = f"{key}: {value!r} is not {what}"
    elif kind == "too_short":
        message = f"{key}: must not be empty"
    elif kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        message = f"{key}: {value!r} is a number, not text"
        hint = f'quote it as written ({key}: "..."): unquoted, YAML reads it as the number {value!r}'
    elif kind in ("dict_type", "model_type"):
        message = f"{key}: must be a mapping (key: value), not {value!r}"
    elif kind == "list_type":
        message = f"{key}: must be a list, not {value!r}"
    return message, hint


def _field_at(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model that holds the last key of `loc`, and that key's field (None if unknown)."""
    tp: Any = ReleaseManifest
    owner: type[BaseModel] | None = None
    info: FieldInfo | None = None
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            owner, info = tp, tp.model_fields.get(str(part))
            if info is None:
                return owner, None
            tp = info.annotation
        else:  # a list's item or a mapping's value: their type
            args = get_args(tp)
            tp = args[-1] if args else Any
            owner, info = None, None
    return owner, info


def _unwrap(tp: Any) -> Any:
    """X from `X | None`."""
    if get_origin(tp) in (Union, types.UnionType):
        return next(a for a in get_args(tp) if a is not type(None))
    return tp
