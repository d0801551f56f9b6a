"""The lab, brought up for real (podman, systemd, PostgreSQL, sshd) once per session.

A lab left by an earlier run (or by a developer) is not trusted: the session starts with
`lab.down` and a new `lab.up`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import testinfra
import yaml

from cutover.lab import lab as labmod
from cutover.lab.topology import every_lab_host, select

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
    return {"summary": summary, "hosts": select(every_lab_host(), CITIES)}  # with ops1, the journal's host


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
