"""The next-day check of timed jobs (N13, playbooks/followup/check-jobs.yml): what each job's
newest output says, against the baseline the stop side recorded for this window
(roles/timed_jobs, tasks_from: baseline).

Plain data in, plain data out (what used to be a Jinja loop with `.update` and `.append`),
unit-tested in tests/unit/test_check_jobs.py. Standard library and ansible-core only.

    __jobs: "{{ __latest.stdout_lines | job_volumes(baseline_rows, restored_epoch, 0.2, allow_empty) }}"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def _count(value: Any, what: str) -> int:
    """A row count or a time in seconds, as int; digit strings (a fact read back) alike."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isascii() or not text.isdigit():
        raise AnsibleFilterError(f"{what} is {value!r}, not a whole number")
    return int(text)


def _latest(lines: Iterable[str]) -> dict[str, tuple[int, int]]:
    """`<job> <mtime> <rows>` per line: each job's newest output, when it was written, its rows."""
    out = {}
    for line in lines:
        parts = str(line).split()
        if len(parts) != 3:
            raise AnsibleFilterError(f"a job's newest output reads {line!r}, not '<job> <mtime> <rows>'")
        job, mtime, rows = parts
        out[job] = (_count(mtime, f"the time of {job}'s output"), _count(rows, f"the rows of {job}'s output"))
    return out


def job_volumes(latest_lines: Iterable[str], baseline: Mapping[str, Any], restored_epoch: Any,
                tolerance: Any, allow_empty: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One row per job: every job of the baseline (the jobs on when the window stopped) must
    have run after the restore, with rows within `tolerance` (a share) of its baseline; a
    baseline of 0 rows gives nothing to compare with, so it is a finding unless the job is in
    `allow_empty`. A job not in the baseline (off before the window) that ran is a finding."""
    if not isinstance(baseline, Mapping):
        raise AnsibleFilterError(f"the baseline's rows are {baseline!r}, not a mapping of job to rows")
    try:
        share = float(tolerance)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"the tolerance is {tolerance!r}, not a share such as 0.2") from None
    if not share >= 0:
        raise AnsibleFilterError(f"the tolerance is {tolerance!r}, not a share such as 0.2")
    if isinstance(allow_empty, (str, Mapping)):
        raise AnsibleFilterError(f"the jobs allowed an empty output are {allow_empty!r}, not a list of names")
    allowed = {str(job) for job in allow_empty}
    restored = _count(restored_epoch, "the restore's time")
    latest = _latest(latest_lines)
    out: list[dict[str, Any]] = []
    for job in sorted(baseline):
        base = _count(baseline[job], f"the baseline of {job}")
        mtime, rows = latest.get(job, (0, 0))
        ran = job in latest and mtime >= restored
        row: dict[str, Any] = {"job": job, "baseline_rows": base, "rows": rows, "ran_after_restore": ran}
        if not ran:
            row["problem"] = "did not run after the restore"
        elif base == 0 and job not in allowed:
            row["problem"] = (f"its baseline has 0 rows, so {rows} rows cannot be judged normal (list it in "
                              "cutover_job_allow_empty if an empty output is normal for it)")
        elif base > 0 and abs(rows - base) > base * share:
            row["problem"] = f"{rows} rows against a baseline of {base}: more than {share:.0%} apart"
        row["ok"] = "problem" not in row
        out.append(row)
    for job in sorted(set(latest) - set(baseline)):
        mtime, rows = latest[job]
        if mtime >= restored:
            out.append({"job": job, "baseline_rows": None, "rows": rows, "ran_after_restore": True,
                        "problem": "ran after the restore but was off before the window", "ok": False})
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"job_volumes": job_volumes}
