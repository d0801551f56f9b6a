"""`lab.up` is idempotent and refuses what it cannot do without touching the lab;
`lab.down` removes the lab's containers and nothing else. (Runs last: z-ordering.)"""

from __future__ import annotations

import socket
import time

import pytest

from cutover.errors import CutoverError
from cutover.lab import lab as labmod
from cutover.lab.podman import podman

from .conftest import CITIES, SCALE, SEED

pytestmark = pytest.mark.lab


def test_second_up_changes_nothing_and_is_quick(lab):
    started = time.monotonic()
    summary = labmod.up(cities=CITIES, scale=SCALE, seed=SEED, faults=[], say=print)
    assert summary["created"] == []
    assert summary["provisioned"] is False
    print(f"second lab.up: {time.monotonic() - started:.1f} s")


def test_a_taken_port_is_named_and_nothing_is_started(lab):
    before = labmod.containers()
    new_host = next(h for h in labmod.lab_hosts() if h.name == "counter-yangquan")
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", new_host.ssh_port))
        blocker.listen()
        with pytest.raises(CutoverError) as err:
            labmod.up(cities=CITIES + 1, scale=SCALE, seed=SEED, faults=[], say=print)
    assert f"port {new_host.ssh_port} (for counter-yangquan) is taken" in str(err.value)
    after = labmod.containers()
    assert "counter-yangquan" not in after
    assert {k: v["state"] for k, v in after.items()} == {k: v["state"] for k, v in before.items()}


def test_zz_down_removes_the_lab_and_nothing_else(lab):
    other = "cutover-test-bystander"
    podman("rm", "-f", other, check=False)
    podman("create", "--name", other, labmod.image.LATEST, "true")
    try:
        removed = labmod.down(say=print)
        assert set(removed) == {h.name for h in lab["hosts"]}
        assert labmod.containers() == {}
        vols = podman("volume", "ls", "-q", "--filter", "label=cutover.lab=1").stdout.split()
        assert vols == []
        assert podman("container", "exists", other, check=False).returncode == 0
        assert not labmod.STATE_FILE.exists()
    finally:
        podman("rm", "-f", other, check=False)
