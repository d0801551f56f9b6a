"""What a window leaves behind, in a form two runs can be compared by: the journal (every
step's state and how often it was done) and the lab (services, timed jobs, programs'
versions, every business table against the snapshot taken while frozen). A clean rehearsal
and one killed mid-step at many points must leave the same outcome (N18)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg

from cutover.lab import lab as labmod

from .conftest import host

DONE = ("ok", "confirmed", "overridden")


def journal_outcome(journal: Path) -> dict:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        states = dict(db.execute("SELECT id, state FROM steps"))
        done = dict(db.execute("SELECT step_id, count(*) FROM attempts WHERE check_mode=0 AND status IN"
                               f" ({', '.join('?' * len(DONE))}) GROUP BY step_id", DONE))
        snap = db.execute("SELECT data FROM evidence WHERE step_id='n5-snapshot' AND kind='facts'"
                          " ORDER BY id DESC").fetchone()
    finally:
        db.close()
    return {"states": states, "times_done": {s: done.get(s, 0) for s in states},
            "snapshot": json.loads(snap[0])["snapshot"] if snap else {}}


def lab_outcome(snapshot: dict, lab_vars: dict) -> dict:
    st = labmod.status()
    services = {f'{h["host"]} {s["name"]}': (s.get("state"), s.get("unit_file"), s.get("healthy"), s.get("version"))
                for h in st["hosts"] for s in h.get("services", [])}
    jobs = host("jobs1")
    timers = {u: (jobs.service(u).is_enabled, jobs.service(u).is_running) for u in (
        "si-job-legacy-export.timer", "si-job-stats-report.timer", "si-job-cert-pause-restore.timer")}
    cron = jobs.file("/etc/cron.d/si-job-card-extract").content_string
    tables = {}
    for res in snapshot.values():
        for db in res.get("databases") or {}:
            manifest = json.loads(host("db1").file(f"{res['dir']}/{db}/manifest.json").content_string)
            with psycopg.connect(host="127.0.0.1", port=lab_vars["si_db_port"], user=lab_vars["si_db_user"],
                                 password=lab_vars["vault_si_db_password"], dbname=db) as conn:
                for table, rows in manifest["tables"].items():
                    now = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                    tables[f"{db}.{table}"] = now - rows  # 0: as the snapshot left it
    return {"healthy": st["healthy"], "services": services, "timers": timers, "cron": cron,
            "rows_since_snapshot": tables}
