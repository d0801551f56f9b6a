"""N13: the next-day check compares each timed job's volume with the baseline this window's
stop recorded, for exactly the jobs that were on when it stopped. Real ansible-playbook on
this machine (local connection) through the project's runner; the records and the jobs'
output live in a temporary directory (timed_jobs_fact_dir, si_jobs_output_dir), and nothing
here starts, stops or reads a systemd unit: the baseline reads the switch-off's record, and
the check starts jobs only in a rehearsal, which these runs are not."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from cutover.ansible import run_playbook
from cutover.paths import ROOT

CHECK = ROOT / "playbooks" / "followup" / "check-jobs.yml"
HOST = "jobs-a"

_spec = importlib.util.spec_from_file_location("job_filters", ROOT / "filter_plugins" / "jobs.py")
assert _spec
assert _spec.loader
filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(filters)


def _inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"jobs": {"hosts": {HOST: {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "si_jobs_output_dir": str(tmp_path / "out"), "timed_jobs_fact_dir": str(tmp_path / "facts")}}}}}}))
    return inv


def _output(tmp_path: Path, job: str, rows: int, mtime: float) -> None:
    d = tmp_path / "out" / job
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{int(mtime)}.csv"
    f.write_text("".join(f"{i}\n" for i in range(rows)))
    os.utime(f, (mtime, mtime))


def _fact(tmp_path: Path, name: str, data: dict) -> None:
    (tmp_path / "facts").mkdir(exist_ok=True)
    (tmp_path / "facts" / f"{name}.fact").write_text(json.dumps(data))


def _baseline(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "facts" / "job_baseline.fact").read_text())


# --------------------------------------------------------------- the stop side: the baseline


def _record_baseline(tmp_path: Path, key: str, ident: str = "baseline"):
    play = tmp_path / "baseline.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Baseline", "hosts": "jobs", "gather_facts": False,
        "tasks": [{"name": "Baseline", "ansible.builtin.include_role": {"name": "timed_jobs", "tasks_from": "baseline"},
                   "vars": {"timed_jobs_output_dir": "{{ si_jobs_output_dir }}",
                            "timed_jobs_baseline_key": key}}]}]))
    return run_playbook(play, _inventory(tmp_path), ident=ident, artifacts_dir=tmp_path / "art")


def _switched_off(tmp_path: Path, timers: list[str], cron: list[str]) -> None:
    """What the role's `disabled` leaves: the jobs that were on, recorded for this window."""
    _fact(tmp_path, "timed_jobs", {"recorded": True, "timers": timers, "cron": cron, "at": "2023-11-23T10:00:00+00:00"})


def test_the_baseline_counts_exactly_the_jobs_switched_off_and_replaces_another_windows(tmp_path):
    for job, rows in (("stats", 3), ("card", 2), ("legacy", 5)):
        _output(tmp_path, job, rows, time.time() - 60)
    _switched_off(tmp_path, ["si-job-stats.timer"], ["/etc/cron.d/si-job-card"])  # legacy was off
    _fact(tmp_path, "job_baseline", {"key": "earlier-window", "rows": {"stats": 99, "legacy": 5}, "at": "x"})
    result = _record_baseline(tmp_path, "this-window")
    assert result.ok, result.summary()
    assert _baseline(tmp_path)["key"] == "this-window"
    assert _baseline(tmp_path)["rows"] == {"stats": 3, "card": 2}


def test_a_rerun_in_the_same_window_keeps_its_baseline_and_another_key_replaces_it(tmp_path):
    _output(tmp_path, "stats", 3, time.time() - 60)
    _switched_off(tmp_path, ["si-job-stats.timer"], [])
    assert _record_baseline(tmp_path, "this-window").ok
    _output(tmp_path, "stats", 10, time.time())
    assert _record_baseline(tmp_path, "this-window", "again").ok
    assert _baseline(tmp_path)["rows"] == {"stats": 3}
    assert _record_baseline(tmp_path, "next-window", "next").ok
    assert _baseline(tmp_path) | {"at": None} == {"key": "next-window", "rows": {"stats": 10}, "at": None}


def test_a_job_switched_off_with_no_output_yet_has_a_baseline_of_0_rows(tmp_path):
    _switched_off(tmp_path, ["si-job-new.timer"], [])
    assert _record_baseline(tmp_path, "w").ok
    assert _baseline(tmp_path)["rows"] == {"new": 0}


def test_no_baseline_without_this_windows_record_of_the_jobs_switched_off(tmp_path):
    _output(tmp_path, "stats", 3, time.time())
    _fact(tmp_path, "timed_jobs", {"recorded": False, "timers": ["si-job-stats.timer"], "cron": [],
                                   "restored_at": "earlier"})  # an earlier window's, already restored
    result = _record_baseline(tmp_path, "w")
    assert not result.ok
    [failure] = result.failures
    assert failure.host == HOST
    assert "no record of the jobs switched off for this window on jobs-a" in failure.message
    assert "timed_jobs_state=disabled first" in failure.message
    assert not (tmp_path / "facts" / "job_baseline.fact").exists()


def test_a_job_name_that_is_not_a_plain_name_is_refused_before_anything_runs(tmp_path):
    _switched_off(tmp_path, ["si-job-a$(touch PWNED).timer", "si-job-...timer"], [])
    result = _record_baseline(tmp_path, "w")
    assert not result.ok
    assert "are not plain names" in result.failures[0].message
    assert not (tmp_path / "facts" / "job_baseline.fact").exists()
    assert not list(tmp_path.rglob("PWNED"))


# --------------------------------------------------------------- the next day: the check


def _restored(tmp_path: Path, at: float, timers: list[str], baseline: dict, key: str = "this-window") -> None:
    _fact(tmp_path, "timed_jobs", {"recorded": False, "timers": timers, "cron": [], "restored_epoch": int(at)})
    _fact(tmp_path, "job_baseline", {"key": key, "rows": baseline, "at": "2023-11-23T10:00:00+00:00"})


def _check(tmp_path: Path, **extra):
    return run_playbook(CHECK, _inventory(tmp_path), ident="check", artifacts_dir=tmp_path / "art",
                        extravars={"cutover_journal_id": "this-window", "cutover_rehearsal": False, **extra})


def _jobs(result) -> dict[str, dict]:
    return {j["job"]: j for j in result.evidence["gate"]["jobs"]}


def test_the_check_expects_exactly_the_baselines_jobs_and_a_job_off_before_the_window_is_not_expected(tmp_path):
    restored = time.time() - 3600
    _restored(tmp_path, restored, ["si-job-stats.timer"], {"stats": 100, "card": 10})
    _output(tmp_path, "stats", 110, restored + 60)
    _output(tmp_path, "card", 9, restored + 60)
    _output(tmp_path, "legacy", 5, restored - 86400)  # off before the window, did not run
    result = _check(tmp_path)
    assert result.ok, result.summary()
    gate = result.evidence["gate"]
    assert gate["passed"] is True
    assert set(_jobs(result)) == {"stats", "card"}
    assert gate["summary"].startswith("2/2 timed jobs ran after the restore")


def test_a_job_off_before_the_window_that_ran_anyway_and_a_volume_off_are_findings(tmp_path):
    restored = time.time() - 3600
    _restored(tmp_path, restored, ["si-job-stats.timer"], {"stats": 100, "card": 10})
    _output(tmp_path, "stats", 121, restored + 60)
    _output(tmp_path, "legacy", 5, restored + 60)
    result = _check(tmp_path)
    assert not result.ok
    findings = {f["job"]: f["problem"] for f in result.evidence["gate"]["findings"]}
    assert findings == {"stats": "121 rows against a baseline of 100: more than 20% apart",
                        "card": "did not run after the restore",
                        "legacy": "ran after the restore but was off before the window"}
    assert result.evidence["gate"]["passed"] is False
    assert "card: did not run after the restore" in result.failures[0].message


def test_a_baseline_of_0_rows_is_a_finding_unless_the_plan_allows_that_job_an_empty_output(tmp_path):
    restored = time.time() - 3600
    _restored(tmp_path, restored, ["si-job-cert.timer"], {"cert": 0, "stats": 5})
    _output(tmp_path, "cert", 0, restored + 60)
    _output(tmp_path, "stats", 5, restored + 60)
    result = _check(tmp_path)
    assert not result.ok
    [finding] = result.evidence["gate"]["findings"]
    assert finding["job"] == "cert"
    assert finding["problem"].startswith("its baseline has 0 rows, so 0 rows cannot be judged normal")
    allowed = _check(tmp_path, cutover_job_allow_empty=["cert"])
    assert allowed.ok, allowed.summary()
    assert allowed.evidence["gate"]["passed"] is True


def test_the_check_fails_without_this_windows_baseline_naming_the_host_and_what_to_run(tmp_path):
    restored = time.time() - 3600
    _restored(tmp_path, restored, ["si-job-stats.timer"], {"stats": 5}, key="earlier-window")
    _output(tmp_path, "stats", 5, restored + 60)
    result = _check(tmp_path)
    assert not result.ok
    assert "gate" not in result.evidence
    [failure] = result.failures
    assert failure.host == HOST
    assert failure.message.startswith("no job baseline of this window (this-window) on jobs-a: the one there is "
                                      "of another window (earlier-window, recorded 2023-11-23T10:00:00+00:00)")
    assert "n4-jobs-off, playbooks/stop/full-stop.yml --tags jobs" in failure.message
    assert "invoke cutover.override n13-check-job-volumes" in failure.message


def test_the_check_fails_on_a_baseline_without_a_key_when_the_window_has_one(tmp_path):
    restored = time.time() - 3600
    _restored(tmp_path, restored, [], {"stats": 5})
    (tmp_path / "facts" / "job_baseline.fact").write_text(json.dumps({"rows": {"stats": 5}}))  # the old shape
    _output(tmp_path, "stats", 5, restored + 60)
    result = _check(tmp_path)
    assert not result.ok
    assert "of another window (no journal id, recorded at an unknown time)" in result.failures[0].message


def test_jobs_allowed_an_empty_output_must_be_a_list_of_names(tmp_path):
    _restored(tmp_path, time.time(), [], {})
    result = _check(tmp_path, cutover_job_allow_empty="cert")
    assert not result.ok
    assert result.failures[0].message.startswith("cutover_job_allow_empty is a list of job names")
    assert "gate" not in result.evidence


# --------------------------------------------------------------- the comparison alone


def test_a_volume_exactly_at_the_tolerance_is_normal_and_one_row_beyond_it_is_not():
    rows = filters.job_volumes(["a 200 120", "b 200 79"], {"a": "100", "b": 100}, "100", "0.2")
    assert [(r["job"], r["ok"]) for r in rows] == [("a", True), ("b", False)]
    assert rows[1]["problem"] == "79 rows against a baseline of 100: more than 20% apart"


def test_output_written_before_the_restore_is_not_a_run():
    [row] = filters.job_volumes(["a 99 100"], {"a": 100}, 100, 0.2)
    assert row["ran_after_restore"] is False
    assert row["problem"] == "did not run after the restore"


@pytest.mark.parametrize(("lines", "baseline", "tolerance", "allow", "says"), [
    (["a 1"], {"a": 1}, 0.2, [], "not '<job> <mtime> <rows>'"),
    (["a 1 x"], {"a": 1}, 0.2, [], "the rows of a's output is 'x', not a whole number"),
    ([], {"a": -1}, 0.2, [], "the baseline of a is -1, not a whole number"),
    ([], {}, "-0.1", [], "not a share such as 0.2"),
    ([], {}, 0.2, "cert", "not a list of names"),
])
def test_data_that_is_not_what_the_check_reads_is_refused(lines, baseline, tolerance, allow, says):
    with pytest.raises(AnsibleFilterError, match=says.replace("(", r"\(")):
        filters.job_volumes(lines, baseline, 100, tolerance, allow)


# --------------------------------------------------------------- the record of what was on, per window


def _jobs_role(tmp_path: Path, state: str, key: str, require_record: bool = True, ident: str = "jobs"):
    """The role's disable or restore on this machine, with no job of its own: the timer pattern
    and the cron glob match nothing here, so only the record's rules act."""
    play = tmp_path / f"{ident}.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Jobs", "hosts": "jobs", "gather_facts": False,
        "tasks": [{"name": "Jobs", "ansible.builtin.include_role": {"name": "timed_jobs"},
                   "vars": {"timed_jobs_state": state, "timed_jobs_window_key": key,
                            "timed_jobs_require_record": require_record,
                            "timed_jobs_timer_pattern": "cutover-test-none-*.timer",
                            "timed_jobs_cron_glob": str(tmp_path / "cron.d" / "si-job-*")}}]}]))
    (tmp_path / "cron.d").mkdir(exist_ok=True)
    return run_playbook(play, _inventory(tmp_path), ident=ident, artifacts_dir=tmp_path / "art")


def _record(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "facts" / "timed_jobs.fact").read_text())


def test_a_window_never_takes_another_windows_record_of_what_was_on(tmp_path):
    """N13: the record of the jobs that were on is keyed by the window. Another window's record
    that was never switched back on is the only list of what was on before it: this window's
    switch-off refuses (nothing overwritten), its restore refuses, and its call-off leaves
    the jobs alone (jobs_untouched) instead of switching on another window's list."""
    _fact(tmp_path, "timed_jobs", {"recorded": True, "window": "j-old", "timers": ["si-job-a.timer"], "cron": [],
                                   "at": "2023-05-01T10:00:00+00:00"})
    before = _record(tmp_path)
    off = _jobs_role(tmp_path, "disabled", "j-new", ident="off")
    assert not off.ok
    assert "another window (j-old) switched the jobs off on jobs-a" in off.summary()
    assert _record(tmp_path) == before
    back = _jobs_role(tmp_path, "restored", "j-new", ident="back")
    assert not back.ok
    assert "is another window's (j-old), not this one's (j-new)" in back.summary()
    called_off = _jobs_role(tmp_path, "restored", "j-new", require_record=False, ident="abort")
    assert called_off.ok, called_off.summary()
    assert called_off.evidence["jobs_untouched"] == [HOST]
    assert _record(tmp_path) == before


def test_a_rerun_of_the_same_window_keeps_its_record_and_its_restore_uses_it(tmp_path):
    _fact(tmp_path, "timed_jobs", {"recorded": True, "window": "j-1", "timers": [], "cron": [],
                                   "at": "2023-11-23T10:00:00+00:00"})
    assert _jobs_role(tmp_path, "disabled", "j-1", ident="off").ok
    assert _record(tmp_path)["at"] == "2023-11-23T10:00:00+00:00"  # the first switch-off's record is kept
    back = _jobs_role(tmp_path, "restored", "j-1", ident="back")
    assert back.ok, back.summary()
    assert _record(tmp_path)["recorded"] is False  # switched back on, kept as evidence
    assert "jobs_untouched" not in back.evidence
