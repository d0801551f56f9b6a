"""After the window: the jobs that were on are on again; the one that was off stays off. The
baseline the next-day check compares with (N13) is this window's, of exactly the jobs that were on."""

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


def test_the_baseline_is_this_windows_and_counts_only_the_jobs_that_were_on(host):
    baseline = json.loads(host.file("/etc/ansible/facts.d/job_baseline.fact").content_string)
    assert baseline["key"] == "this-window"  # the earlier window's record was replaced
    # a: 3 rows, from the first run (the re-run under the same key kept it, not the newer 10);
    # "off" and "old" were off before the window: neither counted nor expected
    assert baseline["rows"] == {"a": 3, "card": 2}
