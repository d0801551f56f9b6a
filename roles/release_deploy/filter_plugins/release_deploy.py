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
            "release_deploy_back": release_deploy_back,
            "release_deploy_release_dir": release_deploy_release_dir,
        }
