"""A damaged journal is refused by name with what SQLite said, and left as it is; a healthy
one opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cutover.engine.journal import Journal
from cutover.errors import CutoverError

PAGE = 4096


def make_journal(path: Path) -> None:
    """A real journal, written through the journal's own API, spanning many pages."""
    j = Journal.open(path)
    try:
        run = j.start_run("stop", rehearsal=True, check=False, plan_hash="0" * 64, options={}, who="tester")
        for i in range(200):
            j.add_override(f"step-{i:03d}", "tester", f"reason {i} " + "x" * 150)
        j.end_run(run, "ok")
    finally:
        j.close()
    assert not Path(f"{path}-wal").exists()  # everything is in the main file


def quick_check(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
    finally:
        conn.close()


def corrupt_a_data_page(path: Path) -> None:
    """Swap the first two cell pointers of a table page in the middle of the file: every
    byte SQLite reads stays in range (what it reports is the same on every run), but the
    rows of that page are out of order, which quick_check reports."""
    data = bytearray(path.read_bytes())
    assert len(data) % PAGE == 0
    pages = [n for n in range(1, len(data) // PAGE) if b"tester" in data[n * PAGE:(n + 1) * PAGE]]
    start = pages[len(pages) // 2] * PAGE
    assert data[start] == 0x0D  # a table b-tree leaf page: the cell pointers follow its 8-byte header
    first, second = data[start + 8:start + 10], data[start + 10:start + 12]
    data[start + 8:start + 10], data[start + 10:start + 12] = second, first
    path.write_bytes(bytes(data))


def test_a_healthy_journal_opens(tmp_path):
    path = tmp_path / "journal.sqlite"
    make_journal(path)
    assert quick_check(path) == ["ok"]
    j = Journal.open(path)
    try:
        assert len(j.all("overrides")) == 200
    finally:
        j.close()


def test_a_journal_that_fails_quick_check_is_refused_by_name_with_what_sqlite_said(tmp_path):
    path = tmp_path / "journal.sqlite"
    make_journal(path)
    corrupt_a_data_page(path)
    said = quick_check(path)  # the file still opens as a database; only the check finds the damage
    assert said != ["ok"]
    before = path.read_bytes()
    with pytest.raises(CutoverError) as err:
        Journal.open(path)
    msg = str(err.value)
    assert msg.startswith(f"journal {path} is damaged: SQLite's PRAGMA quick_check reports: On tree page ")
    assert "out of order" in msg
    assert "hint: nothing was run" in msg
    assert "Restore the journal from its backup or copy" in msg
    assert f"move it aside (mv {path} {path}.damaged)" in msg
    assert path.read_bytes() == before  # refused, not repaired and not recreated


def test_a_file_that_is_not_a_database_is_refused_the_same_way(tmp_path):
    path = tmp_path / "journal.sqlite"
    garbage = bytes(range(256)) * 64
    path.write_bytes(garbage)
    with pytest.raises(CutoverError) as err:
        Journal.open(path)
    msg = str(err.value)
    assert msg.startswith(f"journal {path} is damaged or not a journal: file is not a database")
    assert "Restore the journal from its backup or copy" in msg
    assert f"move it aside (mv {path} {path}.damaged)" in msg
    assert "Traceback" not in msg
    assert path.read_bytes() == garbage
