"""Filters that turn the release manifest and the inventory into the roles' inputs.

Plain data in, plain data out, no templating: what used to be Jinja loops with `.update`
and `.append` in the playbooks, written once here and unit-tested
(tests/unit/test_filters_release.py). Standard library and ansible-core only, so the
playbooks also run alone with `ansible-playbook` (ansible.cfg names this directory).

    # playbooks/deploy/vars/manifest.yml: what version_verify checks on this host
    __verify_components: "{{ __mine | version_probes(__release, si_components | default([])) }}"
    # playbooks/restore/restore.yml: what service_control starts, each with its /health
    __services: "{{ si_components | health_probes }}"

A component's name becomes a systemd unit, a directory under /opt and part of a command
probe, and a port becomes part of a URL: both are refused unless they are exactly that,
so nothing from a manifest or an inventory can reach a path, a URL or a command as
anything else. (Filter names do not start with `cutover_`: that prefix is the contract's
variables, src/cutover/contract/inputs.py.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

# the manifest model's rule (cutover.plan.release.COMPONENT_NAME; a unit test keeps them equal)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
PLACEHOLDER = re.compile(r"\{(name|port)\}")
EXPECT = ("version", "previous")


def _name(component: Mapping[str, Any], where: str) -> str:
    name = component.get("name") if isinstance(component, Mapping) else None
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise AnsibleFilterError(
            f"{where}: component name {name!r} is not a unit name (letters, digits, . _ @ -, "
            "starting with a letter or digit): it names a systemd unit and a directory under /opt")
    return name


def _port(value: Any, name: str, where: str) -> str:
    """A TCP port as text; ints and digit strings (a templated inventory value) alike."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise AnsibleFilterError(f"{where}: the port of {name} is {value!r}, not a TCP port (1-65535)")
    return text


def _fill(template: Any, name: str, port: Any, where: str) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) == "name":
            return name
        if port is None:
            raise AnsibleFilterError(
                f"{where}: a probe of {name} needs its {{port}} ({template!r}), but this host's "
                f"si_components gives {name} no port")
        return _port(port, name, where)

    return PLACEHOLDER.sub(value, str(template))


def version_probes(components: Iterable[Mapping[str, Any]], release: Mapping[str, Any],
                   host_components: Iterable[Mapping[str, Any]] | None = None,
                   expect: str = "version") -> list[dict[str, Any]]:
    """version_verify's input: each of this host's manifest components with the version it
    must run (its artifact's `version`, or `previous` to verify a rollback) and its probes,
    `{name}` and `{port}` filled in (the port from the host's si_components)."""
    where = "version_probes"
    if expect not in EXPECT:
        raise AnsibleFilterError(f"{where}: expect is one of {', '.join(EXPECT)}, not {expect!r}")
    artifacts, probes = release.get("artifacts") or {}, release.get("probes") or {}
    ports: dict[str, Any] = {}  # the first entry of a name wins; checked where a probe uses it
    for hc in host_components or []:
        if isinstance(hc, Mapping) and isinstance(hc.get("name"), str):
            ports.setdefault(hc["name"], hc.get("port"))
    out = []
    for component in components:
        name = _name(component, where)
        artifact = artifacts.get(component.get("artifact"))
        if not isinstance(artifact, Mapping) or not artifact.get(expect):
            raise AnsibleFilterError(
                f"{where}: {name} runs artifact {component.get('artifact')!r}, which the release manifest's "
                f"artifacts do not list with a {expect} (invoke plan.check names the line)")
        filled = []
        for kind in component.get("probes") or []:
            if not isinstance(probes.get(kind), Mapping):
                raise AnsibleFilterError(f"{where}: {name} asks probe {kind!r}, which the release manifest's "
                                         "probes do not define (invoke plan.check names the line)")
            probe: dict[str, Any] = {"kind": kind}
            for key, text in probes[kind].items():
                probe[key] = _fill(text, name, ports.get(name), where)
            filled.append(probe)
        out.append({"name": name, "version": artifact[expect], "probes": filled})
    return out


def health_probes(host_components: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """service_control's input: every component of the host (si_components), in order, with
    its /health on the loopback as the probe."""
    where = "health_probes"
    out = []
    for component in host_components:
        name = _name(component, where)
        port = _port(component.get("port"), name, where)
        out.append({"name": name, "probe": {"http": f"http://127.0.0.1:{port}/health"}})
    return out


ADDRESS = re.compile(r"(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}")  # IPv4


def notice_standins(host_components: Iterable[Mapping[str, Any]], address: Any) -> list[dict[str, Any]]:
    """channel_notice's stand-ins: each component of the host answers with the notice on its
    own port while it is stopped (N4), on the address the host's services listen on."""
    where = "notice_standins"
    if not isinstance(address, str) or not ADDRESS.fullmatch(address):
        raise AnsibleFilterError(f"{where}: listen address {address!r} is not an IPv4 address "
                                 "(si_listen_address, e.g. 0.0.0.0 or 127.0.0.1; the notice's stand-in "
                                 "listens on IPv4)")
    out = []
    for component in host_components:
        name = _name(component, where)
        out.append({"name": name, "port": int(_port(component.get("port"), name, where)), "address": address})
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"version_probes": version_probes, "health_probes": health_probes,
                "notice_standins": notice_standins}
