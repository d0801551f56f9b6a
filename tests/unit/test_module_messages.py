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


def test_every_module_runs_with_the_python_the_inventory_names_for_the_host():
    """A module whose first line names python3 runs with /usr/bin/python3 whatever the host's
    ansible_python_interpreter says (Ansible looks up ansible_python3_interpreter instead): on a
    host whose database driver is in another Python, the smoke check's read-back found no
    psycopg. `#!/usr/bin/python` is the line Ansible replaces with the host's interpreter."""
    modules = sorted(ROOT.glob("roles/*/library/*.py")) + sorted(ROOT.glob("playbooks/*/library/*.py"))
    assert len(modules) >= 7
    first_lines = {m.relative_to(ROOT).as_posix(): m.read_text().splitlines()[0] for m in modules}
    assert {path: line for path, line in first_lines.items() if line != "#!/usr/bin/python"} == {}
