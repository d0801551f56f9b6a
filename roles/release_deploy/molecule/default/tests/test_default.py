"""What an operator checks after a deploy: the right release runs, the way back exists,
and a tampered artifact left no trace."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")


def test_current_points_at_the_newest_release(host):
    current = host.file("/opt/demo/current")
    assert current.is_symlink
    assert current.linked_to == "/opt/demo/releases/1.1.0"
    assert host.file("/opt/demo/current/VERSION").content_string.strip() == "1.1.0"


def test_previous_release_is_kept_for_the_way_back(host):
    assert host.file("/opt/demo/releases/1.0.0/VERSION").exists
    assert host.file("/opt/demo/PREVIOUS").content_string.strip() == "1.0.0"


def test_tampered_artifact_was_refused_before_unpacking(host):
    assert "does not match" in host.file("/root/tampered-refused").content_string
    assert not host.file("/opt/demo/releases/9.9.9").exists
    assert not host.file("/opt/demo/releases/9.9.9.partial").exists
    assert "0" * 64 not in host.check_output("ls -A /var/cache/release_deploy")


def test_no_partial_directories_or_stray_links_remain(host):
    listing = host.check_output("ls -A /opt/demo /opt/demo/releases")
    assert ".partial" not in listing
    assert ".current.new" not in listing


def test_components_sharing_an_artifact_get_one_staged_copy_and_each_switches(host):
    assert host.file("/opt/demo-twin/current").linked_to == "/opt/demo-twin/releases/1.1.0"
    staged = host.check_output("ls -A /var/cache/release_deploy").split()
    assert len([f for f in staged if f.endswith("demo-1.1.0.tar.gz")]) == 1, staged
