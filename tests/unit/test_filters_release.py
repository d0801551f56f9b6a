"""filter_plugins/probes.py: the release manifest and a host's inventory become the
roles' inputs. The filters give exactly what the Jinja loops they replace gave, and refuse a
component name or port that is not one."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from cutover.plan.release import COMPONENT_NAME

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "releases" / "shanxi-2023-11.yml"

_spec = importlib.util.spec_from_file_location("probe_filters",
                                               ROOT / "filter_plugins" / "probes.py")
assert _spec
assert _spec.loader
filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(filters)


def release() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def components(*names: str) -> list[dict]:
    return [c for c in release()["components"] if c["name"] in names]


CORE_QYYL = {"name": "si-core-qyyl", "version": "2023.11.0", "probes": [
    {"kind": "file", "file": "/opt/si-core-qyyl/current/VERSION"},
    {"kind": "http", "http": "http://127.0.0.1:28011/version", "json_key": "version"}]}


def test_a_core_hosts_components_get_their_version_and_probes_with_name_and_port_filled_in():
    host = [{"name": "si-core-qyyl", "mode": "core", "line": "qyyl", "port": 28011}]
    out = filters.version_probes(components("si-core-qyyl"), release(), host)
    assert out == [CORE_QYYL]
    # the same key order as the Jinja gave: what the journal and the report show
    assert json.dumps(out) == json.dumps([CORE_QYYL])


def test_a_port_templated_into_text_gives_the_same_probes_as_a_number():
    as_text = [{"name": "si-core-qyyl", "port": "28011"}]
    assert filters.version_probes(components("si-core-qyyl"), release(), as_text) == [CORE_QYYL]


def test_a_component_without_a_port_needs_none_unless_a_probe_asks_for_it():
    out = filters.version_probes(components("si-jobs"), release(), [])  # jobs1: si_components: []
    assert out == [{"name": "si-jobs", "version": "2023.11.0",
                    "probes": [{"kind": "file", "file": "/opt/si-jobs/current/VERSION"}]}]
    with pytest.raises(AnsibleFilterError, match=r"a probe of si-gateway needs its \{port\} .* but this host's "
                       r"si_components gives si-gateway no port"):
        filters.version_probes(components("si-gateway"), release(), [{"name": "si-gateway"}])
    with pytest.raises(AnsibleFilterError, match="gives si-gateway no port"):
        filters.version_probes(components("si-gateway"), release(), [{"name": "si-gateway", "port": None}])


def test_every_probe_kind_is_filled_in_and_a_rollback_expects_each_artifacts_previous():
    manifest = release()
    manifest["artifacts"]["other"] = {"version": "5.0", "previous": "4.2", "path": "x", "sha256": "0" * 64}
    mine = [{"name": "si-online", "artifact": "other", "group": "portal",
             "probes": ["file", "http", "command", "package"]},
            {"name": "si-nearby", "artifact": "si-app", "group": "portal", "probes": ["package"]}]
    host = [{"name": "si-online", "port": 28031}, {"name": "si-nearby", "port": 28032}]
    out = filters.version_probes(mine, manifest, host, expect="previous")
    assert out == [
        {"name": "si-online", "version": "4.2", "probes": [
            {"kind": "file", "file": "/opt/si-online/current/VERSION"},
            {"kind": "http", "http": "http://127.0.0.1:28031/version", "json_key": "version"},
            {"kind": "command", "command": "cat /opt/si-online/current/VERSION"},
            {"kind": "package", "package": "si-online"}]},
        {"name": "si-nearby", "version": "2023.10.1", "probes": [{"kind": "package", "package": "si-nearby"}]}]


def test_the_filters_and_the_manifest_model_accept_the_same_component_names():
    assert f"^{filters.NAME.pattern}$" == COMPONENT_NAME


@pytest.mark.parametrize("name", ["si-x{port}", "si x", "../etc", "{{ lookup('pipe', 'id') }}", "si-x;reboot", "",
                                  None])
def test_a_hostile_component_name_is_refused_not_filled_in(name):
    mine = [{"name": name, "artifact": "si-app", "group": "core", "probes": ["file", "command"]}]
    with pytest.raises(AnsibleFilterError, match="is not a unit name"):
        filters.version_probes(mine, release(), [{"name": name, "port": 28011}])
    with pytest.raises(AnsibleFilterError, match="is not a unit name"):
        filters.health_probes([{"name": name, "port": 28011}])


@pytest.mark.parametrize("port", ["28011/../admin?x=", "28011 ", "{port}", "０２８０１１", "0", "65536", True, 28011.5])
def test_a_hostile_port_is_refused_naming_the_component(port):
    with pytest.raises(AnsibleFilterError, match=r"the port of si-core-qyyl is .*, not a TCP port"):
        filters.version_probes(components("si-core-qyyl"), release(), [{"name": "si-core-qyyl", "port": port}])
    with pytest.raises(AnsibleFilterError, match=r"the port of si-core-qyyl is .*, not a TCP port"):
        filters.health_probes([{"name": "si-core-qyyl", "port": port}])


def test_a_component_whose_artifact_or_probe_the_manifest_lacks_is_refused_pointing_at_plan_check():
    mine = [{"name": "si-x", "artifact": "nope", "group": "core", "probes": ["file"]}]
    with pytest.raises(AnsibleFilterError, match=r"si-x runs artifact 'nope'.*invoke plan.check"):
        filters.version_probes(mine, release(), [])
    mine = [{"name": "si-x", "artifact": "si-app", "group": "core", "probes": ["rpm"]}]
    with pytest.raises(AnsibleFilterError, match=r"si-x asks probe 'rpm'.*invoke plan.check"):
        filters.version_probes(mine, release(), [])
    with pytest.raises(AnsibleFilterError, match="expect is one of version, previous"):
        filters.version_probes([], release(), [], expect="latest")


def test_every_component_of_a_host_gets_its_health_check_in_order():
    gateway = [{"name": "si-gateway", "mode": "front", "port": 28021},
               {"name": "si-shared-platform", "mode": "front", "port": "28022"}]
    out = filters.health_probes(gateway)
    assert out == [{"name": "si-gateway", "probe": {"http": "http://127.0.0.1:28021/health"}},
                   {"name": "si-shared-platform", "probe": {"http": "http://127.0.0.1:28022/health"}}]
    assert [list(entry) for entry in out] == [["name", "probe"]] * 2  # the Jinja's key order
    assert filters.health_probes([]) == []  # jobs1
    with pytest.raises(AnsibleFilterError, match=r"the port of si-gateway is None"):
        filters.health_probes([{"name": "si-gateway"}])


def test_ansible_finds_the_filters_and_the_deploy_tasks_build_the_probes_with_them(tmp_path):
    """The playbooks' own manifest task and variables, on the lab inventory, run on this machine (nothing is
    contacted): what version_verify gets on a core host and on the jobs host."""
    play = tmp_path / "render.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Render", "hosts": "core-qyyl:jobs1", "gather_facts": False,
        "vars_files": [str(ROOT / "playbooks" / "deploy" / "vars" / "manifest.yml")],
        "tasks": [{"name": "Manifest", "ansible.builtin.import_tasks":
                   str(ROOT / "playbooks" / "deploy" / "tasks" / "manifest.yml")},
                  {"name": "Show", "ansible.builtin.debug": {"msg": "{{ __verify_components | to_json }}"}},
                  {"name": "Services", "ansible.builtin.debug": {"msg": "{{ si_components | health_probes"
                                                                        " | to_json }}"}}]}]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ROOT / "inventories" / "lab"),
                           str(play), "-e", "ansible_connection=local", "-e", f"cutover_release_manifest={MANIFEST}"],
                          capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out, _ = json.JSONDecoder().raw_decode(proc.stdout, proc.stdout.index("{"))
    tasks = {t["task"]["name"]: t["hosts"] for t in out["plays"][0]["tasks"]}
    assert json.loads(tasks["Show"]["core-qyyl"]["msg"]) == [CORE_QYYL]
    assert json.loads(tasks["Show"]["jobs1"]["msg"]) == [
        {"name": "si-jobs", "version": "2023.11.0", "probes": [{"kind": "file", "file": "/opt/si-jobs/current/VERSION"}]}]
    assert json.loads(tasks["Services"]["core-qyyl"]["msg"]) == [
        {"name": "si-core-qyyl", "probe": {"http": "http://127.0.0.1:28011/health"}}]
    assert json.loads(tasks["Services"]["jobs1"]["msg"]) == []


def test_each_stopped_front_gets_a_stand_in_on_its_own_port_and_address():
    """N4: the full stop leaves a notice answering on each counter's, core's and interface's port."""
    gateway = [{"name": "si-gateway", "port": "28021"}, {"name": "si-shared-platform", "port": 28022}]
    assert filters.notice_standins(gateway, "127.0.0.1") == [
        {"name": "si-gateway", "port": 28021, "address": "127.0.0.1"},
        {"name": "si-shared-platform", "port": 28022, "address": "127.0.0.1"}]


@pytest.mark.parametrize(("components", "address", "named"), [
    ([{"name": "si-counter; rm -rf /", "port": 28101}], "0.0.0.0", "is not a unit name"),
    ([{"name": "si-counter", "port": "28101 -X"}], "0.0.0.0", "not a TCP port"),
    ([{"name": "si-counter", "port": 28101}], "0.0.0.0 --bind", "not an IPv4 address"),
    ([{"name": "si-counter", "port": 28101}], "::1", "not an IPv4 address"),
    ([{"name": "si-counter", "port": 28101}], "300.1.1.1", "not an IPv4 address"),
    ([{"name": "si-counter", "port": 28101}], None, "not an IPv4 address"),
])
def test_a_stand_in_from_a_bad_name_port_or_address_is_refused_naming_it(components, address, named):
    with pytest.raises(AnsibleFilterError, match=named):
        filters.notice_standins(components, address)
