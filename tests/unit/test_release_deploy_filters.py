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
# the install's own decisions live in its module (one call per host, #17)
_MOD = _PATH.parents[1] / "library" / "release_install.py"
_mspec = importlib.util.spec_from_file_location("release_install", _MOD)
m = importlib.util.module_from_spec(_mspec)
_mspec.loader.exec_module(m)

ROOT = "/opt"
SHA = "A" * 64


def comp(name, version="2.0", artifact="/a/si-app-2.0.tar.gz", sha256=SHA, **extra):
    return {"name": name, "version": version, "artifact": artifact, "sha256": sha256, **extra}


def test_an_artifact_shared_by_components_is_sent_once_and_its_sha_is_compared_lowercase():
    spec = importlib.util.spec_from_file_location(
        "release_install_action", Path(__file__).resolve().parents[2] / "roles/release_deploy/action_plugins/release_install.py")
    action = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(action)
    got = action.artifacts([comp("a"), comp("b"), comp("c", artifact="/a/x.tgz", sha256="b" * 64)])
    assert got == {"a" * 64: "/a/si-app-2.0.tar.gz", "b" * 64: "/a/x.tgz"}


def _current(component, points_at=None, resolved_root=ROOT):
    stat = {"exists": points_at is not None, "islnk": points_at is not None}
    if points_at:  # stat's lnk_target is the link as written; lnk_source is resolved
        stat["lnk_target"] = f"{ROOT}/{component['name']}/releases/{points_at}"
        stat["lnk_source"] = f"{resolved_root}/{component['name']}/releases/{points_at}"
    return {"item": component, "stat": stat}


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
    assert f.release_deploy_back([a], [_slurp("a", "1.0\n")], [_current(a, "2.0", resolved_root="/srv/opt")],
                                 ROOT) == {"moving": [], "problems": []}
    assert m.points_at(ROOT, "a", "releases/2.0") == m.release_dir(ROOT, a)
    assert m.points_at(ROOT, "a", f"{ROOT}/a/releases/2.0") == m.release_dir(ROOT, a)


# --------------------------------------------------------------- the install module's decisions

def test_prune_never_removes_the_new_release_or_the_one_current_pointed_to():
    # keep=1 is raised to 2; the previous release (1.0) is older than two others but stays
    listing = [(f"{ROOT}/a/releases/{v}", t) for v, t in (("2.0", 50), ("1.5", 40), ("1.4", 30), ("1.0", 10))]
    assert m.to_prune(listing, {f"{ROOT}/a/releases/2.0", f"{ROOT}/a/releases/1.0"}, 1) == [f"{ROOT}/a/releases/1.4"]


def test_prune_spares_what_previous_names_whatever_the_mtimes_say():
    # re-run after the switch: current is already 3.0; 1.0 is the way back but the oldest by mtime
    listing = [(f"{ROOT}/a/releases/{v}", t) for v, t in (("3.0", 50), ("2.5", 40), ("2.4", 30), ("1.0", 10))]
    spared = {f"{ROOT}/a/releases/3.0", f"{ROOT}/a/releases/{m.release_named('1.0' + chr(10))}"}
    assert m.to_prune(listing, spared, 2) == [f"{ROOT}/a/releases/2.4"]


@pytest.mark.parametrize("hostile", ["../../etc", "..", "1.0/../../x", " ", None])
def test_a_previous_naming_a_path_spares_nothing_outside_the_releases(hostile):
    assert m.release_named(hostile) is None


def test_units_restarted_are_those_of_components_whose_current_moved():
    components = [comp("a", units=["a", "shared"]), comp("b", units=["b"]), comp("jobs"), comp("c", units=["shared"])]
    assert m.units_to_restart(components, ["a", "jobs", "c"]) == ["a", "shared"]
