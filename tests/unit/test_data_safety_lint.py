"""plan.check refuses data-phase inputs that could write past the freeze or hand over the
wrong lines (N5), naming the file and line, before any host is touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from cutover.plan.lint import load_plan

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "plans" / "shanxi-2023-11.yml"


def _lab_inventory_with(tmp_path: Path, rules: list[dict], where: str | None = None) -> Path:
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventories" / "lab", inv)
    vars_file = inv / "group_vars" / "all" / "vars.yml"
    text = vars_file.read_text()
    start = text.index("si_export:")
    end = text.index("\n\n", start)
    spec = {"tables": [{"name": "person", "where": where}] if where else [], "quality_rules": rules}
    vars_file.write_text(text[:start] + yaml.safe_dump({"si_export": spec}, allow_unicode=True) + text[end:])
    return inv


def _errors(problems) -> list[str]:
    return [str(p) for p in problems if p.severity == "error"]


def test_a_receiver_rule_with_a_comment_marker_or_a_second_command_is_refused_with_its_file_and_line(tmp_path):
    rules = [{"name": "ok-rule", "table": "person", "check": "id_no ~ '^[0-9]{17}[0-9X]$'"},
             {"name": "tail-comment", "table": "person", "check": "true --"},
             {"name": "second-command", "table": "person", "check": "true) OR (BEGIN READ WRITE; DELETE FROM person"}]
    inv = _lab_inventory_with(tmp_path, rules, where="created_at > '2000-01-01' /* x */")
    _, problems = load_plan(SHIPPED, inv)
    errors = _errors(problems)
    vars_rel = "group_vars/all/vars.yml"
    lines = (inv / "group_vars" / "all" / "vars.yml").read_text().splitlines()
    assert len(errors) == 3, errors
    tail = next(e for e in errors if "quality_rules[tail-comment]" in e)
    assert "holds a comment marker (--)" in tail
    n = next(i for i, ln in enumerate(lines, 1) if "true --" in ln)
    assert f"{vars_rel}:{n}:" in tail
    second = next(e for e in errors if "quality_rules[second-command]" in e)
    assert "holds a statement separator (;)" in second
    where = next(e for e in errors if "si_export.tables[person].where" in e)
    assert "comment marker (/*)" in where
    assert not any("ok-rule" in e for e in errors)


def test_the_shipped_plan_and_lab_inventory_pass_the_fragment_check():
    _, problems = load_plan(SHIPPED, ROOT / "inventories" / "lab")
    assert _errors(problems) == []


def test_a_plan_with_data_steps_must_say_which_lines_it_keeps_back(tmp_path):
    text = SHIPPED.read_text().replace("    cutover_data_exclude_lines: [cjyl]\n", "    unrelated: 1\n")
    path = tmp_path / "plan.yml"
    path.write_text(text)
    _, problems = load_plan(path, ROOT / "inventories" / "lab")
    errors = _errors(problems)
    assert len(errors) == 1, errors
    assert "does not say which lines it keeps back" in errors[0]
    assert "cutover_data_exclude_lines: [cjyl]" in errors[0]
    assert "write [] to hand over every line" in errors[0]


def test_an_empty_exclusion_written_out_is_accepted_and_a_string_is_not(tmp_path):
    path = tmp_path / "plan.yml"
    path.write_text(SHIPPED.read_text().replace("cutover_data_exclude_lines: [cjyl]", "cutover_data_exclude_lines: []"))
    _, problems = load_plan(path, ROOT / "inventories" / "lab")
    assert _errors(problems) == []
    path.write_text(SHIPPED.read_text().replace("cutover_data_exclude_lines: [cjyl]", "cutover_data_exclude_lines: cjyl"))
    _, problems = load_plan(path, ROOT / "inventories" / "lab")
    assert any("must be a list of line ids" in e for e in _errors(problems))


def test_a_production_inventory_that_hands_over_by_plain_ftp_is_refused(tmp_path):
    inv = tmp_path / "example"
    shutil.copytree(ROOT / "inventories" / "example", inv)
    vars_file = inv / "group_vars" / "all" / "vars.yml"
    vars_file.write_text(vars_file.read_text().replace("si_drop_protocol: ftps", "si_drop_protocol: ftp"))
    _, problems = load_plan(SHIPPED, inv)
    errors = [e for e in _errors(problems) if "plain ftp" in e]
    assert len(errors) == 1, _errors(problems)
    n = next(i for i, ln in enumerate(vars_file.read_text().splitlines(), 1) if "si_drop_protocol" in ln)
    assert f"group_vars/all/vars.yml:{n}:" in errors[0]
    _, problems = load_plan(SHIPPED, ROOT / "inventories" / "example")  # ftps: fine
    assert not [e for e in _errors(problems) if "plain ftp" in e]


def test_every_data_helper_run_on_this_machine_runs_once_whatever_the_number_of_hosts():
    """The export ran once per database host, concurrently, into one directory (the example
    inventory has two): every task delegated to this machine in a play over a group runs once."""
    def tasks(items):  # a block's tasks (and its rescue and always) are tasks too
        for task in items:
            yield task
            for part in ("block", "rescue", "always"):
                yield from tasks(task.get(part, []))

    delegated = 0
    for playbook in sorted((ROOT / "playbooks" / "data").glob("*.yml")):
        for play in yaml.safe_load(playbook.read_text()):
            if play.get("hosts") in ("localhost", None):
                continue
            for task in tasks(play.get("tasks", [])):
                if task.get("delegate_to") == "localhost":
                    delegated += 1
                    assert task.get("run_once") is True, f"{playbook.name}: {task['name']}"
    assert delegated >= 4  # screen, export, handoff, reconcile: the test looks where they are


def test_a_data_playbook_run_alone_without_the_exclusion_stops_before_any_host_is_touched(tmp_path):
    from cutover.ansible import run_playbook

    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  children:\n    db:\n      hosts:\n        db-a: {ansible_connection: local}\n"
                   "        db-b: {ansible_connection: local}\n"
                   "  vars: {si_lines: {qyyl: {db: si_qyyl, title: q}}, si_db_host: h, si_db_port: 1,"
                   " si_db_user: u, si_db_password: p, si_db_sslmode: disable, si_export: {}}\n")
    result = run_playbook(ROOT / "playbooks" / "data" / "export.yml", inv, ident="no-exclusion",
                          artifacts_dir=tmp_path / "art", extravars={"cutover_data_dir": str(tmp_path / "d")})
    assert not result.ok
    assert "cutover_data_exclude_lines is not set" in result.summary()
    assert not (tmp_path / "d").exists()


def test_the_missing_exclusion_names_the_restore_steps_too(tmp_path):
    # restore.yml's interfaces stage sends a record of every line not kept back through them
    text = SHIPPED.read_text().replace("    cutover_data_exclude_lines: [cjyl]\n", "    unrelated: 1\n")
    path = tmp_path / "plan.yml"
    path.write_text(text)
    plan, _ = load_plan(SHIPPED, ROOT / "inventories" / "lab")
    data_steps = [s.id for s in plan.steps() if s.playbook and s.playbook.startswith("playbooks/data/")]
    assert data_steps
    _, problems = load_plan(path, ROOT / "inventories" / "lab")
    [error] = _errors(problems)
    restores = [s.id for s in plan.steps() if s.playbook == "playbooks/restore/restore.yml"]
    assert restores
    assert all(step in error for step in restores), error
