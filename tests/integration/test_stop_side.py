"""The shipped plan on the lab through the engine, one journal: the stop side (N1–N4), the
data phase with every fault the data issue names (N5–N7), the deploy (N8), a restore that
fails at its stage and resumes, version checks, and the rollback with the data (N18).

The session's lab, with one pending approval (lab fault `pending-approval`, conftest): the stop halts at the
N3 gate naming the agency and the approval, nothing after it runs; during the freeze (N2)
collection answers the notice on every channel while benefit payment still works; an
override lets the gate pass and is recorded; the stop then ends with every channel showing
the notice, every business service stopped, every timed job off; a re-run changes nothing.

The data phase: the disk too small for the snapshot (refused before anything is written);
the database down in the middle of the snapshot (pg_dump waits on a lock a prepared
transaction holds, and the server is stopped under it); a dump file changed after the
snapshot; an export file changed before the hand-off (nothing uploaded); an upload cut off
(a partial file on the drop: the hand-off resumes it); the receiver loading one row less.
Each is caught where it happens, naming what is wrong, with the step left not done; the
deploy then resumes to the end, the journal holding the manifests and the reconciliation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from cutover.ansible import run_playbook
from cutover.engine import abort, decisions, rollback
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.run import StepFailed
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError
from cutover.inventory import active_limit
from cutover.lab import artifacts
from cutover.lab import lab as labmod
from cutover.lab.podman import env as podman_env
from cutover.lab.topology import lab_hosts
from cutover.paths import LAB_INVENTORY, ROOT
from cutover.plan.lint import check as lint_check

from ..step_hooks import before_step
from .conftest import CITIES, COUNTIES, FAULTS, SCALE, SEED, host, status_json

pytestmark = pytest.mark.lab
PLAN = ROOT / "plans" / "shanxi-2023-11.yml"
CHANNELS = ["/online/", "/nearby/", "/app/minsheng/", "/app/sanjin/"]
NAME = "shanxi-2023-11"
SNAP = f"/var/backups/cutover/{NAME}"
EXPORTED = ["qyyl", "jgyl", "zynj", "gs", "sy"]


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
def run(lab, tmp_path_factory):
    """The session's lab (conftest): before the window, with one pending approval planted and a
    county counter in each city (N17: sites below the cities)."""
    tmp = tmp_path_factory.mktemp("stop")
    # #16 (N15, N16): the window's journal is the team's shared one on the lab's ops host
    journal = labmod.journal_url()
    assert str(journal).startswith("postgresql://"), journal
    return RunOptions(plan=str(PLAN), journal=journal, artifacts=str(tmp / "art"),
                      rehearsal=True, auto_confirm=True, say=print)


def test_a_quality_rule_that_is_not_sql_stops_the_stop_before_any_host_is_touched(run, tmp_path):
    # N5 screening runs first: a broken rule is found days before the window, not at the export
    plan = tmp_path / "plan.yml"
    bad = ("    si_export:\n      quality_rules:\n"
           "        - {name: broken-rule, table: person, check: \"length(id_no) == 18\"}\n")
    keep = "    cutover_data_exclude_lines: [cjyl]\n"
    plan.write_text(PLAN.read_text(encoding="utf-8").replace(keep, keep + bad), encoding="utf-8")
    opts = dataclasses.replace(run, plan=str(plan), journal=str(tmp_path / "journal.sqlite"),
                               artifacts=str(tmp_path / "art"))
    with pytest.raises(StepFailed) as err:
        Executor("stop", opts).run()
    msg = err.value.message
    assert "step prep-data-screening failed" in msg
    assert "si_export.quality_rules[broken-rule] (table person) is not valid SQL" in msg
    assert "operator does not exist" in msg
    assert state(opts, "prep-data-screening") == "failed"
    assert state(opts, "n1-gate-collection-plan") == state(opts, "n2-freeze-collection-account") == "pending"
    assert host("core-qyyl").service("si-core-qyyl").is_running
    code, body = request("http://127.0.0.1:28080/online/collection", {"line": "gs"})
    assert code != 503, body  # the core answers, no maintenance notice
    assert "MAINTENANCE" not in body
    assert json.loads(body)["component"] == "si-online"


def test_a_window_called_off_after_the_freeze_comes_back_as_before_and_goes_no_further(run, tmp_path):
    # N14, N18: a journal of its own; the stop halts at the N3 gate with collection frozen (N2)
    opts = dataclasses.replace(run, journal=str(tmp_path / "journal.sqlite"), artifacts=str(tmp_path / "art"))
    timers = host("jobs1").check_output("systemctl list-unit-files 'si-job-*.timer' --no-legend")
    with pytest.raises(StepFailed, match="n3-gate-payments-approvals failed"):
        Executor("stop", opts).run()
    assert request("http://127.0.0.1:28080/online/collection", {"line": "gs"})[0] == 503
    hostile = "税务准备不足 <b>x</b> {{ 7*7 }}"
    out = abort.abort(opts, "省社保局 王", hostile)
    # no rollback (nothing of the deploy ran), then the restore's playbook steps in its order
    assert out["stages"] == ["n9-restore-core", "n10-restore-interfaces", "n11-restore-counters",
                             "n12-restore-online", "n12-verify-versions", "n13-restore-jobs"]
    assert out["versions"]
    assert all(row["ok"] and row["found"] == artifacts.OLD for row in out["versions"])
    assert out["jobs_untouched"] == ["jobs1"]  # the window never switched them off
    assert host("jobs1").check_output("systemctl list-unit-files 'si-job-*.timer' --no-legend") == timers
    for path in CHANNELS:  # no notice: collection reaches the core again (an incomplete request)
        code, body = request(f"http://127.0.0.1:28080{path}collection", {"line": "gs"})
        assert code == 400, (path, body)
        assert "MAINTENANCE" not in body
    for url in ("http://127.0.0.1:28011/collection", "http://127.0.0.1:28101/account"):
        assert request(url, {"line": "qyyl"})[0] == 400  # the core's own front and a counter
    with pytest.raises(CutoverError, match="the window was called off by 省社保局 王"):
        Executor("stop", opts).run()
    with Journal.open(opts.journal) as j:
        assert j.called_off()["options"]["reason"] == hostile
        assert "called_off" in [n["event"] for n in j.all("notifications")]
        assert j.step("n4-jobs-off")["state"] == "pending"


def test_stop_halts_at_the_n3_gate_naming_agency_and_approval(run, datagen):
    # the planted approval is the last row the generator writes (ids are serial)
    approval_id = len(datagen.generate("qyyl", SCALE, SEED, frozenset(FAULTS))["approval"])
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
    # the N5 screening, first of the stop, counted what each line will hold back: the lab's
    # generator gives every 97th person a 15-digit ID, which the receiver's rule refuses
    screened = {m["line"]: m for m in facts(run, "prep-data-screening")["screening"]}
    assert sorted(screened) == sorted(EXPORTED)  # 城居保 (cjyl) is not handed over
    for line in EXPORTED:
        people = datagen.generate(line, SCALE, SEED, frozenset(FAULTS))["person"]
        person = next(t for t in screened[line]["tables"] if t["table"] == "person")
        assert person["rows"] == len(people)
        assert person["by_rule"] == {"id-no-18-digits": sum(1 for p in people if len(p[1]) != 18)}


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


def states(run) -> dict[str, str]:
    with Journal.open(run.journal) as j:
        return {r["id"]: r["state"] for r in j.steps()}


def counter_runs(name: str) -> bool:
    return host(name).service("si-counter").is_running


def test_override_then_the_province_a_city_and_the_rest_do_each_site_once_in_the_notices_order(run, lab_vars):
    decisions.override(run, "n3-gate-payments-approvals", "张工", "审批101已线下完成")
    # N3 checked again before the full stop: the override covers the approval it was given for,
    # not the benefit payment paid during the freeze (the test above), which has no return file yet
    with pytest.raises(StepFailed) as err:
        Executor("stop", dataclasses.replace(run, limit="province")).run()
    assert "step n4-recheck-payments failed" in err.value.message
    new = [line for line in err.value.message.splitlines()
           if line.strip().startswith("- ") and "benefit payment batch without return file" in line]
    assert len(new) == 1, err.value.message
    assert "line=gs, agency=140100" in new[0]
    assert states(run)["n4-jobs-off"] == "pending"  # nothing of the full stop started
    dsn = (f"host=127.0.0.1 port={lab_vars['si_db_port']} user={lab_vars['si_db_user']} "
           f"password={lab_vars['vault_si_db_password']} dbname=si_gs options='-c default_transaction_read_only=off'")
    with psycopg.connect(dsn) as conn:  # the agency receives the batch's return file
        conn.execute("UPDATE payment_batch SET status = 'paid', return_received = true "
                     "WHERE agency_id = '140100' AND NOT return_received")
    said: list[str] = []
    assert Executor("stop", dataclasses.replace(run, limit="province", say=said.append)).run() == 0
    st = states(run)
    assert st["n3-gate-payments-approvals"] == st["n4-jobs-off"] == st["n4-channels-off"] == "done"
    # checked again before the full stop: only the approval the override accepted, nothing new
    assert st["n4-recheck-payments"] == "done"
    assert any("nothing new since n3-gate-payments-approvals was let pass" in line for line in said), said
    assert st["n4-counters-off"] == st["n4-interfaces-off"] == st["n4-core-off"] == "pending"
    assert any(line.startswith("[11/13] n4-counters-off: not part of this run") for line in said), said
    assert any(line.startswith("[12/13] n4-interfaces-off: left for later: n4-counters-off is not done for")
               for line in said), said  # the province's interfaces wait for every city's counters
    assert all(counter_runs(name) for name in ("counter-taiyuan", "counter-datong", "counter-taiyuan-c01"))
    assert host("gw1").service("si-gateway").is_running

    assert Executor("stop", dataclasses.replace(run, limit="taiyuan")).run() == 0
    assert states(run)["n4-counters-off"] == "partial"
    assert not counter_runs("counter-taiyuan")
    assert counter_runs("counter-datong")
    assert counter_runs("counter-taiyuan-c01")  # a county is a site of its own: --limit taiyuan is the city's hosts
    assert host("gw1").service("si-gateway").is_running

    assert Executor("stop", run).run() == 0
    with Journal.open(run.journal) as j:
        assert {r["state"] for r in j.steps() if r["verb"] == "stop"} == {"done"}
        sites = {(r["step_id"], r["site"]): r for r in j.all("step_sites")}
        attempts = {a["id"]: a for a in j.all("attempts")}
        counted = {}
        for a in attempts.values():
            counted[a["step_id"]] = counted.get(a["step_id"], 0) + 1
        # the journal shows which run did which site: Taiyuan's counters by the city's run, the rest later
        # (run 2 stopped at the recheck)
        assert sites[("n4-counters-off", "taiyuan")]["run_id"] == 4
        assert {sites[("n4-counters-off", s)]["run_id"] for s in ("datong", "taiyuan-c01", "datong-c01")} == {5}
        assert sites[("n4-channels-off", "province")]["run_id"] == 3
        # screened and frozen once; each site's counters stopped once, in two attempts
        assert counted["prep-data-screening"] == counted["n2-freeze-collection-account"] == 1
        assert counted["n4-counters-off"] == 2
        # the notice's order: every site's counters stopped before the interfaces and the core
        counters_ended = max(attempts[r["attempt_id"]]["ended_at"] for (step, _), r in sites.items()
                             if step == "n4-counters-off")
        interfaces = attempts[sites[("n4-interfaces-off", "province")]["attempt_id"]]
        core = attempts[sites[("n4-core-off", "province")]["attempt_id"]]
        assert counters_ended <= interfaces["started_at"] <= core["started_at"]
        ov = j.all("overrides")
        assert [(o["step_id"], o["by"], o["reason"]) for o in ov] == [
            ("n3-gate-payments-approvals", "张工", "审批101已线下完成")]
        n1 = next(e for e in j.evidence("n1-gate-collection-plan") if e["kind"] == "gate")["data"]
        assert n1["passed"] is True
        assert len(n1["per_agency"]) == 45 * 6  # every agency of every line
        n3 = next(e for e in j.evidence("n3-gate-payments-approvals") if e["kind"] == "gate")["data"]
        assert n3["findings"][0]["agency"] == "140102"
        assert n3["findings"][0]["problem"] == "approval pending"
    assert not any(counter_runs(name) for name in ("counter-datong", "counter-taiyuan-c01", "counter-datong-c01"))


def test_after_the_stop_every_channel_shows_the_notice_for_everything(run):
    for path in CHANNELS:
        for fn in ("collection", "benefit-payment", "approval"):
            code, body = request(f"http://127.0.0.1:28080{path}{fn}", {"line": "gs"})
            assert code == 503, (path, fn)
            notice = json.loads(body)
            assert notice["scope"] == "all"
            assert notice["until"] == "2023-12-01 13:00"


def fronts() -> list[tuple[str, str, str, int]]:
    """(host, group, component, port) of every counter, core front and interface the lab runs."""
    kept = {h.name for h in labmod.select(lab_hosts(), CITIES, COUNTIES)}
    return [(h.name, g, s.name, s.port) for h in lab_hosts() if h.name in kept
            for g in ("counter", "core", "gateway") if g in h.groups
            for s in h.services if s.kind == "http" and s.port]


def test_after_the_stop_every_counter_core_front_and_interface_answers_with_the_notice(run):
    """N4: from 18:00 on 11-23 a user's app gets the notice (JSON) and a person the page,
    on every front, instead of a refused connection; each says when that front is back."""
    back = {"counter": "2023-12-01 09:00", "gateway": "2023-12-01 08:30", "core": "2023-12-01 08:00"}
    seen = set()
    for name, group, component, port in fronts():
        for fn in ("collection", "benefit-payment", "approval"):
            code, body = request(f"http://127.0.0.1:{port}/{fn}", {"line": "qyyl"})
            assert code == 503, (name, component, fn, body)
            notice = json.loads(body)
            assert (notice["code"], notice["scope"], notice["until"]) == ("MAINTENANCE", "all", back[group]), name
        code, page = request(f"http://127.0.0.1:{port}/collection", {"line": "qyyl"}, accept="text/html")
        assert code == 503, (name, component)
        assert "友情提示" in page, (name, component)
        assert back[group] in page, (name, component)
        assert request(f"http://127.0.0.1:{port}/health")[0] == 503  # never taken for the service itself
        seen.add(group)
    assert seen == set(back)


def test_after_the_stop_every_business_service_is_stopped_and_databases_run(run):
    for h in lab_hosts():
        if h.name not in {x.name for x in labmod.select(lab_hosts(), CITIES, COUNTIES)} or "drop" in h.groups:
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
    # and the full stop's playbook, run again by hand for this window (its journal's id: the
    # jobs' baseline of this window is kept, N13), finds nothing to change
    with Journal.open(run.journal) as j:
        window = j.identity()
    result = run_playbook(ROOT / "playbooks/stop/full-stop.yml", LAB_INVENTORY, ident="rerun",
                          artifacts_dir=tmp_path, limit=active_limit(LAB_INVENTORY),
                          extravars={"cutover_journal_id": window})
    assert result.ok, result.summary()
    assert sum(v.get("changed", 0) for v in result.stats.values()) == 0, result.stats


def test_a_second_process_reads_the_shared_journal_with_no_secret_in_sight(run, shared_status):
    """#16 (N15, N16): the stop side ran on the ops host's PostgreSQL; `cutover.status --json`
    from another process shows the whole stop done and the URL without any secret. Kept for
    test_rehearse, which compares it with its SQLite journal's."""
    shared = status_json(run.journal)
    assert shared["journal"].startswith("postgresql://cutover@127.0.0.1:25434/cutover_journal?passfile=/")
    password = labmod.LAB_JOURNAL_PGPASS.read_text().strip().rsplit(":", 1)[1]
    assert password not in json.dumps(shared, ensure_ascii=False)
    stop = {s["id"]: s["state"] for s in shared["steps"] if s["verb"] == "stop"}
    assert set(stop.values()) == {"done"}, stop
    assert [o["step_id"] for o in shared["overrides"]] == ["n3-gate-payments-approvals"]
    shared_status.update(shared)


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
                          artifacts_dir=tmp_path, limit=active_limit(LAB_INVENTORY),
                          extravars={"cutover_release_manifest": str(bad)})
    assert not result.ok
    assert "differs from the manifest sha256" in result.summary()
    assert "no host was changed" in result.summary()
    listing = host("core-qyyl").check_output("ls /opt/si-core-qyyl/releases")
    assert listing.split() == [artifacts.OLD]


# --------------------------------------------------------------------------- data (N5–N7, N18)


def drop_files(path: str) -> list[str]:
    out = host("drop1").run(f"find /srv/drop/{path} -type f 2>/dev/null | sort")
    return out.stdout.split()


def facts(opts, step: str) -> dict:
    """What the step's latest attempt recorded (its playbook's set_stats)."""
    j = Journal.open(opts.journal)
    try:
        return [e["data"] for e in j.evidence(step) if e["kind"] == "facts"][-1]
    finally:
        j.close()


def state(opts, step: str) -> str:
    j = Journal.open(opts.journal)
    try:
        return j.step(step)["state"]
    finally:
        j.close()


@pytest.fixture(scope="module")
def d(run, lab_vars):
    """The data phase's fault tests share the stop side's journal; a hook runs a test's
    action just before a named step starts."""
    hooks: dict = {}
    opts = dataclasses.replace(run, progress_factory=before_step(hooks))
    dsn = (f"host=127.0.0.1 port={lab_vars['si_db_port']} user={lab_vars['si_db_user']} "
           f"password={lab_vars['vault_si_db_password']} options='-c default_transaction_read_only=off'")
    return SimpleNamespace(opts=opts, hooks=hooks, dsn=dsn, tmp=Path(run.artifacts).parent,
                           export=Path(run.artifacts) / "data" / NAME / "export")


def test_a_snapshot_that_does_not_fit_is_refused_before_anything_is_written(d):
    # the container's /dev/shm is a 64 MiB tmpfs: smaller than six databases plus the reserve
    proc = subprocess.run([str(ROOT / "inv"), "data.snapshot", "--dir", "/dev/shm/cutover-small"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "MiB free, the snapshot needs up to" in out
    assert "nothing was written" in out
    assert host("db1").run("ls -A /dev/shm/cutover-small/" + NAME).stdout.strip() == ""
    assert state(d.opts, "n5-snapshot") == "pending"


def test_a_prepared_transaction_left_open_stops_the_freeze_naming_it(d):
    """A prepared transaction outlives its session and could commit its writes after the
    freeze: the freeze refuses while one is open (N5)."""
    with psycopg.connect(d.dsn, dbname="si_qyyl", autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE contribution IN ACCESS EXCLUSIVE MODE")
        conn.execute("PREPARE TRANSACTION 'cutover_test_hold'")
    try:
        with pytest.raises(StepFailed) as err:
            Executor("deploy", d.opts).run()
    finally:
        with psycopg.connect(d.dsn, dbname="si_qyyl", autocommit=True) as conn:
            conn.execute("ROLLBACK PREPARED 'cutover_test_hold'")
    assert "step n5-freeze failed" in err.value.message
    assert "si_qyyl: prepared transaction(s) still open: cutover_test_hold (si_owner" in err.value.message
    assert state(d.opts, "n5-freeze") == "failed"


def test_the_database_going_down_mid_snapshot_fails_the_step_and_leaves_no_partial_dump(d):
    db1 = host("db1")
    hold = ("sudo -u postgres env PGOPTIONS='-c default_transaction_read_only=off' psql -X -q -p 25432"
            " -d si_qyyl -c 'BEGIN' -c 'LOCK TABLE contribution IN ACCESS EXCLUSIVE MODE'"
            " -c \"PREPARE TRANSACTION 'cutover_test_hold'\"")
    # after the freeze, just before the snapshot: a lock the dump has to wait for
    d.hooks["n5-snapshot"] = lambda: db1.run_expect([0], hold)
    failure: dict = {}

    def deploy():
        try:
            Executor("deploy", d.opts).run()
        except StepFailed as exc:
            failure["error"] = exc

    worker = threading.Thread(target=deploy)
    worker.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # pg_dump of si_qyyl waits for the lock: the dump is running
            waiting = db1.run("sudo -u postgres psql -X -At -p 25432 -c \"SELECT count(*) FROM pg_stat_activity"
                              " WHERE datname = 'si_qyyl' AND application_name = 'pg_dump'"
                              " AND wait_event_type = 'Lock'\"").stdout.strip()
            if waiting not in ("", "0"):
                break
            time.sleep(1)
        else:
            pytest.fail("pg_dump never started on si_qyyl")
        assert db1.run("ls -d " + SNAP + "/si_qyyl.partial").rc == 0  # mid-snapshot indeed
        db1.run_expect([0], "systemctl stop postgresql@15-main")
        worker.join(timeout=300)
    finally:
        db1.run_expect([0], "systemctl start postgresql@15-main")
        for _ in range(30):
            if db1.run("sudo -u postgres psql -X -q -p 25432 -d si_qyyl"
                       " -c \"ROLLBACK PREPARED 'cutover_test_hold'\"").rc == 0:
                break
            time.sleep(1)
    message = str(failure["error"])
    assert "step n5-snapshot failed" in message
    assert "snapshot of si_qyyl failed; its partial files were removed" in message
    assert state(d.opts, "n5-freeze") == "done"
    assert state(d.opts, "n5-snapshot") == "failed"
    assert db1.run(f"ls -d {SNAP}/si_qyyl.partial {SNAP}/si_qyyl").rc != 0


def test_while_frozen_a_business_role_cannot_switch_the_freeze_off_and_write(d):
    """N5: the freeze holds. The lab's applications connect as si_owner, which owns every table;
    d.dsn turns default_transaction_read_only off at connect, as any client could."""
    assert state(d.opts, "n5-freeze") == "done"
    for opening in ("SET default_transaction_read_only = off", "BEGIN READ WRITE"):
        with psycopg.connect(d.dsn, dbname="si_sy", autocommit=True) as conn:
            conn.execute(opening)
            for write in ("DELETE FROM approval WHERE false", "CREATE TABLE cutover_smuggled (a int)"):
                with pytest.raises(psycopg.Error, match="is frozen for the cutover"):
                    conn.execute(write)
                if opening.startswith("BEGIN"):
                    conn.execute("ROLLBACK")
                    conn.execute(opening)
            assert conn.execute("SELECT count(*) > 0 FROM approval").fetchone()[0]  # reads still work


def test_a_snapshot_still_at_work_from_a_killed_attempt_is_waited_for_then_refused(d, tmp_path):
    """N18: a pg_dump left running by a killed run holds the snapshot directory's lock (it
    inherits it); a new attempt waits, then refuses, and never races its files."""
    db1 = host("db1")
    lock = f"/var/backups/cutover/.{NAME}.lock"
    holder = subprocess.Popen(["ssh", "-F", str(labmod.SSH_DIR / "config"), "db1",
                               f"exec sudo -u postgres flock {lock} sleep 60"])
    try:
        deadline = time.monotonic() + 30
        while db1.run(f"sudo -u postgres flock -n {lock} true").rc == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        result = run_playbook(ROOT / "playbooks/data/snapshot.yml", LAB_INVENTORY, ident="locked",
                              artifacts_dir=tmp_path, limit=active_limit(LAB_INVENTORY),
                              extravars={"cutover_plan": NAME, "pg_data_lock_wait": 4})
    finally:
        holder.kill()
        holder.wait()
        db1.run("pkill -f '^flock .*lock sleep 60'; pkill -x sleep; true")  # it outlives its ssh client
    assert not result.ok
    assert "an earlier snapshot or restore is still at work after waiting 4 s" in result.summary()
    assert "nothing was started" in result.summary()
    assert db1.run(f"ls -d {SNAP}/si_qyyl.partial").rc != 0


def test_a_dump_file_changed_after_the_snapshot_is_named_by_the_verification(d):
    def tamper():
        host("db1").run_expect([0], f"f=$(ls {SNAP}/si_gs/*.dat.gz | head -1); printf x >> $f")

    d.hooks["n5-verify-snapshot"] = tamper
    with pytest.raises(StepFailed) as err:
        Executor("deploy", d.opts).run()  # resumes: the snapshot is taken now, then verified
    message = str(err.value)
    assert "step n5-verify-snapshot failed" in message
    assert f"{SNAP}/si_gs/" in message
    assert "bytes, the manifest says" in message
    assert state(d.opts, "n5-snapshot") == "done"
    assert state(d.opts, "n5-verify-snapshot") == "failed"


def test_rollback_data_refuses_a_snapshot_that_does_not_verify_and_drops_nothing(d):
    with pytest.raises(CutoverError) as err:
        rollback.rollback(d.opts, data=True)
    assert "does not verify" in str(err.value)
    with psycopg.connect(d.dsn, dbname="si_gs") as conn:  # still there
        assert conn.execute("SELECT count(*) FROM person").fetchone()[0] > 0


def test_an_export_file_changed_before_the_hand_off_stops_it_before_any_upload(d):
    saved = {}

    def tamper():
        path = d.export / "qyyl" / "person.csv"
        saved["data"] = path.read_bytes()
        path.write_bytes(saved["data"].replace(b"\n2,", b"\n3,", 1))  # same size, other content

    d.hooks["n6-upload-notify"] = tamper
    # the operator's repair of the dump: a new snapshot of the window (its journal; the databases
    # are still frozen); the resumed deploy verifies it again before anything else
    subprocess.run([str(ROOT / "inv"), "data.snapshot", "--journal", d.opts.journal], cwd=ROOT, check=True,
                   timeout=600)
    with pytest.raises(StepFailed) as err:
        Executor("deploy", d.opts).run()
    message = str(err.value)
    assert "step n6-upload-notify failed" in message
    assert "export/qyyl/person.csv: sha256 differs from the manifest" in message
    assert "nothing was uploaded" in message
    assert drop_files(f"inbox/{NAME}") == []
    for step in ("n5-verify-snapshot", "n5-export"):
        assert state(d.opts, step) == "done"
    assert state(d.opts, "n6-upload-notify") == "failed"
    (d.export / "qyyl" / "person.csv").write_bytes(saved["data"])


def test_an_interrupted_upload_resumes_and_the_receipt_one_row_short_fails_reconciliation(d):
    local = d.export / "qyyl" / "contribution.csv"
    data = local.read_bytes()

    def interrupted():  # what an upload cut off halfway leaves on the drop
        part = f"/srv/drop/inbox/{NAME}/qyyl/contribution.csv.part"
        host("drop1").run_expect([0], f"install -d -o handoff -g handoff /srv/drop/inbox/{NAME}"
                                 f" /srv/drop/inbox/{NAME}/qyyl")
        subprocess.run(["podman", "exec", "-i", "cutover-lab-drop1", "sh", "-c", f"cat > {part} && chown handoff: {part}"],
                       input=data[: len(data) // 2], check=True, env=podman_env())

    def interrupted_and_the_receiver_loses_a_row():
        interrupted()
        # tax1's receiver service answers the hand-off as soon as its index is there (N7)
        host("tax1").run_expect([0], "mkdir -p /etc/si-lab && echo 'lose-row contribution' > /etc/si-lab/receiver-fault")

    d.hooks["n6-upload-notify"] = interrupted_and_the_receiver_loses_a_row
    with pytest.raises(StepFailed) as err:
        Executor("deploy", d.opts).run()
    message = str(err.value)
    assert "step n7-reconcile-receipt failed" in message
    for line in EXPORTED:
        assert f"{line}.contribution: rows differ by -1" in message
    assert state(d.opts, "n6-upload-notify") == "done"
    assert state(d.opts, "n7-reconcile-receipt") == "failed"
    handoff = facts(d.opts, "n6-upload-notify")["handoff"]
    assert f"inbox/{NAME}/qyyl/contribution.csv" in handoff["resumed"]
    on_drop = host("drop1").file(f"/srv/drop/inbox/{NAME}/qyyl/contribution.csv").content
    assert on_drop == data
    assert not host("drop1").file(f"/srv/drop/inbox/{NAME}/qyyl/contribution.csv.part").exists


def test_after_the_receiver_is_fixed_the_deploy_resumes_and_the_receipt_reconciles(d):
    # the tax department fixes its loader and answers again (its receipt of the bad load removed)
    host("tax1").run_expect([0], "rm -f /etc/si-lab/receiver-fault")
    host("drop1").run_expect([0], f"rm -f /srv/drop/receipts/{NAME}/receipt.json")
    assert Executor("deploy", d.opts).run() == 0
    rec = facts(d.opts, "n7-reconcile-receipt")["reconciliation"]
    assert rec["passed"] is True
    assert {r["line"] for r in rec["tables"]} == set(EXPORTED)  # 城居保 is not handed over (N5)
    assert all(r["status"] == "match" for r in rec["tables"])
    assert all(r["status"] == "match" for r in rec["backup"])
    exports = {m["line"]: m for m in facts(d.opts, "n5-export")["export"]}
    assert set(exports) == set(EXPORTED)
    person = next(t for t in exports["qyyl"]["tables"] if t["table"] == "person")
    held = exports["qyyl"]["rejected"]["person"]["id-no-18-digits"]
    assert held > 0  # 15-digit IDs are held back for fixing after the cutover
    with psycopg.connect(d.dsn, dbname="si_qyyl") as conn:
        assert person["rows"] + held == conn.execute("SELECT count(*) FROM person").fetchone()[0]
    fix = (d.tmp / "art" / "data" / NAME / "fix-after-cutover" / "qyyl" / "person.csv").read_text()
    assert fix.count("id-no-18-digits") == held
    snap = facts(d.opts, "n5-snapshot")["snapshot"]["db1"]["databases"]
    assert set(snap) == {f"si_{line}" for line in [*EXPORTED, "cjyl"]}  # the way back covers every line
    manifest = json.loads(host("db1").file(f"{SNAP}/si_qyyl/manifest.json").content_string)
    assert manifest["tables"]["public.person"] == person["rows"] + held
    modes = host("db1").run(f"stat -c %a {SNAP}/si_qyyl/*").stdout.split()
    assert set(modes) == {"600"}


def test_a_snapshot_run_alone_after_the_journal_was_moved_aside_does_not_replace_the_windows(d):
    """N18: the window's snapshot is its way back; a standalone data.snapshot under another
    journal (or none) is refused, and the snapshot stays as it was."""
    before = host("db1").check_output(f"sha256sum {SNAP}/si_qyyl/manifest.json")
    env = {**os.environ, "INVOKE_CUTOVER_JOURNAL": str(d.tmp / "moved-aside.sqlite")}
    proc = subprocess.run([str(ROOT / "inv"), "data.snapshot"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "it is not replaced; nothing was written" in out
    assert "invoke data.snapshot --replace" in out
    assert host("db1").check_output(f"sha256sum {SNAP}/si_qyyl/manifest.json") == before


def test_the_receiver_was_notified_through_the_labs_inbox(d):
    messages = host("drop1").check_output("curl -s http://127.0.0.1:28090/messages")
    assert "移交数据已上传" in messages


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

    # N17, on_site_failure: continue (N11): a county's counter unreachable during the counters'
    # restore; every other site comes back at its stage, the county is reported and notified
    county = ["podman", "exec", "cutover-lab-counter-taiyuan-c01"]
    subprocess.run([*county, "sh", "-c", "systemctl stop ssh; pkill -KILL sshd; true"], check=True,
                   env=podman_env())
    with pytest.raises(StepFailed) as err:
        Executor("restore", run).run()
    assert "n11-restore-counters failed at 太原市第1县区 (taiyuan-c01)" in err.value.message
    assert "invoke cutover.restore --limit taiyuan-c01" in err.value.hint
    st = states(run)
    assert st["n11-restore-counters"] == "failed"
    assert st["n12-restore-online"] == st["n13-restore-jobs"] == "done"
    assert st["n12-verify-versions"] == "partial"  # held at the county until its counter is back
    assert counter_runs("counter-taiyuan")
    assert counter_runs("counter-datong-c01")
    assert host("jobs1").service("si-job-stats-report.timer").is_enabled  # the last stage came back
    with Journal.open(run.journal) as j:
        told = [n["title"] for n in j.all("notifications") if n["event"] == "site_failure"]
    assert told == [f"[{NAME}] 站点失败，其他站点继续: n11-restore-counters 恢复柜面业务，跟踪检查业务办理情况: "
                    "太原市第1县区 (taiyuan-c01)"]
    # after the fix, the county alone: its counter, then its held version check
    subprocess.run([*county, "systemctl", "start", "ssh"], check=True, env=podman_env())
    assert Executor("restore", dataclasses.replace(run, limit="taiyuan-c01")).run() == 0
    assert counter_runs("counter-taiyuan-c01")
    assert {state for step, state in states(run).items() if step.startswith(("n9", "n10", "n11", "n12", "n13-r"))} \
        == {"done"}
    j = Journal.open(run.journal)
    try:
        # by when each began, then in the plan's order (the journal may be PostgreSQL: no rowid)
        in_plan = {step.id: index for index, step in enumerate(lint_check(str(PLAN))[0].steps())}
        order = [r["id"] for r in sorted((r for r in j.steps() if r["verb"] == "restore"),
                                         key=lambda r: (r["actual_start"] or "", in_plan[r["id"]]))]
        # the notice's stages in its order (the N14 stand-by, a wait step, marks a time, not a stage)
        assert [step for step in order if step != "n14-emergency-standby"][:6] == [
            "n9-restore-core", "n10-restore-interfaces", "n11-restore-counters", "n11-track-counters",
            "n12-restore-online", "n12-verify-versions"]
        assert j.step("n14-emergency-standby")["state"] == "done"
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


def test_after_the_08_00_unfreeze_a_business_role_writes_again(run, d):
    assert state(d.opts, "n9-restore-core") == "done"
    plain = d.dsn.replace(" options='-c default_transaction_read_only=off'", "")
    with psycopg.connect(plain, dbname="si_sy") as conn:  # a transaction, rolled back
        conn.execute("CREATE TABLE cutover_write_check (a int)")
        conn.execute("DELETE FROM approval WHERE false")
        assert conn.execute("SELECT count(*) FROM pg_event_trigger WHERE evtname = 'cutover_freeze'"
                            ).fetchone()[0] == 0
        conn.rollback()


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


def test_rollback_with_data_brings_the_old_release_and_the_snapshots_data_back(run, d, tmp_path):
    from cutover.cli.verify import check_versions

    with psycopg.connect(d.dsn, dbname="si_jgyl", autocommit=True) as conn:
        deleted = conn.execute("DELETE FROM account WHERE person_id <= 10").rowcount  # a bad migration, say
    # the databases are live again since 08:00: a data rollback would discard what business wrote
    with pytest.raises(CutoverError) as err:
        rollback.rollback(run, data=True)
    assert "the databases have changed since the snapshot" in err.value.message
    assert deleted > 0
    jgyl = next(ln for ln in err.value.message.splitlines() if "db1 si_jgyl (open for business again):" in ln)
    assert "row(s) differ from the snapshot" in jgyl
    assert f"public.account {-deleted:+d}" in jgyl
    assert "--discard-writes-since-snapshot --by NAME --reason TEXT" in err.value.hint
    with psycopg.connect(d.dsn, dbname="si_jgyl") as conn:  # nothing was touched
        assert conn.execute("SELECT count(*) FROM account WHERE person_id <= 10").fetchone()[0] == 0
    assert host("core-gs").check_output("readlink /opt/si-core-gs/current").endswith(artifacts.NEW)
    # run alone (as from AWX), the playbook refuses the same, on the database host itself
    alone = run_playbook(ROOT / "playbooks/data/restore-snapshot.yml", LAB_INVENTORY, ident="restore-alone",
                         artifacts_dir=tmp_path, limit=active_limit(LAB_INVENTORY),
                         extravars={"cutover_plan": NAME})
    assert not alone.ok
    assert "the databases have changed since the snapshot" in alone.summary()
    assert "si_jgyl (open for business again)" in alone.summary()
    with psycopg.connect(d.dsn, dbname="si_jgyl") as conn:  # still nothing touched
        assert conn.execute("SELECT count(*) FROM account WHERE person_id <= 10").fetchone()[0] == 0
    out = rollback.rollback(run, data=True, discard={"by": "王处长", "reason": "迁移删错了账户"})
    assert out["discard_writes"]["by"] == "王处长"
    rows = out["versions"]
    assert rows
    assert {r["found"] for r in rows if r["probe"].startswith("file")} == {artifacts.OLD}
    rows, _ = check_versions("releases/shanxi-2023-11.yml", str(LAB_INVENTORY), limit=None,
                             require_running=True, artifacts=str(tmp_path))
    http = [r for r in rows if r["probe"].startswith("http")]
    assert http
    assert {r["found"] for r in http} == {artifacts.OLD}  # running processes are old again
    assert not any(r["ok"] for r in rows)  # and every host is named as not on the release
    restored = out["data_restored"]["db1"]
    manifest = json.loads(host("db1").file(f"{SNAP}/si_jgyl/manifest.json").content_string)
    assert restored["si_jgyl"]["tables"] == manifest["tables"]
    with psycopg.connect(d.dsn, dbname="si_jgyl") as conn:
        assert conn.execute("SELECT count(*) FROM account").fetchone()[0] == manifest["tables"]["public.account"]


def test_after_a_data_rollback_past_08_00_data_unfreeze_opens_the_databases_again(run, d):
    """The snapshot was taken frozen, so the databases come back frozen; after the 08:00 stage
    has run, data.unfreeze is the way to open them (and proves the business role writes)."""
    plain = d.dsn.replace(" options='-c default_transaction_read_only=off'", "")
    with psycopg.connect(d.dsn, dbname="si_sy", autocommit=True) as conn, \
            pytest.raises(psycopg.Error, match="is frozen for the cutover"):
        conn.execute("DELETE FROM approval WHERE false")
    proc = subprocess.run([str(ROOT / "inv"), "data.unfreeze"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "a test write by its business role worked" in proc.stdout
    with psycopg.connect(plain, dbname="si_sy") as conn:
        conn.execute("DELETE FROM approval WHERE false")
        conn.rollback()
