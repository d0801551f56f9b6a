"""The ansible-runner wrapper, with real ansible-runner on localhost (no mock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.ansible import run_playbook
from cutover.errors import CutoverError

DATA = Path(__file__).resolve().parents[1] / "data"


def test_success_returns_set_stats_evidence_and_progress(tmp_path):
    seen = []
    result = run_playbook(DATA / "playbooks" / "evidence.yml", DATA / "inventory.yml",
                          ident="ev", artifacts_dir=tmp_path, on_progress=seen.append)
    assert result.ok
    assert result.evidence == {"counted": 3, "agencies": [140100, 140200]}
    assert [(p.host, p.status) for p in seen] == [("localhost", "ok")]
    assert (tmp_path / "runner" / "artifacts" / "ev" / "stdout").exists()


def test_failure_names_host_task_and_message(tmp_path):
    result = run_playbook(DATA / "playbooks" / "fails.yml", DATA / "inventory.yml",
                          ident="bad", artifacts_dir=tmp_path)
    assert not result.ok
    assert result.status == "failed"
    assert [(f.host, f.message) for f in result.failures] == [
        ("localhost", "agency 140107 has a pending approval")]
    assert "Stop with a message" in result.summary()


def test_missing_playbook_is_refused(tmp_path):
    with pytest.raises(CutoverError, match="does not exist"):
        run_playbook(tmp_path / "nope.yml", DATA / "inventory.yml", ident="x",
                     artifacts_dir=tmp_path)


def test_syntax_error_is_reported_with_its_reason(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("- hosts: localhost\n  tasks:\n    - name: x\n      no_such_module_xyz: {}\n")
    result = run_playbook(broken, DATA / "inventory.yml", ident="syn", artifacts_dir=tmp_path)
    assert not result.ok
    assert "no_such_module_xyz" in result.summary()


def test_a_runs_variables_do_not_leak_into_the_next_run_in_the_same_directory(tmp_path):
    # ansible-runner keeps env/extravars of a private data dir and adds a run's own on top
    one = run_playbook(DATA / "playbooks" / "echo-var.yml", DATA / "inventory.yml", ident="one",
                       artifacts_dir=tmp_path, extravars={"first": "one"})
    two = run_playbook(DATA / "playbooks" / "echo-var.yml", DATA / "inventory.yml", ident="two",
                       artifacts_dir=tmp_path, extravars={"second": "two"})
    assert one.evidence == {"first": "one", "second": "absent"}
    assert two.evidence == {"first": "absent", "second": "two"}


def test_the_same_failure_on_many_hosts_is_said_once_naming_them():
    from cutover.ansible import HostFailure, PlaybookResult

    same = "cutover_release_manifest is missing: run with -e cutover_release_manifest=..."
    result = PlaybookResult("deploy", "failed", 2, Path("/tmp"), failures=[
        *(HostFailure(f"counter-{n}", "Inputs | Require the release manifest", same) for n in range(5)),
        HostFailure("core-gs", "Deploy | Switch", "core-gs: si-core-gs has no PREVIOUS")])
    assert result.summary().splitlines()[1:] == [
        "  counter-0, counter-1, counter-2 and 2 more hosts: Inputs | Require the release manifest: " + same,
        "  core-gs: Deploy | Switch: core-gs: si-core-gs has no PREVIOUS"]


def test_a_loop_that_found_its_host_unreachable_says_why_not_all_items_completed():
    """A looped task whose first connection cannot reach
    the host: ssh's reason is on the item, the loop's own msg says only that it completed."""
    from cutover.ansible.runner import _message

    res = {"msg": "All items completed", "changed": False, "results": [
        {"unreachable": True, "msg": "Failed to connect to the host via ssh: Connection refused",
         "__service_control_item": {"name": "si-counter"}, "ansible_loop_var": "__service_control_item",
         "_ansible_item_label": "si-counter"}]}
    message, _ = _message(res)
    assert "Connection refused" in message
    assert "All items completed" not in message
