"""Which sites a step touches, and which of them a run reaches (N17).

A step touches the sites of the hosts its plays work on: the plays its tags select, not the
input checks every entry playbook begins with (`tags: [always]`), within the step's own
`limit`. A step without a playbook (a confirmation, a wait) stands for the province, the
root of the tree; so do plays on the controller (`localhost`). A manual step confirmed site
by site (`sites: cities`) touches every site of that level. An inventory without sites is
one site, named "".

A run narrowed with `--limit` reaches the sites of the hosts it selects; the step runs for
those of its sites that are not done yet, and only they are recorded done."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ansible.inventory.manager import split_host_pattern

from cutover.inventory import absent_hosts, hosts_matching, load_inventory
from cutover.paths import resolve
from cutover.plan.model import Step
from cutover.plan.playbooks import work_plays
from cutover.sites import SiteTree, site_limit

CONTROLLER = "localhost"


@dataclass
class Scope:
    inventory: Path
    tree: SiteTree
    hosts: set[str]  # the hosts that are there (a lab's not started are not)
    members: dict[str, set[str]]  # group → its hosts, children's included
    _plays: dict[str, dict[tuple[str, ...], list[str]]] = field(default_factory=dict)  # hosts patterns

    @classmethod
    def of(cls, inventory: Path) -> Scope:
        data = load_inventory(inventory)
        absent = set(absent_hosts(inventory))
        hostvars = {host: variables for host, variables in data.get("_meta", {}).get("hostvars", {}).items()
                    if host not in absent}
        groups = {name: group for name, group in data.items() if name != "_meta" and isinstance(group, dict)}
        members: dict[str, set[str]] = {}

        def walk(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
            if name in members:
                return members[name]
            group = groups.get(name, {})
            found = {host for host in group.get("hosts", []) if host not in absent}
            for child in group.get("children", []):
                if child not in seen:
                    found |= walk(child, seen | {name})
            members[name] = found
            return found

        for name in groups:
            walk(name)
        members["all"] = set(hostvars)
        return cls(inventory, SiteTree.from_hostvars(hostvars, set(groups)), set(hostvars), members)

    # ------------------------------------------------------------ hosts

    def pattern_hosts(self, pattern: str) -> set[str]:
        """The hosts an Ansible pattern selects: plain terms united, each `&term` intersected,
        each `!term` taken away. Ranges and regular expressions are asked of Ansible."""
        if any(ch in pattern for ch in "[~"):
            return hosts_matching(self.inventory, pattern) & (self.hosts | {CONTROLLER})
        terms = [term.strip() for term in split_host_pattern(pattern) if term.strip()]
        plain = [term for term in terms if term[0] not in "!&"]
        selected = set().union(*(self._term(term) for term in plain)) if plain else set(self.hosts)
        for term in terms:
            if term[0] == "&":
                selected &= self._term(term[1:])
            elif term[0] == "!":
                selected -= self._term(term[1:])
        return selected

    def _term(self, term: str) -> set[str]:
        if term in ("all", "*"):
            return set(self.hosts)
        if term == CONTROLLER and term not in self.hosts:
            return {CONTROLLER}
        if term in self.members:
            return set(self.members[term])
        if term in self.hosts:
            return {term}
        if any(ch in term for ch in "*?"):
            found = {host for host in self.hosts if fnmatch.fnmatch(host, term)}
            for group in fnmatch.filter(self.members, term):
                found |= self.members[group]
            return found
        return set()

    def limit_hosts(self, limit: str | None) -> set[str]:
        """The hosts a limit (sites spelled as hosts) selects; every host, and the controller, without one."""
        if limit is None:
            return self.hosts | {CONTROLLER}
        spelled = site_limit(limit, (self.tree, self.hosts, set(self.members)), inventory=str(self.inventory))
        return self.pattern_hosts(spelled) if spelled else set()

    # ------------------------------------------------------------ steps

    def step_hosts(self, step: Step) -> set[str]:
        """The hosts the step's plays work on (its tags, its own limit)."""
        if not step.playbook:
            return set()
        if step.playbook not in self._plays:
            self._plays[step.playbook] = {}
        patterns = self._plays[step.playbook].setdefault(
            tuple(step.tags), [str(play["hosts"]) for play in work_plays(resolve(step.playbook), step.tags)])
        hosts: set[str] = set()
        for pattern in patterns:
            if "{{" in pattern:  # a templated pattern: every host may be meant
                hosts |= self.hosts
            else:
                hosts |= self.pattern_hosts(pattern)
        if step.limit:
            hosts &= self.limit_hosts(step.limit)
        return hosts

    def site_of(self, host: str) -> str:
        if host == CONTROLLER and host not in self.tree.host_site:
            return self.root()
        site = self.tree.host_site.get(host)
        return str(site) if site else ""

    def root(self) -> str:
        roots = [site.id for site in self.tree.sites.values() if site.parent is None]
        return roots[0] if len(roots) == 1 else ""

    def sites_of(self, hosts: Iterable[str]) -> set[str]:
        return {self.site_of(host) for host in hosts}

    def step_sites(self, step: Step) -> set[str]:
        """Every site the step touches; a step without a playbook stands for the root, or,
        confirmed site by site (`sites: cities`), for every site of that level."""
        if not step.playbook:
            return set(self.tree.at_level(step.sites)) if step.sites else {self.root()}
        return self.sites_of(self.step_hosts(step))

    def related(self, site: str, others: Iterable[str]) -> set[str]:
        """Of `others`, the sites in the same line as `site`: itself, its ancestors, its
        descendants. Work at a site waits for its dependency there, above it and below it
        (the province's freeze waits for every city's counters; a city waits for the province)."""
        line = set(self.tree.path(site)) if site else set()
        return {other for other in others
                if other == site or other in line or (site and site in self.tree.path(other))
                or not other or not site}

