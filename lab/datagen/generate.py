#!/usr/bin/env python3
"""Deterministic synthetic data for one insurance line's database.

The same seed, scale and faults always give the same rows, so tests can predict row
counts (``expected_counts``) without reading the database. By default the data passes
every gate of the shipped plan; ``--fault`` plants exactly one problem per named fault:

- ``missing-plan``: one county agency lacks the current month's collection plan (N1);
- ``unpaid-batch``: one current-month benefit payment batch has no return file (N3);
- ``pending-approval``: one approval is still pending (N3);
- ``in-transit``: one business item is still in transit (N3).

Faults are planted in the enterprise pension line (qyyl) only, at agency 140102 (a county of Taiyuan).
Runs inside a lab host (python3 + python3-psycopg) or on the controller.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys

LINES = {
    "qyyl": "企业职工基本养老保险",
    "jgyl": "机关事业单位养老保险",
    "zynj": "职业年金",
    "gs": "工伤保险",
    "sy": "失业保险",
    "cjyl": "城乡居民基本养老保险",
}
CITIES = [
    ("140100", "太原市"), ("140200", "大同市"), ("140300", "阳泉市"), ("140400", "长治市"),
    ("140500", "晋城市"), ("140600", "朔州市"), ("140700", "晋中市"), ("140800", "运城市"),
    ("140900", "忻州市"), ("141000", "临汾市"), ("141100", "吕梁市"),
]
COUNTIES_PER_CITY = 3
CURRENT_PERIOD = "202311"
PERIODS = ["202309", "202310", "202311"]
NEXT_PERIOD = "202312"
FAULTS = ("missing-plan", "unpaid-batch", "pending-approval", "in-transit")
FAULT_LINE = "qyyl"
FAULT_AGENCY = "140102"
# Every so many people still carry a 15-digit first-generation ID number, in every line: the
# export holds them back for fixing after the cutover (the receiver's quality rule, N5).
LEGACY_ID_EVERY = 97

SCHEMA = """
DROP TABLE IF EXISTS in_transit, approval, payment_batch, account, contribution,
    collection_plan, person, agency, lab_seed CASCADE;
CREATE TABLE agency (id text PRIMARY KEY, name text NOT NULL, level text NOT NULL,
    parent_id text REFERENCES agency(id), city_id text);
CREATE TABLE person (id bigint PRIMARY KEY, id_no text NOT NULL UNIQUE, name text NOT NULL,
    agency_id text NOT NULL REFERENCES agency(id), birth_date date NOT NULL);
CREATE TABLE collection_plan (id bigserial PRIMARY KEY, agency_id text NOT NULL REFERENCES agency(id),
    period text NOT NULL, amount numeric(14,2) NOT NULL, created_at timestamptz NOT NULL,
    UNIQUE (agency_id, period));
CREATE TABLE contribution (id bigserial PRIMARY KEY, person_id bigint NOT NULL REFERENCES person(id),
    agency_id text NOT NULL REFERENCES agency(id), period text NOT NULL,
    amount numeric(12,2) NOT NULL, paid_at timestamptz NOT NULL);
CREATE TABLE account (person_id bigint PRIMARY KEY REFERENCES person(id),
    balance numeric(14,2) NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE payment_batch (id bigserial PRIMARY KEY, agency_id text NOT NULL REFERENCES agency(id),
    period text NOT NULL, amount numeric(14,2) NOT NULL, status text NOT NULL,
    return_received boolean NOT NULL);
CREATE TABLE approval (id bigserial PRIMARY KEY, agency_id text NOT NULL REFERENCES agency(id),
    kind text NOT NULL, status text NOT NULL, submitted_at timestamptz NOT NULL);
CREATE TABLE in_transit (id bigserial PRIMARY KEY, agency_id text NOT NULL REFERENCES agency(id),
    kind text NOT NULL, status text NOT NULL, started_at timestamptz NOT NULL);
CREATE TABLE lab_seed (seed bigint NOT NULL, scale integer NOT NULL, faults text NOT NULL,
    generated_at timestamptz NOT NULL DEFAULT now());
"""
TABLES = ["agency", "person", "collection_plan", "contribution", "account",
          "payment_batch", "approval", "in_transit"]
BASE_TIME = dt.datetime(2023, 11, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def agencies() -> list[tuple]:
    rows = [("140000", "山西省社会保险局", "province", None, None)]
    for code, name in CITIES:
        rows.append((code, f"{name}社会保险经办机构", "city", "140000", code))
        for i in range(1, COUNTIES_PER_CITY + 1):
            county = f"{code[:4]}{i:02d}"
            rows.append((county, f"{name}第{i}县区经办机构", "county", code, code))
    return rows


def generate(line: str, scale: int, seed: int, faults: frozenset[str]) -> dict[str, list[tuple]]:
    """Every row of every table of one line, in load order."""
    rng = random.Random(f"{seed}:{line}")
    faulty = faults if line == FAULT_LINE else frozenset()
    ags = agencies()
    ag_ids = [a[0] for a in ags]
    out: dict[str, list[tuple]] = {t: [] for t in TABLES}
    out["agency"] = ags
    for pid in range(1, scale + 1):
        agency = ag_ids[rng.randrange(len(ag_ids))]
        birth = dt.date(1955, 1, 1) + dt.timedelta(days=rng.randrange(365 * 45))
        id_no = f"{agency}{birth:%Y%m%d}{pid % 10000:04d}"
        if pid % LEGACY_ID_EVERY == 0:  # a first-generation 15-digit ID: fails the receiver's rule
            id_no = f"{agency}{birth:%y%m%d}{pid % 1000:03d}"
        out["person"].append((pid, id_no, f"参保人{pid:07d}", agency, birth))
        out["account"].append((pid, round(rng.uniform(0, 90000), 2), BASE_TIME))
        for period in PERIODS:
            out["contribution"].append(
                (pid, agency, period, round(rng.uniform(300, 3000), 2), BASE_TIME))
    for agency in ag_ids:
        for period in PERIODS:
            plan_amount = round(rng.uniform(1e5, 1e7), 2)
            if not ("missing-plan" in faulty and agency == FAULT_AGENCY and period == CURRENT_PERIOD):
                out["collection_plan"].append((agency, period, plan_amount, BASE_TIME))
            unpaid = "unpaid-batch" in faulty and agency == FAULT_AGENCY and period == CURRENT_PERIOD
            out["payment_batch"].append(
                (agency, period, round(rng.uniform(1e5, 1e7), 2),
                 "unpaid" if unpaid else "paid", not unpaid))
    for code, _ in CITIES:  # next month's batches are scheduled, not yet due
        out["payment_batch"].append((code, NEXT_PERIOD, round(rng.uniform(1e5, 1e7), 2),
                                     "scheduled", False))
    for _ in range(max(1, scale // 10)):
        out["approval"].append((ag_ids[rng.randrange(len(ag_ids))], "benefit-claim",
                                rng.choice(["approved", "rejected"]), BASE_TIME))
    if "pending-approval" in faulty:
        out["approval"].append((FAULT_AGENCY, "benefit-claim", "pending", BASE_TIME))
    for _ in range(max(1, scale // 20)):
        out["in_transit"].append((ag_ids[rng.randrange(len(ag_ids))], "transfer", "closed",
                                  BASE_TIME))
    if "in-transit" in faulty:
        out["in_transit"].append((FAULT_AGENCY, "transfer", "open", BASE_TIME))
    return out


def expected_counts(line: str, scale: int, seed: int, faults: frozenset[str]) -> dict[str, int]:
    return {t: len(rows) for t, rows in generate(line, scale, seed, faults).items()}


COLUMNS = {
    "agency": "id, name, level, parent_id, city_id",
    "person": "id, id_no, name, agency_id, birth_date",
    "collection_plan": "agency_id, period, amount, created_at",
    "contribution": "person_id, agency_id, period, amount, paid_at",
    "account": "person_id, balance, updated_at",
    "payment_batch": "agency_id, period, amount, status, return_received",
    "approval": "agency_id, kind, status, submitted_at",
    "in_transit": "agency_id, kind, status, started_at",
}


def load(dsn: str, line: str, scale: int, seed: int, faults: frozenset[str]) -> dict:
    """(Re)create the line's tables unless they already hold this exact seed."""
    import psycopg

    fault_text = ",".join(sorted(faults))
    with psycopg.connect(dsn) as conn:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        have = conn.execute("SELECT to_regclass('lab_seed') IS NOT NULL").fetchone()[0]
        if have:
            row = conn.execute("SELECT seed, scale, faults FROM lab_seed").fetchone()
            if row == (seed, scale, fault_text):
                return {"line": line, "changed": False}
        conn.execute(SCHEMA)
        for table, rows in generate(line, scale, seed, faults).items():
            with conn.cursor().copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.execute("INSERT INTO lab_seed (seed, scale, faults) VALUES (%s, %s, %s)",
                     (seed, scale, fault_text))
        conn.execute("ANALYZE")
    return {"line": line, "changed": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True, help="libpq connection string of the line's database")
    parser.add_argument("--line", required=True, choices=sorted(LINES))
    parser.add_argument("--scale", type=int, default=1000, help="insured persons per line")
    parser.add_argument("--seed", type=int, default=20231118)
    parser.add_argument("--fault", action="append", default=[], choices=FAULTS)
    args = parser.parse_args(argv)
    result = load(args.dsn, args.line, args.scale, args.seed, frozenset(args.fault))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
