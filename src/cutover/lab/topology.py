"""The lab topology, read from the lab inventory with Ansible's own parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from cutover.errors import CutoverError
from cutover.inventory import load_inventory
from cutover.paths import LAB_INVENTORY, LAB_OPS_INVENTORY

GROUPS = ("db", "core", "gateway", "counter", "portal", "jobs", "drop", "tax", "ops")


@dataclass
class Service:
    """Something a lab host runs that lab.status checks."""

    name: str  # systemd unit
    kind: str  # http, tcp, timer, cron
    port: int | None = None
    path: str = "/health"
    enabled: bool = True  # False: a job that is off on purpose

    @property
    def url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}{self.path}" if self.kind == "http" else None


@dataclass
class LabHost:
    name: str
    groups: list[str]
    ssh_port: int
    vars: dict[str, Any]
    services: list[Service] = field(default_factory=list)

    @property
    def container(self) -> str:
        return f"cutover-lab-{self.name}"

    def ports(self) -> list[int]:
        return [s.port for s in self.services if s.port]  # ssh is the first service


def render(value: Any, context: dict[str, Any], env: jinja2.Environment) -> Any:
    """Resolve the inventory's own Jinja references (`{{ si_lines[si_line].core_port }}`)."""
    if isinstance(value, str) and "{{" in value:
        for _ in range(5):
            value = env.from_string(value).render(context)
            if "{{" not in value:
                break
        return int(value) if value.isdigit() else value
    if isinstance(value, list):
        return [render(v, context, env) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context, env) for k, v in value.items()}
    return value


def _services(groups: list[str], variables: dict[str, Any]) -> list[Service]:
    out = [Service("ssh", "tcp", variables["ansible_port"])]
    if "db" in groups:
        out.append(Service("postgresql@15-main", "tcp", variables["si_db_port"]))
    if "tax" in groups:
        out.append(Service("postgresql@15-main", "tcp", variables["si_tax_db_port"]))
    if "ops" in groups:
        out.append(Service("postgresql@15-main", "tcp", variables["cutover_journal_port"]))
    if "portal" in groups:
        out.append(Service("nginx", "http", variables["si_portal_port"]))
    if "drop" in groups:
        out.append(Service("vsftpd", "tcp", variables["si_drop_ftp_port"]))
    out += [Service(c["name"], "http", int(c["port"])) for c in variables.get("si_components") or []]
    for job in variables.get("si_jobs") or []:
        unit = f"si-job-{job['name']}.timer" if job["kind"] == "timer" else f"si-job-{job['name']}"
        out.append(Service(unit, job["kind"], enabled=bool(job["enabled"])))
    return out


def lab_hosts(inventory: Path = LAB_INVENTORY) -> list[LabHost]:
    """Every host of the lab inventory, in inventory order, with its services."""
    data = load_inventory(inventory)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - config text, not HTML
    env.globals["inventory_dir"] = str(inventory)
    order: list[str] = []
    groups_of: dict[str, list[str]] = {}
    for group in GROUPS:
        for host in data.get(group, {}).get("hosts", []):
            groups_of.setdefault(host, []).append(group)
            if host not in order:
                order.append(host)
    if not order:
        raise CutoverError(f"inventory {inventory} has no hosts in the lab groups {GROUPS}")
    hosts = []
    seen_ports: dict[int, str] = {}
    for name in order:
        raw = hostvars.get(name, {})
        try:
            variables = {key: render(value, raw, env) for key, value in raw.items()
                         if not key.startswith("ansible_ssh") and key != "si_artifacts_dir"}
        except jinja2.TemplateError as exc:
            raise CutoverError(f"inventory {inventory}: host {name}: {exc}") from exc
        if not isinstance(variables.get("ansible_port"), int):
            raise CutoverError(f"inventory {inventory}: host {name} has no ansible_port",
                               "every lab host needs its own sshd port")
        host = LabHost(name, groups_of[name], variables["ansible_port"], variables,
                       _services(groups_of[name], variables))
        for port in host.ports():
            if port in seen_ports and seen_ports[port] != name:
                raise CutoverError(
                    f"inventory {inventory}: port {port} is used by both {seen_ports[port]} and {name}",
                    "lab hosts share the loopback network: give every service its own port")
            seen_ports[port] = name
        hosts.append(host)
    return hosts


def every_lab_host() -> list[LabHost]:
    """The window's lab hosts (inventories/lab), then the operations host (inventories/lab-ops,
    which no plan reaches); no port is used twice across the two."""
    hosts = lab_hosts(LAB_INVENTORY) + lab_hosts(LAB_OPS_INVENTORY)
    seen: dict[int, str] = {}
    for host in hosts:
        for port in host.ports():
            if seen.setdefault(port, host.name) != host.name:
                raise CutoverError(f"port {port} is used by both {seen[port]} and {host.name}",
                                   "lab hosts share the loopback network: give every service its own port "
                                   "(inventories/lab and inventories/lab-ops)")
    return hosts


def select(hosts: list[LabHost], cities: int, counties: int = 0) -> list[LabHost]:
    """The hosts a lab with `cities` counter cities runs (the first N city counters in order)
    and, of each of those cities, its first `counties` county counters (`si_county`)."""
    cities_of = [h for h in hosts if "counter" in h.groups and not h.vars.get("si_county")]
    if not 1 <= cities <= len(cities_of):
        raise CutoverError(f"--cities {cities} is out of range",
                           f"the inventory has {len(cities_of)} cities; pick 1..{len(cities_of)}")
    kept = {h.vars.get("si_city") for h in cities_of[:cities]}
    counties_of: dict[str, list[LabHost]] = {}
    for host in hosts:
        if "counter" in host.groups and host.vars.get("si_county"):
            counties_of.setdefault(str(host.vars.get("si_city")), []).append(host)
    most = min((len(each) for each in counties_of.values()), default=0)
    if not 0 <= counties <= most:
        raise CutoverError(f"--counties {counties} is out of range",
                           f"the inventory has {most} county counters per city; pick 0..{most}")
    skip = {h.name for h in cities_of[cities:]}
    skip |= {h.name for city, each in counties_of.items() for h in each[counties:] if city in kept}
    skip |= {h.name for city, each in counties_of.items() if city not in kept for h in each}
    return [h for h in hosts if h.name not in skip]
