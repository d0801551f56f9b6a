"""The release manifest has a model: plan.check (and verify.versions) refuse a manifest that
breaks it, or whose references do not resolve, with the manifest's file:line and what to do,
as they do for the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.cli import verify
from cutover.errors import CutoverError
from cutover.plan.lint import check, load_plan
from cutover.plan.problems import PlanInvalid
from cutover.plan.release_check import load_manifest, manifest_problems

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MANIFEST = ROOT / "releases" / "shanxi-2023-11.yml"
MANIFEST = SHIPPED_MANIFEST.read_text()
SHIPPED_PLAN = ROOT / "plans" / "shanxi-2023-11.yml"
LAB_GROUPS = {"all", "ungrouped", "db", "core", "gateway", "counter", "portal", "jobs", "drop", "tax"}
SHA = "370b9277a66f5fd1188ddf365b820ae07e42cc67d9ff060d5eb6c9be1e9b0fce"
GATEWAY = "  - {name: si-gateway, artifact: si-app, group: gateway, probes: [file, http]}\n"
JOBS = "  - {name: si-jobs, artifact: si-app, group: jobs, probes: [file]}\n"


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def edited(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    assert old in MANIFEST, old
    text = MANIFEST.replace(old, new, 1)
    path = tmp_path / "release.yml"
    path.write_text(text)
    return path, text


def errors_of(path: Path, groups: set[str] | None = None) -> list[str]:
    _, problems = manifest_problems(path, groups)
    return [str(p) for p in problems if p.severity == "error"]


def only_error(path: Path, groups: set[str] | None = None) -> str:
    errors = errors_of(path, groups)
    assert len(errors) == 1, errors
    return errors[0]


def test_the_shipped_manifest_has_no_problem_against_the_lab_inventory():
    manifest, problems = manifest_problems(SHIPPED_MANIFEST, LAB_GROUPS)
    assert problems == []
    assert manifest is not None
    assert manifest.artifacts["si-app"].sha256 == SHA
    assert len(manifest.components) == 14
    assert set(manifest.defined_probes()) == {"file", "http", "command", "package"}


def test_a_misspelt_key_is_refused_with_its_line_and_the_key_it_meant(tmp_path):
    path, text = edited(tmp_path, "    sha256: 37", "    sha265: 37")
    errors = errors_of(path)
    n = line_of(text, "sha265:")
    assert f"{path}:{n}: unknown key 'sha265' in an artifact\n    hint: did you mean 'sha256'?" in errors
    assert any("missing required key 'sha256' in an artifact" in e for e in errors), errors


def test_a_key_with_no_close_match_is_refused_naming_the_keys_there_are(tmp_path):
    path, text = edited(tmp_path, "group: jobs, probes: [file]}", "group: jobs, probes: [file], restart: true}")
    assert only_error(path) == (f"{path}:{line_of(text, 'restart: true')}: unknown key 'restart' in a component\n"
                                "    hint: a component has: name, artifact, group, probes")


def test_a_component_whose_artifact_is_not_listed_is_refused_at_its_line(tmp_path):
    path, text = edited(tmp_path, GATEWAY, GATEWAY.replace("artifact: si-app", "artifact: si-ap"))
    assert only_error(path) == (f"{path}:{line_of(text, 'si-ap,')}: component si-gateway runs artifact 'si-ap', "
                                "which `artifacts:` does not list\n    hint: did you mean 'si-app'?")


def test_a_component_that_asks_an_undefined_probe_is_refused(tmp_path):
    path, text = edited(tmp_path, "  command: {command: \"cat /opt/{name}/current/VERSION\"}\n", "")
    path.write_text(text.replace("probes: [file]}", "probes: [file, command]}"))
    text = path.read_text()
    assert only_error(path) == (f"{path}:{line_of(text, 'probes: [file, command]')}: component si-jobs asks the "
                                "command probe, which `probes:` does not define\n"
                                "    hint: define it under `probes:` (defined: file, http, package)")


def test_a_probe_kind_that_does_not_exist_is_refused_with_the_kind_it_meant(tmp_path):
    path, text = edited(tmp_path, JOBS, JOBS.replace("[file]", "[file, htpp]"))
    assert only_error(path) == (f"{path}:{line_of(text, 'htpp')}: component si-jobs: 'htpp' is not a probe kind\n"
                                "    hint: did you mean 'http'?")
    path, text = edited(tmp_path, "  http: {http:", "  rpm: {package: si-app}\n  http: {http:")
    assert only_error(path) == (f"{path}:{line_of(text, 'rpm:')}: unknown probe kind 'rpm'\n"
                                "    hint: probe kinds: file, http, command, package")


@pytest.mark.parametrize("sha", [SHA[:40], SHA.upper(), SHA[:-1] + "g"])
def test_a_sha256_that_is_not_one_is_refused_saying_how_to_get_it(tmp_path, sha):
    path, text = edited(tmp_path, f"sha256: {SHA}", f"sha256: {sha}")
    assert only_error(path) == (f"{path}:{line_of(text, 'sha256:')}: sha256: '{sha}' is not a sha256 "
                                "(64 lower-case hex digits)\n    hint: `sha256sum FILE` prints it")


def test_an_unquoted_version_is_refused_saying_to_quote_it(tmp_path):
    path, text = edited(tmp_path, 'previous: "2023.10.1"', "previous: 2023.10")
    assert only_error(path) == (f"{path}:{line_of(text, 'previous:')}: previous: 2023.1 is a number, not text\n"
                                "    hint: quote it as written (previous: \"...\"): unquoted, YAML reads it as "
                                "the number 2023.1")


@pytest.mark.parametrize("version", ["../../etc", "2023.11.0/x", "2023 11", ""])
def test_a_version_that_could_not_name_a_release_directory_is_refused(tmp_path, version):
    path, text = edited(tmp_path, 'version: "2023.11.0"', f'version: "{version}"')
    error = only_error(path)
    assert error.startswith(f"{path}:{line_of(text, 'version: ')}: version: {version!r} is not a version\n")
    assert "hint: letters, digits and . _ + ~ : -" in error


@pytest.mark.parametrize("name", ["si-x{port}", "si x", "{{ lookup('pipe', 'id') }}", "../si-x", "si-x;reboot"])
def test_a_hostile_component_name_is_refused(tmp_path, name):
    path, text = edited(tmp_path, JOBS, JOBS.replace("name: si-jobs", f'name: "{name}"'))
    error = only_error(path)
    assert error.startswith(f"{path}:{line_of(text, 'group: jobs')}: name: {name!r} is not a component name\n")
    assert "it names the systemd unit and /opt/<name>/" in error


def test_an_empty_group_an_empty_probe_list_and_no_components_are_refused(tmp_path):
    path, text = edited(tmp_path, JOBS, JOBS.replace("group: jobs", 'group: ""'))
    assert only_error(path).startswith(f"{path}:{line_of(text, 'si-jobs')}: group: '' is not an inventory group\n")
    path, text = edited(tmp_path, JOBS, JOBS.replace("probes: [file]", "probes: []"))
    assert only_error(path) == (f"{path}:{line_of(text, 'si-jobs')}: probes: must not be empty\n"
                                "    hint: probes: the probes that ask it for its version, e.g. [file, http]; "
                                "every one listed runs")
    start = MANIFEST.index("components:\n")
    path = tmp_path / "release.yml"
    path.write_text(MANIFEST[:start] + "components: []\n" + MANIFEST[MANIFEST.index("probes:\n"):])
    assert only_error(path).startswith(f"{path}:{line_of(path.read_text(), 'components: []')}: "
                                       "components: must not be empty\n")


def test_a_component_listed_twice_and_a_placeholder_that_is_never_filled_are_refused(tmp_path):
    path, text = edited(tmp_path, JOBS, JOBS + JOBS)
    assert only_error(path).startswith(f"{path}:{line_of(text, 'si-jobs') + 1}: component si-jobs of group jobs "
                                       "is listed twice\n")
    path, text = edited(tmp_path, '"/opt/{name}/current/VERSION"}', '"/opt/{nmae}/current/VERSION"}')
    assert only_error(path) == (f"{path}:{line_of(text, '{nmae}')}: the file probe's file uses {{nmae}}, "
                                "which is not filled in\n    hint: did you mean 'name'?")


def test_an_unused_artifact_and_a_previous_equal_to_its_version_are_warnings(tmp_path):
    path, _ = edited(tmp_path, "components:\n", "  spare:\n    version: \"1\"\n    previous: \"1\"\n"
                     f"    path: spare.tar.gz\n    sha256: {SHA}\ncomponents:\n")
    manifest, problems = manifest_problems(path)
    assert manifest is not None
    assert [p.severity for p in problems] == ["warning", "warning"]
    assert "artifact spare is run by no component" in problems[0].message
    assert "artifact spare: previous is its own version 1" in problems[1].message


# ------------------------------------------------------------------ through plan.check


def plan_with(tmp_path: Path, manifest: Path) -> Path:
    plan = tmp_path / "plan.yml"
    plan.write_text(SHIPPED_PLAN.read_text().replace("release_manifest: releases/shanxi-2023-11.yml",
                                                     f"release_manifest: {manifest}"))
    return plan


def test_plan_check_refuses_a_component_in_a_group_no_host_is_in(tmp_path):
    """The mistake that used to pass: a typo in a group means no host installs or verifies
    that component, and the deploy's version check, finding nothing to check, passed."""
    path, text = edited(tmp_path, GATEWAY, GATEWAY.replace("group: gateway", "group: gatway"))
    assert errors_of(path) == []  # the model alone cannot know the inventory's groups
    _, problems = load_plan(plan_with(tmp_path, path), ROOT / "inventories" / "lab")
    errors = [str(p) for p in problems if p.severity == "error"]
    assert errors == [f"{path}:{line_of(text, 'gatway')}: component si-gateway: the inventory has no group "
                      "'gatway', so no host would install or verify it\n    hint: did you mean 'gateway'?"]


def test_plan_check_reports_the_manifests_problems_at_their_lines_and_refuses_the_plan(tmp_path):
    path, text = edited(tmp_path, "    sha256: 37", "    sha265: 37")
    with pytest.raises(PlanInvalid) as refused:
        check(plan_with(tmp_path, path), ROOT / "inventories" / "lab")
    message = str(refused.value)
    assert f"{path}:{line_of(text, 'sha265')}: unknown key 'sha265' in an artifact" in message
    assert "error(s): the plan was not run" in message


def test_verify_versions_refuses_a_broken_manifest_before_any_host_is_asked(tmp_path, monkeypatch):
    path, text = edited(tmp_path, GATEWAY, GATEWAY.replace("artifact: si-app", "artifact: si-ap"))
    monkeypatch.setattr(verify, "run_playbook", lambda *a, **k: pytest.fail("a playbook was run"))
    with pytest.raises(CutoverError) as refused:
        verify.check_versions(str(path), str(ROOT / "tests" / "data" / "inventory.yml"), limit=None,
                              require_running=False, artifacts=str(tmp_path / "art"))
    assert str(refused.value) == (f"{path}:{line_of(text, 'si-ap,')}: component si-gateway runs artifact 'si-ap', "
                                  "which `artifacts:` does not list\n    hint: did you mean 'si-app'?\n"
                                  "1 error(s) in the release manifest")
    assert load_manifest(SHIPPED_MANIFEST).release == "shanxi-2023-11"
