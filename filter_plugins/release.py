"""Filters that turn the release manifest into the release_deploy role's inputs (N8, N18).

    # playbooks/deploy/deploy.yml: what this host installs, and what it restarts
    release_deploy_components: "{{ __mine | deploy_components(__release, root, si_components, restart) }}"
    # playbooks/deploy/rollback.yml: what this host switches back
    release_deploy_components: "{{ __mine | switch_back_components(__release, si_components) }}"

A component has a systemd unit when the host's si_components lists it (si-jobs, the timed
jobs, has timers and no service): only those are restarted.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def _once(components: Iterable[Mapping[str, Any]], where: str) -> list[Mapping[str, Any]]:
    """A host in two groups can get one component twice from the manifest (once per group):
    taken once when the entries agree but for the group, refused when they differ otherwise
    (which release would it run?)."""
    seen: dict[Any, Mapping[str, Any]] = {}

    def what(component: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in component.items() if k != "group"}

    for component in components:
        name = component.get("name")
        if name in seen and what(seen[name]) != what(component):
            raise AnsibleFilterError(f"{where}: component {name} is listed twice for this host, differently "
                                     "(the release manifest gives it two groups the host is in)")
        seen.setdefault(name, component)
    return list(seen.values())


def _units(name: str, host_components: Iterable[Mapping[str, Any]] | None) -> list[str]:
    services = {c.get("name") for c in host_components or [] if isinstance(c, Mapping)}
    return [name] if name in services else []


def deploy_components(components: Iterable[Mapping[str, Any]], release: Mapping[str, Any], root: str,
                      host_components: Iterable[Mapping[str, Any]] | None = None,
                      restart: bool = False) -> list[dict[str, Any]]:
    """Each of this host's manifest components with the artifact it installs: its version,
    its tarball on the controller (a relative path is the project's, `root`) and sha256,
    and the units to restart when `current` moves (none unless `restart`)."""
    artifacts = release.get("artifacts") or {}
    out = []
    for component in _once(components, "deploy_components"):
        name, key = component.get("name"), component.get("artifact")
        if key not in artifacts:
            raise AnsibleFilterError(f"deploy_components: component {name} runs artifact {key!r}, "
                                     "which the manifest's artifacts do not list")
        artifact = artifacts[key]
        path = str(artifact["path"])
        if not posixpath.isabs(path):
            path = posixpath.normpath(posixpath.join(root, path))
        out.append({"name": name, "version": str(artifact["version"]), "artifact": path,
                    "sha256": str(artifact["sha256"]).lower(),
                    "units": _units(name, host_components) if restart else []})
    return out


def switch_back_components(components: Iterable[Mapping[str, Any]], release: Mapping[str, Any],
                           host_components: Iterable[Mapping[str, Any]] | None = None,
                           ) -> list[dict[str, Any]]:
    """Each of this host's manifest components with the release it goes back to (its
    artifact's `previous`) and the unit restarted (when it runs) once it is back."""
    artifacts = release.get("artifacts") or {}
    out = []
    for component in _once(components, "switch_back_components"):
        name, key = component.get("name"), component.get("artifact")
        if key not in artifacts or not artifacts[key].get("previous"):
            raise AnsibleFilterError(f"switch_back_components: component {name} runs artifact {key!r}, "
                                     "which the manifest's artifacts do not list with a `previous`")
        out.append({"name": name, "version": str(artifacts[key]["previous"]),
                    "units": _units(name, host_components)})
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"deploy_components": deploy_components, "switch_back_components": switch_back_components}
