"""Where the project's files are. The package is installed editable from the checkout
(`./inv` does that), so the checkout root is two levels above this package."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB_STATE = ROOT / ".lab"
LAB_STATE_FILE = LAB_STATE / "state.json"  # what `lab.up` started, and what it left out
PLAYBOOKS = ROOT / "playbooks"
INVENTORIES = ROOT / "inventories"
LAB_INVENTORY = INVENTORIES / "lab"
# the lab's operations host (the shared journal's PostgreSQL), outside the window's inventory
LAB_OPS_INVENTORY = INVENTORIES / "lab-ops"
LAB_JOURNAL_PGPASS = LAB_STATE / "journal.pgpass"  # libpq password file for the ops journal
ANSIBLE_CFG = ROOT / "ansible.cfg"


def resolve(path: str | Path) -> Path:
    """A path given on the command line or in invoke.yaml, relative to the checkout."""
    given = Path(path).expanduser()
    return given if given.is_absolute() else ROOT / given
