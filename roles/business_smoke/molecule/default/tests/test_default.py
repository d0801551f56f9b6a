"""After the role: the check left no trace; each service that cannot prove the business failed it, saying why."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")


def _rows(host, db: str, where: str) -> int:
    out = host.check_output(f"su postgres -c \"psql -X -tA -d {db} -c \\\"SELECT count(*) FROM approval WHERE {where}\\\"\"")
    return int(out.strip())


def test_the_right_service_passed_and_left_no_trace(host):
    # prepare made one business record per database; the check's own records are gone,
    # although converge and idempotence each sent one through core-qyyl
    assert _rows(host, "si_qyyl", "kind <> 'cutover-smoke'") == 1
    assert _rows(host, "si_qyyl", "kind = 'cutover-smoke'") == 0
    assert "POST /approval" in host.check_output("journalctl -u core-qyyl --no-pager")


def test_a_service_writing_into_another_lines_database_fails(host):
    msg = host.file("/root/smoke-misrouted").content_string
    assert "http://127.0.0.1:18082/approval" in msg
    assert "si_qyyl has no such check record" in msg
    # where the misrouted service really wrote: the other line's database
    assert _rows(host, "si_gsbx", "kind = 'cutover-smoke'") >= 1


def test_a_frozen_database_behind_the_service_fails(host):
    msg = host.file("/root/smoke-frozen").content_string
    assert "503" in msg
    assert _rows(host, "si_qyyl", "kind = 'cutover-smoke'") == 0


def test_a_line_without_a_database_is_refused_before_any_request(host):
    msg = host.file("/root/smoke-no-database").content_string
    assert "cjyl" in msg and "have no database" in msg
