"""`invoke test` prints, last, what failed: CI keeps only the tail of a long log (stop 25's
tail showed Molecule's output and "failed: the unit tests or Molecule", not which test)."""

import subprocess
import sys

from cutover.cli.test import closing_lines


def test_the_closing_lines_name_each_failed_test_and_the_counts(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "def test_fine():\n    pass\n\n"
        "def test_broken():\n    assert 1 == 2, 'the receipt is short'\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-rfE", "-p", "no:cacheprovider",
                          "test_sample.py"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 1
    lines = closing_lines(run.stdout)
    assert any(line.strip().startswith("FAILED test_sample.py::test_broken") and "the receipt is short" in line
               for line in lines), lines
    assert any("1 failed, 1 passed" in line for line in lines), lines
    assert not any("test_fine" in line for line in lines)
