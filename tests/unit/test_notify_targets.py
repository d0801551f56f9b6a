"""N16: a notification is delivered only when it reached a target; the inventory's URLs are
resolved as Ansible resolves them (templates and vault), not skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cutover.engine import notify
from cutover.engine.journal import Journal
from cutover.engine.notify import notify_urls
from cutover.plan.lint import load_plan

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "plans" / "mini.yml"
CONTEXT = {"plan": {"plan": {"name": "p", "title": "t"}}, "subject": "s", "detail": "", "operator": "me",
           "at": "2023-11-20 18:00", "rehearsal": True}


def test_a_message_to_no_target_is_recorded_as_not_delivered(tmp_path):
    j = Journal.open(tmp_path / "j.sqlite")
    try:
        assert notify.send([], "handoff", j, **CONTEXT) is False
        (row,) = j.all("notifications")
        assert (row["targets"], row["ok"]) == (0, 0)
    finally:
        j.close()


def test_an_unusable_url_is_not_delivered():
    assert notify.send(["nosuchscheme://x"], "handoff", None, **CONTEXT) is False


def _encrypt(secret: str, name: str) -> str:
    """ansible-vault, with the password file the environment names (as the operator's would)."""
    ansible_vault = Path(sys.executable).parent / "ansible-vault"
    return subprocess.run([str(ansible_vault), "encrypt_string", secret, "--name", name],
                          capture_output=True, text=True, check=True).stdout


def test_templated_and_vaulted_inventory_urls_are_resolved_as_ansible_does(tmp_path, monkeypatch):
    password = tmp_path / "vault-pass"
    password.write_text("unit-test-vault-key\n")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password))
    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n      ansible_connection: local\n")
    (inv / "group_vars" / "all" / "vault.yml").write_text(
        "---\n" + _encrypt("json://127.0.0.1:9/hook?+X-Token=s3cr3t-token", "vault_hook_url"))
    (inv / "group_vars" / "all" / "vars.yml").write_text(
        "---\nnotify_port: 28090\ncutover_notify_urls:\n"
        "  - \"json://127.0.0.1:{{ notify_port }}/notify\"\n  - \"{{ vault_hook_url }}\"\n")
    plan_file = tmp_path / "mini.yml"
    plan_file.write_text(MINI.read_text().replace("inventory: tests/data/inventory.yml", f"inventory: {inv}"))
    plan, problems = load_plan(plan_file, inv)
    assert plan is not None, problems
    assert notify_urls(plan, inv) == ["json://127.0.0.1:28090/notify", "json://127.0.0.1:9/hook?+X-Token=s3cr3t-token"]


def test_plan_check_warns_when_a_production_inventory_notifies_nobody(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   "      cutover_environment: production\n      cutover_site: province\n"
                   "  vars:\n    cutover_sites: {province: {name: 山西省}}\n")
    plan_file = tmp_path / "mini.yml"
    plan_file.write_text(MINI.read_text().replace("inventory: tests/data/inventory.yml", f"inventory: {inv}"))
    _, problems = load_plan(plan_file, inv)
    warnings = [str(p) for p in problems if p.severity == "warning"]
    assert any("notify nobody (N16)" in w for w in warnings), warnings


def test_an_undefined_part_of_the_inventorys_urls_is_a_clear_refusal(tmp_path):
    import pytest

    from cutover.errors import CutoverError

    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n      ansible_connection: local\n")
    (inv / "group_vars" / "all" / "vars.yml").write_text(
        "---\ncutover_notify_urls:\n  - \"json://127.0.0.1:{{ no_such_port }}/notify\"\n")
    plan_file = tmp_path / "mini.yml"
    plan_file.write_text(MINI.read_text().replace("inventory: tests/data/inventory.yml", f"inventory: {inv}"))
    plan, problems = load_plan(plan_file, inv)
    assert plan is not None, problems
    with pytest.raises(CutoverError, match=r"cutover_notify_urls of h1 .* cannot be resolved: .*no_such_port"):
        notify_urls(plan, inv)
