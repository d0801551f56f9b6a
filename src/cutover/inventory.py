"""What cutover asks of an Ansible inventory, answered by Ansible's own tools: its hosts and
their variables (`ansible-inventory`), one variable as a play would see it, whether it is a
production inventory, and which hosts a run leaves out (`--limit` patterns, and the lab's
hosts that `lab.up` did not start). The engine, the lab and the plan's lint all read
inventories through here."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ansible.inventory.manager import split_host_pattern

from cutover.errors import CutoverError
from cutover.paths import LAB_INVENTORY, LAB_STATE_FILE
from cutover.yamlsafe import check_file

YAML_SUFFIXES = (".yml", ".yaml", ".json")


def ansible_bin(name: str) -> str:
    """A tool from the same environment as this Python (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


# ---------------------------------------------------------------- reading


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
                path = Path(dirpath) / name
                if path.suffix in YAML_SUFFIXES or (in_vars and not path.suffix):
                    files.append(path)
    return list(dict.fromkeys(files))


def check_inventory_yaml(inventory: Path) -> None:
    """Refuse, with file:line, an inventory file whose aliases are out of bounds (recursive,
    or a "billion laughs"), before Ansible's own parser meets it."""
    for path in inventory_yaml_files(inventory):
        check_file(path)


# Within `one_reading()`: each inventory's `ansible-inventory --list` output, by path.
_READ: contextvars.ContextVar[dict[Path, str] | None] = contextvars.ContextVar("cutover_inventory_read",
                                                                               default=None)


@contextlib.contextmanager
def one_reading() -> Iterator[None]:
    """Within, each inventory is read once (checked and listed by Ansible), and every later
    look at it (the plan's lint, the production question, the sites a run reaches) sees that
    same reading. A run's checks agree with each other, and the inventory is not listed
    three times before the first step. Per thread: another thread reads for itself."""
    token = _READ.set({})
    try:
        yield
    finally:
        _READ.reset(token)


def load_inventory(inventory: Path) -> dict[str, Any]:
    """`ansible-inventory --list`, failing loudly on an inventory Ansible cannot parse."""
    read = _READ.get()
    key = Path(inventory).resolve()
    if read is not None and key in read:
        return json.loads(read[key])
    if not inventory.exists():
        raise CutoverError(f"inventory {inventory} does not exist", "pass --inventory PATH")
    check_inventory_yaml(inventory)
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
           "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([ansible_bin("ansible-inventory"), "-i", str(inventory), "--list"],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        detail = "\n".join(line for line in proc.stderr.strip().splitlines() if line.strip())[-1200:]
        raise CutoverError(f"inventory {inventory} cannot be parsed:\n{detail}",
                           "fix the file and line named above (YAML syntax, indentation)")
    if read is not None:
        read[key] = proc.stdout
    return json.loads(proc.stdout)


def hostvars(inventory: Path) -> dict[str, dict[str, Any]]:
    """Every host's variables as the inventory writes them (not templated), by host name."""
    return load_inventory(inventory).get("_meta", {}).get("hostvars", {})


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


def is_production(inventory: Path) -> bool:
    """Does any host say `cutover_environment: production`? (Such a run is asked about first.)"""
    return any(variables.get("cutover_environment") == "production"
               for variables in hostvars(inventory).values())


# ---------------------------------------------------------------- which hosts a run reaches


def lab_state() -> dict[str, Any]:
    """What `lab.up` recorded: the hosts it started and those it left out; {} without a lab."""
    try:
        return json.loads(LAB_STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def absent_hosts(inventory: Path) -> list[str]:
    """The hosts of the inventory that are not there: of the lab's, those `lab.up` did not start."""
    if Path(inventory).resolve() != LAB_INVENTORY.resolve():
        return []
    return list(lab_state().get("skipped_hosts") or [])


def active_limit(inventory: Path) -> str | None:
    """For runs against the lab: leave out the hosts this lab did not start."""
    skipped = absent_hosts(inventory)
    return ",".join(["all", *(f"!{host}" for host in skipped)]) if skipped else None


def hosts_matching(inventory: Path, pattern: str) -> set[str]:
    """The hosts an Ansible pattern selects in this inventory, as Ansible itself reads it."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "False",
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"}
    command = [ansible_bin("ansible"), "all", "-i", str(inventory), "--list-hosts", "--limit", pattern]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode == 0 and lines and lines[0].startswith("hosts ("):
        return set(lines[1:])
    if not lines:  # Ansible refuses a pattern that leaves no host: none selected
        return set()
    raise CutoverError(f"the hosts of --limit {pattern} cannot be listed: {proc.stderr.strip()[-400:]}",
                       "check the inventory and the pattern")


def _terms(pattern: str) -> list[str]:
    """A pattern's terms as Ansible itself splits them (',' or ':', ranges kept whole)."""
    return [term for term in split_host_pattern(pattern) if term]


def combine_limits(inventory: Path, *limits: str | None) -> str | None:
    """One `--limit` that selects the hosts every given pattern selects.

    Ansible reads a pattern as (its plain terms united) & each `&term` − each `!term`, so two
    patterns are joined exactly when at most one of them unites several plain terms: the
    other's plain term becomes an `&` term. Two unions (`--limit taiyuan,datong` and a step's
    `limit: counter,gateway`) cannot be written as one pattern; their hosts are listed by
    Ansible and intersected here, and an empty intersection is `!all` (no host)."""
    patterns = [limit for limit in limits if limit]
    if len(patterns) <= 1:
        return patterns[0] if patterns else None
    split = [_terms(pattern) for pattern in patterns]
    plains = [[term for term in terms if term[0] not in "!&"] for terms in split]
    if sum(len(plain) > 1 for plain in plains) > 1:
        hosts = set.intersection(*(hosts_matching(inventory, pattern) for pattern in patterns))
        return ",".join(sorted(hosts)) if hosts else "!all"
    first = max(range(len(split)), key=lambda index: len(plains[index]))  # the union, if any, leads
    out = list(split[first])
    for index, terms in enumerate(split):
        if index != first:
            out += [term if term[0] in "!&" else f"&{term}" for term in terms if term != "all"]
    return ",".join(out)


def run_limit(inventory: Path, *limits: str | None) -> str | None:
    """The `--limit` of a playbook run: the given patterns, within the hosts that are there."""
    return combine_limits(inventory, *limits, active_limit(inventory))
