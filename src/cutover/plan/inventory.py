"""The inventory the plan runs on: Ansible can parse it, its SQL fragments are single
expressions (N5) and its gate queries single SELECTs (N1, N3), a production inventory hands
over safely and notifies someone (N6, N16), and every step's limit and play hosts match a
host or group."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from cutover.contract.inputs import ENGINE_VARS, OPERATOR_ONLY_VARS, PLAN_VARS
from cutover.data import sql
from cutover.errors import CutoverError
from cutover.inventory import load_inventory
from cutover.paths import resolve
from cutover.plan.gate_queries import lint_gate_queries
from cutover.plan.host_keys import lint_host_keys
from cutover.plan.inventory_vars import (
    InventoryGroups,
    lint_inventory_vars,
    lint_vault_references,
    named_hosts,
    var_line,
)
from cutover.plan.model import Plan
from cutover.plan.playbooks import play_hosts
from cutover.plan.problems import Add, close_match, rel
from cutover.plan.smoke_checks import lint_smoke_transactions
from cutover.sites import SiteTree, site_limit
from cutover.yamlsafe import YamlRefused

RUN_VARS = frozenset(ENGINE_VARS) | frozenset(PLAN_VARS) | frozenset(OPERATOR_ONLY_VARS)
RUN_VAR_SOURCES = {**PLAN_VARS, **OPERATOR_ONLY_VARS}


def _lint_run_vars(hostvars: dict[str, Any], add: Add, inv_path: Path, groups: InventoryGroups) -> None:
    """The run's variables (the engine's, the plan's, an operator's `-e`) are never the
    inventory's. The engine leaves some out when unset (cutover_abort, cutover_restart,
    cutover_restore_without_release): set on a host, such a value would take effect there
    alone (cutover_restore_without_release: true starts that host's services unchecked), and
    the playbooks check these inputs once for all hosts (#17)."""
    found: dict[str, list[str]] = {}
    for host, host_vars in hostvars.items():
        for var in sorted(RUN_VARS & set(host_vars)):
            found.setdefault(var, []).append(host)
    for var, hosts in found.items():
        add(("plan", "inventory"), f"inventory {rel(inv_path)}: {var} is set for {named_hosts(hosts)}; it is "
            "the run's variable (the engine's, the plan's vars or an operator's -e), never the inventory's",
            f"remove {var} from the inventory: {RUN_VAR_SOURCES.get(var, 'the engine passes it')}",
            at=var_line(inv_path, hosts[0], groups.of_host(hosts[0]), var))


def lint_inventory(plan: Plan, add: Add, locs: dict[str, tuple[Any, ...]],
                  inventory: str | Path | None) -> set[str] | None:
    """Check the inventory; its groups, or None when it cannot be read (reported here)."""
    inv_path = resolve(inventory or plan.plan.inventory)
    try:
        data = load_inventory(inv_path)
    except YamlRefused as exc:
        add(("plan", "inventory"), exc.problem, exc.hint, at=(rel(Path(exc.file)), exc.line))
        return None
    except CutoverError as exc:
        add(("plan", "inventory"), str(exc).splitlines()[0], "fix the inventory or pass --inventory")
        return None
    hostvars = data.get("_meta", {}).get("hostvars", {})
    hosts = set(hostvars)
    inventory_groups = InventoryGroups(data)
    groups = inventory_groups.names  # an empty group too (production's `tax`)
    _lint_export_fragments(hostvars, add, inv_path)
    _lint_run_vars(hostvars, add, inv_path, inventory_groups)
    production = any(hv.get("cutover_environment") == "production" for hv in hostvars.values())
    lint_inventory_vars(plan, add, data, inv_path)
    lint_vault_references(add, data, inv_path)
    lint_gate_queries(plan, add, data, inv_path)
    lint_smoke_transactions(plan, add, data, inv_path)  # N9–N12: the site's own smoke SQL
    if production:
        lint_host_keys(add, data, inv_path)
    sites = SiteTree.from_hostvars(hostvars, groups)
    for problem in sites.problems(production=production):  # N17: every host stands in the tree
        add(("plan", "inventory"), f"inventory {rel(inv_path)}: {problem.message}", problem.hint,
            at=_inventory_line(inv_path, problem.near))
    plain_ftp = sorted(h for h, hv in hostvars.items()
                       if str(hv.get("si_drop_protocol", "")).lower() == "ftp")
    if production and plain_ftp:  # N6: personal data and the drop's password in clear text
        add(("plan", "inventory"), f"the production inventory {rel(inv_path)} hands the data over by plain "
            f"ftp (si_drop_protocol of {', '.join(plain_ftp[:3])}): clear text, unverified",
            "use sftp (si_drop_known_hosts) or ftps (si_drop_ca_file)",
            at=_inventory_line(inv_path, "si_drop_protocol"))
    targets = any(hv.get("cutover_notify_urls") for hv in hostvars.values())
    if production and not plan.plan.notify and not targets:
        add(("plan", "notify"), f"the production inventory {rel(inv_path)} and the plan notify nobody (N16)",
            "set cutover_notify_urls in the inventory (secrets from the vault) or plan.notify", "warning")
    _lint_escalation_targets(plan, add, hostvars, inv_path)
    for step in plan.steps():
        if step.sites and not sites.at_level(step.sites):  # each site of the level confirms it
            add((*locs[step.id], "sites"), f"step {step.id}: sites: {step.sites}, but inventory "
                f"{rel(inv_path)} has no site of that level",
                "declare them in cutover_sites (N17), or name a level the tree has")
        patterns = [("limit", step.limit)] if step.limit else []
        if step.playbook and resolve(step.playbook).is_file():
            patterns += [("playbook", h) for h in play_hosts(resolve(step.playbook))]
        for field, pattern in patterns:
            if field == "limit":  # read as the engine reads it: sites spelled as hosts (N17)
                try:
                    site_limit(pattern, (sites, hosts, groups), f"step {step.id}: limit", rel(inv_path))
                except CutoverError as exc:
                    add((*locs[step.id], field), exc.message, exc.hint)
                continue
            _check_pattern(step, field, pattern, hosts, groups, add, locs, inv_path)
    return groups


def _lint_escalation_targets(plan: Plan, add: Add, hostvars: dict[str, Any], inv_path: Path) -> None:
    """N14: the inventory variable a contact is told through is set somewhere."""
    for index, contact in enumerate(plan.plan.escalation):
        if contact.notify_var and not any(hv.get(contact.notify_var) for hv in hostvars.values()):
            add(("plan", "escalation", index, "notify_var"), f"escalation contact {contact.name!r}: no host "
                f"of inventory {rel(inv_path)} sets {contact.notify_var}, so a fault would reach nobody",
                "set it in the inventory (group_vars/all, secrets from the vault), or name the variable "
                "that holds the contact's apprise URLs")


def _lint_export_fragments(hostvars: dict[str, Any], add: Add, inv_path: Path) -> None:
    """Every row filter and quality rule in si_export is one SQL expression: no comment
    marker, no `;` (the rules come from the receiving organisation: untrusted, N5)."""
    seen: set[tuple[str, str]] = set()
    for hv in hostvars.values():
        spec = hv.get("si_export")
        if not isinstance(spec, dict):
            continue
        pieces = [(f"si_export.tables[{t.get('name')}].where", t.get("where"))
                  for t in spec.get("tables") or [] if isinstance(t, dict) and t.get("where") is not None]
        pieces += [(f"si_export.quality_rules[{r.get('name')}]", r.get("check"))
                   for r in spec.get("quality_rules") or [] if isinstance(r, dict)]
        for where, text in pieces:
            problem = sql.fragment_problem(text)
            if problem and (where, str(text)) not in seen:
                seen.add((where, str(text)))
                add(("plan", "inventory"), f"{where} {problem}",
                    "fix the rule in the inventory; the screening and the export refuse it too",
                    at=_inventory_line(inv_path, str(text)))


def _inventory_line(inv_path: Path, text: str) -> tuple[str, int]:
    """The file and line of the inventory where text is written (its first line), best effort."""
    needle = text.strip().splitlines()[0].strip() if text.strip() else text
    files = sorted(inv_path.rglob("*.y*ml")) if inv_path.is_dir() else [inv_path]
    for f in files:
        try:
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if needle and needle in line:
                    return rel(f), n
        except (OSError, UnicodeDecodeError):
            continue
    return rel(inv_path), 1


def _check_pattern(step, field, pattern, hosts, groups, add, locs, inv_path) -> None:
    for raw in re.split(r"[:,]", pattern):
        term = raw.strip().lstrip("!&")
        if not term or "{{" in term or term in groups or term in hosts or term in ("all", "localhost"):
            continue
        if any(ch in term for ch in "*?[") and fnmatch.filter(hosts | groups, term):
            continue
        what = "limit" if field == "limit" else f"playbook {step.playbook} targets"
        add((*locs[step.id], field), f"step {step.id}: {what} {term!r}, which matches no host "
            f"or group in inventory {rel(inv_path)}",
            close_match(term, groups | hosts, "name a host or a group of it"))

