"""The stop side of the shipped plan (N1–N4) on the lab, through the engine, then the
deploy (N8), a restore that fails at its stage and resumes, version checks and the rollback.

A fresh lab with one pending approval (lab fault `pending-approval`): the stop halts at the
N3 gate naming the agency and the approval, nothing after it runs; during the freeze (N2)
collection answers the notice on every channel while benefit payment still works; an
override lets the gate pass and is recorded; the stop then ends with every channel showing
the notice, every business service stopped, every timed job off; a re-run changes nothing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from cutover.ansible import run_playbook
from cutover.engine import executor
from cutover.engine.executor import Executor, RunOptions, StepFailed
from cutover.engine.journal import Journal
from cutover.lab import artifacts
from cutover.lab import lab as labmod
from cutover.lab.topology import LAB_INVENTORY
from cutover.paths import ROOT

from .conftest import CITIES, SCALE, SEED, host

pytestmark = pytest.mark.lab
PLAN = ROOT / "plans" / "shanxi-2023-11.yml"
CHANNELS = ["/online/", "/nearby/", "/app/minsheng/", "/app/sanjin/"]


def request(url: str, body: dict | None = None, accept: str = "application/json") -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json", "Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError as exc:
        return 0, str(exc)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A lab before the window, with one pending approval planted."""
    labmod.down(say=print)
    labmod.up(cities=CITIES, scale=SCALE, seed=SEED, faults=["pending-approval"], say=print)
    tmp = tmp_path_factory.mktemp("stop")
    return RunOptions(plan=str(PLAN), journal=str(tmp / "journal.sqlite"), artifacts=str(tmp / "art"),
                      rehearsal=True, auto_confirm=True, say=print)


def test_stop_halts_at_the_n3_gate_naming_agency_and_approval(run, datagen):
    # the planted approval is the last row the generator writes (ids are serial)
    approval_id = len(datagen.generate("qyyl", SCALE, SEED, frozenset({"pending-approval"}))["approval"])
    with pytest.raises(StepFailed) as err:
        Executor("stop", run).run()
    msg = err.value.message
    assert "step n3-gate-payments-approvals failed" in msg
    assert "agency=140102" in msg
    assert "problem=approval pending" in msg
    assert f"ids={approval_id}" in msg
    j = Journal.open(run.journal)
    try:
        st = {r["id"]: r["state"] for r in j.steps()}
        assert st["n2-freeze-collection-account"] == "done"
        assert st["n3-gate-payments-approvals"] == "failed"
        assert {st[s] for s in st if s.startswith("n4-")} == {"pending"}
    finally:
        j.close()
    assert host("core-qyyl").service("si-core-qyyl").is_running  # nothing after the gate ran


def test_during_the_freeze_collection_shows_the_notice_and_benefit_payment_works(run):
    for path in CHANNELS:
        code, body = request(f"http://127.0.0.1:28080{path}collection", {"line": "gs"})
        assert code == 503, path
        assert json.loads(body)["code"] == "MAINTENANCE"
        code, page = request(f"http://127.0.0.1:28080{path}account", {"line": "gs"}, accept="text/html")
        assert code == 503
        assert "友情提示" in page
    for url in ("http://127.0.0.1:28011/collection", "http://127.0.0.1:28101/account"):
        assert request(url, {"line": "qyyl"})[0] == 503  # the core's own front and a counter
    code, body = request("http://127.0.0.1:28080/online/benefit-payment",
                         {"line": "gs", "agency": "140100", "period": "202311", "amount": 99.5})
    assert code == 200, body
    answer = json.loads(body)
    assert answer["component"] == "si-core-gs"
    assert answer["via"] == "si-online"


def test_override_lets_the_gate_pass_and_the_stop_completes(run):
    executor.override(run, "n3-gate-payments-approvals", "张工", "审批101已线下完成")
    assert Executor("stop", run).run() == 0
    j = Journal.open(run.journal)
    try:
        assert {r["state"] for r in j.steps() if r["verb"] == "stop"} == {"done"}
        ov = j.all("overrides")
        assert [(o["step_id"], o["by"], o["reason"]) for o in ov] == [
            ("n3-gate-payments-approvals", "张工", "审批101已线下完成")]
        n1 = next(e for e in j.evidence("n1-gate-collection-plan") if e["kind"] == "gate")["data"]
        assert n1["passed"] is True
        assert len(n1["per_agency"]) == 45 * 6  # every agency of every line
        n3 = next(e for e in j.evidence("n3-gate-payments-approvals") if e["kind"] == "gate")["data"]
        assert n3["findings"][0]["agency"] == "140102"
        assert n3["findings"][0]["problem"] == "approval pending"
    finally:
        j.close()


def test_after_the_stop_every_channel_shows_the_notice_for_everything(run):
    for path in CHANNELS:
        for fn in ("collection", "benefit-payment", "approval"):
            code, body = request(f"http://127.0.0.1:28080{path}{fn}", {"line": "gs"})
            assert code == 503, (path, fn)
            notice = json.loads(body)
            assert notice["scope"] == "all"
            assert notice["until"] == "2023-12-01 13:00"


def test_after_the_stop_every_business_service_is_stopped_and_databases_run(run):
    for h in labmod.lab_hosts():
        if h.name not in {x.name for x in labmod.select(labmod.lab_hosts(), CITIES)} or "drop" in h.groups:
            continue  # the drop's notification receiver is not a business service
        t = host(h.name)
        for s in h.services:
            if s.kind == "http" and s.name != "nginx":
                assert not t.service(s.name).is_running, f"{h.name}: {s.name} still running"
    assert host("db1").service("postgresql@15-main").is_running
    assert host("portal1").service("nginx").is_running  # serves the notice


def test_after_the_stop_every_timer_and_cron_job_is_off(run):
    t = host("jobs1")
    for timer in ("stats-report", "cert-pause-restore", "legacy-export"):
        assert not t.service(f"si-job-{timer}.timer").is_enabled
        assert not t.service(f"si-job-{timer}.timer").is_running
    cron = t.file("/etc/cron.d/si-job-card-extract").content_string
    assert not [ln for ln in cron.splitlines() if ln and not ln.startswith("#") and "=" not in ln.split()[0]]
    record = json.loads(t.file("/etc/ansible/facts.d/timed_jobs.fact").content_string)
    assert sorted(record["timers"]) == ["si-job-cert-pause-restore.timer", "si-job-stats-report.timer"]


def test_a_rerun_after_a_completed_stop_changes_nothing(run, tmp_path):
    assert Executor("stop", run).run() == 0  # every step is done: nothing runs
    # and the full stop's playbook, run again by hand, finds nothing to change
    result = run_playbook(ROOT / "playbooks/stop/full-stop.yml", LAB_INVENTORY, ident="rerun",
                          artifacts_dir=tmp_path, limit=labmod.active_limit(LAB_INVENTORY))
    assert result.ok, result.summary()
    assert sum(v.get("changed", 0) for v in result.stats.values()) == 0, result.stats


# --------------------------------------------------------------------------- deploy (N8)


def test_a_tampered_artifact_is_refused_before_anything_is_unpacked(run, tmp_path):
    import yaml

    manifest = yaml.safe_load((ROOT / "releases" / "shanxi-2023-11.yml").read_text())
    original = ROOT / manifest["artifacts"]["si-app"]["path"]
    tampered = tmp_path / original.name
    tampered.write_bytes(original.read_bytes() + b"\0")
    manifest["artifacts"]["si-app"]["path"] = str(tampered)
    bad = tmp_path / "manifest.yml"
    bad.write_text(yaml.safe_dump(manifest, allow_unicode=True))
    result = run_playbook(ROOT / "playbooks/deploy/deploy.yml", LAB_INVENTORY, ident="tampered",
                          artifacts_dir=tmp_path, limit=labmod.active_limit(LAB_INVENTORY),
                          extravars={"cutover_release_manifest": str(bad)})
    assert not result.ok
    assert "differs from the manifest sha256" in result.summary()
    assert "no host was changed" in result.summary()
    listing = host("core-qyyl").check_output("ls /opt/si-core-qyyl/releases")
    assert listing.split() == [artifacts.OLD]


def test_deploy_moves_every_component_to_the_new_release(run):
    assert Executor("deploy", run).run() == 0
    for name, component in (("core-qyyl", "si-core-qyyl"), ("counter-taiyuan", "si-counter"),
                            ("portal1", "si-app-minsheng"), ("jobs1", "si-jobs")):
        t = host(name)
        assert t.file(f"/opt/{component}/current/VERSION").content_string.strip() == artifacts.NEW
        assert t.file(f"/opt/{component}/PREVIOUS").content_string.strip() == artifacts.OLD
    assert not host("core-qyyl").service("si-core-qyyl").is_running  # stays stopped for the window


def test_restore_stops_at_the_failing_stage_naming_host_and_service_then_resumes(run):
    t = host("core-gs")
    t.run_expect([0], "mv /opt/si-core-gs/current/si_app.py /opt/si-core-gs/current/si_app.py.moved")
    with pytest.raises(StepFailed) as err:
        Executor("restore", run).run()
    msg = err.value.message
    assert "step n9-restore-core failed" in msg
    assert "core-gs" in msg
    assert "si-core-gs.service on core-gs did not become started" in msg
    assert "si_app.py" in msg  # the tail of the unit's journal names the missing program
    j = Journal.open(run.journal)
    try:
        st = {r["id"]: r["state"] for r in j.steps()}
        assert st["n9-restore-core"] == "failed"
        assert st["n10-restore-interfaces"] == "pending"
    finally:
        j.close()
    assert not host("gw1").service("si-gateway").is_running  # the next stage did not start
    t.run_expect([0], "mv /opt/si-core-gs/current/si_app.py.moved /opt/si-core-gs/current/si_app.py")
    assert Executor("restore", run).run() == 0
    j = Journal.open(run.journal)
    try:
        order = [r["id"] for r in j.db.execute(
            "SELECT id FROM steps WHERE verb='restore' ORDER BY actual_start, rowid")]
        assert order[:5] == ["n9-restore-core", "n10-restore-interfaces", "n11-restore-counters",
                             "n12-restore-online", "n12-verify-versions"]
    finally:
        j.close()


def test_after_the_restore_every_probe_reports_the_new_release(run, tmp_path):
    from cutover.cli.verify import check_versions

    rows, problems = check_versions("releases/shanxi-2023-11.yml", str(LAB_INVENTORY), limit=None,
                                    require_running=True, artifacts=str(tmp_path))
    assert problems == []
    assert rows
    assert all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]
    assert any(r["probe"].startswith("http") for r in rows)


def test_a_version_file_that_disagrees_with_the_running_process_fails(run, tmp_path):
    from cutover.cli.verify import check_versions

    t = host("core-gs")
    t.run_expect([0], f"echo 2023.11.9 > /opt/si-core-gs/releases/{artifacts.NEW}/VERSION")
    try:
        rows, _ = check_versions("releases/shanxi-2023-11.yml", str(LAB_INVENTORY), limit="core",
                                 require_running=True, artifacts=str(tmp_path))
    finally:
        t.run_expect([0], f"echo {artifacts.NEW} > /opt/si-core-gs/releases/{artifacts.NEW}/VERSION")
    bad = [(r["host"], r["component"], r["probe"].split()[0], r["found"]) for r in rows if not r["ok"]]
    assert bad == [("core-gs", "si-core-gs", "file", "2023.11.9")]


def test_rollback_brings_every_component_back_to_the_old_release(run, tmp_path):
    from cutover.cli.verify import check_versions

    rows = executor.rollback(run)["versions"]
    assert rows
    assert {r["found"] for r in rows if r["probe"].startswith("file")} == {artifacts.OLD}
    rows, _ = check_versions("releases/shanxi-2023-11.yml", str(LAB_INVENTORY), limit=None,
                             require_running=True, artifacts=str(tmp_path))
    http = [r for r in rows if r["probe"].startswith("http")]
    assert http
    assert {r["found"] for r in http} == {artifacts.OLD}  # running processes are old again
    assert not any(r["ok"] for r in rows)  # and every host is named as not on the release
