"""The release_deploy role's filters: what they decide is what a host keeps, copies and
switches, so a mistake here prunes the way back (N18) or restarts the wrong service."""

import base64
import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "roles/release_deploy/filter_plugins/release_deploy.py"
_spec = importlib.util.spec_from_file_location("release_deploy_filters", _PATH)
f = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(f)

ROOT = "/opt"
SHA = "A" * 64


def comp(name, version="2.0", artifact="/a/si-app-2.0.tar.gz", sha256=SHA, **extra):
    return {"name": name, "version": version, "artifact": artifact, "sha256": sha256, **extra}


def test_an_artifact_shared_by_components_is_staged_once_and_its_sha_is_compared_lowercase():
    got = f.release_deploy_artifacts([comp("a"), comp("b"), comp("c", artifact="/a/x.tgz", sha256="b" * 64)])
    assert got == [{"artifact": "/a/si-app-2.0.tar.gz", "sha256": "a" * 64},
                   {"artifact": "/a/x.tgz", "sha256": "b" * 64}]


def _found(component, *dirs):
    # dirs: (version, mtime)
    return {"item": component, "files": [{"path": f"{ROOT}/{component['name']}/releases/{v}", "mtime": m}
                                         for v, m in dirs]}


def _current(component, points_at=None):
    stat = {"exists": points_at is not None}
    if points_at:
        stat["lnk_source"] = f"{ROOT}/{component['name']}/releases/{points_at}"
    return {"item": component, "stat": stat}


def test_prune_never_removes_the_new_release_or_the_one_current_pointed_to():
    a = comp("a", version="2.0")
    # keep=1 is raised to 2; the previous release (1.0) is older than two others but stays
    found = [_found(a, ("2.0", 50), ("1.5", 40), ("1.4", 30), ("1.0", 10))]
    doomed = f.release_deploy_prune(found, [_current(a, "1.0")], ROOT, 1)
    assert doomed == [f"{ROOT}/a/releases/1.4"]


def test_prune_is_per_component():
    a, b = comp("a"), comp("b")
    found = [_found(a, ("2.0", 9), ("1.0", 8), ("0.9", 7), ("0.8", 6)), _found(b, ("2.0", 9), ("1.0", 8))]
    doomed = f.release_deploy_prune(found, [_current(a, "1.0"), _current(b, "1.0")], ROOT, 3)
    assert doomed == [f"{ROOT}/a/releases/0.8"]


def test_only_components_whose_current_is_elsewhere_are_switched():
    a, b, c = comp("a"), comp("b"), comp("c")
    moving = f.release_deploy_moving([_current(a, "2.0"), _current(b, "1.0"), _current(c)], ROOT)
    assert [r["item"]["name"] for r in moving] == ["b", "c"]


def test_units_restarted_are_those_of_components_whose_current_was_renamed():
    switched = {"results": [
        {"changed": True, "item": {"item": comp("a", units=["a"])}},
        {"changed": False, "skipped": True, "item": {"item": comp("b", units=["b"])}},
        {"changed": True, "item": {"item": comp("jobs")}},
    ]}
    assert f.release_deploy_restart_units(switched) == ["a"]


def _slurp(name, content):
    return {"item": {"name": name}, "content": base64.b64encode(content.encode()).decode()}


def test_previous_names_the_release_to_go_back_to():
    assert f.release_deploy_previous([_slurp("a", "1.0\n")]) == [{"name": "a", "version": "1.0"}]


@pytest.mark.parametrize("hostile", ["../../etc", "..", "1.0/../../x", " "])
def test_a_previous_file_that_names_a_path_is_refused(hostile):
    with pytest.raises(ValueError, match="not a release"):
        f.release_deploy_previous([_slurp("a", hostile)])
