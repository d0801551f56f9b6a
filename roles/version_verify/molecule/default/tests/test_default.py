"""A VERSION file that disagrees with the running process fails, naming host and component."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")


def test_disagreeing_http_probe_is_named(host):
    msg = host.file("/root/version-message").content_string
    assert "demo expected 2.0, http http://127.0.0.1:18095/version found 1.0" in msg
    assert "version-verify-instance" in msg


def test_the_file_probe_itself_agreed(host):
    msg = host.file("/root/version-message").content_string
    assert "file /opt/demo/current/VERSION" not in msg


def test_a_package_probe_reports_the_installed_version(host):
    installed = host.package("openssh-server").version
    msg = host.file("/root/package-message").content_string
    assert f"demo-pkg expected 0.0.1, package openssh-server found {installed}" in msg
