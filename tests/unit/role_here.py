"""A role run on this machine through real ansible-playbook: one play on localhost (local
connection, the playbook's own Python), the role included with the given variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cutover.ansible import run_playbook


def run_role(tmp_path: Path, role: str, variables: dict[str, Any], ident: str, tasks_from: str = "main"):
    play = tmp_path / f"{ident}.yml"
    play.write_text(yaml.safe_dump([{
        "name": role, "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": role, "ansible.builtin.include_role": {"name": role, "tasks_from": tasks_from},
                   "vars": variables}]}]))
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}))
    return run_playbook(play, inv, ident=ident, artifacts_dir=tmp_path / "art")
