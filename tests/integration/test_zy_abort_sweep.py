"""The call-off (`cutover.abort`, N14, N18) in the lab at the two later points the notice's
window can be called off: after the snapshot (the deploy interrupted there) and after the
deploy (new programs installed, the data handed over). Both are past the shipped plan's
point of no return (n4-core-off), so each is refused until the operator says so; then every
service, timer and cron line is as before the stop, every program the one that ran before, the
databases read-write, and a hand-off already made is reported withdrawn. The call-off after
the freeze runs in every CI run (test_stop_side); these two, several minutes of lab each, run
with `invoke test --sweep`."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from cutover.engine import abort
from cutover.engine.executor import Executor
from cutover.engine.journal import Journal
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError
from cutover.lab import artifacts
from cutover.lab import lab as labmod
from cutover.paths import ROOT

from ..step_hooks import before_step
from .conftest import CITIES, SCALE, SEED
from .outcome import lab_outcome

pytestmark = [pytest.mark.lab, pytest.mark.sweep]
PLAN = ROOT / "plans" / "shanxi-2023-11.yml"


class Interrupted(BaseException):
    """The operator's Ctrl-C, just before a named step starts."""


def interrupt_before(step_id: str):
    def interrupt() -> None:
        raise Interrupted(step_id)

    return before_step({step_id: interrupt})


@pytest.fixture(scope="module")
def before(lab, lab_vars):
    """A lab before the window, and what it looked like then."""
    labmod.up(cities=CITIES, scale=SCALE, seed=SEED, faults=[], say=print, reset=True)
    return lab_outcome({}, lab_vars)


def options(tmp_path, **kw) -> RunOptions:
    return RunOptions(plan=str(PLAN), journal=str(tmp_path / "journal.sqlite"), artifacts=str(tmp_path / "art"),
                      rehearsal=True, auto_confirm=True, yes=True, say=print, **kw)


def writable(lab_vars) -> bool:
    with psycopg.connect(host="127.0.0.1", port=lab_vars["si_db_port"], user=lab_vars["si_db_user"],
                         password=lab_vars["vault_si_db_password"], dbname="si_qyyl") as conn:
        return conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"


def called_off_as_before(opts: RunOptions, before: dict, lab_vars: dict) -> dict:
    with pytest.raises(CutoverError, match=r"past its point of no return: n4-core-off \(done\)"):
        abort.abort(opts, "省社保局 王", "税务准备不足")
    out = abort.abort(opts, "省社保局 王", "税务准备不足", past_point_of_no_return=True)
    assert out["record"]["past_point_of_no_return"][0] == "n4-core-off"
    assert out["versions"]
    assert all(row["ok"] and row["found"] == artifacts.OLD for row in out["versions"])
    after = lab_outcome({}, lab_vars)
    assert after["healthy"]
    for key in ("services", "timers", "cron"):
        assert after[key] == before[key], key
    assert writable(lab_vars)
    with pytest.raises(CutoverError, match="called off"):
        Executor("deploy", opts).run()
    return out


def test_called_off_after_the_snapshot_everything_is_as_before_the_stop(before, lab_vars, tmp_path):
    opts = options(tmp_path)
    assert Executor("stop", opts).run() == 0
    with pytest.raises(Interrupted):
        Executor("deploy", dataclasses.replace(opts, progress_factory=interrupt_before("n5-verify-snapshot"))).run()
    with Journal.open(opts.journal) as journal:
        assert journal.step("n5-snapshot")["state"] == "done"
    out = called_off_as_before(opts, before, lab_vars)
    assert out["stages"][0] == "rollback"  # the deploy verb had started: each component checked
    assert "handoff_withdrawn" not in out  # nothing was handed over


def test_called_off_after_the_deploy_the_old_programs_run_and_the_hand_off_is_withdrawn(before, lab_vars,
                                                                                      tmp_path):
    # this window's snapshot replaces the earlier call-off's only knowingly: the lab starts again
    labmod.up(cities=CITIES, scale=SCALE, seed=SEED, faults=[], say=print, reset=True)
    opts = options(tmp_path)
    assert Executor("stop", opts).run() == 0
    assert Executor("deploy", opts).run() == 0
    out = called_off_as_before(opts, before, lab_vars)
    assert out["stages"][0] == "rollback"
    withdrawn = out["handoff_withdrawn"]
    assert withdrawn["files"]
    with Journal.open(opts.journal) as journal:
        events = [n["event"] for n in journal.all("notifications")]
    assert "handoff_withdrawn" in events
