"""`invoke test`: everything CI runs, in one command."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from invoke import Context, Exit, task

from cutover.errors import CutoverError
from cutover.lab import image
from cutover.lab.podman import CONTAINERS_CONF, ensure_host_tools
from cutover.paths import ROOT

TEST_TOOLS = {"chromium": "chromium", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc": "fonts-wqy-zenhei",
              # unit tests run the gates and business checks against a throwaway real PostgreSQL
              "/usr/lib/postgresql/15/bin/initdb": "postgresql-15"}


# Two scenarios at a time: each waits on its container as much as it computes, and every
# scenario has its own platform name, so they do not meet.
MOLECULE_AT_ONCE = 2


def _roles_with_molecule() -> list[Path]:
    scenarios = (ROOT / "roles").glob("*/molecule/default/molecule.yml")
    return sorted(scenario.parents[2] for scenario in scenarios)


def _molecule(role: Path) -> tuple[str, int, str, float]:
    """Run one role's scenario; return its name, exit code, whole output and seconds."""
    started = time.monotonic()
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    done = subprocess.run(["molecule", "test"], cwd=role, env=env, text=True, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return role.name, done.returncode, done.stdout, time.monotonic() - started


def run_molecule(roles: list[Path]) -> list[str]:
    """Molecule for each role, MOLECULE_AT_ONCE at a time; each scenario's output is printed
    whole when it ends, so the log reads one scenario after another. Returns the failed."""
    failed = []
    print(f"==> molecule test: {', '.join(r.name for r in roles)} ({MOLECULE_AT_ONCE} at a time)",
          flush=True)
    with ThreadPoolExecutor(max_workers=MOLECULE_AT_ONCE) as pool:
        for name, code, output, seconds in pool.map(_molecule, roles):
            print(f"==> molecule test: {name}", flush=True)
            print(output, flush=True)
            print(f"==> molecule test: {name} {'passed' if code == 0 else 'FAILED'} in {seconds:.0f} s",
                  flush=True)
            if code != 0:
                failed.append(name)
    return failed


@task(help={"quick": "unit tests only (no lab, no Molecule, no linters)",
            "molecule": "run Molecule for every role (on by default; --no-molecule skips it)",
            "sweep": "the slow lab cases too: the crash sweep at every playbook step of the plan, the "
                     "call-off after the snapshot and after the deploy"})
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
        try:  # the lab's and Molecule's image, built once before either needs it
            ensure_host_tools()
            image.ensure_image()
        except CutoverError as exc:
            raise Exit(f"error: {exc}", code=1) from None
        # The lab's tests (one lab at a time) mostly wait on its hosts; the unit tests and
        # Molecule, which compute, run beside them in a process of their own (no shared
        # container, port or file), their output shown whole when they end.
        with tempfile.TemporaryFile() as log:
            side = subprocess.Popen([sys.executable, "-m", "cutover.cli.test", *(["--molecule"] * molecule)],
                                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            try:
                lab = c.run("pytest --durations=20 tests/integration", warn=True)
            finally:
                side_code = side.wait()
                log.seek(0)
                print("==> beside the lab: unit tests" + (", Molecule" if molecule else ""), flush=True)
                print(log.read().decode(errors="replace"), flush=True)
        failed = [what for what, code in (("the lab's tests", lab.exited),
                                          ("the unit tests or Molecule", side_code)) if code != 0]
        if failed:
            raise Exit(f"failed: {' and '.join(failed)}", code=1)


def side_tests(molecule: bool) -> int:
    """The unit tests, then (with `molecule`) Molecule for every role; both run whatever the
    other did. Exit code 0 only when all passed. One process for the unit tests: the lab's
    tests beside them keep a core (their hosts answer within timeouts)."""
    unit = subprocess.run([sys.executable, "-m", "pytest", "--durations=10", "tests/unit"],
                          cwd=ROOT, check=False).returncode
    print(f"unit tests: {'passed' if unit == 0 else 'FAILED'}", flush=True)
    if not molecule:
        return unit
    failed = run_molecule(_roles_with_molecule())
    roles = len(_roles_with_molecule())
    print(f"molecule: {roles - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""), flush=True)
    return 1 if unit or failed else 0


if __name__ == "__main__":
    sys.exit(side_tests(molecule="--molecule" in sys.argv[1:]))
