"""roles/service_control in its one task per host (#17): one module call per service, in the
given order, and the first service that does not get there ends the task with its unit's
status and journal; the services after it are never touched. Real ansible-playbook on this
machine; `systemctl` and `journalctl` are small stand-ins on PATH that record how they were
called (Molecule's scenario and the lab run the real ones)."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import yaml
from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

from cutover.ansible import run_playbook

from .role_here import run_role

SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "{log}"
case "$1" in
  show) echo "LoadState=loaded"; echo "ActiveState=inactive" ;;
  start) [ "$2" = "si-b.service" ] && {{ echo "Job for si-b.service failed"; exit 1; }}; exit 0 ;;
  status) echo "si-b.service - failed (Result: exit-code)" ;;
esac
exit 0
"""


def test_the_first_service_that_fails_ends_the_task_and_the_next_is_never_started(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    (bin_dir / "systemctl").write_text(SYSTEMCTL.format(log=log))
    (bin_dir / "journalctl").write_text("#!/bin/sh\necho 'si-b: cannot read its config \x1b[2J'\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    done = run_role(tmp_path, "service_control", {
        "service_control_state": "started",
        "service_control_services": [{"name": "si-a", "probe": {"command": "true"}}, {"name": "si-b"},
                                     {"name": "si-c"}]}, ident="order")
    assert not done.ok
    said = " ".join(f.message for f in done.failures)
    assert "si-b.service on localhost did not become started" in said
    assert "cannot read its config" in said
    assert "\x1b" not in said  # the journal is shown, never obeyed
    started = [line for line in log.read_text().splitlines() if line.startswith("systemctl start")]
    assert started == ["systemctl start si-a.service", "systemctl start si-b.service"]


def test_a_host_that_cannot_be_reached_names_the_service_it_was_at(tmp_path):
    """The host gone at a service: unreachable, naming that service and what was done before it."""
    play = tmp_path / "gone.yml"
    play.write_text(yaml.safe_dump([{"name": "gone", "hosts": "gone", "gather_facts": False, "tasks": [
        {"name": "start", "ansible.builtin.include_role": {"name": "service_control"},
         "vars": {"service_control_services": [{"name": "si-a"}, {"name": "si-b"}]}}]}]))
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"gone": {
        "ansible_host": "127.0.0.1", "ansible_port": _closed_port(), "ansible_user": "nobody",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}}}}))
    done = run_playbook(play, inv, ident="gone", artifacts_dir=tmp_path / "art")
    assert not done.ok
    said = " ".join(f.message for f in done.failures)
    assert "si-a: the host could not be reached" in said
    assert "done before it: none" in said


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_a_host_lost_after_a_service_says_which_were_done_even_when_its_cleanup_fails_too(monkeypatch):
    """The connection dies at the second service; removing the host's temporary directory then
    fails on the dead connection too (pipelining off), and must not replace the message."""
    path = Path(__file__).resolve().parents[2] / "roles" / "service_control" / "action_plugins" / "service_units.py"
    spec = importlib.util.spec_from_file_location("service_units_action", path)
    units = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(units)
    calls = []

    class Lost(units.ActionModule):
        def __init__(self):  # no task, connection or loader: only what run() reads
            self._task = type("Task", (), {"args": {"state": "started", "services": [
                {"name": "si-a"}, {"name": "si-b"}, {"name": "si-c"}]}})()
            self._connection = type("Conn", (), {"_shell": type("Shell", (), {"tmpdir": "/tmp/x"})()})()

        def _execute_module(self, module_name=None, module_args=None, task_vars=None, **_):
            calls.append(module_args["services"][0]["name"])
            if len(calls) == 2:
                raise AnsibleConnectionFailure("ssh: connection reset")
            return {"ok": True, "changed": True, "changes": ["si-a.service started"], "done": ["si-a\x1b[2J"]}

        def _remove_tmp_path(self, tmp_path, force=False):
            raise AnsibleConnectionFailure("rm: the connection is gone")

    monkeypatch.setattr(ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    got = Lost().run(task_vars={})
    assert calls == ["si-a", "si-b"]  # si-c never asked
    assert got["unreachable"] is True
    assert got["changed"] is True
    assert got["msg"].startswith("si-b: the host could not be reached: ssh: connection reset")
    assert got["msg"].endswith("(done before it: si-a?[2J)")


def test_a_host_answering_its_lists_as_strings_is_not_spelt_out_letter_by_letter(monkeypatch):
    path = Path(__file__).resolve().parents[2] / "roles" / "service_control" / "action_plugins" / "service_units.py"
    spec = importlib.util.spec_from_file_location("service_units_action_strings", path)
    units = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(units)

    class Odd(units.ActionModule):
        def __init__(self):
            self._task = type("Task", (), {"args": {"state": "started", "services": [{"name": "si-a"}]}})()
            self._connection = type("Conn", (), {"_shell": type("Shell", (), {"tmpdir": None})()})()

        def _execute_module(self, **_):
            return {"ok": True, "changes": "si-a started", "done": "si-a", "warnings": "careful"}

        def _remove_tmp_path(self, tmp_path, force=False):
            return None

    monkeypatch.setattr(ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    got = Odd().run(task_vars={})
    assert (got["changes"], got["done"], got.get("warnings")) == ([], [], None)
    assert got["changed"] is False
