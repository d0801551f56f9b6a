"""plan.check holds an inventory to what the plan's plays need (issue #15): the example and
the lab pass; a variable taken away, or of the wrong type, is named with the host, the
inventory file and line, and what to add. And the table that says what each play needs
(src/cutover/contract/host_vars.yml) cannot drift from the playbooks or the roles."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from cutover.contract.host_vars import TABLE, load_contract, role_option
from cutover.plan.lint import load_plan
from cutover.plan.playbooks import work_plays

from .problems import errors, line_of

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "plans" / "shanxi-2023-11.yml"
EXAMPLE = ROOT / "inventories" / "example"




@pytest.fixture
def example(tmp_path) -> Path:
    inv = tmp_path / "example"
    shutil.copytree(EXAMPLE, inv)
    return inv


@pytest.mark.parametrize("inventory", ["example", "lab"])
def test_the_shipped_inventories_have_every_variable_the_shipped_plan_needs(inventory):
    _, problems = load_plan(SHIPPED, ROOT / "inventories" / inventory)
    assert errors(problems) == []


def test_a_variable_taken_from_the_example_is_named_with_its_hosts_file_line_and_where_to_add_it(example):
    portal = example / "group_vars" / "portal" / "vars.yml"
    portal.write_text(portal.read_text().replace("si_portal_port: 80\n", ""))
    _, problems = load_plan(SHIPPED, example)
    found = errors(problems)
    assert len(found) == 1, found
    hosts = example / "hosts.yml"
    assert found[0].startswith(f"{hosts}:{line_of(hosts, 'portal-prov-01:')}: ")
    assert "si_portal_port is missing on portal-prov-01, portal-prov-02, needed by play " \
           "'N2 | Verify what a user sees on each channel' of playbooks/stop/freeze-collection.yml " \
           "(step n2-freeze-collection-account) and 1 more play" in found[0]
    assert f"add si_portal_port (port: the port nginx serves the online channels on) to {portal} " \
           "(every host of portal)" in found[0]


def test_a_string_where_a_list_is_needed_is_named_where_it_is_written(example):
    counter = example / "group_vars" / "counter" / "vars.yml"
    counter.write_text(counter.read_text().replace("si_components:\n  - {name: si-counter, mode: front, port: 8080}",
                                                   "si_components: si-counter"))
    _, problems = load_plan(SHIPPED, example)
    found = errors(problems)
    assert len(found) == 1, found
    assert found[0].startswith(f"{counter}:{line_of(counter, 'si_components: si-counter')}: ")
    assert "si_components of counter-taiyuan-01, counter-taiyuan-c01, counter-taiyuan-c02 and 41 more hosts " \
           "is a string, not a list" in found[0]


def test_a_run_variable_set_in_the_inventory_is_refused_where_it_is_written(example):
    """The run's variables are extra vars; one the engine leaves out when unset would take effect
    on the hosts whose inventory sets it, and the playbooks check it once for all hosts (#17)."""
    counter = example / "group_vars" / "counter" / "vars.yml"
    counter.write_text(counter.read_text() + "cutover_restore_without_release: true\n")
    _, problems = load_plan(SHIPPED, example)
    found = [e for e in errors(problems) if "cutover_restore_without_release" in e]
    assert len(found) == 1, errors(problems)
    assert found[0].startswith(f"{counter}:{line_of(counter, 'cutover_restore_without_release')}: ")
    assert "cutover_restore_without_release is set for counter-changzhi-01, counter-changzhi-c01, " \
           "counter-changzhi-c02 and 41 more hosts; it is the run's variable" in found[0]
    assert "remove cutover_restore_without_release from the inventory" in found[0]


def test_a_secret_of_the_wrong_kind_is_named_but_never_shown(example):
    vars_file = example / "group_vars" / "all" / "vars.yml"
    vars_file.write_text(vars_file.read_text().replace("si_drop_protocol: ftps ", "si_drop_protocol: ftpx "))
    text = vars_file.read_text().replace('si_db_password: "{{ vault_si_db_password }}"', "si_db_password: [hunter2]")
    vars_file.write_text(text)
    _, problems = load_plan(SHIPPED, example)
    found = "\n".join(errors(problems))
    assert "si_drop_protocol of ftp-hrtax-01 is 'ftpx' not one of sftp, ftp, ftps" in found
    assert f"{vars_file}:{line_of(vars_file, 'si_db_password:')}: " in found
    assert "si_db_password of db-prov-01, db-prov-02, core-qyyl-01 and 53 more hosts is a list, not a str" in found
    assert "hunter2" not in found


def test_a_vaulted_value_counts_as_present_without_the_vault_password(example):
    """The example's secrets are vaulted and its key is not here: present, never decrypted."""
    vault = example / "group_vars" / "all" / "vault.yml"
    assert "$ANSIBLE_VAULT" in vault.read_text()
    vars_file = example / "group_vars" / "all" / "vars.yml"
    vars_file.write_text(vars_file.read_text().replace('si_db_password: "{{ vault_si_db_password }}"',
                                                       "si_db_password: !vault |\n" + "".join(
                                                           f"  {line}\n" for line in vault.read_text().split(
                                                               "vault_si_db_password: !vault |\n")[1].split(
                                                               "vault_si_drop_password")[0].strip().splitlines())))
    _, problems = load_plan(SHIPPED, example)
    assert errors(problems) == []


def test_only_the_plays_a_step_runs_are_held_to_their_needs(example):
    """The followup's check is the only play left that reads si_jobs_output_dir besides the stop of
    the jobs: a plan without either step does not need it."""
    jobs = example / "group_vars" / "jobs" / "vars.yml"
    jobs.write_text(jobs.read_text().replace("si_jobs_output_dir: /var/lib/si-jobs  # one directory per job\n", ""))
    _, problems = load_plan(SHIPPED, example)
    assert any("si_jobs_output_dir is missing on jobs-prov-01" in e for e in errors(problems))
    plan = yaml.safe_load(SHIPPED.read_text())
    for phase in plan["phases"]:
        phase["steps"] = [s for s in phase["steps"] if s.get("playbook") != "playbooks/followup/check-jobs.yml"
                          and s.get("tags") != ["jobs"]]
        for step in phase["steps"]:
            step["after"] = [a for a in step.get("after", []) if "job" not in a]
    plan["phases"] = [p for p in plan["phases"] if p["steps"]]
    trimmed = example.parent / "plan.yml"
    trimmed.write_text(yaml.safe_dump(plan, allow_unicode=True, sort_keys=False))
    _, problems = load_plan(trimmed, example)
    assert not [e for e in errors(problems) if "si_jobs_output_dir" in e]


def test_no_playbook_a_plan_runs_holds_a_lab_part_or_acts_for_the_tax_department():
    # N7: the receiver is the tax department's own; the lab's stand-in (lab/receiver) is started
    # by lab.up, never installed or run by a step
    for book in ENTRY_PLAYBOOKS:
        text = book.read_text(encoding="utf-8")
        assert "lab/" not in text.replace("inventories/lab", ""), book
        for play in yaml.safe_load(text):
            assert "tax" not in str(play.get("hosts", "")).split(":"), (book, play["name"])


# ---------------------------------------------------------------- the table and the playbooks

ENTRY_PLAYBOOKS = sorted(p for p in (ROOT / "playbooks").glob("*/*.yml") if p.parent.name != "lab")


def _mentions(play: dict, book: Path) -> set[str]:
    """The si_* variables a play reads: in its text, its vars_files and the task files it includes."""
    text = yaml.safe_dump(play)
    for name in play.get("vars_files") or []:
        text += (book.parent / name).read_text()
    for included in re.findall(r"(?:include|import)_tasks: (\S+)", text):
        text += (book.parent / included).read_text()
    return set(re.findall(r"\bsi_[a-z_]+\b", text))


@pytest.mark.parametrize("book", ENTRY_PLAYBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_play_of_every_entry_playbook_says_what_it_needs_and_reads_nothing_else(book):
    contract = load_contract()
    key = str(book.relative_to(ROOT))
    assert key in contract.plays, f"{key} is not in {TABLE.name}"
    plays = {str(p["name"]): p for p in work_plays(book, [])}
    assert set(plays) == set(contract.plays[key]), f"{TABLE.name} and {key} name different plays"
    for name, play in plays.items():
        needs = contract.plays[key][name]
        declared = {v for names in needs.needs.values() for v in names} | set(needs.optional)
        assert _mentions(play, book) <= declared, f"{key}: {name!r} reads {_mentions(play, book) - declared}"


def test_every_variable_an_inputs_play_asserts_is_needed_by_that_playbook():
    contract = load_contract()
    for book in ENTRY_PLAYBOOKS:
        asserted = set(re.findall(r"\bno (si_[a-z_]+) in the inventory", book.read_text()))
        needed = {v for play in contract.plays[str(book.relative_to(ROOT))].values()
                  for names in play.needs.values() for v in names}
        assert asserted <= needed, f"{book.name} asserts {asserted - needed} that {TABLE.name} does not need"


def test_a_variable_that_feeds_a_role_has_that_roles_type():
    raw = yaml.safe_load(TABLE.read_text())["variables"]
    contract = load_contract()
    fed = {name: spec["feeds"] for name, spec in raw.items() if spec.get("feeds")}
    assert len(fed) >= 5
    for name, ref in fed.items():
        option = role_option(ref)
        assert contract.variables[name].type == option["type"], (name, ref)
        assert contract.variables[name].elements == option.get("elements"), (name, ref)
    assert contract.variables["si_db_sslmode"].choices[-1] == "verify-full"  # from business_smoke's spec
    assert contract.variables["si_db_password"].secret  # the role says no_log


@pytest.mark.parametrize("inventory", ["lab", "example"])
def test_every_key_of_a_shipped_components_list_is_one_the_roles_accept(inventory):
    """version_verify refuses a component key it does not know (so a typo is caught): every key
    the shipped inventories give a component must be one it knows, or the restore stops at the
    first host that has it (the call-off in the lab did, at N10, over `shared_platform`)."""
    from cutover.inventory import load_inventory

    spec = yaml.safe_load((ROOT / "roles" / "version_verify" / "meta" / "argument_specs.yml").read_text())
    known = set(spec["argument_specs"]["before_start"]["options"]["version_verify_host_components"]["options"])
    data = load_inventory(ROOT / "inventories" / inventory)
    used = {key for hv in data["_meta"]["hostvars"].values()
            for component in hv.get("si_components") or [] if isinstance(component, dict) for key in component}
    assert used
    assert used <= known, sorted(used - known)


def test_a_secret_taken_from_the_vault_that_the_vault_lacks_is_named_without_any_value(example):
    """A `{{ vault_x }}` nobody sets would fail only when its play runs, at 08:30 on 12-01:
    plan.check names it where it is written, also in an optional variable, and shows no secret."""
    vault = example / "group_vars" / "all" / "vault.yml"
    text = vault.read_text()
    vault.write_text(text[:text.index("# the tax side's bookkeeping")] + text[text.index("# the escalation contacts'"):])
    _, problems = load_plan(SHIPPED, example)
    found = errors(problems)
    assert len(found) == 1, found
    checks = example / "group_vars" / "all" / "business_checks.yml"
    assert found[0].startswith(f"{checks}:{line_of(checks, 'si_smoke_tax_db:')}: ")
    assert "takes vault_si_smoke_tax_db_password from the vault, which the inventory does not set" in found[0]
    assert "$ANSIBLE_VAULT" not in found[0]


def test_a_secret_from_the_vault_with_a_default_is_refused_where_it_is_written(example):
    """A missing secret must stop the run, not turn into an empty password or no target (N14)."""
    variables = example / "group_vars" / "all" / "vars.yml"
    variables.write_text(variables.read_text().replace(
        '"{{ vault_cutover_escalation_system_url }}"', '"{{ vault_cutover_escalation_system_url | default(\'\') }}"'))
    _, problems = load_plan(SHIPPED, example)
    found = errors(problems)
    assert len(found) == 1, found
    assert found[0].startswith(f"{variables}:")
    assert "cutover_escalation_system_urls of " in found[0]
    assert "gives vault_cutover_escalation_system_url a default: a secret that is missing must stop the run" in found[0]
