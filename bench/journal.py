"""The shared journal's cost (#16): `cutover.stop` of the shipped plan with its journal on the
lab's ops host (PostgreSQL, over loopback TCP) against the same stop with the default SQLite
file, alternating in one session.

Both sides do the same real work: after each timed stop an untimed plain run of
playbooks/restore/restore.yml brings the lab back to before the window (bench/overhead.py's
way), and each timed stop starts a new journal (a new file; the ops database emptied). Prints
per-round seconds, the journal's transactions per stop and the ratio of means. Needs the lab,
up (as `lab.up` or a rehearsal leaves it): `./inv lab.up` first. It empties the lab's own
journal on ops1 before each timed stop.

    .venv/bin/python bench/journal.py [--rounds 3]
    .venv/bin/python bench/journal.py --writes-only   # the journal's own cost: 360 writes, 5 rounds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from overhead import PLAN, back_to_before_the_window, side_by_side, through_cutover

from cutover.engine.journal import Journal
from cutover.lab import lab as labmod
from cutover.plan.lint import check


def empty(url: str) -> None:
    """The ops journal as the lab's provisioning leaves it: a database with nothing in it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP OWNED BY CURRENT_USER")


def statements(url: str) -> int:
    """Statements the journal's role has run so far (pg_stat_database's commits on its database)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
                   .fetchone()[0])


def writes(url: str, tmp: Path, count: int = 360, rounds: int = 5) -> tuple[list[float], list[float]]:
    """The journal's own cost without the playbooks: `count` writes (about what one stop
    makes, from the transaction count above) to a new SQLite file and to the ops journal,
    alternating."""
    def once(where: str | Path) -> float:
        with Journal.open(where) as journal:
            started = time.perf_counter()
            for n in range(count):
                journal.record_notification("bench", f"write {n}", "bench/journal.py", 1, True)
            return time.perf_counter() - started

    a, b = [], []
    for n in range(rounds):
        a.append(once(tmp / f"w{n}.sqlite"))
        empty(url)
        b.append(once(url))
    empty(url)
    print(f"{count} journal writes: {side_by_side('PostgreSQL', b, 'SQLite', a, digits=2)}", flush=True)
    return a, b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes-only", action="store_true", help="only the journal's own cost, no stop")
    args = parser.parse_args()
    url = labmod.journal_url()
    if url is None:
        raise SystemExit("no lab: run ./inv lab.up first")
    plan, _ = check(PLAN)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        writes(url, tmp_path)
        if args.writes_only:
            return 0
        a, b, commits = [], [], []
        for n in range(1, args.rounds + 1):  # the lab is up, as lab.up or a rehearsal leaves it
            journal = str(tmp_path / f"j{n}.sqlite")
            try:
                a.append(through_cutover(journal, tmp_path / f"a{n}"))
            finally:  # a failed stop too: the lab is left as it was found, not stopped
                back_to_before_the_window(plan, journal)
            empty(url)
            before = statements(url)
            try:
                b.append(through_cutover(url, tmp_path / f"b{n}"))
            finally:
                back_to_before_the_window(plan, url)
            commits.append(statements(url) - before)
            print(f"round {n}: SQLite {a[-1]:.1f} s, PostgreSQL {b[-1]:.1f} s "
                  f"({commits[-1]} transactions on the ops journal)", flush=True)
    print(f"{side_by_side('PostgreSQL', b, 'SQLite', a)}; transactions per stop {statistics.mean(commits):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
