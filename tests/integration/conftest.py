"""The lab, brought up for real (podman, systemd, PostgreSQL, sshd) once per session.

A lab left by an earlier run (or by a developer) is not trusted: the session starts with
`lab.down` and a new `lab.up`. That lab is the one the stop side's window needs (a pending
approval planted for its N3 gate, a county counter in each city, N17), so the session
provisions it once; the rehearsal, which runs after the stop side (MODULE_ORDER), provisions
it back to a clean lab before its window, as `lab.rehearse` always does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra
import yaml

from cutover.lab import lab as labmod
from cutover.lab.topology import every_lab_host, select

CITIES = int(os.environ.get("CUTOVER_TEST_CITIES", "2"))
SCALE = int(os.environ.get("CUTOVER_TEST_SCALE", "500"))
SEED = 20231118
COUNTIES = int(os.environ.get("CUTOVER_TEST_COUNTIES", "1"))
FAULTS = ["pending-approval"]
# The lab's modules run in this order (any not named run after, by name): the stop side's
# window on the session's lab, then the rehearsal, which provisions it back first; the sweeps,
# which compare with the clean rehearsal, after it; lab.down last.
MODULE_ORDER = ["test_lifecycle", "test_lab_services", "test_lab_data", "test_drop_transfers",
                "test_report_in_chromium", "test_stop_side", "test_rehearse", "test_rehearse_crash_sweep",
                "test_zy_abort_sweep", "test_zz_down"]
ROOT = Path(__file__).resolve().parents[2]


def _module_rank(item) -> tuple[int, str]:
    name = item.module.__name__.rsplit(".", 1)[-1]
    return (MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER), name)


def pytest_collection_modifyitems(config, items):
    """The lab's modules in MODULE_ORDER (a stable sort: tests keep their order within a
    module). The sweep's slow cases run with `invoke test --sweep` (CUTOVER_SWEEP=all);
    otherwise they are deselected, which pytest's summary counts and says."""
    lab_items = [item for item in items if item.nodeid.startswith("tests/integration/")]
    if lab_items:
        others = [item for item in items if not item.nodeid.startswith("tests/integration/")]
        items[:] = others + sorted(lab_items, key=_module_rank)
    if os.environ.get("CUTOVER_SWEEP") in ("all", "five"):
        return
    slow = [item for item in items if item.get_closest_marker("sweep")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("sweep")]


@pytest.fixture(scope="session")
def lab():
    labmod.down(say=print)
    summary = labmod.up(cities=CITIES, counties=COUNTIES, scale=SCALE, seed=SEED, faults=FAULTS, say=print)
    return {"summary": summary, "hosts": select(every_lab_host(), CITIES, COUNTIES)}


@pytest.fixture(scope="session")
def lab_vars():
    group_vars = ROOT / "inventories" / "lab" / "group_vars" / "all"
    out = yaml.safe_load((group_vars / "vars.yml").read_text())
    out.update(yaml.safe_load((group_vars / "vault.yml").read_text()))
    return out


def host(name: str):
    """A testinfra host over the lab's own SSH config, as an operator would reach it."""
    return testinfra.get_host(f"ssh://{name}", ssh_config=str(labmod.SSH_DIR / "config"))


@pytest.fixture(scope="session")
def clean_outcome() -> dict:
    """What the clean rehearsal (test_rehearse) left, for the crash sweep to compare with."""
    return {}


@pytest.fixture(scope="session")
def shared_status() -> dict:
    """`cutover.status --json` of the stop side's window, whose journal is the ops host's
    PostgreSQL (test_stop_side), for the rehearsal's SQLite journal to be compared with (#16)."""
    return {}


def status_json(journal: str | Path) -> dict:
    """`invoke cutover.status --json` from a process of its own, as a second operator runs it."""
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "cutover.status",
                           "--json", "--journal", str(journal)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)


def shape(value):
    """What a status document's part is made of, not what it holds: the keys of a list's items
    (a step's, a run's), and for a part made of lists (the site matrix) each list's item keys.
    Values keyed by data (hosts, sites) are not descended into."""
    if isinstance(value, list):
        return sorted({key for item in value if isinstance(item, dict) for key in item})
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if isinstance(item, list)}
    return type(value).__name__
