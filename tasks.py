"""Invoke entry point: the collections live in cutover.cli (see ARCHITECTURE.md)."""

from cutover.cli import namespace

ns = namespace()
