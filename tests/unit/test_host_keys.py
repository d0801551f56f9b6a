"""SSH host keys in production (issue #15): plan.check refuses a production inventory that does
not pin them, and the runner makes real ssh fail at once on a key it does not know, never ask
(a question in ansible-runner's pty would hang the step)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import paramiko
import pytest

from cutover.ansible import run_playbook
from cutover.ansible.runner import _unreachable_hint, ssh_args
from cutover.errors import CutoverError
from cutover.plan.lint import load_plan

from .problems import errors

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "plans" / "shanxi-2023-11.yml"



@pytest.fixture
def example(tmp_path) -> Path:
    inv = tmp_path / "example"
    shutil.copytree(ROOT / "inventories" / "example", inv)
    return inv


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_production_inventory_that_names_no_known_hosts_is_refused(example):
    vars_file = example / "group_vars" / "all" / "vars.yml"
    _edit(vars_file, 'cutover_known_hosts: "{{ inventory_dir }}/known_hosts.txt"\n', "")
    _edit(vars_file, "ansible_ssh_common_args: -o UserKnownHostsFile={{ cutover_known_hosts }} "
          "-o StrictHostKeyChecking=yes\n", "")
    _, problems = load_plan(SHIPPED, example)
    found = errors(problems)
    assert len(found) == 1, found
    hosts = example / "hosts.yml"
    n = next(i for i, line in enumerate(hosts.read_text().splitlines(), 1) if "db-prov-01:" in line)
    assert found[0].startswith(f"{hosts}:{n}: the production inventory {example} names no known_hosts "
                               "(cutover_known_hosts) for db-prov-01, db-prov-02, core-qyyl-01 and 55 more hosts")


def test_a_host_reached_without_ssh_needs_no_host_key_but_one_that_may_use_ssh_does(example):
    vars_file = example / "group_vars" / "all" / "vars.yml"
    _edit(vars_file, 'cutover_known_hosts: "{{ inventory_dir }}/known_hosts.txt"\n', "")
    hosts = example / "hosts.yml"
    _edit(hosts, "db-prov-01: {", "db-prov-01: {ansible_connection: local, ")
    _edit(hosts, "db-prov-02: {", "db-prov-02: {ansible_connection: \"{{ 'ssh' }}\", ")
    found = errors(load_plan(SHIPPED, example)[1])
    assert len(found) == 1, found
    assert "names no known_hosts (cutover_known_hosts) for db-prov-02, core-qyyl-01" in found[0]


def test_a_production_host_reached_with_paramiko_is_refused(example):
    hosts = example / "hosts.yml"
    _edit(hosts, "db-prov-01: {", "db-prov-01: {ansible_connection: paramiko, ")
    found = errors(load_plan(SHIPPED, example)[1])
    assert len(found) == 1, found
    assert "connects with paramiko, which reads neither ssh_args nor UserKnownHostsFile (ansible_connection) " \
        "for db-prov-01" in found[0]


def test_a_known_hosts_file_that_is_not_there_or_not_used_is_refused(example):
    (example / "known_hosts.txt").unlink()
    _, problems = load_plan(SHIPPED, example)
    assert any(f"cutover_known_hosts of db-prov-01, db-prov-02, core-qyyl-01 and 55 more hosts is "
               f"{example}/known_hosts.txt, which is not an existing file" in e for e in errors(problems))
    (example / "known_hosts.txt").write_text("")
    vars_file = example / "group_vars" / "all" / "vars.yml"
    _edit(vars_file, "-o UserKnownHostsFile={{ cutover_known_hosts }} ", "")
    _, problems = load_plan(SHIPPED, example)
    found = [e for e in errors(problems) if "ssh does not read cutover_known_hosts" in e]
    assert len(found) == 1, errors(problems)
    n = next(i for i, line in enumerate(vars_file.read_text().splitlines(), 1) if "cutover_known_hosts:" in line)
    assert found[0].startswith(f"{vars_file}:{n}: ")


def test_a_production_inventory_that_trusts_unknown_keys_is_refused(example):
    vars_file = example / "group_vars" / "all" / "vars.yml"
    _edit(vars_file, "-o StrictHostKeyChecking=yes", "-o StrictHostKeyChecking=accept-new")
    _, problems = load_plan(SHIPPED, example)
    assert any("tells ssh to trust unknown host keys (ansible_ssh_common_args) for db-prov-01, db-prov-02, "
               "core-qyyl-01 and 55 more hosts" in e for e in errors(problems))


def test_a_production_inventory_that_replaces_the_runners_ssh_options_is_refused(example):
    vars_file = example / "group_vars" / "all" / "vars.yml"
    _edit(vars_file, "ansible_ssh_common_args:", "ansible_ssh_args: -C\nansible_ssh_common_args:")
    _, problems = load_plan(SHIPPED, example)
    found = [e for e in errors(problems) if "replaces ansible.cfg's ssh_args" in e]
    assert len(found) == 1, errors(problems)
    n = next(i for i, line in enumerate(vars_file.read_text().splitlines(), 1) if "ansible_ssh_args:" in line)
    assert found[0].startswith(f"{vars_file}:{n}: the production inventory {example} replaces ansible.cfg's "
                               "ssh_args without -o StrictHostKeyChecking=yes -o BatchMode=yes (ansible_ssh_args) "
                               "for db-prov-01")


def test_hosts_the_known_hosts_does_not_pin_are_a_warning_naming_them(example):
    key = paramiko.RSAKey.generate(1024)
    (example / "known_hosts.txt").write_text(
        f"db-prov-01.si.example.invalid {key.get_name()} {key.get_base64()}\n")
    _, problems = load_plan(SHIPPED, example)
    assert errors(problems) == []
    warnings = [str(p) for p in problems if "has no host key" in p.message]
    assert len(warnings) == 1
    assert "no host key for db-prov-02, core-qyyl-01, core-jgyl-01 and 54 more hosts" in warnings[0]


def test_the_lab_is_not_held_to_production_rules():
    _, problems = load_plan(SHIPPED, ROOT / "inventories" / "lab")
    assert problems == []


# ---------------------------------------------------------------- ssh never asks


def test_the_runners_ssh_options_never_ask(monkeypatch, tmp_path):
    args = ssh_args()
    assert "-o StrictHostKeyChecking=yes" in args
    assert "-o BatchMode=yes" in args
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[ssh_connection]\nssh_args = -C -o ControlMaster=auto\n")
    with pytest.raises(CutoverError, match="StrictHostKeyChecking=yes, -o BatchMode=yes"):
        ssh_args(cfg)


class _UnknownKeyServer:
    """An SSH server on loopback that shows a host key nobody pinned (and lets nobody in)."""

    def __init__(self) -> None:
        self.key = paramiko.RSAKey.generate(2048)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.key)
        try:
            transport.start_server(server=paramiko.ServerInterface())
            transport.accept(20)
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            transport.close()

    def close(self) -> None:
        self.sock.close()


def test_real_ssh_to_a_host_with_an_unknown_key_fails_at_once_whatever_the_shell_says(monkeypatch, tmp_path):
    # the operator's shell would have ssh trust any key (Ansible then adds StrictHostKeyChecking=no):
    # the runner decides, not the environment; without it this host would be asked for a login
    monkeypatch.setenv("ANSIBLE_SSH_ARGS", "-C")
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    server = _UnknownKeyServer()
    (tmp_path / "known_hosts").write_text("")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(f"""all:
  hosts:
    stranger:
      ansible_connection: ssh
      ansible_host: 127.0.0.1
      ansible_port: {server.port}
      ansible_user: nobody
      ansible_ssh_common_args: -o UserKnownHostsFile={tmp_path}/known_hosts -o ControlPath=none
""")
    playbook = tmp_path / "ping.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    results = []
    started = time.monotonic()
    runner = threading.Thread(target=lambda: results.append(
        run_playbook(playbook, inventory, ident="hostkey", artifacts_dir=tmp_path / "art")), daemon=True)
    runner.start()
    runner.join(120)
    server.close()
    assert not runner.is_alive(), "the run waited for an answer about the host key"
    assert time.monotonic() - started < 60
    [result] = results
    assert not result.ok
    assert result.stats["stranger"].get("dark") == 1  # unreachable, not failed later
    # ssh's own words, or (when Ansible's race between writing the task and ssh's exit hides
    # them, as it does under load) a hint that names the host key as the likely cause; either
    # is in what the operator reads. (Stop 25's CI: this asked for ssh's words in the summary
    # even when the race had hidden them.)
    said = ("Host key verification failed" if "Host key verification failed" in result.failures[0].message
            else "host key may be unknown or changed")
    assert said in result.summary(), result.summary()


def test_when_ansible_reports_only_a_broken_pipe_the_operator_is_told_to_look_at_the_host_key():
    # the message CI saw under load: ssh had already refused the key, Ansible kept only the pipe
    message = ("Task failed: Data could not be sent to remote host '127.0.0.1'. Make sure this host "
               "can be reached over SSH: [Errno 32] Broken pipe")
    hint = _unreachable_hint(message, "county-db", "inventories/prod/hosts.yml")
    assert "county-db's host key may be unknown or changed" in hint
    assert "the login refused, or the connection lost" in hint
    # the run's own ssh settings (its known_hosts), not the operator's ~/.ssh defaults
    assert "ansible.cfg ansible -i inventories/prod/hosts.yml county-db -m ansible.builtin.ping -vvv" in hint
    # ssh's own words need no guess, and other failures get none
    assert _unreachable_hint("Data could not be sent ...: Host key verification failed.", "x", "i") == ""
    assert _unreachable_hint("Failed to connect to the host via ssh: Connection refused", "x", "i") == ""
