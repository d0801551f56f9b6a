"""`lab.up` is idempotent and refuses what it cannot do without touching the lab;
`lab.down` is tested last, in test_zz_down.py."""

from __future__ import annotations

import socket
import time

import pytest

from cutover.errors import CutoverError
from cutover.lab import lab as labmod
from cutover.lab.topology import lab_hosts

from .conftest import CITIES, COUNTIES, FAULTS, SCALE, SEED

pytestmark = pytest.mark.lab


def test_second_up_changes_nothing_and_is_quick(lab):
    started = time.monotonic()
    summary = labmod.up(cities=CITIES, counties=COUNTIES, scale=SCALE, seed=SEED, faults=FAULTS, say=print)
    assert summary["created"] == []
    assert summary["provisioned"] is False
    print(f"second lab.up: {time.monotonic() - started:.1f} s")


def test_a_taken_port_is_named_and_nothing_is_started(lab):
    before = labmod.containers()
    new_host = next(h for h in lab_hosts() if h.name == "counter-yangquan")
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", new_host.ssh_port))
        blocker.listen()
        with pytest.raises(CutoverError) as err:
            labmod.up(cities=CITIES + 1, counties=COUNTIES, scale=SCALE, seed=SEED, faults=FAULTS,
                      say=print)
    assert f"port {new_host.ssh_port} (for counter-yangquan) is taken" in str(err.value)
    after = labmod.containers()
    assert "counter-yangquan" not in after
    assert {k: v["state"] for k, v in after.items()} == {k: v["state"] for k, v in before.items()}


def test_a_reset_starts_the_hosts_as_provisioned_from_their_images(lab):
    """#17: the session's lab was provisioned and kept as an image per window host; a reset
    with the same inputs starts every window host from its image, without provisioning,
    and what the hosts held since is gone. The stop side's window (test_stop_side) then runs
    on this lab: that is the proof the images hold everything provisioning made."""
    from .conftest import host

    window = sorted(h.name for h in lab["hosts"] if "ops" not in h.groups)
    host("core-qyyl").run_expect([0], "touch /root/since-provisioned")
    labmod.DROP_CA.unlink()  # as in another clone of the project: the images are the machine's
    summary = labmod.up(cities=CITIES, counties=COUNTIES, scale=SCALE, seed=SEED, faults=FAULTS, say=print,
                        reset=True)
    print(f"lab.up --reset from the provisioned images: {summary['seconds']} s")
    assert summary["from_images"] is True
    assert summary["provisioned"] is True
    assert sorted(summary["created"]) == window  # the ops host (its journal) is kept
    assert not host("core-qyyl").file("/root/since-provisioned").exists
    # the drop's certificate is this checkout's to trust again (FTPS hand-offs refused it)
    assert labmod.DROP_CA.read_text() == host("drop1").file(labmod.DROP_CERT).content_string
    state = labmod.status()
    assert state["healthy"], [row for row in state["hosts"] if not row["healthy"]]
    again = labmod.up(cities=CITIES, counties=COUNTIES, scale=SCALE, seed=SEED, faults=FAULTS, say=print)
    assert again["created"] == []  # kept as it runs
    assert again["provisioned"] is False
