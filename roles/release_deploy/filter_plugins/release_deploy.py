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


def release_deploy_artifacts(components: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The distinct artifacts of a host's components, each once: a host whose five
    components come from one tarball gets it copied and checked once, not five times."""
    seen: dict[str, dict[str, str]] = {}
    for component in components:
        sha = str(component["sha256"]).lower()
        seen.setdefault(sha, {"artifact": str(component["artifact"]), "sha256": sha})
    return list(seen.values())


def release_deploy_prune(found: list[dict[str, Any]], current: list[dict[str, Any]],
                         root: str, keep: int) -> list[str]:
    """Release directories to remove, over every component of the host.

    `found` are the results of the looped `find` of each component's releases/, `current`
    those of the looped `stat` of its `current` link before the switch (both looped over
    the same components in the same order). The newest max(keep, 2) releases stay, and so
    do the one just installed and the one current pointed to before: the way back (N18)
    is never pruned, whatever `keep` says.
    """
    doomed: list[str] = []
    for listing, before in zip(found, current, strict=True):
        component = listing["item"]
        spared = {_release_dir(root, component), before.get("stat", {}).get("lnk_source", "")}
        newest_first = sorted(listing.get("files", []), key=lambda f: f["mtime"], reverse=True)
        doomed += [f["path"] for f in newest_first[max(int(keep), 2):] if f["path"] not in spared]
    return doomed


def release_deploy_moving(current: list[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    """The results of the looped `stat` of each `current` whose link does not already point
    at the component's new release: the components to switch. A missing `current` (first
    install) or one that is not a link is switched too."""
    return [r for r in current
            if r.get("stat", {}).get("lnk_source", "") != _release_dir(root, r["item"])]


def release_deploy_restart_units(switched: dict[str, Any]) -> list[str]:
    """The units to restart: those of the components whose `current` was renamed."""
    units: list[str] = []
    for result in switched.get("results", []):
        if result.get("changed"):
            units += [u for u in result["item"]["item"].get("units", []) if u not in units]
    return units


def release_deploy_previous(slurped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each component with `version` set to the release its PREVIOUS file names (the
    results of the looped `slurp`, already asserted to hold a name)."""
    back = []
    for result in slurped:
        name = base64.b64decode(result["content"]).decode().strip()
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"{result['item']['name']}: PREVIOUS names {name!r}, not a release")
        back.append({**result["item"], "version": name})
    return back


def release_deploy_release_dir(component: dict[str, Any], root: str) -> str:
    """`<root>/<name>/releases/<version>` of one component."""
    return _release_dir(root, component)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "release_deploy_artifacts": release_deploy_artifacts,
            "release_deploy_moving": release_deploy_moving,
            "release_deploy_previous": release_deploy_previous,
            "release_deploy_prune": release_deploy_prune,
            "release_deploy_restart_units": release_deploy_restart_units,
            "release_deploy_release_dir": release_deploy_release_dir,
        }
