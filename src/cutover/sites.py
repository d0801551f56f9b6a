"""The sites of a window (N17): the province, its cities and their counties, as the inventory
declares them. `cutover_sites` (group_vars/all) maps each site's stable id to its name and
its parent; every host says which site it belongs to with `cutover_site`.

    cutover_sites:
      province: {name: 山西省, code: "140000"}
      taiyuan: {name: 太原市, code: "140100", parent: province}
      taiyuan-c01: {name: 太原市第1县区, code: "140101", parent: taiyuan}

A site id on the command line or in a plan's `limit` stands for that site's own hosts (those
whose `cutover_site` is that id): `--limit province` is the province's data centre, not the
whole tree; `--limit taiyuan` is Taiyuan's city hosts, not its counties (name them too)."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible.inventory.manager import split_host_pattern

from cutover.errors import CutoverError
from cutover.inventory import absent_hosts, load_inventory

SITE_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SITE_KEYS = {"name", "code", "parent"}
LEVELS = ("province", "cities", "counties")  # the tree's levels, by depth (N17)


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    parent: str | None
    code: str | None = None


@dataclass(frozen=True)
class Problem:
    """What is wrong with the tree, the hint, and text to find its line in the inventory."""

    message: str
    hint: str
    near: str


class SiteTree:
    """The declared sites and which host belongs to which, checked by `problems()`."""

    def __init__(self, declared: Any, host_site: Mapping[str, Any],
                 differing: list[str] | None = None, groups: set[str] | None = None) -> None:
        self.declared = declared
        self.groups = set(groups or ())  # the inventory's groups, which no site id may be
        self.host_site = dict(host_site)
        self.differing = differing or []  # hosts that carry another tree than the first found
        self.sites: dict[str, Site] = {}
        if isinstance(declared, Mapping):
            for site_id, declared_entry in declared.items():
                entry = declared_entry if isinstance(declared_entry, Mapping) else {}
                parent, code = entry.get("parent"), entry.get("code")
                self.sites[str(site_id)] = Site(str(site_id), str(entry.get("name") or ""),
                                                str(parent) if parent is not None else None,
                                                str(code) if code is not None else None)

    @classmethod
    def from_hostvars(cls, hostvars: Mapping[str, Mapping[str, Any]],
                      groups: set[str] | None = None) -> SiteTree:
        """From `ansible-inventory --list`: the tree is a group_vars/all variable, so every
        host carries the same copy; the first one found is taken (a host that says otherwise
        is reported by `problems()`)."""
        declared = next((hv["cutover_sites"] for hv in hostvars.values() if "cutover_sites" in hv), None)
        differing = sorted(host for host, hv in hostvars.items()
                           if "cutover_sites" in hv and hv["cutover_sites"] != declared)
        host_site = {host: hv.get("cutover_site") for host, hv in hostvars.items()}
        return cls(declared, host_site, differing, groups)

    # ------------------------------------------------------------ checking

    def problems(self, *, production: bool = False) -> list[Problem]:
        """Everything that keeps the tree from saying, for each host, where it stands. An
        inventory with no site at all (no tree, no host with cutover_site) is one site, which
        a lab or a test may be; a production inventory must declare its sites (N17)."""
        if self.declared is None and not production and not any(self.host_site.values()):
            return []
        if self.declared is None:
            return [Problem("the inventory declares no site tree (cutover_sites)",
                            "add group_vars/all/sites.yml: cutover_sites maps each site id to "
                            "{name, parent}, the province without a parent (N17)", "cutover_site")]
        if not isinstance(self.declared, Mapping) or not self.declared:
            return [Problem("cutover_sites is not a mapping of site id to {name, parent}",
                            "write it as: taiyuan: {name: 太原市, parent: province}", "cutover_sites")]
        out: list[Problem] = []
        for host in self.differing:
            out.append(Problem(f"host {host} has its own cutover_sites, different from the inventory's",
                               "declare the tree once, in group_vars/all", host))
        for site_id, entry in self.declared.items():
            out += self._entry_problems(str(site_id), entry)
        roots = sorted(s.id for s in self.sites.values() if s.parent is None)
        if len(roots) != 1:
            named = ", ".join(roots) or "none"
            out.append(Problem(f"the site tree has {len(roots)} roots ({named}); it has exactly one, "
                               "the province",
                               "give every other site a parent", "cutover_sites"))
        for site in self.sites.values():
            if site.parent is not None and site.parent in self.sites and self._cycle(site.id):
                out.append(Problem(f"site {site.id}: its parents lead back to itself",
                                   "the parents lead up to the province", f"{site.id}:"))
        for site_id in sorted(set(self.sites) & (set(self.host_site) | self.groups)):
            kind = "host" if site_id in self.host_site else "group"
            out.append(Problem(f"site id {site_id!r} is also the name of a {kind}",
                               "rename the site, the host or the group: a limit must mean one thing",
                               f"{site_id}:"))
        for host, site_id in sorted(self.host_site.items()):
            if site_id in (None, ""):
                out.append(Problem(f"host {host} has no cutover_site", "say which site it belongs to, "
                                   "e.g. cutover_site: province", host))
            elif not isinstance(site_id, str) or site_id not in self.sites:
                out.append(Problem(f"host {host}: cutover_site {site_id!r} is not a site of cutover_sites",
                                   _close(str(site_id), self.sites), host))
        return out

    def _entry_problems(self, site_id: str, entry: Any) -> list[Problem]:
        near = f"{site_id}:"
        if not SITE_ID.match(site_id):
            return [Problem(f"site id {site_id!r} is not lower-case letters, digits and dashes",
                            "ids are stable and plain, e.g. taiyuan or taiyuan-c01; "
                            "the name holds the Chinese", near)]
        if not isinstance(entry, Mapping):
            return [Problem(f"site {site_id} is not a mapping",
                            "write it as {name: 太原市, parent: province}", near)]
        out = []
        unknown = sorted(set(map(str, entry)) - SITE_KEYS)
        if unknown:
            out.append(Problem(f"site {site_id}: unknown key(s) {', '.join(unknown)}",
                               f"a site has {', '.join(sorted(SITE_KEYS))}", near))
        if not isinstance(entry.get("name"), str) or not entry["name"].strip():
            out.append(Problem(f"site {site_id} has no name", "name it as people say it, e.g. 太原市", near))
        parent = entry.get("parent")
        if parent is not None and str(parent) not in self.sites:
            out.append(Problem(f"site {site_id}: parent {parent!r} is not a site",
                               _close(str(parent), self.sites), near))
        return out

    def _cycle(self, site_id: str) -> bool:
        seen = {site_id}
        current = self.sites[site_id].parent
        while current is not None and current in self.sites:
            if current in seen:
                return True
            seen.add(current)
            current = self.sites[current].parent
        return False

    # ------------------------------------------------------------ reading

    def hosts_of(self, site_id: str) -> list[str]:
        """The site's own hosts (not its children's)."""
        return sorted(host for host, site in self.host_site.items() if site == site_id)

    def path(self, site_id: str) -> list[str]:
        """From the root down to the site: ['province', 'taiyuan', 'taiyuan-c01']."""
        out: list[str] = []
        current: str | None = site_id
        while current is not None and current in self.sites and current not in out:
            out.insert(0, current)
            current = self.sites[current].parent
        return out

    def ordered(self) -> list[Site]:
        """Every site, the province first, then each city followed by its counties, each level
        by agency code (the inventory's own order does not survive `ansible-inventory`)."""
        children: dict[str | None, list[str]] = {}
        for site in sorted(self.sites.values(), key=lambda s: (s.code or "", s.id)):
            children.setdefault(site.parent, []).append(site.id)
        out: list[Site] = []

        def walk(parent: str | None) -> None:
            for child in children.get(parent, []):
                if all(s.id != child for s in out):
                    out.append(self.sites[child])
                    walk(child)

        walk(None)
        return out

    def level(self, site_id: str) -> str:
        """The site's level in the tree: `province` (the root), `cities`, `counties`."""
        depth = len(self.path(site_id)) - 1
        return LEVELS[min(max(depth, 0), len(LEVELS) - 1)]

    def at_level(self, level: str) -> list[str]:
        """The sites of one level, in the tree's order (`ordered()`)."""
        if level not in LEVELS:
            raise CutoverError(f"unknown site level {level!r}", f"one of {', '.join(LEVELS)}")
        return [site.id for site in self.ordered() if self.level(site.id) == level]

    def label(self, site_id: str) -> str:
        site = self.sites.get(site_id)
        return f"{site.name} ({site.id})" if site else site_id


def _close(word: str, known: Mapping[str, Any],
           fallback: str = "use a site id declared in cutover_sites") -> str:
    match = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {match[0]!r}?" if match else fallback


def inventory_targets(inventory: Path) -> tuple[SiteTree, set[str], set[str]]:
    """The inventory's site tree, hosts and groups, as Ansible reads it; the hosts that are
    not there (a lab's, not started) are no site's."""
    data = load_inventory(inventory)
    absent = set(absent_hosts(inventory))
    hostvars = {host: variables for host, variables in data.get("_meta", {}).get("hostvars", {}).items()
                if host not in absent}
    groups = {group for group in data if group != "_meta"}
    return SiteTree.from_hostvars(hostvars, groups), set(hostvars), groups


def site_limit(pattern: str, targets: tuple[SiteTree, set[str], set[str]], where: str = "--limit",
               inventory: str = "") -> str:
    """A limit as Ansible reads it (terms split by Ansible itself), its site ids spelled as the
    site's own hosts, refused before any host is touched when it cannot mean what it says:
    no term at all (a blank limit would run everywhere), a name that is no host, group or
    site (with the nearest name), `&site` (Ansible intersects with each `&` term, so a site
    cannot be spelled as hosts there), a site without hosts, and `!site` of a site whose
    child sites have hosts (they would stay in; leave them out by name too)."""
    tree, hosts, groups = targets
    terms = [term.strip() for term in split_host_pattern(pattern) if term.strip()]
    if not terms or any(not term.lstrip("!&") for term in terms):
        raise CutoverError(f"{where} {pattern!r} names no host, group or site",
                           "leave the limit out to run everywhere, or name what to run on")
    out: list[str] = []
    for term in terms:
        prefix = term[0] if term[0] in "!&" else ""
        name = term[len(prefix):]
        base = re.sub(r"\[[0-9:-]*\]$", "", name)  # a subscript (core[0:2]) selects within
        if base in hosts or base in groups or name == "all" or name.startswith("~") or (
                any(ch in base for ch in "*?[") and fnmatch.filter(hosts | groups, base)):
            out.append(term)
            continue
        if name not in tree.sites:
            raise CutoverError(f"{where} {pattern}: {name!r} is no host, group or site of "
                           + (f"inventory {inventory}" if inventory else "the inventory"),
                               _close(name, {**dict.fromkeys(hosts | groups), **tree.sites},
                                      "name a site id (cutover_sites), a group or a host"))
        excluded = {other[1:] for other in terms if other.startswith("!")}
        out += _site_terms(f"{where} {pattern}", tree, prefix, name, excluded)
    return ",".join(out)  # ',' as Ansible splits on it first: an IPv6 host stays whole


def _site_terms(said: str, tree: SiteTree, prefix: str, name: str, excluded: set[str]) -> list[str]:
    site_hosts = tree.hosts_of(name)
    if prefix == "&":
        raise CutoverError(f"{said}: '&{name}' intersects with a site, which cannot be done",
                           f"name the site alone ({name}) or its hosts")
    if not site_hosts and prefix != "!":
        raise CutoverError(f"{said}: site {tree.label(name)} has no host",
                           "name a site that has hosts (cutover_site of a host)")
    below = sorted(site.id for site in tree.sites.values() if site.id != name and site.id not in excluded
                   and name in tree.path(site.id) and tree.hosts_of(site.id))
    if prefix == "!" and below:
        more = " …" if len(below) > 4 else ""
        spelled = ",".join(f"!{site}" for site in [name, *below][:3])
        raise CutoverError(f"{said}: '!{name}' would leave out {tree.label(name)}'s own hosts but not those "
                           f"of {', '.join(below[:4])}{more} below it",
                           f"leave those out by name too ({spelled}…), or use a group that holds them all")
    return [f"{prefix}{host}" for host in site_hosts]
