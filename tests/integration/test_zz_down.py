"""`lab.down` removes the lab's containers and volumes, and nothing else. Runs last."""

from __future__ import annotations

import pytest

from cutover.lab import lab as labmod
from cutover.lab.podman import podman

pytestmark = pytest.mark.lab


def test_down_removes_the_lab_and_nothing_else(lab):
    other = "cutover-test-bystander"
    podman("rm", "-f", other, check=False)
    podman("create", "--name", other, labmod.image.LATEST, "true")
    try:
        there = set(labmod.containers())  # the rehearsal may have removed the session's county hosts
        assert there
        removed = labmod.down(say=print)
        assert set(removed) == there
        assert labmod.containers() == {}
        vols = podman("volume", "ls", "-q", "--filter", "label=cutover.lab=1").stdout.split()
        assert vols == []
        assert podman("container", "exists", other, check=False).returncode == 0
        assert not labmod.LAB_STATE_FILE.exists()
    finally:
        podman("rm", "-f", other, check=False)
