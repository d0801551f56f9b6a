"""Refusals travel Ansible's way (issue #13): a task fails with `msg` (what is wrong) and
`hint` (what to do), the runner reads both from the event, and nothing matches `error:` or
`hint:` in text. Real ansible-runner on localhost, the real data playbooks and helper; no
database and no drop are needed, since each refusal here comes before either is reached."""

from __future__ import annotations

import importlib.util
import io
import json
import socket
from pathlib import Path

import pytest

from cutover.ansible import run_playbook
from cutover.contract import check_evidence
from cutover.data import __main__ as data_main
from cutover.paths import ROOT

DATA = Path(__file__).resolve().parents[1] / "data"
LINES = "{si_lines: {qyyl: {db: si_qyyl, title: 企业职工养老}}}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inventory(tmp_path: Path, group: str, extra: str) -> Path:
    inv = tmp_path / "inv.yml"
    inv.write_text(f"all:\n  children:\n    {group}:\n      hosts:\n"
                   f"        {group}-a: {{ansible_connection: local, ansible_python_interpreter: "
                   "'{{ ansible_playbook_python }}'}\n"
                   f"  vars: {{si_lines: {{qyyl: {{db: si_qyyl, title: q}}}}, {extra}}}\n", encoding="utf-8")
    return inv


def test_a_modules_msg_and_hint_reach_the_failure_each_in_its_place(tmp_path):
    result = run_playbook(DATA / "playbooks" / "refuses.yml", DATA / "inventory.yml", ident="refuse",
                          artifacts_dir=tmp_path)
    assert not result.ok
    [failure] = result.failures
    assert failure.message == "si_qyyl: prepared transaction(s) still open: hold (si_owner)"
    assert failure.hint == "COMMIT PREPARED or ROLLBACK PREPARED them, then run the step again"
    assert result.summary().splitlines()[1:] == [
        "  localhost: Refuse | Say what is wrong and what to do: si_qyyl: prepared transaction(s) still open: "
        "hold (si_owner)",
        "    hint: COMMIT PREPARED or ROLLBACK PREPARED them, then run the step again"]


def test_text_on_stderr_is_shown_as_written_and_never_read_as_an_error_or_a_hint(tmp_path):
    result = run_playbook(DATA / "playbooks" / "says-error-on-stderr.yml", DATA / "inventory.yml",
                          ident="stderr", artifacts_dir=tmp_path)
    [failure] = result.failures
    assert failure.hint == ""
    assert failure.message == "non-zero return code:\n    error: words on stderr\n    hint: not a field"


def test_a_refused_screening_fails_its_task_with_the_reason_and_the_hint(tmp_path):
    inv = _inventory(tmp_path, "db", f"si_db_host: 127.0.0.1, si_db_port: {_closed_port()}, si_db_user: u, "
                                     "si_db_password: p, si_db_sslmode: '', si_export: {}")
    result = run_playbook(ROOT / "playbooks" / "data" / "screen.yml", inv, ident="screen",
                          artifacts_dir=tmp_path / "art", extravars={"cutover_data_exclude_lines": []})
    assert not result.ok
    [failure] = result.failures
    assert failure.task == "Screen | Check the filters and rules and count what each holds back"
    assert failure.message == "qyyl (q): no sslmode for the qyyl database connection"
    assert failure.hint.startswith("set si_db_sslmode in the inventory")
    assert "screening" not in result.evidence


def test_a_refused_export_writes_nothing_and_its_password_is_in_no_artifact(tmp_path):
    inv = _inventory(tmp_path, "db", f"si_db_host: 127.0.0.1, si_db_port: {_closed_port()}, si_db_user: u, "
                                     "si_db_password: s3cret-Pw-7, si_db_sslmode: disable, si_export: {}")
    out = tmp_path / "d"
    result = run_playbook(ROOT / "playbooks" / "data" / "export.yml", inv, ident="export",
                          artifacts_dir=tmp_path / "art",
                          extravars={"cutover_data_dir": str(out), "cutover_data_exclude_lines": []})
    [failure] = result.failures
    assert failure.message.startswith("qyyl (q): cannot connect to the qyyl database si_qyyl:")
    assert failure.hint == "is the database up and reachable from this machine?"
    assert "export" not in result.evidence
    assert not (out / "export" / "qyyl").exists()
    # the secret goes on the helper's standard input, and the task's result never holds it
    for path in (tmp_path / "art").rglob("*"):
        if path.is_file():
            assert b"s3cret-Pw-7" not in path.read_bytes(), path


def test_a_hand_off_that_cannot_reach_the_drop_is_refused_and_records_nothing_on_it(tmp_path):
    inv = _inventory(tmp_path, "drop", f"si_drop_protocol: ftp, si_drop_host: 127.0.0.1, "
                                       f"si_drop_port: {_closed_port()}, si_drop_user: handoff, "
                                       "si_drop_password: p, si_drop_inbox: inbox, si_drop_receipts: receipts, "
                                       "si_drop_notify_urls: []")
    result = run_playbook(ROOT / "playbooks" / "data" / "handoff.yml", inv, ident="handoff",
                          artifacts_dir=tmp_path / "art",
                          extravars={"cutover_plan": "p", "cutover_data_dir": str(tmp_path / "d"),
                                     "cutover_data_exclude_lines": []})
    [failure] = result.failures
    assert failure.task == "Handoff | Upload, verify on the drop and notify the receiver"
    assert failure.message.startswith("ftp://handoff@127.0.0.1:")
    assert ": cannot log in: " in failure.message
    assert failure.hint == "is the drop reachable?"
    assert result.evidence == {"handoff": {}}  # recorded, refused or not
    assert check_evidence(result.evidence, "playbooks/data/handoff.yml")[1] == []


def test_a_receipt_that_does_not_reconcile_is_refused_with_its_table_as_evidence(tmp_path, monkeypatch, capsys):
    from cutover.data.handoff import handoff
    from cutover.data.reconcile import receipt_path
    from tests.unit.test_receipt_binding import MemoryDrop, _export, _receipt

    export, drop = _export(tmp_path / "d", 5), MemoryDrop()
    sent = handoff(drop, export, ["qyyl"], batch="b", remote_root="inbox",
                   receipt=receipt_path("receipts", "b"), say=lambda _: None)
    _receipt(drop, sent["index_sha256"], 4)  # the receiver lost a row
    monkeypatch.setattr(data_main, "_drop", lambda spec: drop)
    monkeypatch.setattr("sys.stdin", io.StringIO('{"drop_password": "p"}'))
    spec = {"lines": ["qyyl"], "dir": str(tmp_path / "d"), "batch": "b", "wait": 0,
            "drop": {"receipts": "receipts", "inbox": "inbox"}}
    assert data_main.main(["reconcile", "--spec", json.dumps(spec)]) == 1
    [line] = capsys.readouterr().out.splitlines()  # one JSON object, nothing else
    answer = json.loads(line)
    assert answer["failed"] is True
    assert answer["msg"] == "the receipt does not reconcile:\n  qyyl.person: rows differ by -1 (sent 5, received 4)"
    assert answer["hint"] == "agree the difference with the receiver, then run data.reconcile again"
    assert answer["result"]["passed"] is False
    assert check_evidence({"reconciliation": answer["result"]}, "reconcile.yml")[1] == []


def test_a_helper_that_ends_without_its_answer_fails_the_task_with_the_end_of_its_output(tmp_path):
    """Not a refusal but a defect (here: a spec without its keys): the task fails, fail-closed,
    with the traceback's last lines."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "action_plugins").symlink_to(ROOT / "playbooks" / "data" / "action_plugins")
    (playbooks / "crash.yml").write_text(
        "- name: Crash\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Crash | Screen without a spec\n      data_step: {operation: screen, spec: {}}\n",
        encoding="utf-8")
    result = run_playbook(playbooks / "crash.yml", DATA / "inventory.yml", ident="crash",
                          artifacts_dir=tmp_path / "art")
    [failure] = result.failures
    assert failure.message.startswith("python -m cutover.data screen ended (exit 1) without its result:")
    assert "KeyError: 'db'" in failure.message
    assert failure.hint == "an error the step does not explain: the end of its output is above"


@pytest.mark.parametrize(("key", "value"), [
    ("freeze", {"db1": {}}),
    ("snapshot", {"db1": {"changed": True, "dir": "/var/backups/cutover/p", "databases": {},
                          "planned": {"si_qyyl": "take a new snapshot (7.5 MiB of database)"}}}),
    ("unfreeze", {"db1": {}}),
    ("data_restored", {"db1": {}}),
])
def test_what_the_pg_data_module_reports_in_check_mode_is_evidence_of_the_right_shape(key, value):
    # the playbooks record pg_data_result (or its databases); in check mode those are empty
    assert check_evidence({key: value}, "playbooks/data")[1] == []


def test_what_a_crash_shows_has_its_secrets_and_url_tokens_masked():
    spec = importlib.util.spec_from_file_location(
        "data_step", ROOT / "playbooks" / "data" / "action_plugins" / "data_step.py")
    data_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data_step)
    hook = "json://127.0.0.1:9/hook?+X-Token=s3cr3t-token"
    lines = [f"  post({hook}) failed", "connect: password=hunter2 rejected",
             "see https://ops:pw@drop.example/in?sig=abc"]
    shown = "\n".join(data_step._masked(lines, {"db_password": "hunter2", "notify_urls": [hook]}))
    for secret in ("s3cr3t-token", "hunter2", "ops:pw", "sig=abc"):
        assert secret not in shown
    assert "drop.example/in" in shown  # where it went stays readable
