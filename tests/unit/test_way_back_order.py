"""N18: the release to go back to is recorded before `current` moves, and the move is the
switch's last act, so a kill anywhere in between never leaves a switched host without its
way back. Read from the role's own task list, in the order Ansible runs it."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _switch_block() -> list[dict]:
    tasks = yaml.safe_load((ROOT / "roles" / "release_deploy" / "tasks" / "main.yml").read_text())
    block = next(t for t in tasks if str(t.get("name", "")).startswith("Release deploy | Switch | Move current"))
    return block["block"]


def test_previous_is_written_before_current_moves_and_the_rename_is_the_last_act():
    names = [t["name"] for t in _switch_block()]
    writes_previous = next(i for i, t in enumerate(_switch_block())
                           if str(t.get("ansible.builtin.copy", {}).get("dest", "")).endswith("/PREVIOUS"))
    renames = next(i for i, t in enumerate(_switch_block())
                   if "current.new" in str(t.get("ansible.builtin.command", {}).get("cmd", ""))
                   and "mv -T" in str(t.get("ansible.builtin.command", {}).get("cmd", "")))
    assert writes_previous < renames, names
    assert renames == len(names) - 1, names
