"""#17: the roles' modules put what a host says (a probe's answer, a unit's journal) into
failure messages that operators read and reports keep: short, and without control
characters that would drive a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = [ROOT / "roles" / "service_control" / "library" / "service_units.py",
           ROOT / "roles" / "channel_notice" / "library" / "notice_components.py"]

@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_what_a_host_says_is_shown_short_and_without_control_characters(module):
    import importlib.util

    spec = importlib.util.spec_from_file_location(module.stem, module)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    said = m.shown("\x1b[31mred\x07" + "y" * 500)
    assert "\x1b" not in said
    assert "\x07" not in said
    assert said.startswith("\\x1b[31mred\\x07")
    assert len(said) <= 201
    assert m.shown("line one\nline two", lines=True) == "line one\nline two"
    assert m.shown("line one\nline two") == "line one\\x0aline two"
