"""plan.check: every rule has a failing example and its exact message, with file:line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cutover.errors import CutoverError
from cutover.plan.lint import load_plan
from cutover.plan.times import parse_time

ROOT = Path(__file__).resolve().parents[2]
MINI = (ROOT / "tests" / "data" / "plans" / "mini.yml").read_text()
SHIPPED = ROOT / "plans" / "shanxi-2023-11.yml"


def lint(tmp_path: Path, text: str):
    path = tmp_path / "plan.yml"
    path.write_text(text)
    plan, problems = load_plan(path)
    return plan, [str(p) for p in problems]


def line_of(text: str, needle: str, nth: int = 1) -> int:
    count = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            count += 1
            if count == nth:
                return i
    raise AssertionError(needle)


def only_error(problems: list[str]) -> str:
    errors = [p for p in problems if ": warning: " not in p]
    assert len(errors) == 1, errors
    return errors[0]


def test_shipped_plan_is_clean():
    plan, problems = load_plan(SHIPPED)
    assert plan is not None
    assert problems == []
    owners = {s.owner for s in plan.steps()}
    assert "省工伤保险中心系统科" in owners
    assert all(s.owner for s in plan.steps())  # N15


def test_shipped_plan_uses_the_corrected_end_of_november():
    plan, _ = load_plan(SHIPPED)
    upgrade = plan.phase("n8-upgrade")
    assert upgrade.due_by == "2023-11-30 24:00"
    assert upgrade.end.isoformat() == "2023-12-01T00:00:00+08:00"


def test_restore_phases_follow_the_notice_times():
    plan, _ = load_plan(SHIPPED)
    starts = [(p.id, p.start.strftime("%m-%d %H:%M")) for p in plan.phases if p.verb == "restore"]
    assert starts == [("n9-core", "12-01 08:00"), ("n10-interfaces", "12-01 08:30"),
                      ("n11-counters", "12-01 09:00"), ("n12-online", "12-01 13:00"),
                      ("n13-jobs", "12-01 20:00"), ("n14-standby", "12-01 08:00")]  # N14: from 12-01


def test_a_date_that_does_not_exist(tmp_path):
    text = MINI.replace('due_by: "2023-11-23 18:00"', 'due_by: "2023-11-31 24:00"')
    _, problems = lint(tmp_path, text)
    line = line_of(text, "2023-11-31")
    assert only_error(problems).startswith(
        f"{tmp_path / 'plan.yml'}:{line}: 2023-11-31 24:00: 2023-11-31 does not exist "
        "(November 2023 has 30 days)")


def test_24_00_means_the_end_of_that_day():
    from zoneinfo import ZoneInfo

    t = parse_time("2023-11-30 24:00", ZoneInfo("Asia/Shanghai"))
    assert t.isoformat() == "2023-12-01T00:00:00+08:00"
    with pytest.raises(ValueError, match="24:00 means end of day"):
        parse_time("2023-11-30 24:30", ZoneInfo("Asia/Shanghai"))


def test_due_by_before_not_before(tmp_path):
    text = MINI.replace('due_by: "2023-11-23 18:00"', 'due_by: "2023-11-19 18:00"')
    _, problems = lint(tmp_path, text)
    line = line_of(text, 'due_by: "2023-11-19 18:00"')
    assert f"plan.yml:{line}: phase p-stop: due_by 2023-11-19 18:00 is before not_before " \
           "2023-11-20 18:00" in problems[0]


def test_a_step_scheduled_before_its_dependency(tmp_path):
    text = MINI.replace("        vars: {slow_seconds: 6}\n",
                        '        vars: {slow_seconds: 6}\n        not_before: "2023-11-22 09:00"\n')
    _, problems = lint(tmp_path, text)
    msg = only_error(problems)
    assert ":" + str(line_of(text, "after: [s2]")) + ":" in msg
    assert "step s3 is scheduled (2023-11-20 18:00) before s2 (2023-11-22 09:00), which it depends on" in msg


def test_unknown_dependency_suggests_the_near_miss(tmp_path):
    text = MINI.replace("after: [s1]", "after: [s11]")
    _, problems = lint(tmp_path, text)
    msg = only_error(problems)
    assert f":{line_of(text, 'after: [s11]')}: step s2 depends on unknown step 's11'" in msg
    assert "did you mean 's1'?" in msg


def test_dependency_cycle(tmp_path):
    text = MINI.replace("        title: first\n", "        title: first\n        after: [s3]\n")
    _, problems = lint(tmp_path, text)
    assert any("dependency cycle: s1 → s3 → s2 → s1" in p or "dependency cycle: s1 → s2 → s3 → s1" in p
               for p in problems), problems


def test_duplicate_step_id(tmp_path):
    text = MINI.replace("      - id: s5\n", "      - id: s4\n")
    _, problems = lint(tmp_path, text)
    line = line_of(text, "- id: s4", 2)
    assert any(p.startswith(f"{tmp_path / 'plan.yml'}:{line}: duplicate step id 's4'") for p in problems), problems


def test_missing_playbook(tmp_path):
    text = MINI.replace("playbook: tests/data/playbooks/gate.yml", "playbook: playbooks/nope.yml")
    _, problems = lint(tmp_path, text)
    assert only_error(problems).endswith(
        "step s3: playbook playbooks/nope.yml does not exist\n"
        "    hint: paths are relative to the project root (e.g. playbooks/stop/freeze.yml)")


def test_tag_the_playbook_does_not_have(tmp_path):
    text = MINI.replace("tags: [mark]\n        after: [s4]", "tags: [marks]\n        after: [s4]")
    _, problems = lint(tmp_path, text)
    msg = only_error(problems)
    assert f":{line_of(text, 'tags: [marks]')}: step s5: playbook tests/data/playbooks/mark.yml has no tag 'marks'" in msg
    assert "tags it has: mark" in msg


def test_limit_that_matches_no_host(tmp_path):
    text = MINI.replace("        title: last\n", "        title: last\n        limit: counter-xian\n")
    _, problems = lint(tmp_path, text)
    assert f":{line_of(text, 'limit: counter-xian')}: step s5: limit counter-xian: 'counter-xian' is no " \
           "host, group or site of inventory tests/data/inventory.yml" in only_error(problems)


def test_shipped_plan_limits_are_checked_against_the_example_inventory(tmp_path):
    text = SHIPPED.read_text().replace("        tags: [counters]\n",
                                       "        tags: [counters]\n        limit: city_taiyuan\n")
    path = tmp_path / "p.yml"
    path.write_text(text)
    _, problems = load_plan(path, inventory=ROOT / "inventories" / "example")
    assert [str(p) for p in problems if p.severity == "error"] == []
    _, problems = load_plan(path)  # the lab has no site groups
    assert any("limit city_taiyuan: 'city_taiyuan' is no host, group or site of inventory inventories/lab" in str(p)
               for p in problems)


def test_missing_owner(tmp_path):
    text = MINI.replace("    owner: 系统科\n    steps:\n      - id: s1", "    steps:\n      - id: s1", 1)
    _, problems = lint(tmp_path, text)
    assert any(f":{line_of(text, '- id: s1')}: step s1 has no owner (责任部门)" in p for p in problems), problems


def test_restore_scheduled_before_the_stop_it_undoes(tmp_path):
    text = MINI.replace('not_before: "2023-12-01 08:00"', 'not_before: "2023-11-20 08:00"')
    _, problems = lint(tmp_path, text)
    assert any("restore step r1 (2023-11-20 08:00) is scheduled before stop step s1 (2023-11-20 18:00)"
               in p for p in problems), problems


def test_unknown_key_wrong_type_and_bad_verb(tmp_path):
    text = MINI.replace("        title: first\n", "        title: first\n        owener: x\n")
    text = text.replace("verb: restore", "verb: resume").replace("vars: {slow_seconds: 6}", "vars: [6]")
    _, problems = lint(tmp_path, text)
    assert any(f":{line_of(text, 'owener')}: unknown key 'owener'" in p for p in problems), problems
    assert any(f":{line_of(text, 'verb: resume')}: verb: 'resume' is not one of" in p for p in problems)
    assert any(f":{line_of(text, 'vars: [6]')}: vars: Input should be a valid dictionary" in p for p in problems)


def test_broken_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "plan.yml"
    path.write_text(MINI.replace("    title: 停\n", "    title: [停\n"))
    with pytest.raises(CutoverError, match=r"plan\.yml:\d+: YAML syntax error"):
        load_plan(path)


def test_duplicate_key_is_an_error(tmp_path):
    path = tmp_path / "plan.yml"
    path.write_text(MINI.replace("    title: 停\n", "    title: 停\n    title: 再停\n"))
    with pytest.raises(CutoverError, match=r"plan\.yml:\d+: duplicate key 'title'"):
        load_plan(path)


def test_plan_check_cli_prints_file_line_and_exits_1_without_traceback(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(SHIPPED.read_text().replace('due_by: "2023-11-30 24:00"  # the notice',
                                               'due_by: "2023-11-31 24:00"  # the notice'))
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "plan.check",
                           "--plan", str(bad)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 1
    line = line_of(bad.read_text(), "2023-11-31 24:00")
    assert f"{bad}:{line}: 2023-11-31 24:00: 2023-11-31 does not exist (November 2023 has 30 days)" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_json_schema_accepts_the_shipped_plan_and_rejects_an_unknown_key():
    import json

    import jsonschema
    import yaml

    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "plan.schema"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    schema = json.loads(proc.stdout)
    data = yaml.safe_load(SHIPPED.read_text())
    jsonschema.validate(data, schema)
    data["phases"][0]["steps"][0]["owener"] = "x"
    with pytest.raises(jsonschema.ValidationError, match="owener"):
        jsonschema.validate(data, schema)


def test_a_phase_slower_in_rehearsal_than_its_window_is_a_warning(tmp_path):
    path = tmp_path / "plan.yml"
    path.write_text(MINI)
    plan, problems = load_plan(path, journal_durations={"p-stop": 4 * 86400.0})
    assert plan is not None
    assert [p.severity for p in problems] == ["warning"]
    assert str(problems[0]).startswith(f"{path}:{line_of(MINI, '- id: p-stop')}: warning: phase p-stop took "
                                       "96h00m in the last rehearsal but its window is 72h00m")


def test_a_step_declaring_evidence_no_playbook_publishes_is_refused_with_a_suggestion(tmp_path):
    text = MINI.replace("        vars: {slow_seconds: 6}\n", "        vars: {slow_seconds: 6}\n        evidence: [freez]\n")
    _, problems = lint(tmp_path, text)
    msg = only_error(problems)
    assert ":21: step s2: evidence 'freez' is not evidence any playbook publishes" in msg
    assert "did you mean 'freeze'?" in msg
