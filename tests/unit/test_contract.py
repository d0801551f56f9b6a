"""The contract between the engine and the playbooks (cutover.contract, issue #13).

What a playbook receives: `PlaybookVars.to_extravars()` for every caller; every entry
playbook asserts its inputs in its first play, and every caller passes what those asserts
require (checked by running the input plays with each caller's variables). What a playbook
hands back: every `set_stats` key has its model, and evidence of the wrong shape or of an
unknown key fails the step, naming the key and the playbook, and is not stored.

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

import ast
import concurrent.futures
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cutover.contract import (
    ENGINE_VARS,
    EVIDENCE,
    INPUT_PLAY,
    OPERATOR_ONLY_VARS,
    PLAN_VARS,
    PlaybookVars,
    check_evidence,
)
from cutover.engine import rollback
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.playbook_step import step_vars
from cutover.engine.run import StepFailed
from cutover.engine.session import RunOptions
from cutover.paths import resolve
from cutover.plan.lint import check, load_plan

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "plans" / "shanxi-2023-11.yml"
CONTENT = [ROOT / "playbooks", ROOT / "roles"]
ENTRY_PLAYBOOKS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "playbooks").glob("*/*.yml")
                         if p.parent.name != "lab")
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


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


def _set_stats_keys() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in _yaml_files():
        for task in _tasks(_load(path)):
            args = task.get("ansible.builtin.set_stats") or task.get("set_stats")
            if isinstance(args, dict):
                assert isinstance(args.get("data"), dict), f"{_rel(path)}: {task.get('name')}: data is not a mapping"
                for key in args["data"]:
                    found.setdefault(key, []).append(_rel(path))
    # an action plugin that hands its rows to the record itself (ansible_stats, #17: a set_stats
    # task was one more task per host) says which key in PUBLISHES, the one it sets
    for path in sorted(p for d in CONTENT for p in d.rglob("action_plugins/*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["PUBLISHES"]:
                for key in ast.literal_eval(node.value):
                    found.setdefault(key, []).append(_rel(path))
    return found


# --------------------------------------------------------------------------- (a) evidence keys


def test_every_key_a_playbook_publishes_has_its_model_and_every_model_a_publisher():
    published = _set_stats_keys()
    assert "gate" in published  # the scan finds them at all
    assert "versions" in published
    assert sorted(set(published) - set(EVIDENCE)) == [], "published without a model in cutover.contract.EVIDENCE"
    assert sorted(set(EVIDENCE) - set(published)) == [], "a model that no playbook publishes"


def test_a_key_means_one_thing_only_the_gate_is_published_by_several_playbooks():
    """One key, one shape: the stop side's frozen channels (a list of URLs per host) and the
    data freeze (a result per database) used to share `freeze`."""
    shared = {key: files for key, files in _set_stats_keys().items() if len(set(files)) > 1}
    assert set(shared) == {"gate"}, shared
    assert _set_stats_keys()["collection_freeze"] == ["playbooks/stop/freeze-collection.yml"]
    assert _set_stats_keys()["freeze"] == ["playbooks/data/freeze.yml"]


def test_the_plans_name_only_evidence_keys_the_contract_knows():
    for path in [SHIPPED, *sorted((ROOT / "tests" / "data" / "plans").glob("*.yml"))]:
        doc = _load(path)
        for phase in doc["phases"]:
            for step in phase["steps"]:
                for key in step.get("evidence", []):
                    assert key in EVIDENCE, f"{_rel(path)}: step {step['id']} names evidence {key!r}"


# --------------------------------------------------------------------------- the shapes


def _from_the_data_helpers(tmp_path: Path) -> dict[str, Any]:
    """A hand-off and a reconciliation as src/cutover/data writes them (a drop in memory)."""
    from cutover.data.handoff import handoff
    from cutover.data.reconcile import receipt_path, reconcile
    from tests.unit.test_receipt_binding import MemoryDrop, _export, _receipt

    export, drop = _export(tmp_path, 5), MemoryDrop()
    sent = handoff(drop, export, ["qyyl"], batch="b", remote_root="inbox",
                   receipt=receipt_path("receipts", "b"), say=lambda _: None)
    sent["notified"] = {"targets": 1, "delivered": True}  # as python -m cutover.data handoff adds it
    _receipt(drop, sent["index_sha256"], 4)  # one row lost: the evidence of a failure has the same shape
    rec = reconcile(drop, export, ["qyyl"], batch="b", receipts_root="receipts", say=lambda _: None)
    assert rec["passed"] is False
    return json.loads(json.dumps({"handoff": sent, "reconciliation": rec}, default=str))


SHA = "ab" * 32
VALID: dict[str, Any] = {
    "gate": {"requirement": "N1", "period": "202311", "passed": True,
             "summary": "270/270 agency×line collection plans present for 202311", "findings": [],
             "per_agency": [{"line": "qyyl", "agency": "140100", "name": "太原", "level": "city",
                             "has_plan": True}]},
    "versions": [{"host": "core-qyyl", "component": "si-core-qyyl", "expected": "2023.11.0",
                  "probe": "file /opt/si-core-qyyl/current/VERSION", "found": "2023.11.0", "ok": True},
                 {"host": "portal1", "component": "si-online", "expected": "2023.11.0",
                  "probe": "http http://127.0.0.1:28031/version", "found": "not running", "ok": True}],
    "collection_freeze": {"portal1": ["http://127.0.0.1:28080/online/"], "core-qyyl": ["http://127.0.0.1:28011/"]},
    "jobs_untouched": ["jobs1"],  # a call-off before the jobs were switched off
    "freeze": {"db1": {"si_qyyl": {"frozen": True, "guarded": True, "changed": True, "sessions_ended": 2,
                                   "probe": "ERROR:  cannot execute CREATE TABLE in a read-only transaction",
                                   "business_probe": "si_owner: refused"}},
               "db2": {}},  # check mode: nothing ran there
    "unfreeze": {"db1": {"si_qyyl": {"frozen": False, "changed": True}}},
    "snapshot": {"db1": {"changed": True, "dir": "/var/backups/cutover/shanxi-2023-11", "databases": {
        "si_qyyl": {"bytes": 10485760, "database_bytes": 20971520, "seconds": 1.25, "toc_entries": 41,
                    "created_at": "2023-11-23T10:00:00+00:00", "tables": {"public.person": 1000},
                    "files": 12, "manifest_sha256": SHA},
        "si_gs": {"skipped": "this cutover's verified snapshot of the frozen data is already there"}}},
        "db2": {}},
    "snapshot_verified": {"db1": {"si_qyyl": {"verified": True, "frozen": True, "rows_differ": {},
                                              "rows_differ_total": 0,
                                              "test_restore": {"tables": 5, "rows": 1000, "differences": {}}}}},
    "data_restored": {"db1": {"si_qyyl": {"tables": {"public.person": 1000}, "rows": 1000,
                                          "snapshot_created_at": "2023-11-23T10:00:00+00:00", "frozen": True}}},
    "screening": [{"line": "qyyl", "title": "企业职工基本养老保险", "database": "si_qyyl",
                   "tables": [{"table": "person", "rows": 1000, "to_hand_over": 990, "held_back": 10,
                               "by_rule": {"id-no-18-digits": 10}}], "rows": 1000, "held_back": 10}],
    "screening_excluded": ["cjyl"],
    "export": [{"format": "cutover-export/1", "line": "qyyl", "title": "企业职工基本养老保险",
                "database": "si_qyyl", "schema": "public", "server_version": "15.5",
                "snapshot_at": "2023-11-24T01:00:00+00:00", "isolation": "REPEATABLE READ, READ ONLY",
                "session": {"TimeZone": "UTC"},
                "tables": [{"table": "person", "rows": 990, "bytes": 12345, "sha256": SHA, "checksum": "-1234"}],
                "rejected": {"person": {"id-no-18-digits": 10}}, "rows": 990, "bytes": 12345, "seconds": 0.8}],
    "export_excluded": ["cjyl"],
}
NOTHING_RAN = {"handoff": {}, "reconciliation": {}, "export": [], "snapshot": {"db1": {}}, "freeze": {"db1": {}}}


def test_evidence_as_the_playbooks_and_helpers_write_it_passes_and_is_kept_as_it_is(tmp_path):
    samples = {**VALID, **_from_the_data_helpers(tmp_path)}
    assert set(samples) == set(EVIDENCE), "every key has an example here"
    good, wrong = check_evidence(samples, "playbooks/x.yml")
    assert wrong == []
    assert good == samples  # the journal stores what the playbook published, unchanged
    good, wrong = check_evidence(NOTHING_RAN, "playbooks/x.yml")
    assert (good, wrong) == (NOTHING_RAN, [])


@pytest.mark.parametrize(("key", "value", "says"), [
    ("gate", "passed", "Input should be a valid dictionary"),
    ("gate", {"passed": "True", "summary": "ok"}, "passed: Input should be a valid boolean"),
    ("gate", {"passed": True}, "summary: Field required"),
    ("versions", {"host": "core-qyyl"}, "Input should be a valid list"),
    ("versions", [{"host": "h", "component": "c", "expected": "1", "probe": "p", "found": "1"}], "0.ok: Field required"),
    ("collection_freeze", ["http://127.0.0.1:28080/online/"], "Input should be a valid dictionary"),
    ("freeze", {"db1": ["http://127.0.0.1:28080/online/"]}, "db1: Input should be a valid dictionary"),
    ("freeze", {"db1": {"si_qyyl": {"frozen": True}}}, "db1.si_qyyl.guarded: Field required"),
    ("snapshot", {"db1": {"changed": True}}, "db1"),
    ("snapshot_verified", {"db1": {"si_qyyl": {"verified": "yes"}}}, "db1.si_qyyl.verified: Input should be a valid boolean"),
    ("export", {"line": "qyyl"}, "Input should be a valid list"),
    ("export_excluded", "cjyl", "Input should be a valid list"),
    ("handoff", {"drop": "ftp://drop"}, "handoff"),
    ("reconciliation", {"passed": True}, "reconciliation"),
    ("screening", [{"line": "qyyl", "tables": {}}], "0.title: Field required"),
])
def test_evidence_of_the_wrong_shape_is_refused_naming_the_key_the_playbook_and_what_is_wrong(key, value, says):
    good, wrong = check_evidence({key: value, "export_excluded": ["cjyl"]} if key != "export_excluded"
                                 else {key: value}, "playbooks/data/export.yml")
    assert key not in good
    assert len(wrong) == 1, wrong
    assert wrong[0].startswith(f"playbooks/data/export.yml published evidence `{key}` of the wrong shape: "), wrong
    assert says in wrong[0]
    assert len(wrong[0]) < 700  # pydantic's error, short


def test_evidence_under_a_key_the_contract_does_not_know_is_refused():
    good, wrong = check_evidence({"counted": 3}, "playbooks/stop/x.yml")
    assert good == {}
    assert wrong == ["playbooks/stop/x.yml published evidence `counted`, which the contract does not know "
                     f"(cutover.contract.EVIDENCE: {', '.join(sorted(EVIDENCE))})"]


# --------------------------------------------------------------------------- (c) through the engine


def _one_step_plan(tmp_path: Path, kind: str, declares: str = "") -> Path:
    plan = tmp_path / "plan.yml"
    plan.write_text(f"""---
plan: {{name: one, timezone: Asia/Shanghai, inventory: tests/data/inventory.yml}}
phases:
  - id: p
    title: p
    verb: stop
    owner: 系统科
    steps:
      - {{id: s1, title: publish, kind: {kind}, playbook: tests/data/playbooks/published.yml{declares}}}
""")
    return plan


def _run_step(tmp_path: Path, monkeypatch, kind: str, evidence: dict,
              declares: str = "") -> tuple[StepFailed | None, list[dict], str]:
    monkeypatch.setenv("CUTOVER_TEST_EVIDENCE", json.dumps(evidence))
    opts = RunOptions(plan=str(_one_step_plan(tmp_path, kind, declares)), journal=str(tmp_path / "j.sqlite"),
                      artifacts=str(tmp_path / "art"), rehearsal=True, notify_urls=[], say=lambda *_: None)
    failed = None
    try:
        Executor("stop", opts).run()
    except StepFailed as exc:
        failed = exc
    j = Journal.open(tmp_path / "j.sqlite")
    try:
        return failed, j.evidence("s1"), j.step("s1")["state"]
    finally:
        j.close()


def test_a_gate_that_publishes_its_verdict_as_a_string_fails_its_step_naming_the_key(tmp_path, monkeypatch):
    failed, evidence, state = _run_step(tmp_path, monkeypatch, "gate", {"gate": "passed"})
    assert failed is not None
    assert "step s1 failed" in failed.message
    assert ("tests/data/playbooks/published.yml published evidence `gate` of the wrong shape: "
            "(the value): Input should be a valid dictionary") in failed.message
    assert "returned no `gate` evidence" not in failed.message  # it did, of the wrong shape
    assert state == "failed"
    assert [e["kind"] for e in evidence] == ["result"]  # nothing of the wrong shape is stored


@pytest.mark.parametrize("published", [{}, {"freeze": {}}, {"export_excluded": []}])
def test_a_step_whose_playbook_does_not_hand_back_the_evidence_it_declares_is_not_done(
        tmp_path, monkeypatch, published):
    failed, _, state = _run_step(tmp_path, monkeypatch, "playbook", published, declares=", evidence: [freeze]")
    assert failed is not None
    assert "the playbook returned no `freeze` evidence (the plan's step declares it)" in failed.message
    assert state == "failed"


def test_a_step_that_hands_back_what_it_declares_is_done(tmp_path, monkeypatch):
    frozen = {"db1": {"si_qyyl": {"frozen": True, "guarded": True, "sessions_ended": 0, "probe": "x",
                                   "business_probe": "y"}}}
    failed, _, state = _run_step(tmp_path, monkeypatch, "playbook", {"freeze": frozen},
                                 declares=", evidence: [freeze]")
    assert failed is None
    assert state == "done"


def test_a_playbook_step_publishing_an_unknown_key_fails_and_a_conforming_one_is_stored_unchanged(tmp_path, monkeypatch):
    failed, evidence, state = _run_step(tmp_path, monkeypatch, "playbook",
                                        {"export_excluded": ["cjyl"], "exported": 3})
    assert failed is not None
    assert "published evidence `exported`, which the contract does not know" in failed.message
    assert state == "failed"
    assert [e["kind"] for e in evidence] == ["result", "facts"]
    assert evidence[1]["data"] == {"export_excluded": ["cjyl"]}  # what conforms is kept
    (tmp_path / "j.sqlite").unlink()
    failed, evidence, state = _run_step(tmp_path, monkeypatch, "playbook", {"versions": VALID["versions"]})
    assert failed is None
    assert state == "done"
    assert next(e["data"] for e in evidence if e["kind"] == "facts") == {"versions": VALID["versions"]}


def test_hosts_that_only_passed_the_input_checks_did_no_work_so_a_step_that_matched_no_other_is_not_done(
        tmp_path, monkeypatch):
    """N18: the input checks run on every host whatever the tags; a step whose work matches
    no host under the limit is not part of that run (its input checks do not make it one)
    and is never done by it."""
    inv = tmp_path / "inventory.yml"
    inv.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
                   "    elsewhere:\n      ansible_connection: local\n"
                   "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n")
    marker = tmp_path / "marker"
    monkeypatch.setenv("CUTOVER_TEST_MARKER", str(marker))
    plan = _one_step_plan(tmp_path, "playbook")
    plan.write_text(plan.read_text().replace("tests/data/inventory.yml", str(inv))
                    .replace("published.yml", "inputs-then-work.yml"))
    opts = RunOptions(plan=str(plan), journal=str(tmp_path / "j.sqlite"), artifacts=str(tmp_path / "art"),
                      rehearsal=True, notify_urls=[], say=lambda *_: None, limit="elsewhere")
    assert Executor("stop", opts).run() == 0
    assert not marker.exists()
    j = Journal.open(tmp_path / "j.sqlite")
    try:
        assert j.step("s1")["state"] == "pending"
    finally:
        j.close()
    Executor("stop", RunOptions(**{**opts.__dict__, "limit": None})).run()
    j = Journal.open(tmp_path / "j.sqlite")
    try:
        assert j.step("s1")["state"] == "done"
        assert j.step("s1")["summary"] == "1 host(s), 1 change(s), 0 failure(s)"  # not 2: elsewhere did nothing
    finally:
        j.close()
    assert marker.read_text() == "s1 end\n"


# --------------------------------------------------------------------------- what a playbook receives


def test_the_variables_every_caller_passes_come_from_one_place():
    plan, _ = check(SHIPPED)
    step = plan.step("n5-verify-snapshot")
    got = step_vars(plan, step, artifacts="artifacts", journal_id="j1", rehearsal=True).to_extravars()
    assert got == {"cutover_data_exclude_lines": ["cjyl"], "pg_data_test_restore": True,
                   "cutover_plan": "shanxi-2023-11", "cutover_journal_id": "j1",
                   "cutover_data_dir": str(ROOT / "artifacts" / "data" / "shanxi-2023-11"),
                   "cutover_rehearsal": True, "cutover_step": "n5-verify-snapshot",
                   "cutover_release_manifest": str(ROOT / "releases" / "shanxi-2023-11.yml")}
    # no playbook reads the run's number or the step's planned times: they are not passed
    assert not {"cutover_run", "cutover_planned_start", "cutover_planned_end"} & set(got)
    back = rollback.rollback_vars(plan, artifacts="artifacts", journal_id="j1", rehearsal=False).to_extravars()
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


@pytest.mark.parametrize(("key", "why"), [
    ("cutover_restore_without_release", "which only an operator's -e may set"),
    ("__verify_components", "a playbook's internal name"),
    ("__lines", "a playbook's internal name"),
    ("version_verify_components", "an input of the role version_verify"),
    ("pg_data_snapshot_replace", "an input of the role pg_data"),
])
def test_a_plan_may_not_set_what_would_switch_a_playbooks_check_off(tmp_path, key, why):
    """Plan vars travel as extra vars, which win over what a playbook sets: each of these would
    silently turn a check off (verify nothing, hand over 城居保, replace the way back)."""
    for where, text in (
        ("plan.vars", SHIPPED.read_text(encoding="utf-8").replace(
            "    cutover_data_exclude_lines: [cjyl]\n", f"    cutover_data_exclude_lines: [cjyl]\n    {key}: []\n")),
        ("step n12-restore-online", SHIPPED.read_text(encoding="utf-8").replace(
            "      - id: n12-restore-online\n", f"      - id: n12-restore-online\n        vars: {{{key}: true}}\n")),
    ):
        (tmp_path / "plan.yml").write_text(text, encoding="utf-8")
        _, problems = load_plan(tmp_path / "plan.yml")
        found = [str(p) for p in problems if f"sets {key}, {why}" in str(p)]
        assert found, (where, [str(p) for p in problems])
        assert where in found[0]


def test_the_plans_own_role_option_is_still_accepted():
    _, problems = load_plan(SHIPPED)  # n5-verify-snapshot sets pg_data_test_restore
    assert not [p for p in problems if "pg_data_test_restore" in str(p)]


def test_a_plan_whose_steps_check_the_release_must_name_its_manifest(tmp_path):
    text = SHIPPED.read_text(encoding="utf-8").replace("  release_manifest: releases/shanxi-2023-11.yml\n", "")
    (tmp_path / "plan.yml").write_text(text, encoding="utf-8")
    _, problems = load_plan(tmp_path / "plan.yml")
    errors = [str(p) for p in problems if "names no release_manifest" in str(p)]
    assert len(errors) == 7, errors  # n8-deploy-verify, five restore stages, n12-verify-versions
    assert any("step n8-deploy-verify runs playbooks/deploy/deploy.yml" in e for e in errors)


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
    known = set(ENGINE_VARS) | set(PLAN_VARS) | set(OPERATOR_ONLY_VARS) | _inventory_names()
    outside = {name: files for name, files in sorted(read.items()) if name not in own and name not in known}
    assert outside == {}, "read by playbooks but neither the engine's, the plan's nor the inventory's"
    assert "cutover_plan" in read  # the scan finds them at all
    assert "cutover_period" in read
    unread = sorted(n for n in [*ENGINE_VARS, *PLAN_VARS, *OPERATOR_ONLY_VARS] if n not in read)
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


# --------------------------------------------------------------------------- (2) input checks


def _plays(playbook: str) -> list[dict]:
    return _load(ROOT / playbook)


def _input_asserts(playbook: str) -> list[dict]:
    """The assert tasks of the playbook's first play, imported task files included."""
    out = []
    for task in _plays(playbook)[0].get("tasks", []):
        target = task.get("ansible.builtin.import_tasks") or task.get("import_tasks")
        if target:
            out += list(_load(ROOT / Path(playbook).parent / target))
        else:
            out.append(task)
    return out


def _leading_comment(playbook: str) -> str:
    out = []
    for line in (ROOT / playbook).read_text(encoding="utf-8").splitlines()[1:]:
        if not line.startswith("#"):
            break
        out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_every_entry_playbook_begins_by_asserting_its_inputs_whatever_the_tags(playbook):
    first = _plays(playbook)[0]
    assert first.get("name") == INPUT_PLAY
    assert first.get("tags") == ["always"]  # --tags never skips it
    assert first.get("any_errors_fatal") is True  # one host's missing input stops every host
    asserts = _input_asserts(playbook)
    assert asserts
    for task in asserts:
        assert set(task) & {"ansible.builtin.assert"}, f"{task.get('name')}: the first play only asserts"
        assert task["ansible.builtin.assert"].get("fail_msg"), task.get("name")
        assert "when" not in task, f"{task.get('name')}: an input check is never skipped"
    # its header says how to run it alone, with every contract variable its asserts name
    header = _leading_comment(playbook)
    assert f"ansible-playbook -i inventories/lab {playbook}" in header
    assert "hosts:" in header  # which inventory groups it needs
    named = set().union(*(_names(json.dumps(t["ansible.builtin.assert"])) for t in asserts))
    assert named <= _names(header), f"the header does not say how to pass {sorted(named - _names(header))}"
    for name in named:  # and every message says where the variable comes from
        msgs = [t["ansible.builtin.assert"]["fail_msg"] for t in asserts
                if name in json.dumps(t["ansible.builtin.assert"].get("that"))]
        assert any(name in m for m in msgs), (name, msgs)


# A `when:` that tests whether a variable is defined skips its task when the variable is
# missing; for a safety check that is a check silently not made. None is left: the last ones
# chose a service's probe by its item's keys, which service_control's module now does.
DEFINED_TESTS_ALLOWED: dict[tuple[str, str], str] = {}


def test_roles_are_included_never_imported():
    """An imported role's argument check is tagged `always`: a step that runs one play of its
    playbook (by tag) would check, on every host, the inputs of every other play's roles too;
    one play's missing input would fail another play's step, and at 23 hosts the stop ran 112
    such checks more (#17). An include is skipped with its play."""
    found = sorted((_rel(path), task.get("name")) for path in _yaml_files() for task in _tasks(_load(path))
                   if "ansible.builtin.import_role" in task or "import_role" in task)
    assert found == []


def test_no_task_is_skipped_because_a_variable_is_not_defined():
    found = set()
    for path in _yaml_files():
        for task in _tasks(_load(path)):
            when = task.get("when")
            text = " ".join(when) if isinstance(when, list) else str(when or "")
            if re.search(r"\bis\s+(not\s+)?(un)?defined\b", text):
                found.add((_rel(path), task.get("name")))
    assert found == set(DEFINED_TESTS_ALLOWED)
    assert ("playbooks/restore/restore.yml", "Core | Refuse to start this host if its programs are not the release's") \
        not in found


# --------------------------------------------------------------------------- callers vs asserts
# The input plays run for real (ansible-playbook, an unknown tag so that only `always` runs),
# against the lab inventory's hosts and variables with every host local: an assert never
# connects, so no lab is needed and none is touched.

PROBE_TAG = "cutover-contract-probe"


@pytest.fixture(scope="module")
def probe_inventory(tmp_path_factory) -> Path:
    inv = tmp_path_factory.mktemp("probe") / "inventory"
    inv.mkdir()
    hosts = _load(ROOT / "inventories" / "lab" / "hosts.yml")

    def local(node: Any) -> None:  # the first host of every group, as the lab has it, but local
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "hosts" and isinstance(value, dict):
                    first = next(iter(value))
                    node[key] = {first: {**(value[first] or {}), "ansible_connection": "local"}}
                else:
                    local(value)

    local(hosts)
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts, allow_unicode=True), encoding="utf-8")
    (inv / "group_vars").symlink_to(ROOT / "inventories" / "lab" / "group_vars")
    return inv


def _ansible(inv: Path, playbook: Path, extravars: dict[str, Any], tmp: Path) -> tuple[int, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    evars = tmp / "extravars.json"
    evars.write_text(json.dumps(extravars), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False",
           "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp")}
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inv), str(playbook), "--tags", PROBE_TAG,
                           "-e", f"@{evars}"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _run_together(inv: Path, cases: dict[str, tuple[str, dict[str, Any]]], tmp: Path) -> tuple[int, dict[str, str]]:
    """Every case's input checks in one ansible-playbook run (one start-up, not dozens):
    each playbook imported with the case's variables (as its plays' variables, which the
    asserts see as they see extra vars), after a play named for the case. The output of
    each case, by name; a failure ends the run."""
    plays: list[dict[str, Any]] = []
    for name, (playbook, extravars) in cases.items():
        plays.append({"name": f"case: {name}", "hosts": "localhost", "gather_facts": False,
                      "tags": ["always"], "tasks": []})
        plays.append({"ansible.builtin.import_playbook": str(ROOT / playbook), "vars": extravars})
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "cases.yml").write_text(yaml.safe_dump(plays, allow_unicode=True), encoding="utf-8")
    rc, out = _ansible(inv, tmp / "cases.yml", {}, tmp)
    parts = re.split(r"^PLAY \[case: (.+?)\] \**$", out, flags=re.MULTILINE)
    return rc, {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)} | {"(after)": parts[-1]}


def _run_apart(inv: Path, cases: dict[str, tuple[str, dict[str, Any]]], tmp: Path) -> dict[str, tuple[int, str]]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_ansible, inv, ROOT / playbook, extravars, tmp / re.sub(r"\W", "_", name))
                   for name, (playbook, extravars) in cases.items()}
        return {name: f.result() for name, f in futures.items()}


def _data_tasks() -> list[str]:
    text = (ROOT / "src" / "cutover" / "cli" / "data.py").read_text(encoding="utf-8")
    return sorted(set(re.findall(r'run_data_playbook\(c, "([a-z-]+)"', text)))


def _callers(tmp: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every caller of a playbook, with the variables it passes."""
    from cutover.cli import data as data_cli
    from cutover.cli import verify as verify_cli

    plan, _ = check(SHIPPED)
    art = str(tmp / "art")
    cases: dict[str, tuple[str, dict[str, Any]]] = {}
    for step in plan.steps():  # the executor, for the plan's steps (real and rehearsal alike)
        if step.playbook:
            cases[f"cutover step {step.id}"] = (step.playbook, step_vars(
                plan, step, artifacts=art, journal_id="f00d", rehearsal=False).to_extravars())
    for name in (rollback.DATA_VERIFY_PLAYBOOK, rollback.ROLLBACK_PLAYBOOK, rollback.DATA_RESTORE_PLAYBOOK):
        cases[f"cutover.rollback {name}"] = (name, rollback.rollback_vars(
            plan, artifacts=art, journal_id="f00d", rehearsal=False).to_extravars())
    snapshot_options = {"pg_data_test_restore": False, "pg_data_snapshot_replace": False}
    tasks = _data_tasks()
    assert {"screen", "freeze", "unfreeze", "snapshot", "verify-snapshot", "export", "handoff", "reconcile"} <= set(tasks)
    for name in tasks:  # invoke data.*, before any journal exists (no id yet)
        cases[f"data.{name}"] = (f"playbooks/data/{name}.yml", data_cli.data_playbook_vars(
            plan, artifacts=art, journal_id="",
            extra=snapshot_options if "snapshot" in name else None).to_extravars())
    cases["verify.versions"] = (verify_cli.PLAYBOOK, verify_cli.versions_vars(
        resolve(plan.plan.release_manifest), require_running=False).to_extravars())
    # bench/overhead.py brings the lab back before the window (no release deployed)
    cases["bench restore"] = ("playbooks/restore/restore.yml", {
        "cutover_restore_without_release": True,
        "cutover_data_exclude_lines": plan.plan.vars["cutover_data_exclude_lines"]})
    # the lab's integration tests run these alone, with these variables
    cases["test full-stop rerun"] = ("playbooks/stop/full-stop.yml", {})
    cases["test tampered deploy"] = ("playbooks/deploy/deploy.yml",
                                     {"cutover_release_manifest": str(resolve(plan.plan.release_manifest))})
    cases["test locked snapshot"] = ("playbooks/data/snapshot.yml", {"cutover_plan": plan.plan.name,
                                                                     "pg_data_lock_wait": 4})
    return cases


def _ran_its_input_checks(out: str) -> bool:
    return f"PLAY [{INPUT_PLAY}]" in out and "TASK [Inputs |" in out and "ok: [" in out and "fatal:" not in out


def test_every_caller_passes_what_each_playbook_asserts(probe_inventory, tmp_path):
    cases = _callers(tmp_path)
    assert {playbook for playbook, _ in cases.values()} == set(ENTRY_PLAYBOOKS)  # every playbook has a caller
    distinct: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, (playbook, extravars) in cases.items():  # the restore's five stages pass the same, but their step
        same = {k: v for k, v in extravars.items() if k != "cutover_step"}
        if not any(p == playbook and {k: v for k, v in e.items() if k != "cutover_step"} == same
                   for p, e in distinct.values()):
            distinct[name] = (playbook, extravars)
    rc, outs = _run_together(probe_inventory, distinct, tmp_path)
    refused = {name: out[-2000:] for name, out in outs.items() if name in distinct and not _ran_its_input_checks(out)}
    assert refused == {}
    assert set(distinct) <= set(outs)
    assert rc == 0, outs["(after)"][-2000:]


# The first contract variable each playbook refuses to run without (the others run alone).
REFUSED_ALONE = {
    "playbooks/data/export.yml": "cutover_data_dir",
    "playbooks/data/handoff.yml": "cutover_plan",
    "playbooks/data/reconcile.yml": "cutover_plan",
    "playbooks/data/restore-snapshot.yml": "cutover_plan",
    "playbooks/data/screen.yml": "cutover_data_exclude_lines",
    "playbooks/data/snapshot.yml": "cutover_plan",
    "playbooks/data/verify-snapshot.yml": "cutover_plan",
    "playbooks/deploy/deploy.yml": "cutover_release_manifest",
    "playbooks/deploy/rollback.yml": "cutover_release_manifest",
    "playbooks/deploy/verify-versions.yml": "cutover_release_manifest",
    "playbooks/restore/restore.yml": "cutover_release_manifest",
    "playbooks/stop/gate-collection-plan.yml": "cutover_period",
    "playbooks/stop/gate-payments-approvals.yml": "cutover_period",
}


def test_a_playbook_run_alone_without_what_it_needs_is_refused_naming_the_variable(probe_inventory, tmp_path):
    alone = {p: (p, {}) for p in ENTRY_PLAYBOOKS if p not in REFUSED_ALONE}
    rc, outs = _run_together(probe_inventory, alone, tmp_path / "alone")
    assert rc == 0, outs["(after)"][-2000:]
    assert all(_ran_its_input_checks(outs[p]) for p in alone)
    for playbook, (rc, out) in _run_apart(probe_inventory, {p: (p, {}) for p in REFUSED_ALONE}, tmp_path).items():
        name = REFUSED_ALONE[playbook]
        assert rc != 0, f"{playbook} ran without {name}"
        assert f"PLAY [{INPUT_PLAY}]" in out
        assert re.search(rf"{name} is (missing|not set)", out), out[-2000:]
        assert "PLAY RECAP" in out  # refused by the input check, not by a crash


@pytest.mark.parametrize("playbook", ["playbooks/stop/full-stop.yml", "playbooks/stop/freeze-collection.yml"])
def test_a_host_without_its_components_is_named_by_one_check_for_every_host(probe_inventory, tmp_path, playbook):
    """#17: the input checks run once for all the play's hosts (a check per host was a task per
    host on the controller, 40 % of the stop's at 23 hosts). One check still reads every
    host's own inventory: each host without si_components is named, and no host goes on."""
    inv = tmp_path / "inventory"
    inv.mkdir()
    hosts = _load(probe_inventory / "hosts.yml")
    counters = hosts["all"]["children"]["counter"]["hosts"]
    first = next(iter(counters.values()))
    # the group gives counters their components (group_vars/counter): a host's own empty ones win
    counters["counter-x1"] = {**first, "si_components": []}
    counters["counter-x2"] = {**first, "si_components": None}
    counters["counter-x3"] = dict(first)
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts, allow_unicode=True), encoding="utf-8")
    (inv / "group_vars").symlink_to(ROOT / "inventories" / "lab" / "group_vars")
    rc, out = _ansible(inv, ROOT / playbook, {}, tmp_path / "run")
    assert rc != 0
    named = re.search(r"msg: '?([\w, -]+): no si_components in the inventory", out)
    assert named, out[-2000:]
    assert set(named.group(1).split(", ")) == {"counter-x1", "counter-x2"}
    assert out.count("fatal: [") == 1  # one check, on one host, for all
    assert not re.search(r"^PLAY \[N[24]", out, flags=re.MULTILINE)  # nothing after the checks


def test_a_run_variable_one_host_of_the_inventory_sets_is_refused_before_any_work(probe_inventory, tmp_path):
    """The input checks read the run's variables once, on the first host (#17). A host whose
    inventory says cutover_restore_without_release would start its services unchecked: the
    first check refuses the run when the hosts do not agree (plan.check refuses the inventory)."""
    inv = tmp_path / "inventory"
    inv.mkdir()
    hosts = _load(probe_inventory / "hosts.yml")
    counters = hosts["all"]["children"]["counter"]["hosts"]
    counters["counter-x1"] = {**next(iter(counters.values())), "cutover_restore_without_release": "yes"}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts, allow_unicode=True), encoding="utf-8")
    (inv / "group_vars").symlink_to(ROOT / "inventories" / "lab" / "group_vars")
    plan = load_plan(SHIPPED)[0]
    rc, out = _ansible(inv, ROOT / "playbooks" / "restore" / "restore.yml", {
        "cutover_release_manifest": str(resolve(plan.plan.release_manifest)),
        "cutover_data_exclude_lines": ["cjyl"]}, tmp_path / "run")
    assert rc != 0
    assert "cutover_restore_without_release differ between this play's hosts" in out, out[-2000:]
    assert out.count("fatal: [") == 1
    assert not re.search(r"^PLAY \[N9", out, flags=re.MULTILINE)
