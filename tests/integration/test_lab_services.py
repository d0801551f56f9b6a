"""After `lab.up`, the lab is the social-insurance system before the window."""

from __future__ import annotations

import json
import urllib.request

import pytest

from cutover.lab import artifacts
from cutover.lab import lab as labmod

from .conftest import host

pytestmark = pytest.mark.lab


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=20) as resp:  # the unit tests run beside (invoke test)
        assert resp.status == 200
        return json.loads(resp.read())


def post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_status_reports_every_host_healthy(lab):
    st = labmod.status()
    assert st["healthy"], [h["host"] for h in st["hosts"] if not h["healthy"]]
    assert {h["host"] for h in st["hosts"]} == {h.name for h in lab["hosts"]}


def test_every_business_service_is_active_enabled_and_on_the_old_release(lab):
    for h in lab["hosts"]:
        t = host(h.name)
        for s in h.services:
            if s.kind != "http" or s.name == "nginx":
                continue
            assert t.service(s.name).is_running, f"{h.name}: {s.name} not running"
            assert t.service(s.name).is_enabled, f"{h.name}: {s.name} not enabled"
            assert t.file(f"/opt/{s.name}/current/VERSION").content_string.strip() == artifacts.OLD
            assert get(f"http://127.0.0.1:{s.port}/version")["version"] == artifacts.OLD


def test_databases_run_on_db_and_tax_hosts(lab):
    for name in ("db1", "tax1"):
        assert host(name).service("postgresql@15-main").is_running


def test_channels_answer_through_nginx(lab):
    for path in ("/online/", "/nearby/", "/app/minsheng/", "/app/sanjin/"):
        assert get(f"http://127.0.0.1:28080{path}health")["status"] == "ok"


def test_timed_jobs_are_on_except_the_one_off_on_purpose(lab):
    t = host("jobs1")
    assert t.service("si-job-stats-report.timer").is_enabled
    assert t.service("si-job-cert-pause-restore.timer").is_enabled
    assert not t.service("si-job-legacy-export.timer").is_enabled
    assert not t.service("si-job-legacy-export.timer").is_running
    cron = t.file("/etc/cron.d/si-job-card-extract").content_string
    assert any(line.startswith("15 4 * * *") for line in cron.splitlines())


def test_a_timed_job_really_runs_against_the_databases(lab):
    out = host("jobs1").check_output("systemctl start si-job-stats-report.service && "
                                     "journalctl -u si-job-stats-report.service -n 5 --no-pager")
    assert "stats-report:" in out
    assert "rows ->" in out


def test_a_counter_writes_through_the_core_service_into_the_line_database(lab, lab_vars):
    import psycopg

    status, body = post("http://127.0.0.1:28101/benefit-payment",
                        {"line": "gs", "agency": "140100", "period": "202399", "amount": 12.5})
    assert status == 200, body
    assert body["via"] == "si-counter"
    assert body["component"] == "si-core-gs"
    dsn = (f"host=127.0.0.1 port=25432 dbname=si_gs user=si_owner "
           f"password={lab_vars['vault_si_db_password']}")
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT agency_id, period, status FROM payment_batch WHERE id = %s",
                           (body["id"],)).fetchone()
        assert row == ("140100", "202399", "unpaid")
        conn.execute("DELETE FROM payment_batch WHERE id = %s", (body["id"],))


def test_drop_accepts_the_handoff_account_over_sftp_and_ftp(lab, lab_vars):
    import ftplib

    import paramiko

    password = lab_vars["vault_si_drop_password"]
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", 28121, timeout=10)
    ftp.login("handoff", password)
    assert "inbox" in ftp.nlst()
    ftp.quit()
    transport = paramiko.Transport(("127.0.0.1", 22051))
    try:
        transport.connect(username="handoff", password=password)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sorted(sftp.listdir("/")) == ["inbox", "receipts"]
    finally:
        transport.close()
