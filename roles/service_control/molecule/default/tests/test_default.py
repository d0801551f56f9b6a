"""After the role: services up and healthy; a broken one reported with its journal."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")


def test_started_services_run_and_answer(host):
    assert host.service("demo-web").is_running
    assert host.service("demo-worker").is_running
    assert host.socket("tcp://127.0.0.1:18080").is_listening


def test_broken_service_failure_names_unit_and_shows_its_journal(host):
    msg = host.file("/root/broken-message").content_string
    assert "demo-broken.service" in msg
    assert "did not become started" in msg
    assert "cannot find its config" in msg
