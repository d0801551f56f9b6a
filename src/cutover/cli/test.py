"""`invoke test`: everything CI runs, in one command."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
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


def run_molecule(roles: list[Path], at_once: int = MOLECULE_AT_ONCE) -> list[str]:
    """Molecule for each role, `at_once` at a time; each scenario's output is printed whole
    when it ends, so the log reads one scenario after another. Returns the failed; no role
    with a scenario is a failure too. Ctrl-C starts no further scenario."""
    if not roles:
        print("==> molecule test: no role has a scenario (roles/*/molecule/default)", flush=True)
        return ["(no scenario found)"]
    failed = []
    print(f"==> molecule test: {', '.join(r.name for r in roles)} ({at_once} at a time)", flush=True)
    pool = ThreadPoolExecutor(max_workers=at_once)
    try:
        for future in as_completed([pool.submit(_molecule, role) for role in roles]):
            name, code, output, seconds = future.result()
            print(f"==> molecule test: {name}", flush=True)
            print(output, flush=True)
            print(f"==> molecule test: {name} {'passed' if code == 0 else 'FAILED'} in {seconds:.0f} s",
                  flush=True)
            if code != 0:
                failed.append(name)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
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
        # Molecule, which compute, run beside them in a process of their own, one test and
        # one scenario at a time (the lab keeps a core); their output goes to a file,
        # printed whole when they end.
        side_log = ROOT / "artifacts" / "test-beside-the-lab.log"
        side_log.parent.mkdir(parents=True, exist_ok=True)
        with open(side_log, "wb") as log:
            side = subprocess.Popen([sys.executable, "-m", "cutover.cli.beside",
                                     *(["--molecule"] * molecule)], cwd=ROOT, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            lab = c.run("pytest --durations=20 tests/integration", warn=True)
            side_code = side.wait()
        except BaseException:  # Ctrl-C, a CI timeout: nothing is left running beside
            stop_group(side)
            raise
        finally:
            print(f"==> beside the lab: unit tests{', Molecule' * molecule} ({side_log})", flush=True)
            print(side_log.read_text(errors="replace"), flush=True)
        # The lab's closing lines again, last: the side log printed above is long.
        print("==> the lab's tests: summary", *closing_lines(lab.stdout, lab.exited), sep="\n", flush=True)
        failed = [what for what, code in (("the lab's tests", lab.exited),
                                          ("the unit tests or Molecule", side_code)) if code != 0]
        if failed:
            raise Exit(f"failed: {' and '.join(failed)}", code=1)


def closing_lines(output: str, code: int) -> list[str]:
    """pytest's closing lines: from its own short test summary (`-ra`, from pyproject; the
    last one, a test's output may hold another's), each failed or erroring test, an
    interruption, and the counts, its last line; said plainly when pytest ended without them
    (a crash, a kill)."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if "short test summary info" in line]
    tail = lines[starts[-1]:] if starts else lines[-3:]
    named = [line[:300] for line in tail if line.startswith(("FAILED ", "ERROR "))]
    if len(named) > MOST_NAMED:  # the other run's summary stays in a log cut to its tail
        named = [*named[:MOST_NAMED], f"... and {len(named) - MOST_NAMED} more (above)"]
    closing = named + [line for line in tail if "Interrupted" in line]
    last = next((line for line in reversed(lines) if line.strip()), "")  # pytest ends with its counts
    closing.append(last if PYTEST_COUNTS.match(last) else f"(no pytest summary: exit code {code})")
    return ["  " + line for line in closing]


MOST_NAMED = 15
PYTEST_COUNTS = re.compile(
    r"^=+ .*\b(passed|failed|error|errors|no tests ran|deselected|skipped|xfailed|xpassed)\b.* in [0-9.]+s")


def stop_group(proc: subprocess.Popen) -> None:
    """Interrupt a process group as Ctrl-C would, then end it: Molecule destroys its containers
    on an interrupt; what does not end in a minute is killed."""
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
