"""Filters of the release_deploy role: plain Python for what would otherwise be Jinja programs.

Ansible loads this file for the role (role-local filter_plugins); the unit tests import it
directly (tests/unit/test_release_deploy_filters.py).
"""

from __future__ import annotations

import base64
import posixpath
from typing import Any


def _release_dir(root: str, component: dict[str, Any]) -> str:
    return posixpath.join(root, component["name"], "releases", component["version"])


def _points_at(stat_result: dict[str, Any], root: str) -> str:
    """Where a `current` link points, as written (`lnk_target`, made absolute against the
    component's directory): never the resolved path (`lnk_source`), which differs from the
    root's own spelling when the root, or a directory above it, is itself a symlink."""
    stat = stat_result.get("stat", {})
    target = stat.get("lnk_target")
    if not stat.get("islnk") or not target:
        return ""
    home = posixpath.join(root, stat_result["item"]["name"])
    return posixpath.normpath(posixpath.join(home, target))


def release_deploy_artifacts(components: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The distinct artifacts of a host's components, each once: a host whose five
    components come from one tarball gets it copied and checked once, not five times."""
    seen: dict[str, dict[str, str]] = {}
    for component in components:
        sha = str(component["sha256"]).lower()
        seen.setdefault(sha, {"artifact": str(component["artifact"]), "sha256": sha})
    return list(seen.values())


def release_deploy_prune(found: list[dict[str, Any]], current: list[dict[str, Any]],
                         root: str, keep: int, previous: list[dict[str, Any]] | None = None) -> list[str]:
    """Release directories to remove, over every component of the host.

    `found` are the results of the looped `find` of each component's releases/, `current`
    those of the looped `stat` of its `current` link before the switch (both looped over
    the same components in the same order). The newest max(keep, 2) releases stay, and so
    do the one just installed and the one current pointed to before: the way back (N18)
    is never pruned, whatever `keep` says, nor the one PREVIOUS names (`previous`: the
    looped `slurp` of each PREVIOUS, when read): a release's mtime is its tarball's, so age
    alone cannot tell which one is the way back.
    """
    doomed: list[str] = []
    named = {}
    for result in previous or []:
        if (name := _named(result)) is not None:
            named[result["item"]["name"]] = _release_dir(root, {**result["item"], "version": name})
    for listing, before in zip(found, current, strict=True):
        component = listing["item"]
        spared = {_release_dir(root, component), _points_at(before, root), named.get(component["name"], "")}
        newest_first = sorted(listing.get("files", []), key=lambda f: f["mtime"], reverse=True)
        doomed += [f["path"] for f in newest_first[max(int(keep), 2):] if f["path"] not in spared]
    return doomed


def release_deploy_moving(current: list[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    """The results of the looped `stat` of each `current` whose link does not already point
    at the component's new release: the components to switch. A missing `current` (first
    install) or one that is not a link is switched too."""
    return [r for r in current if _points_at(r, root) != _release_dir(root, r["item"])]


def release_deploy_previous_of(current: dict[str, Any], root: str) -> str:
    """The release a `current` link points at now (what PREVIOUS records before it moves)."""
    return posixpath.basename(_points_at(current, root))


def release_deploy_restart_units(switched: dict[str, Any]) -> list[str]:
    """The units to restart: those of the components whose `current` was renamed."""
    units: list[str] = []
    for result in switched.get("results", []):
        if result.get("changed"):
            units += [u for u in result["item"]["item"].get("units", []) if u not in units]
    return units


def _named(result: dict[str, Any]) -> str | None:
    """The release a looped `slurp` of PREVIOUS names, or None (no file, or not a release name)."""
    if "content" not in result:
        return None
    name = base64.b64decode(result["content"]).decode("utf-8", "replace").strip()
    return name if name and "/" not in name and name not in (".", "..") else None


def release_deploy_back(components: list[dict[str, Any]], previous: list[dict[str, Any]],
                        current: list[dict[str, Any]], root: str) -> dict[str, list[Any]]:
    """The way back of a host's components (`version`: the release the manifest says each one
    replaced), from the looped `slurp` of PREVIOUS and `stat` of current: `moving` (those to
    switch back) and `problems` (a refusal each). A component whose current already points at
    its `version` stays. Otherwise PREVIOUS must name exactly that `version`: one left by an
    earlier window (the deploy failed before it switched) would take the host back two."""
    moving, problems = [], []
    for component, recorded, now in zip(components, previous, current, strict=True):
        name, want = component["name"], str(component["version"])
        if _points_at(now, root) == _release_dir(root, component):
            continue
        named = _named(recorded)
        if named is None:
            problems.append(f"{name} has no PREVIOUS release (or not a release name) to go back to")
        elif named != want:
            problems.append(f"{name}: PREVIOUS names {named}, but the release manifest says it "
                            f"replaced {want}")
        else:
            moving.append(component)
    return {"moving": moving, "problems": problems}


def release_deploy_release_dir(component: dict[str, Any], root: str) -> str:
    """`<root>/<name>/releases/<version>` of one component."""
    return _release_dir(root, component)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "release_deploy_artifacts": release_deploy_artifacts,
            "release_deploy_moving": release_deploy_moving,
            "release_deploy_back": release_deploy_back,
            "release_deploy_previous_of": release_deploy_previous_of,
            "release_deploy_prune": release_deploy_prune,
            "release_deploy_restart_units": release_deploy_restart_units,
            "release_deploy_release_dir": release_deploy_release_dir,
        }
