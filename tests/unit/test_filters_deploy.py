"""filter_plugins/release.py: what each host installs and restarts in the deploy, and what
it switches back in the rollback, from the release manifest the operator was given."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("release_filters", ROOT / "filter_plugins" / "release.py")
release = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release)

MANIFEST = yaml.safe_load((ROOT / "releases" / "shanxi-2023-11.yml").read_text())
SERVICES = [{"name": "si-core-qyyl", "port": 28011}]


def mine(*names):
    return [c for c in MANIFEST["components"] if c["name"] in names]


def test_each_component_gets_its_artifact_from_the_project_and_only_services_restart():
    got = release.deploy_components(mine("si-core-qyyl", "si-jobs"), MANIFEST, "/proj/playbooks/deploy/../..",
                                    SERVICES, True)
    art = MANIFEST["artifacts"][mine("si-core-qyyl")[0]["artifact"]]
    assert got[0] == {"name": "si-core-qyyl", "version": str(art["version"]),
                      "artifact": "/proj/" + art["path"], "sha256": art["sha256"].lower(),
                      "units": ["si-core-qyyl"]}
    assert got[1]["units"] == []  # si-jobs runs from timers: no service to restart


def test_nothing_restarts_unless_asked():
    got = release.deploy_components(mine("si-core-qyyl"), MANIFEST, "/proj", SERVICES)
    assert got[0]["units"] == []


def test_a_component_whose_artifact_is_not_listed_is_refused():
    broken = {**MANIFEST, "artifacts": {}}
    with pytest.raises(AnsibleFilterError, match=r"runs artifact .* which the manifest's artifacts do not list"):
        release.deploy_components(mine("si-core-qyyl"), broken, "/proj", SERVICES)


def test_the_rollback_goes_back_to_each_artifacts_previous_and_restarts_services_only():
    previous = str(MANIFEST["artifacts"][mine("si-core-qyyl")[0]["artifact"]]["previous"])
    assert release.switch_back_components(mine("si-core-qyyl", "si-jobs"), MANIFEST, SERVICES) == [
        {"name": "si-core-qyyl", "version": previous, "units": ["si-core-qyyl"]},
        {"name": "si-jobs", "version": previous, "units": []}]


def test_a_component_listed_twice_for_a_host_is_taken_once_or_refused_when_the_entries_differ():
    [core] = mine("si-core-qyyl")
    assert len(release.deploy_components([core, {**core, "group": "gateway"}], MANIFEST, "/proj", SERVICES)) == 1
    other = {**core, "artifact": "si-other"}
    with pytest.raises(AnsibleFilterError, match="si-core-qyyl is listed twice for this host, differently"):
        release.deploy_components([core, other], MANIFEST, "/proj", SERVICES)
    with pytest.raises(AnsibleFilterError, match="listed twice"):
        release.switch_back_components([core, other], MANIFEST, SERVICES)
