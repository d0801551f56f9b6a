"""The journal on PostgreSQL (issue #16): a team's controllers share one journal. The same
plan ends with the same status as on a SQLite file; two controllers on one journal take
turns (the second is refused naming the first, and after the first is SIGKILLed it takes
over and resumes, nothing repeated or lost); a second operator confirms and overrides while
a run sleeps; a URL carrying a password is refused before anything is opened or created.

A real PostgreSQL 15 (tests/pgcluster.py), real playbooks on local hosts, the controllers as
operators run them: `invoke cutover.*` in processes of their own."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.journal_db import journal_exists, journal_location, shown
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError

from ..pgcluster import throwaway_postgres
from .site_runs import wait_for
from .test_waiting import STOP_AT, Dial, Sleeper

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "plans" / "mini.yml"
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
DATABASES = ["same_status", "two_controllers", "sleeper", "refused"]


@pytest.fixture(scope="module")
def pg():
    with throwaway_postgres("cutover", DATABASES) as cluster:
        yield cluster


def url_of(pg, db: str) -> str:
    return f"postgresql://cutover@127.0.0.1:{pg['port']}/{db}"


@pytest.fixture
def env(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    switches = {"CUTOVER_TEST_MARKER": str(marker), "CUTOVER_TEST_GATE_FAIL": str(tmp_path / "gate-fails")}
    for name, value in switches.items():
        monkeypatch.setenv(name, value)  # the playbooks of a run in this process
    plan = tmp_path / "mini.yml"
    plan.write_text(MINI.read_text().replace("vars: {slow_seconds: 6}", "vars: {slow_seconds: 0}"))
    return {"tmp": tmp_path, "marker": marker, "plan": plan,
            "environ": {**os.environ, **switches, "INVOKE_CUTOVER_ARTIFACTS": str(tmp_path / "art")}}


def as_operator(env, name: str) -> dict[str, str]:
    """Another operator's login; Ansible's temporary files under this test's directory (a
    `~name` with no such user on this machine would be made inside the checkout)."""
    return {"USER": name, "LOGNAME": name, "ANSIBLE_REMOTE_TMP": str(env["tmp"] / f"{name}-ansible-tmp")}


def cli(env, journal: str, *args: str, operator: str | None = None, check: bool = True,
        plan: Path | None = None) -> subprocess.CompletedProcess:
    environ = {**env["environ"], **(as_operator(env, operator) if operator else {})}
    proc = subprocess.run([*INV, *args, "--plan", str(plan or env["plan"]), "--journal", journal],
                          capture_output=True, text=True, cwd=ROOT, env=environ, timeout=180, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def marks(env) -> list[str]:
    lines = env["marker"].read_text().splitlines() if env["marker"].exists() else []
    return [line.split()[0] for line in lines if line.endswith(" end")]


def runs(journal: str) -> list[dict]:
    with Journal.open(journal_location(journal), create=False) as the_journal:
        return the_journal.all("runs")



TIME = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+([+-]\d\d:\d\d)?$")
SAID_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")  # a message's "at: 2023-11-20 18:00"


def comparable(data, tmp: Path):
    """A status with what differs from one run to the next blanked: times, durations, the
    temporary directory, the journal's own name (compared on its own)."""
    if isinstance(data, dict):
        return {key: "<journal>" if key == "journal" else comparable(value, tmp) for key, value in data.items()}
    if isinstance(data, list):
        return [comparable(value, tmp) for value in data]
    if isinstance(data, float):
        return "<seconds>"
    if isinstance(data, str):
        return "<time>" if TIME.match(data) else SAID_TIME.sub("<time>", data.replace(str(tmp), "<tmp>"))
    return data


def test_a_plan_run_on_postgresql_ends_with_the_status_it_has_on_a_sqlite_file(env, pg):
    url = url_of(pg, "same_status")
    statuses = {}
    for name, journal in (("sqlite", str(env["tmp"] / "j.sqlite")), ("postgresql", url)):
        env["marker"].unlink(missing_ok=True)
        opts = RunOptions(plan=str(env["plan"]), journal=journal, artifacts=str(env["tmp"] / "art" / name),
                          rehearsal=True, auto_confirm=True, say=lambda *_: None, notify_urls=[])
        assert Executor("stop", opts).run() == 0
        assert marks(env) == ["s1", "s2", "s5"]
        said = cli(env, journal, "cutover.status", "--json")
        statuses[name] = json.loads(said.stdout)
    assert statuses["postgresql"]["journal"] == url  # shown as given: it carries no secret
    assert [step["state"] for step in statuses["postgresql"]["steps"]] == ["done"] * 5 + ["pending"]
    pg_status = comparable(statuses["postgresql"], env["tmp"] / "art" / "postgresql")
    assert pg_status == comparable(statuses["sqlite"], env["tmp"] / "art" / "sqlite")
    cli(env, url, "cutover.report")  # no file to write beside: into the artifacts directory
    assert f"journal `{url}`" in (env["tmp"] / "art" / "report.md").read_text()


def test_two_controllers_on_one_journal_take_turns_and_the_second_resumes_after_the_first_is_killed(env, pg):
    """Two operators, two checkouts' worth of controllers (each its own artifacts), one
    PostgreSQL journal: the run lock is the server's, and it dies with its holder."""
    url = url_of(pg, "two_controllers")
    slow = env["tmp"] / "slow.yml"  # s2 takes 6 s: long enough to be caught in the middle
    slow.write_text(MINI.read_text())
    first = subprocess.Popen(
        [*INV, "cutover.stop", "--plan", str(slow), "--journal", url, "--rehearsal", "--auto-confirm"],
        cwd=ROOT, env={**env["environ"], **as_operator(env, "alice"),
                       "INVOKE_CUTOVER_ARTIFACTS": str(env["tmp"] / "alice")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: env["marker"].exists() and "s2 start" in env["marker"].read_text())
        refused = cli(env, url, "cutover.stop", "--rehearsal", "--auto-confirm", operator="bob",
                      plan=slow, check=False)
        assert refused.returncode != 0
        said = refused.stdout + refused.stderr
        assert re.search(rf"another run holds this journal: alice@\S+ \(pid {first.pid}, cutover\.stop\) since "
                         r"\d{4}-\d\d-\d\dT", said), said
        os.killpg(first.pid, signal.SIGKILL)  # mid-step: s2's playbook is at work
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    with Journal.open(url, create=False) as journal:
        assert (journal.step("s1")["state"], journal.step("s2")["state"]) == ("done", "running")
    env["environ"]["INVOKE_CUTOVER_ARTIFACTS"] = str(env["tmp"] / "bob")
    resumed = cli(env, url, "cutover.stop", "--rehearsal", "--auto-confirm", operator="bob", plan=slow)
    assert re.search(r"run 1 \(cutover\.stop, alice@\S+\) ended without closing: recorded as crashed",
                     resumed.stdout), resumed.stdout
    assert "s1: done earlier" in resumed.stdout
    assert "s2: was left running by a run that did not finish; checking it again" in resumed.stdout
    assert marks(env) == ["s1", "s2", "s5"]  # s1 not repeated, s2 completed, none skipped
    assert [(run["status"], run["operator"].split("@")[0]) for run in runs(url)] == [("crashed", "alice"),
                                                                                    ("done", "bob")]


def test_while_a_run_sleeps_a_second_operator_confirms_and_overrides_on_the_shared_journal(env, pg):
    url = url_of(pg, "sleeper")
    (env["tmp"] / "gate-fails").touch()
    failed = cli(env, url, "cutover.stop", "--rehearsal", check=False)  # stops at the failed gate s3
    assert "step s3 failed" in failed.stdout + failed.stderr
    dial = Dial(STOP_AT - dt.timedelta(seconds=50))
    sleeper = Sleeper({**env, "journal": url}, dial)
    wait_for(lambda: [run["status"] for run in runs(url)] == ["failed", "sleeping"])
    status = json.loads(cli(env, url, "cutover.status", "--json", operator="bob").stdout)
    assert [(s["run"], s["step"], s["alive"], s["pid"]) for s in status["sleeping"]] == [(2, "s3", True, os.getpid())]
    cli(env, url, "cutover.override", "s3", "--by", "王处长", "--reason", "已线下审核", operator="bob")
    cli(env, url, "cutover.confirm", "s4", "--by", "李科长", operator="bob")
    assert marks(env) == ["s1", "s2"]  # the sleeper did nothing meanwhile
    dial.forward(50)
    sleeper.end()
    assert sleeper.rc == 0, (sleeper.error, sleeper.text())
    assert "gate passed by override of 王处长: 已线下审核" in sleeper.text()
    assert "confirmed by 李科长" in sleeper.text()
    assert marks(env) == ["s1", "s2", "s5"]
    assert [run["status"] for run in runs(url)] == ["failed", "done"]


def test_a_journal_url_with_a_password_is_refused_and_nothing_is_created(env, pg):
    secret = "s3cr3t-Pw"
    for given in (f"postgresql://cutover:{secret}@127.0.0.1:{pg['port']}/refused",
                  f"postgresql://cutover@127.0.0.1:{pg['port']}/refused?password={secret}"):
        refused = cli(env, given, "cutover.stop", "--rehearsal", check=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert "carries a password; nothing was opened" in said, said
        assert all(where in said for where in ("PGPASSWORD", "~/.pgpass", "PGSERVICEFILE")), said
        assert secret not in said
        with pytest.raises(CutoverError) as err:
            journal_location(given)
        assert secret not in err.value.message + err.value.hint
    assert not journal_exists(url_of(pg, "refused"))  # no table made
    assert marks(env) == []


def test_a_journal_url_is_shown_without_any_secret():
    assert shown("postgresql://ops:pw1@db.example:5433/cutover?sslmode=require&password=pw2") == \
        "postgresql://ops@db.example:5433/cutover?sslmode=require&password=%2A%2A%2A"
    assert shown("postgresql://db.example/cutover") == "postgresql://db.example/cutover"
    assert shown(Path("/var/lib/cutover/journal.sqlite")) == "/var/lib/cutover/journal.sqlite"
