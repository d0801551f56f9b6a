"""Data benchmarks (N5, N18) on the lab's database host, one session, 5M rows:

1. the verified snapshot (the pg_data module's snapshot + verify: pg_dump -Fd -j2 -Z1, sha256 of
   every file, pg_restore --list, row counts; then a full re-hash and list) against a plain
   `pg_dump -Fc` (default compression) of the same database, both on db1. Goal ≥ 2× faster.
2. the export with hashing (cutover.data.copyout.copy_to: COPY through psycopg, sha256
   while written) against `psql \\copy` of the same SELECTs to files, both from this machine
   over the same loopback connection. Goal: throughput ratio ≥ 0.8. Also the whole export
   step (export_line: the same, plus the content checksums on a second connection).
3. the content checksum SQL alone over the 5M rows. Goal ≥ 1M rows/s on 2 cores.

Rounds alternate A/B. Needs the lab (`./inv lab.up`) and psql on this machine
(apt install postgresql-client). The bench database `bench_5m` is made once and kept.

    .venv/bin/python bench/data.py [--rounds 2] [--rows 5000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml

from cutover.data import sql
from cutover.data.copyout import copy_to
from cutover.data.export import export_line
from cutover.lab.podman import env as podman_env
from cutover.paths import ROOT

DB = "bench_5m"
CONTAINER = "cutover-lab-db1"
# the pg_data module's work, run on db1 without Ansible around it (the figure is the work's)
MODULE_UTILS = ROOT / "roles" / "pg_data" / "module_utils"
BENCH_DIR = "/var/lib/postgresql/pg_data_bench"  # on db1: ansible/module_utils/pg_data_*.py
SNAPSHOT_AND_VERIFY = (
    "from ansible.module_utils.pg_data_cluster import Options\n"
    "from ansible.module_utils.pg_data_snapshot import snapshot, verify\n"
    "opts = Options(databases=[{db!r}], port={port}, snapshot_dir='/var/lib/postgresql/bench-snap',"
    " snapshot_id='b', reserve_mb=0)\n"
    "snapshot(opts)\n"
    "verify(opts)\n")


def lab_vars() -> dict:
    g = ROOT / "inventories" / "lab" / "group_vars" / "all"
    out = yaml.safe_load((g / "vars.yml").read_text())
    out.update(yaml.safe_load((g / "vault.yml").read_text()))
    return out


def on_db1(script: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", "-u", "postgres", CONTAINER, "bash", "-c", script],
                          env=podman_env(), capture_output=True, text=True, check=check)


def make_database(rows: int, port: int, owner: str) -> None:
    have = on_db1(f"psql -X -At -p {port} -d postgres -c \"SELECT 1 FROM pg_database WHERE datname='{DB}'\"")
    if have.stdout.strip() == "1":
        return
    person, account = rows // 5, rows // 5
    contribution = rows - person - account
    print(f"making {DB}: person {person:,}, contribution {contribution:,}, account {account:,} rows", flush=True)
    on_db1(f"createdb -p {port} -O {owner} {DB} && psql -X -q -v ON_ERROR_STOP=1 -p {port} -d {DB} <<'SQL'\n"
           "CREATE TABLE person (id bigint PRIMARY KEY, id_no text NOT NULL, name text NOT NULL,"
           " agency_id text NOT NULL, birth_date date NOT NULL);\n"
           f"INSERT INTO person SELECT g, lpad(g::text, 18, '1'), '参保人' || g, '1401' || (g % 33),"
           f" date '1955-01-01' + (g % 16000) FROM generate_series(1, {person}) g;\n"
           "CREATE TABLE contribution (id bigint PRIMARY KEY, person_id bigint NOT NULL, agency_id text NOT NULL,"
           " period text NOT NULL, amount numeric(12,2) NOT NULL, paid_at timestamptz NOT NULL);\n"
           f"INSERT INTO contribution SELECT g, g % {person} + 1, '1401' || (g % 33), '2023' || lpad((g % 12 + 1)::text, 2, '0'),"
           f" (g % 2700 + 300) + (g % 100) / 100.0, timestamptz '2023-11-01 09:00+08' + (g % 86400) * interval '1 s'"
           f" FROM generate_series(1, {contribution}) g;\n"
           "CREATE TABLE account (person_id bigint PRIMARY KEY, balance numeric(14,2) NOT NULL,"
           " updated_at timestamptz NOT NULL);\n"
           f"INSERT INTO account SELECT g, (g % 90000) + 0.5, timestamptz '2023-11-01 09:00+08'"
           f" FROM generate_series(1, {account}) g;\n"
           f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {owner};\n"
           "VACUUM ANALYZE;\nSQL")


def verified_snapshot(port: int) -> float:
    on_db1("rm -rf /var/lib/postgresql/bench-snap")
    started = time.perf_counter()
    on_db1(f"PYTHONPATH={BENCH_DIR} python3 - <<'PY'\n{SNAPSHOT_AND_VERIFY.format(db=DB, port=port)}PY")
    return time.perf_counter() - started


def install_module_utils() -> None:
    """The pg_data module's work, importable on db1 as `ansible.module_utils.pg_data_*`."""
    target = f"{BENCH_DIR}/ansible/module_utils"
    on_db1(f"rm -rf {BENCH_DIR} && mkdir -p {target} && touch {BENCH_DIR}/ansible/__init__.py"
           f" {target}/__init__.py")
    for path in sorted(MODULE_UTILS.glob("pg_data_*.py")):
        subprocess.run(["podman", "cp", str(path), f"{CONTAINER}:{target}/{path.name}"], env=podman_env(),
                       check=True)  # root's, mode 0644: readable by postgres, who runs it


def plain_dump(port: int) -> float:
    on_db1("rm -f /var/lib/postgresql/bench.dump")
    started = time.perf_counter()
    on_db1(f"pg_dump -p {port} -Fc -f /var/lib/postgresql/bench.dump {DB}")
    return time.perf_counter() - started


def columns(conninfo: str) -> dict[str, list[str]]:
    with psycopg.connect(conninfo, dbname=DB) as conn:
        out = {}
        for t in ("account", "contribution", "person"):
            out[t] = [r[0] for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped ORDER BY attnum", (t,))]
        return out


def our_export(conninfo: str, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    params = dict(kv.split("=", 1) for kv in conninfo.split()) | {"sslmode": "disable"}
    export_line(params, line="bench", title="bench", database=DB, outdir=out / "x", reject_dir=out / "r",
                say=lambda *_: None)
    return time.perf_counter() - started


def hashed_copy(conninfo: str, cols: dict[str, list[str]], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with psycopg.connect(conninfo, dbname=DB, autocommit=True) as conn:
        conn.execute("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        started = time.perf_counter()
        for t, c in cols.items():
            copy_to(conn, sql.select_sql(t, c), out / f"{t}.csv")
        took = time.perf_counter() - started
        conn.execute("COMMIT")
    return took


def psql_copy(v: dict, cols: dict[str, list[str]], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "PGPASSWORD": v["vault_si_db_password"]}
    started = time.perf_counter()
    for t, c in cols.items():
        subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(v["si_db_port"]), "-U", v["si_db_user"],
                        "-d", DB, "-c", f"\\copy ({sql.select_sql(t, c)}) TO '{out / t}.csv' WITH (FORMAT csv, HEADER)"],
                       env=env, check=True)
    return time.perf_counter() - started


def checksum_rate(conninfo: str, cols: dict[str, list[str]]) -> tuple[float, int]:
    with psycopg.connect(conninfo, dbname=DB) as conn:
        for stmt in sql.session_sql():
            conn.execute(stmt)
        started = time.perf_counter()
        rows = sum(int(conn.execute(sql.checksum_sql(t, c)).fetchone()[0]) for t, c in cols.items())
        return time.perf_counter() - started, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rows", type=int, default=5_000_000)
    a = ap.parse_args()
    if not shutil.which("psql"):
        print("psql is needed on this machine: apt install postgresql-client", file=sys.stderr)
        return 2
    v = lab_vars()
    port = v["si_db_port"]
    conninfo = (f"host=127.0.0.1 port={port} user={v['si_db_user']} password={v['vault_si_db_password']}")
    make_database(a.rows, port, v["si_db_user"])
    install_module_utils()
    size = on_db1(f"psql -X -At -p {port} -d postgres -c \"SELECT pg_size_pretty(pg_database_size('{DB}'))\"")
    print(f"{DB}: {size.stdout.strip()}", flush=True)
    cols = columns(conninfo)
    snap, dump, ours, hashed, theirs, cks = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(1, a.rounds + 1):
            snap.append(verified_snapshot(port))
            dump.append(plain_dump(port))
            hashed.append(hashed_copy(conninfo, cols, Path(tmp) / "hashed"))
            theirs.append(psql_copy(v, cols, Path(tmp) / "psql"))
            ours.append(our_export(conninfo, Path(tmp) / "ours"))
            secs, rows = checksum_rate(conninfo, cols)
            cks.append(rows / secs)
            print(f"round {n}: verified snapshot {snap[-1]:.1f} s, pg_dump -Fc {dump[-1]:.1f} s; "
                  f"COPY+sha256 {hashed[-1]:.1f} s, psql \\copy {theirs[-1]:.1f} s, "
                  f"export step {ours[-1]:.1f} s; checksum {rows:,} rows in {secs:.1f} s", flush=True)
    m = statistics.mean
    print(f"snapshot: verified {m(snap):.1f} s vs pg_dump -Fc {m(dump):.1f} s → {m(dump) / m(snap):.2f}x faster")
    print(f"export with hashing: {m(hashed):.1f} s vs psql \\copy {m(theirs):.1f} s → "
          f"throughput ratio {m(theirs) / m(hashed):.2f}")
    print(f"whole export step (with content checksums): {m(ours):.1f} s → ratio {m(theirs) / m(ours):.2f}")
    print(f"checksum: {m(cks) / 1e6:.2f} M rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
