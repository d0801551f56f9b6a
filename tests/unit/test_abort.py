"""`cutover.abort` (N14, N18): the window called off. Refused, changing nothing, without a name
and a reason, before anything started, and past a point of no return unless said; otherwise the
restore's playbook steps run at once in their order with cutover_abort, the call-off is
recorded, notified and reported, and the plan's verbs no longer run in that journal. A call-off
that fails half-way is finished by running it again.

tests/data/sites/plan-abort.yml on tests/data/sites/inventory-counties.yml (every host on this
machine); the playbook marks "abort <step> <host>" for each host it works on in a call-off."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cutover.engine import abort, decisions, status
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError
from cutover.plan.lint import load_plan
from cutover.report import render

from .site_runs import marked_env, marks

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "tests" / "data" / "sites" / "plan-abort.yml"
HOSTILE = "<script>alert(1)</script> {{ 7*7 }} [red]x[/] `rm -rf /`\n操作人 / operator: 假冒"


@pytest.fixture
def env(tmp_path, monkeypatch):
    return marked_env(tmp_path, monkeypatch)


def opts(env, said: list[str] | None = None) -> RunOptions:
    return RunOptions(plan=str(PLAN), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                      rehearsal=True, auto_confirm=True, notify_urls=[],
                      say=(said if said is not None else []).append)


def runs(env) -> list[dict]:
    with Journal.open(env["journal"]) as journal:
        return journal.all("runs")


def stop(env, limit: str | None = None) -> None:
    Executor("stop", RunOptions(**{**opts(env).__dict__, "limit": limit})).run()


def call_off(env, said: list[str] | None = None, **kw) -> dict:
    return abort.abort(opts(env, said), kw.pop("by", "省社保局 王"), kw.pop("reason", "the tax side is not ready"),
                       **kw)


def test_a_call_off_needs_a_name_a_reason_and_a_started_window_and_changes_nothing_otherwise(env):
    for by, reason in (("", "why"), ("who", "  ")):
        with pytest.raises(CutoverError, match="--by NAME --reason TEXT"):
            call_off(env, by=by, reason=reason)
    assert not env["journal"].exists()
    with pytest.raises(CutoverError, match="nothing to call off: no step of plan sites-abort has started"):
        call_off(env)
    assert runs(env) == []
    assert marks(env) == []


def test_before_the_point_of_no_return_the_restore_steps_run_at_once_in_order_and_the_window_is_over(env):
    stop(env, limit="taiyuan")  # a1 at Taiyuan only; a2 (the point of no return) not reached
    said: list[str] = []
    out = call_off(env, said, reason=HOSTILE)
    assert out["stages"] == ["r1", "r2"]  # no rollback: nothing of the deploy ran; r3 is manual
    called = [line for line in marks(env) if line.startswith("abort ")]
    assert called[0] == "abort r1 prov-db"
    assert len(called) == 4
    assert {line.split()[2] for line in called[1:]} == {"ty-counter", "dt-counter", "xd-counter"}
    assert any("the window is called off by 省社保局 王" in line for line in said)
    with Journal.open(env["journal"]) as journal:
        run = journal.called_off()
        assert run["status"] == "done"
        assert run["options"]["reason"] == HOSTILE
        assert [n["event"] for n in journal.all("notifications")][-2:] == ["called_off", "run_end"]
        body = journal.all("notifications")[-2]["body"]
        assert not [line for line in body.splitlines() if line.startswith("操作人 / operator: 假冒")]  # no forged line
        assert journal.step("r1")["state"] == "pending"  # the window's restore did not happen
    for verb in ("stop", "restore"):
        with pytest.raises(CutoverError, match="the window was called off by 省社保局 王") as err:
            Executor(verb, opts(env)).run()
        assert "a new journal (--journal PATH)" in err.value.hint
    # nor do decisions or the data steps: a second operator who missed the call-off changes nothing
    with pytest.raises(CutoverError, match=r"cutover\.confirm r3 is refused"):
        decisions.confirm(opts(env), "r3", "李", "")
    with pytest.raises(CutoverError, match=r"cutover\.override r1 is refused"):
        decisions.override(opts(env), "r1", "李", "go on")
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "data.freeze", "--plan",
                           str(PLAN)], env={**os.environ, "INVOKE_CUTOVER_JOURNAL": str(env["journal"]),
                                            "INVOKE_CUTOVER_ARTIFACTS": str(env["tmp"] / "art")},
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "data.freeze is refused" in proc.stdout + proc.stderr
    with Journal.open(env["journal"]) as journal:
        assert journal.all("confirmations") == []
        assert journal.all("overrides") == []
    collected = status.collect(load_plan(PLAN)[0], Journal.open(env["journal"]))
    assert collected["called_off"]["by"] == "省社保局 王"
    out_dir = env["tmp"] / "report"
    paths = render.build(load_plan(PLAN)[0], env["journal"], out_dir)
    html = Path(paths["html"]).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "{{ 7*7 }}" in html  # shown, not evaluated
    assert "called off" in Path(paths["md"]).read_text(encoding="utf-8").lower()


def test_past_the_point_of_no_return_the_call_off_is_refused_unless_said_and_then_recorded(env):
    stop(env)  # a2, the point of no return, done
    before = runs(env)
    with pytest.raises(CutoverError, match=r"past its point of no return: a2 \(done\); nothing was changed") \
            as err:
        call_off(env)
    assert "--past-point-of-no-return" in err.value.hint
    assert runs(env) == before
    assert not [line for line in marks(env) if line.startswith("abort ")]
    out = call_off(env, past_point_of_no_return=True)
    assert out["record"]["past_point_of_no_return"] == ["a2"]
    with Journal.open(env["journal"]) as journal:
        assert journal.called_off()["options"]["past_point_of_no_return"] == ["a2"]


def test_a_call_off_that_fails_half_way_is_finished_by_running_it_again(env, monkeypatch):
    stop(env, limit="taiyuan")
    monkeypatch.setenv("CUTOVER_TEST_FAIL", "dt-counter")
    with pytest.raises(CutoverError, match="r2 failed") as err:
        call_off(env)
    assert "invoke cutover.abort again" in err.value.hint
    with Journal.open(env["journal"]) as journal:
        assert journal.called_off()["status"] == "failed"
        assert [n["event"] for n in journal.all("notifications")][-1] == "failure"
    with pytest.raises(CutoverError, match="called off"):  # the window does not go on half called off
        Executor("stop", opts(env)).run()
    monkeypatch.delenv("CUTOVER_TEST_FAIL")
    said: list[str] = []
    assert call_off(env, said)["stages"] == ["r1", "r2"]
    assert any("again: call-off run" in line and "ended failed" in line for line in said)


def test_the_shipped_plan_is_called_off_by_the_rollback_once_its_deploy_started_then_the_restore_in_order():
    plan = load_plan(ROOT / "plans" / "shanxi-2023-11.yml")[0]
    restore = ["n9-restore-core", "n10-restore-interfaces", "n11-restore-counters", "n12-restore-online",
               "n12-verify-versions", "n13-restore-jobs"]  # n11-track-counters is the cities' own
    stop_only = plan.steps("stop")
    assert [name for name, _, _ in abort._stages(plan, stop_only)] == restore
    with_deploy = [*stop_only, plan.step("n5-organise")]
    assert [name for name, _, _ in abort._stages(plan, with_deploy)] == ["rollback", *restore]


def test_a_confirmation_given_between_runs_counts_as_started_for_the_point_of_no_return(env, tmp_path):
    # the other side confirmed a point-of-no-return step (say, its deploy) before any run picked it up
    variant = PLAN.parent / f".variant-{tmp_path.name}.yml"
    variant.write_text(PLAN.read_text(encoding="utf-8").replace(
        "      - id: a2\n        title: the province stops (no way back but the restore after this)\n"
        "        playbook: tests/data/sites/site-mark.yml\n        tags: [db]\n",
        "      - id: a2\n        title: the other side deployed\n        kind: manual\n"), encoding="utf-8")
    try:
        options = RunOptions(plan=str(variant), journal=str(env["journal"]), artifacts=str(env["tmp"] / "art"),
                             notify_urls=[], say=lambda _: None)
        decisions.confirm(options, "a2", "税务局 李", "tax-2023.11.2")
        with pytest.raises(CutoverError, match=r"past its point of no return: a2"):
            abort.abort(options, "王", "the tax side is not ready")
    finally:
        variant.unlink()


def test_a_killed_call_off_left_at_work_is_stopped_and_waited_for_before_the_next_touches_a_host(env, monkeypatch):
    """N18: two ways back never race. The first call-off is killed while its playbook works on a
    counter; the second stops that orphaned playbook, waits for the work it started to end,
    and only then runs its own stages."""
    stop(env, limit="taiyuan")
    monkeypatch.setenv("CUTOVER_TEST_HOLD", "ty-counter")
    code = ("import sys; from cutover.engine import abort; from cutover.engine.session import RunOptions; "
            f"abort.abort(RunOptions(plan={str(PLAN)!r}, journal={str(env['journal'])!r}, "
            f"artifacts={str(env['tmp'] / 'art')!r}, rehearsal=True, auto_confirm=True, notify_urls=[]), "
            "'省社保局 王', 'first')")
    first = subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while "holding ty-counter" not in marks(env):
        assert first.poll() is None, "the first call-off ended before its playbook held"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.kill()  # the controller only: its ansible-playbook and the work it started live on
    first.wait()
    monkeypatch.delenv("CUTOVER_TEST_HOLD")
    said: list[str] = []
    out = call_off(env, said, reason="second")
    assert out["stages"] == ["r1", "r2"]
    assert any("the earlier cutover.abort (run 2) left ansible-playbook running" in line for line in said), said
    seen = marks(env)
    again = [i for i, line in enumerate(seen) if line == "abort r1 prov-db"][-1]
    assert seen.index("held ty-counter") < again  # the held work ended before the second began
    with Journal.open(env["journal"]) as journal:
        assert [(r["verb"], r["status"]) for r in journal.all("runs")][-2:] == [("abort", "crashed"), ("abort", "done")]
