"""A production inventory pins its hosts' SSH keys (issue #15): every host names its
known_hosts (`cutover_known_hosts`), a file that exists, and ssh is told to use it
(`-o UserKnownHostsFile=` in its ssh args); nothing switches host key checking off. The
runner makes ssh fail at once on a key it does not know, never ask (ansible.cfg's ssh_args),
so a host missing from the file is said here first, as a warning."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import paramiko

from cutover.ansible.runner import NO_PROMPT_SSH_OPTIONS
from cutover.errors import CutoverError
from cutover.inventory import resolved_var
from cutover.plan.inventory_vars import InventoryGroups, host_line, named_hosts, var_line
from cutover.plan.problems import Add, rel

KNOWN_HOSTS_VAR = "cutover_known_hosts"
SSH_CONNECTIONS = ("ssh", "paramiko", "paramiko_ssh", "smart", "ansible.builtin.ssh",
                   "ansible.builtin.paramiko_ssh")
SSH_ARG_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args")
_OFF = re.compile(r"StrictHostKeyChecking[=\s]+(no|off|accept-new)\b", re.IGNORECASE)
_HINT = (f"set {KNOWN_HOSTS_VAR}: \"{{{{ inventory_dir }}}}/known_hosts.txt\" and ansible_ssh_common_args: "
         f"-o UserKnownHostsFile={{{{ {KNOWN_HOSTS_VAR} }}}} in group_vars/all/vars.yml, as "
         "inventories/example does")
_KEYSCAN = ("add each host's key (ssh-keyscan -t ed25519 ADDRESS >> the file) and check its fingerprint "
            "(ssh-keygen -lf) with the host's owner")


def lint_host_keys(add: Add, data: dict[str, Any], inv_path: Path) -> None:
    """Checks of a production inventory (the caller knows it is one)."""
    groups = InventoryGroups(data)
    written = data.get("_meta", {}).get("hostvars", {})
    # a host reached without SSH (ansible_connection: local) has no host key; any other, or a
    # connection that is a template, is held to the rule
    hostvars: dict[str, dict[str, Any]] = {
        host: written[host] for host in groups.in_order()
        if str(written[host].get("ansible_connection", "ssh")) in SSH_CONNECTIONS or "{" in
        str(written[host].get("ansible_connection"))}
    at = ("plan", "inventory")
    inv = rel(inv_path)
    # (what is wrong, the variable, the hint) → the hosts it is wrong for: said once, naming them
    found: dict[tuple[str, str, str], list[str]] = {}
    strict = " ".join(f"-o {option}" for option in NO_PROMPT_SSH_OPTIONS)
    off = ("switches host key checking off", "remove it: an unknown host key must fail, not be trusted")
    trust = ("tells ssh to trust unknown host keys",
             "write -o StrictHostKeyChecking=yes, or leave it to ansible.cfg")
    replaced = (f"replaces ansible.cfg's ssh_args without {strict}",
                "remove it (ansible_ssh_common_args adds to them), or say both")
    paramiko_ = ("connects with paramiko, which reads neither ssh_args nor UserKnownHostsFile",
                 "use ssh (ansible_connection: ssh, the default): only it fails at once on an unknown key")
    for host, hv in hostvars.items():
        if "paramiko" in str(hv.get("ansible_connection", "")):
            found.setdefault((paramiko_[0], "ansible_connection", paramiko_[1]), []).append(host)
        for var in ("ansible_host_key_checking", "ansible_ssh_host_key_checking"):
            if var in hv and str(hv[var]).lower() in ("false", "no", "0", "off"):
                found.setdefault((off[0], var, off[1]), []).append(host)
        if "ansible_ssh_args" in hv and not all(f"-o {o}" in str(hv["ansible_ssh_args"])
                                                for o in NO_PROMPT_SSH_OPTIONS):
            found.setdefault((replaced[0], "ansible_ssh_args", replaced[1]), []).append(host)
        for var in SSH_ARG_VARS:
            if _OFF.search(str(hv.get(var, ""))):
                found.setdefault((trust[0], var, trust[1]), []).append(host)
    for (what, var, hint), hosts in found.items():
        add(at, f"the production inventory {inv} {what} ({var}) for {named_hosts(hosts)}", hint,
            at=var_line(inv_path, hosts[0], groups.of_host(hosts[0]), var))
    without = [h for h, hv in hostvars.items() if not hv.get(KNOWN_HOSTS_VAR)]
    if without:
        add(at, f"the production inventory {inv} names no known_hosts ({KNOWN_HOSTS_VAR}) for "
            f"{named_hosts(without)}: their SSH host keys are not pinned", _HINT,
            at=host_line(inv_path, without[0]))
    # hosts that write it alike resolve alike: one look-up (Ansible templating) per way of writing it
    ways: dict[str, list[str]] = {}
    for host, hv in hostvars.items():
        if hv.get(KNOWN_HOSTS_VAR):
            ways.setdefault(repr([hv[KNOWN_HOSTS_VAR], *(hv.get(v) for v in SSH_ARG_VARS)]), []).append(host)
    for hosts in ways.values():
        _check_file(add, inv_path, groups, hosts, hostvars)


def _check_file(add: Add, inv_path: Path, groups: InventoryGroups, hosts: list[str],
                hostvars: dict[str, dict[str, Any]]) -> None:
    first, inv, at = hosts[0], rel(inv_path), ("plan", "inventory")
    where = var_line(inv_path, first, groups.of_host(first), KNOWN_HOSTS_VAR)
    args = " + ' ' + ".join(f"({v} | default(''))" for v in SSH_ARG_VARS)
    try:
        path, ssh_args = resolved_var(inv_path, first, f"[{KNOWN_HOSTS_VAR}, {args}]")
    except CutoverError as exc:
        add(at, f"{KNOWN_HOSTS_VAR} of {first} cannot be resolved", exc.hint or str(exc), at=where)
        return
    file = Path(str(path))
    if not file.is_absolute() or not file.is_file():
        add(at, f"{KNOWN_HOSTS_VAR} of {named_hosts(hosts)} is {path}, which is not an existing file "
            "(an absolute path)", _HINT, at=where)
        return
    if not re.search(rf"UserKnownHostsFile[=\s]+{re.escape(str(path))}(\s|$)", str(ssh_args)):
        add(at, f"ssh does not read {KNOWN_HOSTS_VAR} of {named_hosts(hosts)}: no "
            f"-o UserKnownHostsFile={path} in {', '.join(SSH_ARG_VARS)}", _HINT, at=where)
        return
    try:
        keys = paramiko.HostKeys(str(file))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        add(at, f"{rel(file)} cannot be read as a known_hosts file: {exc}", _HINT, at=(rel(file), 1))
        return
    unknown = [h for h in hosts if not keys.lookup(_ssh_name(h, hostvars[h]))]
    if unknown:
        add(at, f"{rel(file)} has no host key for {named_hosts(unknown)} of the production inventory {inv}: "
            "each of them will fail at once (ssh never asks)", _KEYSCAN, "warning", at=(rel(file), 1))


def _ssh_name(host: str, hv: dict[str, Any]) -> str:
    """The name ssh looks a host's key up by: its address, `[address]:port` off port 22."""
    name, port = str(hv.get("ansible_host") or host), str(hv.get("ansible_port") or 22)
    return name if port == "22" else f"[{name}]:{port}"
