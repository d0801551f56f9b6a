"""After the window: the jobs that were on are on again; the one that was off stays off."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")


def test_the_timer_that_was_on_is_back(host):
    assert host.service("si-job-a.timer").is_enabled
    assert host.service("si-job-a.timer").is_running


def test_the_timer_that_was_off_stays_off(host):
    assert not host.service("si-job-off.timer").is_enabled
    assert not host.service("si-job-off.timer").is_running


def test_cron_lines_are_exactly_as_before(host):
    # testinfra strips the final newline of what it reads
    assert host.file("/etc/cron.d/si-job-card").content_string == "SHELL=/bin/sh\n15 4 * * * root /bin/true"
    assert host.file("/etc/cron.d/si-job-old").content_string == "# 0 5 * * * root /bin/true"


def test_the_record_names_what_was_on_and_is_marked_restored(host):
    record = json.loads(host.file("/etc/ansible/facts.d/timed_jobs.fact").content_string)
    assert record["timers"] == ["si-job-a.timer"]
    assert record["cron"] == ["/etc/cron.d/si-job-card"]
    assert record["recorded"] is False
    assert "restored_at" in record
