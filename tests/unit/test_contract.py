"""The contract between the engine and the playbooks (cutover.contract, issue #13): what a
playbook receives, `PlaybookVars.to_extravars()`, for every caller.

The rule for the `cutover_*` variables (test_every_cutover_variable_a_playbook_reads_is_in_the_contract):
a `cutover_*` name that appears in a playbook, task file, role or template under playbooks/
or roles/ (YAML and Jinja text, comments included: a header that tells how to run a
playbook alone names real variables) and that those files do not define themselves (play
or task `vars`, `vars_files`, `set_fact`, `register`, a role's defaults or vars, a loop
variable) must be one of
  * the engine's: a `cutover_*` field of `PlaybookVars` (`ENGINE_VARS`), passed by every
    caller that has it;
  * the plan's: a key of `PLAN_VARS`, which the plan's `vars` or a step's `vars` supply (or
    an operator's `-e` when the playbook runs alone), each described there;
  * the inventory's: defined in inventories/*/ (group_vars, host_vars or hosts.yml).
And nothing is in the contract that no playbook reads: every `ENGINE_VARS` and `PLAN_VARS`
name is read somewhere under playbooks/ or roles/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cutover.contract import ENGINE_VARS, PLAN_VARS, PlaybookVars
from cutover.engine import executor
from cutover.plan.lint import check, load_plan

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "plans" / "shanxi-2023-11.yml"
CONTENT = [ROOT / "playbooks", ROOT / "roles"]


def _yaml_files() -> list[Path]:
    return sorted(p for d in CONTENT for p in d.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def _text_files() -> list[Path]:
    return sorted(p for d in CONTENT for p in d.rglob("*") if p.suffix in (".yml", ".yaml", ".j2")
                  and p.is_file())


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _tasks(node: Any):
    """Every task (and play) in a YAML document, blocks and their rescue/always included."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            yield from _tasks(node.get(key))


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- what a playbook receives


def test_the_variables_every_caller_passes_come_from_one_place():
    plan, _ = check(SHIPPED)
    step = plan.step("n5-verify-snapshot")
    got = executor.step_vars(plan, step, artifacts="artifacts", journal_id="j1", rehearsal=True).to_extravars()
    assert got == {"cutover_data_exclude_lines": ["cjyl"], "pg_data_test_restore": True,
                   "cutover_plan": "shanxi-2023-11", "cutover_journal_id": "j1",
                   "cutover_data_dir": str(ROOT / "artifacts" / "data" / "shanxi-2023-11"),
                   "cutover_rehearsal": True, "cutover_step": "n5-verify-snapshot",
                   "cutover_release_manifest": str(ROOT / "releases" / "shanxi-2023-11.yml")}
    # no playbook reads the run's number or the step's planned times: they are not passed
    assert not {"cutover_run", "cutover_planned_start", "cutover_planned_end"} & set(got)
    back = executor.rollback_vars(plan, artifacts="artifacts", journal_id="j1", rehearsal=False).to_extravars()
    assert back == {k: v for k, v in got.items() if k not in ("pg_data_test_restore", "cutover_step")} | {
        "cutover_rehearsal": False}


def test_the_engines_variables_win_over_the_plans_and_the_plan_may_not_set_them(tmp_path):
    pv = PlaybookVars(cutover_plan="real", plan_vars={"cutover_plan": "fake", "a": 1}, step_vars={"a": 2},
                      options={"a": 3, "b": 4})
    assert pv.to_extravars() == {"cutover_plan": "real", "a": 3, "b": 4}
    text = SHIPPED.read_text(encoding="utf-8").replace(
        "    cutover_data_exclude_lines: [cjyl]\n", "    cutover_data_exclude_lines: [cjyl]\n    cutover_plan: other\n")
    (tmp_path / "plan.yml").write_text(text, encoding="utf-8")
    _, problems = load_plan(tmp_path / "plan.yml")
    assert any("plan.vars sets cutover_plan, which the engine passes to every playbook" in str(p)
               for p in problems), problems


def _names(text: str) -> set[str]:
    return set(re.findall(r"\bcutover_[a-z0-9_]+\b", text))


def _defined_by_the_files() -> set[str]:
    """Variables playbooks and roles define themselves: vars, vars_files, set_fact, register,
    loop_var, a role's defaults and vars."""
    names: set[str] = set()
    for path in _yaml_files():
        doc = _load(path)
        if path.parent.name in ("defaults", "vars") and isinstance(doc, dict):
            names |= set(doc)
        for task in _tasks(doc):
            for key in ("vars", "ansible.builtin.set_fact", "set_fact"):
                if isinstance(task.get(key), dict):
                    names |= set(task[key])
            if isinstance(task.get("register"), str):
                names.add(task["register"])
            if isinstance(task.get("loop_control"), dict) and "loop_var" in task["loop_control"]:
                names.add(task["loop_control"]["loop_var"])
    return names


def _inventory_names() -> set[str]:
    names: set[str] = set()
    for path in sorted((ROOT / "inventories").rglob("*.yml")):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"^\s*([a-z_][a-z0-9_]*):", text, re.MULTILINE))
    return names


def test_every_cutover_variable_a_playbook_reads_is_in_the_contract():
    """See the module's docstring for the rule."""
    read: dict[str, list[str]] = {}
    for path in _text_files():
        for name in _names(path.read_text(encoding="utf-8")):
            read.setdefault(name, []).append(_rel(path))
    own = _defined_by_the_files()
    known = set(ENGINE_VARS) | set(PLAN_VARS) | _inventory_names()
    outside = {name: files for name, files in sorted(read.items()) if name not in own and name not in known}
    assert outside == {}, "read by playbooks but neither the engine's, the plan's nor the inventory's"
    assert "cutover_plan" in read  # the scan finds them at all
    assert "cutover_period" in read
    unread = sorted(n for n in [*ENGINE_VARS, *PLAN_VARS] if n not in read)
    assert unread == [], "in the contract, but no playbook reads it"
    assert not set(ENGINE_VARS) & set(PLAN_VARS)


def test_every_cutover_variable_a_plan_sets_is_a_plan_variable_of_the_contract():
    for path in [SHIPPED, *sorted((ROOT / "tests" / "data" / "plans").glob("*.yml"))]:
        doc = _load(path)
        keys = set(doc["plan"].get("vars", {}))
        for phase in doc["phases"]:
            for step in phase["steps"]:
                keys |= set(step.get("vars", {}))
        assert sorted(k for k in keys if k.startswith("cutover_") and k not in PLAN_VARS) == [], _rel(path)
