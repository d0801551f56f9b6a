"""What every unit test shares."""

import pytest


@pytest.fixture(autouse=True)
def no_running_lab(monkeypatch):
    """The lab inventory is read as written, every host there, whatever lab runs on this machine:
    `invoke test` runs the unit tests beside the lab's tests, which start, resize and stop labs,
    and a lab's state file (the hosts it left out, which the engine's scope and limits leave
    out too) would change under a test. Tests of a running lab's effect set their own state.
    Reached here: `cutover.inventory`'s reading (the engine's scope and limits, sites, plan
    checks) in this process; not the lab's own commands or a test's `invoke` subprocess, whose
    tests do not depend on which hosts a lab started."""
    monkeypatch.setattr("cutover.inventory.lab_state", dict)
