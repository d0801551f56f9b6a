"""Where the project's files are. The package is installed editable from the checkout
(`./inv` does that), so the checkout root is two levels above this package."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB_STATE = ROOT / ".lab"
PLAYBOOKS = ROOT / "playbooks"
INVENTORIES = ROOT / "inventories"
ANSIBLE_CFG = ROOT / "ansible.cfg"


def resolve(path: str | Path) -> Path:
    """A path given on the command line or in invoke.yaml, relative to the checkout."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else ROOT / p
