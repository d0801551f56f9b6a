"""The release manifest the plan points at (`plan.release_manifest`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cutover.contract import RELEASE_PLAYBOOKS
from cutover.errors import CutoverError
from cutover.paths import resolve
from cutover.plan.loader import load_yaml
from cutover.plan.model import Plan
from cutover.plan.problems import Add, rel
from cutover.yamlsafe import YamlRefused


def lint_release_manifest(plan: Plan, add: Add, locs: dict[str, tuple[Any, ...]]) -> None:
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
        add(("plan", "release_manifest"), exc.problem, exc.hint, at=(rel(Path(exc.file)), exc.line))
    except CutoverError as exc:
        add(("plan", "release_manifest"), exc.message, exc.hint)

