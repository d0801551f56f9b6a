"""Every variable the plan's plays need is in the inventory, with the right type (issue #15):
for each step, the plays its playbook and tags run (`work_plays`), the hosts of each play's
groups, and on each host what the contract (cutover/contract/host_vars.yml) says that play
needs. A missing variable is reported at the host's line, a mistyped one where it is set;
the same problem on many hosts is said once, naming them."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutover.contract.host_vars import HostVarsContract, PlayNeeds, load_contract, value_problem
from cutover.inventory import inventory_yaml_files
from cutover.paths import resolve
from cutover.plan.model import Plan
from cutover.plan.playbooks import work_plays
from cutover.plan.problems import Add, rel


class InventoryGroups:
    """Which hosts are in which group (children included), as `ansible-inventory --list` says."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.hosts = set(data.get("_meta", {}).get("hostvars", {}))
        self._data = data
        self.names = {g for g in data if g != "_meta"} | {c for g in data.values() if isinstance(g, dict)
                                                         for c in g.get("children", [])}

    def members(self, group: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if group == "all":
            return set(self.hosts)
        entry = self._data.get(group) or {}
        out = set(entry.get("hosts", []))
        for child in entry.get("children", []):
            if child not in seen:
                out |= self.members(child, seen | {group})
        return out

    def in_order(self) -> list[str]:
        """Every host, in the order the inventory writes them (its groups depth first)."""
        out: dict[str, None] = {}

        def walk(group: str, seen: frozenset[str]) -> None:
            entry = self._data.get(group) or {}
            out.update(dict.fromkeys(entry.get("hosts", [])))
            for child in entry.get("children", []):
                if child not in seen:
                    walk(child, seen | {child})

        walk("all", frozenset({"all"}))
        return [*out, *sorted(self.hosts - set(out))]

    def of_host(self, host: str) -> list[str]:
        return sorted(g for g in self.names if g not in ("all", "ungrouped") and host in self.members(g))

    def matching(self, pattern: str) -> set[str]:
        """The hosts of a play's `hosts:` (plain terms united, then `&` and `!` terms)."""
        plain: set[str] = set()
        keep: list[set[str]] = []
        drop: set[str] = set()
        for raw in re.split(r"[:,]", pattern):
            term = raw.strip()
            name = term.lstrip("!&")
            if not name:
                continue
            if any(ch in name for ch in "*?["):
                hosts = set(fnmatch.filter(self.hosts, name))
                for group in fnmatch.filter(self.names, name):
                    hosts |= self.members(group)
            else:
                hosts = self.members(name) if name in self.names or name == "all" else {name} & self.hosts
            if term.startswith("!"):
                drop |= hosts
            elif term.startswith("&"):
                keep.append(hosts)
            else:
                plain |= hosts
        for hosts in keep:
            plain &= hosts
        return plain - drop


@dataclass
class _Finding:
    hosts: list[str] = field(default_factory=list)
    uses: list[str] = field(default_factory=list)  # "play 'P' of BOOK (step S)"

    def add(self, host: str, use: str) -> None:
        if host not in self.hosts:
            self.hosts.append(host)
        if use not in self.uses:
            self.uses.append(use)


def lint_inventory_vars(plan: Plan, add: Add, data: dict[str, Any], inv_path: Path,
                        contract: HostVarsContract | None = None) -> None:
    contract = contract or load_contract()
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups = InventoryGroups(data)
    missing: dict[tuple[str, str], _Finding] = {}  # (variable, group to add it to)
    wrong: dict[tuple[str, str, tuple[str, int]], _Finding] = {}  # (variable, problem, where it is set)
    for use, pattern, needs, reached in _plays_run(plan, contract, groups, groups.in_order()):
        for group, names in needs.needs.items():
            for host in (h for h in reached if group == "all" or h in groups.members(group)):
                for var in names:
                    if var not in hostvars[host]:
                        home = group if group != "all" else _home_group(groups, host, pattern)
                        finding = missing.setdefault((var, home), _Finding())
                    else:
                        problem = _problem(hostvars[host], var, contract)
                        if problem is None:
                            continue
                        where = var_line(inv_path, host, groups.of_host(host), var)
                        finding = wrong.setdefault((var, problem, where), _Finding())
                    finding.add(host, use)
        # an optional variable need not be there; where it is, it is held to its type
        for host, var, problem in _optional_problems(needs.optional, reached, hostvars, contract):
            where = var_line(inv_path, host, groups.of_host(host), var)
            wrong.setdefault((var, problem, where), _Finding()).add(host, use)
    inv = rel(inv_path)
    base = inv_path if inv_path.is_dir() else inv_path.parent
    for (var, home), finding in missing.items():
        spec = contract.variables[var]
        into = f"{rel(base / 'group_vars' / home / 'vars.yml')} (every host of {home})" if home \
            else f"{rel(base / 'host_vars' / finding.hosts[0])}.yml"
        add(("plan", "inventory"), f"inventory {inv}: {var} is missing on {named_hosts(finding.hosts)}, "
            f"needed by {_uses(finding.uses)}", f"add {spec.describe()} to {into}, or to each host",
            at=host_line(inv_path, finding.hosts[0]))
    for (var, problem, where), finding in wrong.items():
        spec = contract.variables[var]
        add(("plan", "inventory"), f"inventory {inv}: {var} of {named_hosts(finding.hosts)} {problem}, "
            f"needed by {_uses(finding.uses)}", f"write {spec.describe()}", at=where)


def _problem(host_vars: dict[str, Any], var: str, contract: HostVarsContract) -> str | None:
    value = host_vars[var]
    return value_problem(value, contract.variables[var])


def _optional_problems(optional: tuple[str, ...], hosts: list[str], hostvars: dict[str, Any],
                       contract: HostVarsContract) -> Iterator[tuple[str, str, str]]:
    for host in hosts:
        for var in optional:
            if var in hostvars[host] and var in contract.variables:
                problem = _problem(hostvars[host], var, contract)
                if problem is not None:
                    yield host, var, problem


VAULT_REFERENCE = re.compile(r"\{\{\s*(vault_[A-Za-z0-9_]+)\s*(\|[^}]*)?\}\}")


def _vault_problem(name: str, filters: str, host_vars: dict[str, Any]) -> str | None:
    if name not in host_vars:
        return f"takes {name} from the vault, which the inventory does not set (add it to the vault file)"
    if "default" in filters:
        return (f"gives {name} a default: a secret that is missing must stop the run, not become empty "
                f"(write {{{{ {name} }}}} alone)")
    return None


def lint_vault_references(add: Add, data: dict[str, Any], inv_path: Path) -> None:
    """Every secret the inventory takes from the vault ("{{ vault_x }}", in any variable, at
    any depth) is set there: one nobody set would fail only when its play runs, hours into
    the window. A secret with a default() fails open (an empty password, no target): refused.
    Named where it is written, never with a value."""
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups = InventoryGroups(data)
    found: dict[tuple[str, str, tuple[str, int]], list[str]] = {}
    for host, host_vars in hostvars.items():
        for var, value in host_vars.items():
            for name, filters in VAULT_REFERENCE.findall(json.dumps(value, default=str)):
                problem = _vault_problem(name, filters, host_vars)
                if problem:
                    where = var_line(inv_path, host, groups.of_host(host), var)
                    found.setdefault((var, problem, where), []).append(host)
    for (var, problem, where), hosts in found.items():
        add(("plan", "inventory"), f"inventory {rel(inv_path)}: {var} of {named_hosts(hosts)} {problem}",
            f"each vault_* variable is written in the inventory's vault file (ansible-vault encrypt_string "
            f"VALUE --name NAME); {var} only names it", at=where)


def _plays_run(plan: Plan, contract: HostVarsContract, groups: InventoryGroups,
               order: list[str]) -> Iterator[tuple[str, str, PlayNeeds, list[str]]]:
    """Each play a step runs that the contract knows: (which play of which step, its hosts
    pattern, what it needs, the hosts it reaches in the inventory's order)."""
    for step in plan.steps():
        path = resolve(step.playbook) if step.playbook else None
        book = contract.plays.get(rel(path)) if path and path.is_file() else None
        if book is None:  # a playbook the contract does not know: its own Inputs play checks
            continue
        for play in work_plays(path, step.tags):
            name = str(play.get("name", ""))
            if name in book:
                reached = groups.matching(str(play["hosts"]))
                yield (f"play {name!r} of {rel(path)} (step {step.id})", str(play["hosts"]), book[name],
                       [host for host in order if host in reached])


def named_hosts(hosts: list[str]) -> str:
    more = f" and {len(hosts) - 3} more hosts" if len(hosts) > 3 else ""
    return ", ".join(hosts[:3]) + more


def _uses(uses: list[str]) -> str:
    more = len(uses) - 1
    return uses[0] + (f" and {more} more play{'s' if more > 1 else ''}" if more else "")


def _home_group(groups: InventoryGroups, host: str, pattern: str) -> str:
    """The group of a play's pattern the host is in: where a variable of it belongs."""
    for raw in re.split(r"[:,]", pattern):
        term = raw.strip()
        if term and term[0] not in "!&" and term in groups.names and host in groups.members(term):
            return term
    return ""


def _host_files(inv_path: Path) -> list[Path]:
    base = inv_path if inv_path.is_dir() else inv_path.parent
    return [f for f in inventory_yaml_files(inv_path)
            if not {"group_vars", "host_vars"} & set(f.relative_to(base).parts)]


def _find(files: list[Path], pattern: re.Pattern[str]) -> tuple[str, int] | None:
    for f in files:
        try:
            lines = f.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for n, line in enumerate(lines, 1):
            if pattern.search(line):
                return rel(f), n
    return None


def host_line(inv_path: Path, host: str) -> tuple[str, int]:
    """Where the inventory defines a host (its first mention as a key)."""
    found = _find(_host_files(inv_path), re.compile(rf"^\s*{re.escape(host)}\s*:"))
    return found or (rel(inv_path), 1)


def var_line(inv_path: Path, host: str, host_groups: list[str], var: str) -> tuple[str, int]:
    """Where a host's variable is set: its host_vars, its line in the hosts file, its groups'
    group_vars, then group_vars/all (the order of Ansible's precedence, best effort)."""
    base = inv_path if inv_path.is_dir() else inv_path.parent
    files = inventory_yaml_files(inv_path)
    key = re.compile(rf"(^|[\s{{,]){re.escape(var)}\s*:")

    def under(*parts: str) -> list[Path]:
        top = base.joinpath(*parts)
        return [f for f in files if f == top or top in f.parents
                or (f.name.startswith(f"{parts[-1]}.") and f.parent == top.parent)]

    on_host_line = re.compile(rf"^\s*{re.escape(host)}\s*:.*(^|[\s{{,]){re.escape(var)}\s*:")
    for candidates, pattern in ((under("host_vars", host), key), (_host_files(inv_path), on_host_line),
                                *((under("group_vars", g), key) for g in reversed(host_groups)),
                                (under("group_vars", "all"), key), (files, key)):
        found = _find(candidates, pattern)
        if found:
            return found
    return host_line(inv_path, host)
