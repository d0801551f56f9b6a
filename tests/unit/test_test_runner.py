"""`invoke test` prints, last, what failed: CI keeps only the tail of a long log (stop 25's
tail showed Molecule's output and "failed: the unit tests or Molecule", not which test)."""

import subprocess
import sys

from cutover.cli.test import closing_lines


def test_the_closing_lines_name_each_failed_test_and_the_counts_and_nothing_a_test_printed(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import logging\n\n"
        "def test_fine():\n    pass\n\n"
        "def test_broken():\n"
        "    print('ERROR printed by the test')\n"
        "    logging.getLogger('cutover.x').error('logged by the test')\n"
        "    print('FAILED - RETRYING: [localhost]: Wait for instance(s) deletion')\n"
        "    assert 1 == 2, 'the receipt is short'\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-ra", "-p", "no:cacheprovider", "test_sample.py"],
                         cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 1
    lines = closing_lines(run.stdout, run.returncode)
    assert len(lines) == 2, lines
    assert lines[0].strip().startswith("FAILED test_sample.py::test_broken")
    assert "the receipt is short" in lines[0]
    assert "1 failed, 1 passed" in lines[1]


def test_a_collection_error_is_said_as_an_interruption_and_a_crash_by_its_exit_code(tmp_path):
    (tmp_path / "test_broken_import.py").write_text("import no_such_module_here\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-ra", "-p", "no:cacheprovider", "."],
                         cwd=tmp_path, capture_output=True, text=True, check=False)
    lines = closing_lines(run.stdout, run.returncode)
    assert any(line.strip().startswith("ERROR test_broken_import.py") for line in lines), lines
    assert any("Interrupted" in line for line in lines), lines
    assert closing_lines("collected 549 items\ntests/unit/test_a.py ....", -9) == \
        ["  (no pytest summary: exit code -9)"]


def test_only_pytests_own_last_summary_counts():
    nested = ("=== short test summary info ===\nFAILED inner.py::x - from a test's output\n"
              "=== 1 failed in 0.1s ===\n")
    output = f"tests/unit/test_a.py F\n{nested}=== short test summary info ===\n" \
             "FAILED tests/unit/test_a.py::test_a - real\n=== 1 failed, 3 passed in 9.0s ===\n"
    assert closing_lines(output, 1) == ["  FAILED tests/unit/test_a.py::test_a - real",
                                        "  === 1 failed, 3 passed in 9.0s ==="]
    crashed = f"tests/unit/test_a.py .\n{nested}Killed\n"  # the nested run's counts are not ours
    assert closing_lines(crashed, -9)[-1] == "  (no pytest summary: exit code -9)"
    assert closing_lines("=== 2 xfailed in 0.5s ===\n", 0) == ["  === 2 xfailed in 0.5s ==="]
