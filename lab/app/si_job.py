#!/usr/bin/env python3
"""The lab's timed jobs (N13): statistics reports, certification pause/restore and
social-security-card extraction. Each run reads every line's database and writes one CSV
under /var/lib/si-jobs/<job>/, so the next-day check can compare output volumes.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
from pathlib import Path

QUERIES = {
    "stats-report": "SELECT agency_id, period, count(*), sum(amount) FROM contribution"
    " GROUP BY agency_id, period ORDER BY 1, 2",
    "cert-pause-restore": "SELECT id, agency_id, birth_date FROM person"
    " WHERE birth_date < DATE '1963-12-01' ORDER BY id",
    "card-extract": "SELECT id, id_no, agency_id FROM person ORDER BY id",
    "legacy-export": "SELECT id FROM agency ORDER BY id",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", required=True, choices=sorted(QUERIES))
    parser.add_argument("--out", default="/var/lib/si-jobs")
    args = parser.parse_args()
    import psycopg

    dsns: dict[str, str] = json.loads(os.environ.get("SI_JOB_DSNS", "{}"))
    out_dir = Path(args.out) / args.job
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    target = out_dir / f"{stamp}.csv"
    rows = 0
    with target.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        for line, dsn in sorted(dsns.items()):
            with psycopg.connect(dsn, connect_timeout=10) as conn:
                for rec in conn.execute(QUERIES[args.job]):
                    writer.writerow([line, *rec])
                    rows += 1
    print(f"{args.job}: {rows} rows -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
