"""cutover: a planned maintenance window as code (plan → Ansible → journal → report)."""

from __future__ import annotations

__version__ = "0.1.0"
