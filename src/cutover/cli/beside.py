"""What `invoke test` runs beside the lab's tests, in a process of its own:
`python -m cutover.cli.beside [--molecule]`. Not imported by the command surface."""

from __future__ import annotations

import subprocess
import sys

from cutover.cli.test import _roles_with_molecule, closing_lines, run_molecule
from cutover.paths import ROOT


def side_tests(molecule: bool) -> int:
    """The unit tests, then (with `molecule`) Molecule for every role, one scenario at a time;
    both run whatever the other did. Exit code 0 only when all passed. One process each: the
    lab's tests beside them keep a core."""
    unit, unit_summary = _pytest_unit()
    summary = [f"unit tests: {'passed' if unit == 0 else 'FAILED'}", *unit_summary]
    failed: list[str] = []
    if molecule:
        roles = _roles_with_molecule()
        failed = run_molecule(roles, at_once=1)
        summary.append(f"molecule: {len(roles) - len(failed)} passed, {len(failed)} failed"
                       + (f" ({', '.join(failed)})" if failed else ""))
    # Last, so that a CI log cut to its tail still names what failed (stop 25's did not).
    print("==> beside the lab: summary", *summary, sep="\n", flush=True)
    return 1 if unit or failed else 0


def _pytest_unit() -> tuple[int, list[str]]:
    """The unit tests, their output passed through as it comes; returns the exit code and
    pytest's closing lines: each failed or erroring test and the counts."""
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "--durations=10", "tests/unit"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    code = proc.wait()
    return code, closing_lines("".join(lines), code)


if __name__ == "__main__":
    sys.exit(side_tests(molecule="--molecule" in sys.argv[1:]))
