"""`invoke test`: everything CI runs, in one command."""

from __future__ import annotations

import os
from pathlib import Path

from invoke import Context, Exit, task

from cutover.errors import CutoverError
from cutover.lab import image
from cutover.lab.podman import CONTAINERS_CONF, ensure_host_tools
from cutover.paths import ROOT

TEST_TOOLS = {"chromium": "chromium", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc": "fonts-wqy-zenhei"}


def _roles_with_molecule() -> list[Path]:
    scenarios = (ROOT / "roles").glob("*/molecule/default/molecule.yml")
    return sorted(scenario.parents[2] for scenario in scenarios)


@task(help={"quick": "unit tests only (no lab, no Molecule, no linters)",
            "molecule": "run Molecule for every role (on by default; --no-molecule skips it)",
            "sweep": "the crash sweep kills the executor at every playbook step of the plan, not five"})
def run_tests(c: Context, quick: bool = False, molecule: bool = True, sweep: bool = False) -> None:
    """Lint (ruff, yamllint, ansible-lint), pytest (unit + lab integration), Molecule per role."""
    if sweep:
        os.environ["CUTOVER_SWEEP"] = "all"
    with c.cd(str(ROOT)):
        if quick:
            c.run("pytest -q tests/unit")
            return
        try:  # the report test renders HTML in Chromium, with a font for the Chinese titles
            ensure_host_tools(tools=TEST_TOOLS)
        except CutoverError as exc:
            raise Exit(f"error: {exc}", code=1) from None
        c.run("ruff check .")
        c.run("yamllint -s .")
        c.run("ansible-lint -q")
        c.run("pytest --durations=20 tests/unit tests/integration")
        if not molecule:
            return
        try:  # Molecule's platforms use the lab image; build it if the lab never ran here
            ensure_host_tools()
            image.ensure_image()
        except CutoverError as exc:
            raise Exit(f"error: {exc}", code=1) from None
        failed = []
        for role in _roles_with_molecule():
            print(f"==> molecule test: {role.name}", flush=True)
            result = c.run(f"cd {role} && molecule test", warn=True,
                           env={"CONTAINERS_CONF": str(CONTAINERS_CONF)})
            if result is None or result.exited != 0:
                failed.append(role.name)
        roles = len(_roles_with_molecule())
        print(f"molecule: {roles - len(failed)} passed, {len(failed)} failed")
        if failed:
            raise Exit(f"molecule failed for: {', '.join(failed)}", code=1)
