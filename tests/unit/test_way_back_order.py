"""N18: the release to go back to is recorded before `current` moves, and the move is the
switch's last act, so a kill anywhere in between never leaves a switched host without its
way back. The install module's own switch (roles/release_deploy/library/release_install.py), on a
real directory tree, with the rename failing as a kill or a full disk would stop it."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "release_install", ROOT / "roles" / "release_deploy" / "library" / "release_install.py")
m = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(m)


class Stopped(Exception):
    pass


class _Module:
    """What the switch asks of Ansible's module object: check mode, and a failure that ends it."""
    check_mode = False

    def fail_json(self, **result):
        raise Stopped(result)


@pytest.fixture
def tree(tmp_path):
    for version in ("1.0", "2.0"):
        (tmp_path / "a" / "releases" / version).mkdir(parents=True)
    os.symlink(tmp_path / "a" / "releases" / "1.0", tmp_path / "a" / "current")
    return tmp_path


def _switch(tree):
    host = m.Host(_Module())
    params = {"root": str(tree), "components": [{"name": "a", "version": "2.0", "units": ["a"]}]}
    return host, m.switch(host, params)


def test_previous_is_written_before_current_moves_and_a_failed_rename_leaves_current_as_it_was(tree, monkeypatch):
    real_replace = os.replace

    def rename_fails(src, dst):
        if str(dst).endswith("/current"):
            raise OSError("no space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(m.os, "replace", rename_fails)
    with pytest.raises(Stopped) as stopped:
        _switch(tree)
    assert "could not be switched" in stopped.value.args[0]["msg"]
    assert (tree / "a" / "PREVIOUS").read_text() == "1.0\n"  # the way back, before anything moved
    assert os.readlink(tree / "a" / "current") == str(tree / "a" / "releases" / "1.0")
    assert sorted(os.listdir(tree / "a")) == ["PREVIOUS", "current", "releases"]  # no .current.new left


def test_the_switch_moves_current_last_and_a_second_run_moves_nothing(tree):
    host, (moved, before) = _switch(tree)
    assert moved == ["a"]
    assert before == {"a": str(tree / "a" / "releases" / "1.0")}
    assert os.readlink(tree / "a" / "current") == str(tree / "a" / "releases" / "2.0")
    assert (tree / "a" / "PREVIOUS").read_text() == "1.0\n"
    assert host.changes[-1].startswith("switched ")  # the rename is the last act
    _, (moved_again, _) = _switch(tree)
    assert moved_again == []
    assert (tree / "a" / "PREVIOUS").read_text() == "1.0\n"  # never overwritten by a re-run
