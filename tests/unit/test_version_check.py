"""roles/version_verify in its one task per host (#17): every probe asked in one module call,
the verdict judged on the controller, and every row in the run's record (N8), also when a
component is on the wrong version. Real ansible-playbook on this machine; the probes read
files in a temporary directory."""

from __future__ import annotations

from .role_here import run_role


def test_a_wrong_version_fails_naming_it_and_the_record_keeps_every_row(tmp_path):
    (tmp_path / "a").write_text("2.0\n")
    (tmp_path / "b").write_text("1.9\x1b[31m\n")  # a host's reply: shown, never obeyed
    done = run_role(tmp_path, "version_verify", {"version_verify_components": [
        {"name": "a", "version": "2.0", "probes": [{"kind": "file", "file": str(tmp_path / "a")}]},
        {"name": "b", "version": "2.0", "probes": [{"kind": "file", "file": str(tmp_path / "b")},
                                                   {"kind": "command", "command": f"cat {tmp_path / 'b'}"}]},
        {"name": "c", "version": "2.0", "probes": [{"kind": "file", "file": str(tmp_path / "missing")}]}]},
        ident="wrong")
    assert not done.ok
    said = " ".join(f.message for f in done.failures)
    assert "version mismatch: localhost: b expected 2.0, file" in said
    assert "c expected 2.0, file" in said
    assert "found missing" in said
    assert "\x1b" not in said
    rows = done.evidence["versions"]
    assert [(r["component"], r["ok"]) for r in rows] == [("a", True), ("b", False), ("c", False), ("b", False)]


def test_a_component_the_spec_refuses_asks_the_host_nothing(tmp_path):
    marker = tmp_path / "asked"
    done = run_role(tmp_path, "version_verify", {"version_verify_components": [
        {"name": "a", "version": "2.0", "probes": [{"kind": "command", "command": f"touch {marker}"},
                                                   {"kind": "shell", "shell": "id"}]}]},
        ident="refused")
    assert not done.ok
    assert "kind" in " ".join(f.message for f in done.failures)
    assert not marker.exists()
    assert "versions" not in done.evidence


def test_before_start_holds_what_it_built_from_the_manifest_to_the_main_spec(tmp_path):
    """before_start imports main's tasks (#17: no second include, so no second argument check):
    the action itself refuses a probe the spec does not know, before the host is asked."""
    marker = tmp_path / "asked"
    manifest = tmp_path / "release.yml"
    manifest.write_text(
        "release: r\n"
        "artifacts: {app: {version: '2.0', previous: '1.0', path: x.tgz, sha256: '00'}}\n"
        f"probes: {{file: {{file: '{tmp_path}/{{name}}'}}, shell: {{shell: 'touch {marker}'}}}}\n"
        "components:\n  - {name: a, artifact: app, group: ungrouped, probes: [file, shell]}\n")
    (tmp_path / "a").write_text("2.0\n")
    done = run_role(tmp_path, "version_verify", {
        "version_verify_release_manifest": str(manifest), "version_verify_release_components": ["a"]},
        ident="before", tasks_from="before_start")
    assert not done.ok
    said = " ".join(f.message for f in done.failures)
    assert "version_verify:" in said
    assert "shell" in said
    assert not marker.exists()
    assert "versions" not in done.evidence
