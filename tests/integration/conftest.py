"""The lab, brought up for real (podman, systemd, PostgreSQL, sshd) once per session.

A lab left by an earlier run (or by a developer) is not trusted: the session starts with
`lab.down` and a new `lab.up`.
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
from cutover.lab.topology import lab_hosts, select

CITIES = int(os.environ.get("CUTOVER_TEST_CITIES", "2"))
SCALE = int(os.environ.get("CUTOVER_TEST_SCALE", "500"))
SEED = 20231118
ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(config, items):
    """The sweep's slow cases run with `invoke test --sweep` (CUTOVER_SWEEP=all); otherwise they
    are deselected, which pytest's summary counts and says."""
    if os.environ.get("CUTOVER_SWEEP") in ("all", "five"):
        return
    slow = [item for item in items if item.get_closest_marker("sweep")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("sweep")]


@pytest.fixture(scope="session")
def lab():
    labmod.down(say=print)
    summary = labmod.up(cities=CITIES, scale=SCALE, seed=SEED, faults=[], say=print)
    return {"summary": summary, "hosts": select(lab_hosts(), CITIES)}


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
def sqlite_status() -> dict:
    """`cutover.status --json` of the clean rehearsal's journal, a SQLite file (test_rehearse),
    for the stop side's run on the shared PostgreSQL journal to be compared with (#16)."""
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
