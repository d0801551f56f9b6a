"""What `invoke test` runs beside the lab's tests, in a process of its own:
`python -m cutover.cli.beside [--molecule]`. Not imported by the command surface."""

from __future__ import annotations

import subprocess
import sys

from cutover.cli.test import _roles_with_molecule, run_molecule
from cutover.paths import ROOT


def side_tests(molecule: bool) -> int:
    """The unit tests, then (with `molecule`) Molecule for every role, one scenario at a time;
    both run whatever the other did. Exit code 0 only when all passed. One process each: the
    lab's tests beside them keep a core."""
    unit = subprocess.run([sys.executable, "-m", "pytest", "--durations=10", "tests/unit"],
                          cwd=ROOT, check=False).returncode
    print(f"unit tests: {'passed' if unit == 0 else 'FAILED'}", flush=True)
    if not molecule:
        return unit
    roles = _roles_with_molecule()
    failed = run_molecule(roles, at_once=1)
    print(f"molecule: {len(roles) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""), flush=True)
    return 1 if unit or failed else 0


if __name__ == "__main__":
    sys.exit(side_tests(molecule="--molecule" in sys.argv[1:]))
