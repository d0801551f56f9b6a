"""After the role: the check left no trace; each service that cannot prove the business
failed it, saying why."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")


COUNT = {"business": "SELECT count(*) FROM approval WHERE kind <> 'cutover-smoke'",
         "checks": "SELECT count(*) FROM approval WHERE kind = 'cutover-smoke'"}


def _rows(host, db: str, which: str) -> int:
    return int(host.check_output("su postgres -c %s", f'psql -X -tA -d {db} -c "{COUNT[which]}"').strip())


def test_the_right_service_passed_and_left_no_trace(host):
    # prepare made one business record per database; the check's own records are gone,
    # although converge and idempotence each sent one through core-qyyl
    assert _rows(host, "si_qyyl", "business") == 1
    assert _rows(host, "si_qyyl", "checks") == 0
    assert "POST /approval" in host.check_output("journalctl -u core-qyyl --no-pager")


def test_a_service_writing_into_another_lines_database_fails(host):
    msg = host.file("/root/smoke-misrouted").content_string
    assert "http://127.0.0.1:18082/approval" in msg
    assert "reading it back in si_qyyl failed" in msg
    assert "the check statement touched 0 rows" in msg  # nothing of the check's in the line's database
    # where the misrouted service really wrote: the other line's database
    assert _rows(host, "si_gsbx", "checks") >= 1


def test_a_frozen_database_behind_the_service_fails(host):
    msg = host.file("/root/smoke-frozen").content_string
    assert "503" in msg
    assert _rows(host, "si_qyyl", "checks") == 0


def test_an_answer_without_a_record_id_fails_and_is_shown_without_its_control_characters(host):
    msg = host.file("/root/smoke-no-id").content_string
    said = "http://127.0.0.1:18084/approval accepted the qyyl approval transaction but answered no record id"
    assert said in msg
    assert "?[2Jcleared" in msg
    assert "\x1b" not in msg


def test_when_one_service_refuses_the_records_the_others_wrote_are_removed(host):
    msg = host.file("/root/smoke-mixed").content_string
    assert "http://127.0.0.1:18083/approval refused the qyyl approval transaction (status 503)" in msg
    assert "every record a service named was removed" in msg
    assert "18081" not in msg.split("(every record")[0]
    assert _rows(host, "si_qyyl", "checks") == 0


def test_a_line_without_a_database_is_refused_before_any_request(host):
    msg = host.file("/root/smoke-no-database").content_string
    assert "cjyl" in msg
    assert "have no database" in msg


def test_a_transaction_the_inventory_does_not_define_is_refused_before_any_request(host):
    msg = host.file("/root/smoke-unknown-transaction").content_string
    assert "'payroll' is not a transaction of si_smoke_transactions" in msg
    assert "nothing was sent" in msg
