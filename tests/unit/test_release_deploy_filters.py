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


def _current(component, points_at=None, resolved_root=ROOT):
    stat = {"exists": points_at is not None, "islnk": points_at is not None}
    if points_at:  # stat's lnk_target is the link as written; lnk_source is resolved
        stat["lnk_target"] = f"{ROOT}/{component['name']}/releases/{points_at}"
        stat["lnk_source"] = f"{resolved_root}/{component['name']}/releases/{points_at}"
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


def _back(previous_file, points_at, want="1.0"):
    a = {"name": "a", "version": want, "units": ["a"]}
    recorded = _slurp("a", previous_file) if previous_file is not None else {"item": {"name": "a"}}
    return f.release_deploy_back([a], [recorded], [_current(a, points_at)], ROOT)


def test_the_way_back_switches_to_what_previous_and_the_manifest_both_name():
    assert _back("1.0\n", "2.0") == {"moving": [{"name": "a", "version": "1.0", "units": ["a"]}], "problems": []}


def test_a_component_already_on_its_previous_release_stays_put():
    # the deploy failed before it switched: current is still 1.0, PREVIOUS is an older window's
    assert _back("0.9\n", "1.0") == {"moving": [], "problems": []}


def test_a_previous_left_by_an_earlier_window_never_takes_a_host_back_two_releases():
    got = _back("0.9\n", "2.0")
    assert got["moving"] == []
    assert got["problems"] == ["a: PREVIOUS names 0.9, but the release manifest says it replaced 1.0"]


@pytest.mark.parametrize("hostile", ["../../etc", "..", "1.0/../../x", " ", None])
def test_a_previous_that_is_missing_or_names_a_path_is_refused(hostile):
    got = _back(hostile, "2.0")
    assert got["moving"] == []
    assert got["problems"] == ["a has no PREVIOUS release (or not a release name) to go back to"]


def test_a_root_behind_a_symlink_is_not_taken_for_a_move():
    # /opt -> /srv/opt: the resolved path differs from the root's spelling; a re-run must not
    # move current again, nor write PREVIOUS with the release just installed (N18)
    a = comp("a", version="2.0")
    assert f.release_deploy_moving([_current(a, "2.0", resolved_root="/srv/opt")], ROOT) == []
    assert f.release_deploy_previous_of(_current(a, "1.0", resolved_root="/srv/opt"), ROOT) == "1.0"


def test_prune_spares_what_previous_names_whatever_the_mtimes_say():
    a = comp("a", version="3.0")
    # re-run after the switch: current is already 3.0; 1.0 is the way back but the oldest by mtime
    found = [_found(a, ("3.0", 50), ("2.5", 40), ("2.4", 30), ("1.0", 10))]
    doomed = f.release_deploy_prune(found, [_current(a, "3.0")], ROOT, 2, [_slurp_item(a, "1.0\n")])
    assert doomed == [f"{ROOT}/a/releases/2.4"]


def _slurp_item(component, content):
    return {"item": component, "content": base64.b64encode(content.encode()).decode()}
