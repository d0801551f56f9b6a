"""The lab topology, read from the lab inventory with Ansible's own parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from cutover.errors import CutoverError
from cutover.paths import INVENTORIES
from cutover.yamlsafe import check_file

LAB_INVENTORY = INVENTORIES / "lab"
GROUPS = ("db", "core", "gateway", "counter", "portal", "jobs", "drop", "tax")


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


def ansible_bin(name: str) -> str:
    """A tool from the same environment as this Python (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


YAML_SUFFIXES = (".yml", ".yaml", ".json")


def inventory_yaml_files(inventory: Path) -> list[Path]:
    """The YAML files Ansible reads for an inventory: the source (a file, or every file of a
    directory) and the group_vars/ and host_vars/ beside it (files without a suffix too)."""
    base = inventory if inventory.is_dir() else inventory.parent
    files = [inventory] if inventory.is_file() and inventory.suffix in YAML_SUFFIXES else []
    for top in ([inventory] if inventory.is_dir() else []) + [base / "group_vars", base / "host_vars"]:
        if not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            in_vars = {"group_vars", "host_vars"} & set(Path(dirpath).relative_to(base).parts)
            for name in sorted(filenames):
                f = Path(dirpath) / name
                if f.suffix in YAML_SUFFIXES or (in_vars and not f.suffix):
                    files.append(f)
    return list(dict.fromkeys(files))


def check_inventory_yaml(inventory: Path) -> None:
    """Refuse, with file:line, an inventory file whose aliases are out of bounds (recursive,
    or a "billion laughs"), before Ansible's own parser meets it."""
    for f in inventory_yaml_files(inventory):
        check_file(f)


def load_inventory(inventory: Path) -> dict[str, Any]:
    """`ansible-inventory --list`, failing loudly on an inventory Ansible cannot parse."""
    if not inventory.exists():
        raise CutoverError(f"inventory {inventory} does not exist", "pass --inventory PATH")
    check_inventory_yaml(inventory)
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
           "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([ansible_bin("ansible-inventory"), "-i", str(inventory), "--list"],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        detail = "\n".join(ln for ln in proc.stderr.strip().splitlines() if ln.strip())[-1200:]
        raise CutoverError(f"inventory {inventory} cannot be parsed:\n{detail}",
                           "fix the file and line named above (YAML syntax, indentation)")
    return json.loads(proc.stdout)


def resolved_var(inventory: Path, host: str, var: str) -> Any:
    """A variable of one host as Ansible resolves it for a play: templated, vault decrypted
    (with the vault password Ansible is configured with). `debug` runs on this machine and
    never connects to the host. Raises when Ansible cannot resolve it."""
    env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"}
    # msg= with to_json, not var=: an undefined part fails the task instead of coming back as
    # an error string (ansible-core 2.19 renders it "<< error ... >>" inside the value)
    proc = subprocess.run([ansible_bin("ansible"), host, "-i", str(inventory), "-m", "ansible.builtin.debug",
                           "-a", f"msg={{{{ {var} | to_json }}}}"], capture_output=True, text=True, env=env,
                          check=False)
    try:
        out, _ = json.JSONDecoder().raw_decode(proc.stdout, proc.stdout.index("{"))  # timing lines around it
        result = out["plays"][0]["tasks"][0]["hosts"][host]
        value = json.loads(result["msg"]) if not result.get("failed") else None
    except (ValueError, KeyError, IndexError, TypeError):
        result, value = {}, None
    if proc.returncode != 0 or result.get("failed") or value is None:
        detail = (result.get("msg") or proc.stderr.strip()[-600:] or "no answer")
        raise CutoverError(f"{var} of {host} in inventory {inventory} cannot be resolved: {detail}",
                           "a vaulted value needs the vault password (ANSIBLE_VAULT_PASSWORD_FILE); "
                           "a template needs the variables it names")
    return value


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


def _services(groups: list[str], hv: dict[str, Any]) -> list[Service]:
    out = [Service("ssh", "tcp", hv["ansible_port"])]
    if "db" in groups:
        out.append(Service("postgresql@15-main", "tcp", hv["si_db_port"]))
    if "tax" in groups:
        out.append(Service("postgresql@15-main", "tcp", hv["si_tax_db_port"]))
    if "portal" in groups:
        out.append(Service("nginx", "http", hv["si_portal_port"]))
    if "drop" in groups:
        out.append(Service("vsftpd", "tcp", hv["si_drop_ftp_port"]))
    out += [Service(c["name"], "http", int(c["port"])) for c in hv.get("si_components") or []]
    for job in hv.get("si_jobs") or []:
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
            hv = {k: render(v, raw, env) for k, v in raw.items()
                  if not k.startswith("ansible_ssh") and k != "si_artifacts_dir"}
        except jinja2.TemplateError as exc:
            raise CutoverError(f"inventory {inventory}: host {name}: {exc}") from exc
        if not isinstance(hv.get("ansible_port"), int):
            raise CutoverError(f"inventory {inventory}: host {name} has no ansible_port",
                               "every lab host needs its own sshd port")
        host = LabHost(name, groups_of[name], hv["ansible_port"], hv, _services(groups_of[name], hv))
        for port in host.ports():
            if port in seen_ports and seen_ports[port] != name:
                raise CutoverError(
                    f"inventory {inventory}: port {port} is used by both {seen_ports[port]} and {name}",
                    "lab hosts share the loopback network: give every service its own port")
            seen_ports[port] = name
        hosts.append(host)
    return hosts


def select(hosts: list[LabHost], cities: int) -> list[LabHost]:
    """The hosts a lab with `cities` counter cities runs (first N counters in order)."""
    counters = [h for h in hosts if "counter" in h.groups]
    if not 1 <= cities <= len(counters):
        raise CutoverError(f"--cities {cities} is out of range",
                           f"the inventory has {len(counters)} cities; pick 1..{len(counters)}")
    skip = {h.name for h in counters[cities:]}
    return [h for h in hosts if h.name not in skip]
