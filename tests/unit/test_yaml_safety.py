"""YAML aliases from an operator's files: a recursive alias or a "billion laughs" document is
refused with file:line (plan, inventory, release manifest), never a traceback or a hang;
ordinary anchors, aliases and merge keys still load."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cutover.cli import verify
from cutover.errors import CutoverError
from cutover.inventory import check_inventory_yaml, load_inventory
from cutover.plan.lint import load_plan
from cutover.plan.loader import load_yaml

ROOT = Path(__file__).resolve().parents[2]
MINI = (ROOT / "tests" / "data" / "plans" / "mini.yml").read_text()
MANIFEST = (ROOT / "releases" / "shanxi-2023-11.yml").read_text()
TEST_INVENTORY = ROOT / "tests" / "data" / "inventory.yml"


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def laughs(key: str = "lols", indent: str = "") -> str:
    """A 'billion laughs': 9 levels of lists of 10 aliases to the level before (10**9 values)."""
    names = "abcdefghi"
    rows = [f"{indent}{key}:", f"{indent}  a: &a [" + ", ".join(['"lol"'] * 10) + "]"]
    rows += [f"{indent}  {n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]" for p, n in itertools.pairwise(names)]
    return "\n".join(rows) + "\n"


def write(tmp_path: Path, text: str, name: str = "plan.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refusal(fn, *args, **kwargs) -> str:
    with pytest.raises(CutoverError) as err:
        fn(*args, **kwargs)
    msg = str(err.value)
    assert "Traceback" not in msg
    return msg


# ------------------------------------------------------------------ plan


def test_a_recursive_list_alias_in_a_plan_is_refused_with_file_and_line(tmp_path):
    text = MINI.replace("        title: first\n", "        title: first\n        evidence: &loop [*loop]\n", 1)
    path = write(tmp_path, text)
    msg = refusal(load_plan, path)
    assert msg.startswith(f"{path}:{line_of(text, '&loop [*loop]')}: recursive alias *loop")
    assert "hint:" in msg


def test_a_self_referencing_mapping_in_a_plan_is_refused_with_file_and_line(tmp_path):
    text = MINI.replace("  inventory: tests/data/inventory.yml\n",
                        "  inventory: tests/data/inventory.yml\n  vars:\n    a: &m {b: *m}\n", 1)
    path = write(tmp_path, text)
    msg = refusal(load_plan, path)
    assert msg.startswith(f"{path}:{line_of(text, 'a: &m')}: recursive alias *m")


def test_a_billion_laughs_plan_is_refused_quickly(tmp_path):
    text = MINI.replace("  inventory: tests/data/inventory.yml\n",
                        "  inventory: tests/data/inventory.yml\n" + laughs("vars", "  "), 1)
    path = write(tmp_path, text)
    started = time.monotonic()
    msg = refusal(load_plan, path)
    assert time.monotonic() - started < 1.0
    assert msg.startswith(f"{path}:")
    line = int(msg.split(":")[1])
    assert "*" in text.splitlines()[line - 1]  # the line of the alias that crossed the bound
    assert "too many aliases: expanding *" in msg


def test_plan_check_prints_file_line_and_exits_1_without_traceback(tmp_path):
    text = MINI.replace("        title: first\n", "        title: first\n        evidence: &loop [*loop]\n", 1)
    path = write(tmp_path, text)
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "plan.check",
                           "--plan", str(path)], capture_output=True, text=True, cwd=ROOT, check=False,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"{path}:{line_of(text, '&loop')}: recursive alias *loop" in out
    assert "Traceback" not in out
    assert "RecursionError" not in out


def test_ordinary_anchors_aliases_and_merge_keys_still_load(tmp_path):
    text = MINI.replace("  inventory: tests/data/inventory.yml\n",
                        "  inventory: tests/data/inventory.yml\n  vars: &common {slow_seconds: 0, site: lab}\n", 1)
    text = text.replace("      - id: s1\n        title: first\n        playbook: tests/data/playbooks/mark.yml\n",
                        "      - &marker\n        id: s1\n        title: first\n"
                        "        playbook: tests/data/playbooks/mark.yml\n", 1)
    text = text.replace("      - id: s2\n        title: slow\n        playbook: tests/data/playbooks/mark.yml\n"
                        "        vars: {slow_seconds: 6}\n",
                        "      - <<: *marker\n        id: s2\n        title: slow\n"
                        "        vars: {<<: *common, slow_seconds: 6}\n", 1)
    assert "<<: *marker" in text
    assert "<<: *common" in text
    path = write(tmp_path, text)
    plan, problems = load_plan(path)
    assert [str(p) for p in problems if p.severity == "error"] == []
    assert plan is not None
    s2 = plan.step("s2")
    assert (s2.title, s2.playbook) == ("slow", "tests/data/playbooks/mark.yml")
    assert s2.vars == {"slow_seconds": 6, "site": "lab"}
    doc = load_yaml(path)
    assert doc.line(("phases", 0, "steps", 1, "title")) == line_of(text, "title: slow")


# ------------------------------------------------------------------ inventory


def inventory_dir(tmp_path: Path) -> Path:
    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    shutil.copy(TEST_INVENTORY, inv / "hosts.yml")
    return inv


def test_a_recursive_alias_in_group_vars_is_refused_with_file_and_line(tmp_path):
    inv = inventory_dir(tmp_path)
    vars_file = inv / "group_vars" / "all" / "vars.yml"
    vars_file.write_text("---\nsi_ok: 1\nsi_loop: &loop [*loop]\n")
    msg = refusal(load_inventory, inv)
    assert msg.startswith(f"{vars_file}:3: recursive alias *loop")


def test_a_recursive_alias_in_an_inventory_file_is_refused_by_plan_check(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(TEST_INVENTORY.read_text() + "  vars:\n    si_m: &m {b: *m}\n")
    _, problems = load_plan(write(tmp_path, MINI), inventory=inv)
    errors = [str(p) for p in problems if p.severity == "error"]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{inv}:{line_of(inv.read_text(), '&m')}: recursive alias *m")


def test_a_billion_laughs_inventory_is_refused_quickly(tmp_path):
    inv = inventory_dir(tmp_path)
    (inv / "host_vars").mkdir()
    vars_file = inv / "host_vars" / "localhost"  # a file without a suffix is read by Ansible too
    vars_file.write_text(laughs())
    started = time.monotonic()
    msg = refusal(load_inventory, inv)
    assert time.monotonic() - started < 1.0
    assert msg.startswith(f"{vars_file}:")
    assert "too many aliases: expanding *" in msg


def test_an_inventory_with_ordinary_anchors_and_merge_keys_still_loads(tmp_path):
    inv = inventory_dir(tmp_path)
    (inv / "group_vars" / "all" / "vars.yml").write_text(
        "---\nsi_base: &base {port: 8080, path: /health}\n"
        "si_components:\n  - {<<: *base, name: a}\n  - {<<: *base, name: b, port: 8081}\n"
        "si_again: *base\n")
    hostvars = load_inventory(inv)["_meta"]["hostvars"]["localhost"]
    assert hostvars["si_components"] == [{"port": 8080, "path": "/health", "name": "a"},
                                         {"port": 8081, "path": "/health", "name": "b"}]
    assert hostvars["si_again"] == {"port": 8080, "path": "/health"}


def test_the_shipped_inventories_pass_the_alias_check():
    for inv in ("inventories/lab", "inventories/example"):  # the example has !vault values
        check_inventory_yaml(ROOT / inv)


# ------------------------------------------------------------------ release manifest


def test_a_recursive_alias_in_the_release_manifest_is_refused_before_any_playbook(tmp_path, monkeypatch):
    text = MANIFEST.replace("release: shanxi-2023-11\n", "release: shanxi-2023-11\nnotes: &n [*n]\n", 1)
    path = write(tmp_path, text, "release.yml")
    monkeypatch.setattr(verify, "run_playbook", lambda *a, **k: pytest.fail("a playbook was run"))
    msg = refusal(verify.check_versions, str(path), str(TEST_INVENTORY), limit=None, require_running=False,
                  artifacts=str(tmp_path / "art"))
    assert msg.startswith(f"{path}:{line_of(text, '&n [*n]')}: recursive alias *n")


def test_plan_check_refuses_a_billion_laughs_release_manifest(tmp_path):
    manifest = write(tmp_path, MANIFEST + laughs(), "release.yml")
    text = MINI.replace("  inventory: tests/data/inventory.yml\n",
                        f"  inventory: tests/data/inventory.yml\n  release_manifest: {manifest}\n", 1)
    started = time.monotonic()
    _, problems = load_plan(write(tmp_path, text))
    errors = [str(p) for p in problems if p.severity == "error"]
    assert time.monotonic() - started < 10  # ansible-inventory runs too; the manifest itself is quick
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{manifest}:")
    assert "too many aliases" in errors[0]


def test_a_release_manifest_with_merge_keys_still_loads(tmp_path):
    text = MANIFEST.replace(
        "  - {name: si-core-qyyl, artifact: si-app, group: core, probes: [file, http]}\n"
        "  - {name: si-core-jgyl, artifact: si-app, group: core, probes: [file, http]}\n",
        "  - &core {name: si-core-qyyl, artifact: si-app, group: core, probes: [file, http]}\n"
        "  - {<<: *core, name: si-core-jgyl}\n", 1)
    assert "<<: *core" in text
    data = load_yaml(write(tmp_path, text, "release.yml")).data
    original = load_yaml(ROOT / "releases" / "shanxi-2023-11.yml").data
    assert data["components"] == original["components"]
