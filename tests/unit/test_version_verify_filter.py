"""roles/version_verify's verdict (N8): what each probe found against the manifest. A host
answers whatever it likes; the verdict must hold anyway."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "version_verify_filter", ROOT / "roles" / "version_verify" / "action_plugins" / "version_check.py")
vv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vv)

CORE = {"name": "si-core-gs", "version": "2023.11.0",
        "probes": [{"kind": "file", "file": "/opt/si-core-gs/current/VERSION"},
                   {"kind": "http", "http": "http://127.0.0.1:28014/version"}]}


def rows(files=(), https=(), commands=(), packages=None, require_running=True, components=None):
    """The rows for these answers; by default CORE with only the probes answered here."""
    if components is None:
        kinds = {kind for kind, given in (("file", files), ("http", https)) if given}
        components = [{**CORE, "probes": [p for p in CORE["probes"] if p["kind"] in kinds]}]
    return vv.version_verify_rows(list(components), "core-gs", list(files), list(https), list(commands),
                                  packages, require_running)


def file_result(content: str | None):
    r = {"item": [CORE, CORE["probes"][0]]}
    if content is not None:
        r["content"] = base64.b64encode(content.encode()).decode()
    return r


def http_result(status=200, **reply):
    return {"item": [CORE, CORE["probes"][1]], "status": status, **reply}


def test_the_right_version_everywhere_is_ok():
    got = rows([file_result("2023.11.0\n")], [http_result(json={"version": "2023.11.0"})])
    assert [(r["probe"].split()[0], r["found"], r["ok"]) for r in got] == [
        ("file", "2023.11.0", True), ("http", "2023.11.0", True)]


def test_a_missing_file_and_a_stopped_service_are_named():
    got = rows([file_result(None)], [http_result(status=-1)])
    assert [(r["found"], r["ok"]) for r in got] == [("missing", False), ("not running", False)]


def test_a_stopped_service_passes_only_when_running_is_not_required():
    assert rows(https=[http_result(status=-1)], require_running=False)[0]["ok"] is True
    assert rows(https=[http_result(status=500)], require_running=False)[0] | {"probe": ""} == {
        "host": "core-gs", "component": "si-core-gs", "expected": "2023.11.0", "probe": "",
        "found": "HTTP 500", "ok": False}


def test_the_notice_answering_for_a_stopped_service_counts_as_stopped_never_as_running():
    """N4: from the full stop the notice's stand-in answers 503 on the service's port; during
    the deploy that is a stopped service (the file probe checks the version), after the
    restore it fails like a refused connection."""
    notice = http_result(status=503, json={"code": "MAINTENANCE", "version": "2023.11.0"},
                         x_si_notice_standin="si-core-gs")
    during = rows(https=[notice], require_running=False)[0]
    assert (during["found"], during["ok"]) == ("not running (the notice answers)", True)
    after = rows(https=[notice], require_running=True)[0]
    assert (after["found"], after["ok"]) == ("not running (the notice answers)", False)
    other = rows(https=[http_result(status=503, json={"code": "BUSY"})], require_running=False)[0]
    assert (other["found"], other["ok"]) == ("HTTP 503", False)
    # a live service answering its own maintenance 503 (no stand-in header, or another's) still runs
    for reply in ({}, {"x_si_notice_standin": "si-core-qyyl"}):
        live = rows(https=[http_result(status=503, json={"code": "MAINTENANCE"}, **reply)], require_running=False)[0]
        assert (live["found"], live["ok"]) == ("HTTP 503", False)


@pytest.mark.parametrize("reply", [
    {"json": {"version": 2023.11}},                       # a number, not the version string
    {"json": ["2023.11.0"]},                              # not an object
    {"content": '{"version": "2023.11.0"'},               # broken JSON
    {"content": "version=2023.11.0"},                     # not JSON
    {"json": {"version": "2023.11.0 [bold]ok[/]" * 40}},  # long, markup-like
    {"json": {"Version": "2023.11.0"}},                   # another key
])
def test_a_reply_a_host_makes_up_never_passes_and_is_kept_short(reply):
    [row] = rows(https=[http_result(**reply)])
    assert row["ok"] is False
    assert len(row["found"]) <= vv.MOST + 1


def test_a_component_no_probe_asked_fails_instead_of_passing_in_silence():
    silent = {"name": "si-gateway", "version": "2023.11.0", "probes": []}
    got = rows([file_result("2023.11.0")], components=(CORE, silent))
    assert got[-1] == {"host": "core-gs", "component": "si-gateway", "expected": "2023.11.0", "probe": "none",
                       "found": "no probe was asked", "ok": False}


def test_commands_and_packages():
    cmd = {"kind": "command", "command": "/opt/x --version"}
    pkg = {"kind": "package", "package": "si-x"}
    comp = {"name": "si-x", "version": "1.2", "probes": [cmd, pkg]}
    got = rows(commands=[{"item": [comp, cmd], "rc": 0, "stdout": "1.2\n"}],
               packages={"si-x": [{"version": "1.2-3"}]}, components=(comp,))
    assert [(r["found"], r["ok"]) for r in got] == [("1.2", True), ("1.2-3", True)]
    got = rows(commands=[{"item": [comp, cmd], "rc": 2, "stdout": "1.2"}], packages={}, components=(comp,))
    assert [(r["found"], r["ok"]) for r in got] == [("error rc=2", False), ("not installed", False)]


def test_a_probe_the_host_left_unanswered_fails_though_another_of_its_component_passed():
    """The host answers one probe of two: the one left out is no answer, never a pass."""
    got = rows([file_result("2023.11.0")], [], components=(CORE,))
    assert [(r["probe"].split()[0], r["found"], r["ok"]) for r in got] == [
        ("file", "2023.11.0", True), ("http", "no answer", False)]
    got = rows(files=["2023.11.0", None], https="not a list", components=(CORE,))
    assert [(r["found"], r["ok"]) for r in got] == [("no answer", False), ("no answer", False)]


def test_an_answer_is_judged_against_the_probe_sent_never_the_one_the_host_names():
    other = {"name": "si-other", "version": "0.1", "probes": [{"kind": "file", "file": "/x"}]}
    lying = {"item": [other, other["probes"][0]], "content": base64.b64encode(b"0.1").decode()}
    [row] = rows([lying])
    assert (row["component"], row["expected"], row["probe"], row["ok"]) == (
        "si-core-gs", "2023.11.0", "file /opt/si-core-gs/current/VERSION", False)


def test_a_reply_nested_deeper_than_python_reads_fails_its_row_and_nothing_else():
    [row] = rows(https=[http_result(content='{"version":' + "[" * 5000 + "]" * 5000 + "}")])
    assert (row["found"], row["ok"]) == ("HTTP 200", False)


@pytest.mark.parametrize("facts", [{"si-x": "1.2"}, {"si-x": ["1.2"]}, {"si-x": []}, "1.2", None])
def test_package_facts_a_host_makes_up_never_pass(facts):
    pkg = {"kind": "package", "package": "si-x"}
    [row] = rows(packages=facts, components=({"name": "si-x", "version": "1.2", "probes": [pkg]},))
    assert (row["found"], row["ok"]) == ("not installed", False)
