#!/usr/bin/python3
"""Freeze, snapshot, verify and restore the line databases (N5, N18). Runs on the database
host as the postgres user (peer authentication, no password), with the standard library
and the PostgreSQL client tools only.

  freeze    ALTER DATABASE ... SET default_transaction_read_only = on, a guard that refuses
            every write and DDL by any role but the superuser (see GUARD_SQL), end open
            sessions, prove it with a write that must fail
  unfreeze  drop the guard, RESET the setting and prove a write works (rolled back)
  snapshot  pg_dump directory format, parallel, fast compression, into <db>.partial; then a
            manifest (every file's sha256, the pg_restore --list output, server version,
            size, time, row counts), files 0600, rename to <db>. Refuses when free space is
            short of the databases' size plus a reserve, before anything is written.
            A verified snapshot made with the same --key is kept (a resumed cutover).
  verify    re-hash every file, compare pg_restore --list; --test-restore restores into a
            scratch database and compares row counts
  restore   verify, then recreate each database from its snapshot and compare row counts

Prints one JSON document on stdout; a refusal prints `error:`/`hint:` on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Every session of the maintenance role (the superuser) resolves names in pg_catalog only: a
# database's owner may create functions in `public` (format, quote_ident, count, current_setting
# ...) that would otherwise run as the superuser, or fool the guard.
SAFE_PATH = "-c search_path=pg_catalog,pg_temp"
SAFE = {**os.environ, "PGOPTIONS": SAFE_PATH}
RW = {**os.environ, "PGOPTIONS": f"{SAFE_PATH} -c default_transaction_read_only=off"}


class Refusal(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


LOCK_FD: list[int] = []  # the snapshot directory's lock, inherited by pg_dump/pg_restore


def run(cmd: list[str], env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or SAFE, check=False, pass_fds=LOCK_FD)
    if check and proc.returncode != 0:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise Refusal(f"{cmd[0]} failed (exit {proc.returncode}):\n    {tail}",
                      "is the database server up? see the server log (journalctl -u postgresql@*)")
    return proc


def psql(port: int, db: str, query: str, env: dict | None = None, check: bool = True):
    return run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-p", str(port), "-d", db,
                "-c", query], env=env, check=check)


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def counts(port: int, db: str) -> dict[str, int]:
    tables = psql(port, db, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables"
                  " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1").stdout.split()
    if not tables:
        return {}
    query = " UNION ALL ".join(f"SELECT {lit(t)}, count(*) FROM {t}" for t in tables)
    out = psql(port, db, query).stdout
    return {name: int(n) for name, n in (row.split("|") for row in out.splitlines() if row)}


# The freeze that holds (N5): default_transaction_read_only is only a default, which any
# client may turn off (SET, BEGIN READ WRITE, PGOPTIONS). While frozen, a guard refuses every
# write by a business role: statement triggers on every table (INSERT, UPDATE, DELETE,
# TRUNCATE, COPY FROM) and an event trigger on every DDL command (so a table's owner cannot
# drop or disable the triggers, or create tables). Disabling triggers needs
# session_replication_role, which only a superuser may set. The maintenance role that
# snapshots, restores and unfreezes is the database host's superuser (postgres, over peer
# authentication): the guard lets superusers through, nobody else.
GUARD_SCHEMA = "cutover_freeze"
GUARD_SQL = f"""
SET lock_timeout = '60s';
CREATE SCHEMA IF NOT EXISTS {GUARD_SCHEMA} AUTHORIZATION postgres;
REVOKE ALL ON SCHEMA {GUARD_SCHEMA} FROM PUBLIC;
CREATE OR REPLACE FUNCTION {GUARD_SCHEMA}.refuse_write() RETURNS trigger LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp AS $g$
BEGIN
  IF pg_catalog.current_setting('is_superuser') OPERATOR(pg_catalog.<>) 'on' THEN
    RAISE EXCEPTION 'database % is frozen for the cutover: % on % refused',
      pg_catalog.current_database(), TG_OP, TG_TABLE_NAME USING ERRCODE = 'read_only_sql_transaction';
  END IF;
  RETURN NULL;
END $g$;
CREATE OR REPLACE FUNCTION {GUARD_SCHEMA}.refuse_ddl() RETURNS event_trigger LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp AS $g$
BEGIN
  IF pg_catalog.current_setting('is_superuser') OPERATOR(pg_catalog.<>) 'on' THEN
    RAISE EXCEPTION 'database % is frozen for the cutover: % refused',
      pg_catalog.current_database(), TG_TAG USING ERRCODE = 'read_only_sql_transaction';
  END IF;
END $g$;
DROP EVENT TRIGGER IF EXISTS cutover_freeze;
CREATE EVENT TRIGGER cutover_freeze ON ddl_command_start EXECUTE FUNCTION {GUARD_SCHEMA}.refuse_ddl();
DO $g$
DECLARE t record;
BEGIN
  -- every table, its guard trigger made anew (so one disabled before the freeze is enabled)
  FOR t IN SELECT c.oid::pg_catalog.regclass AS rel
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p')
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', '{GUARD_SCHEMA}')
             AND n.nspname NOT LIKE 'pg_toast%'
  LOOP
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS cutover_freeze ON %s', t.rel);
    EXECUTE pg_catalog.format('CREATE TRIGGER cutover_freeze BEFORE INSERT OR UPDATE OR DELETE'
                              ' OR TRUNCATE ON %s FOR EACH STATEMENT'
                              ' EXECUTE FUNCTION {GUARD_SCHEMA}.refuse_write()', t.rel);
  END LOOP;
END $g$;
"""
UNGUARD_SQL = f"""
SET lock_timeout = '60s';
DROP EVENT TRIGGER IF EXISTS cutover_freeze;
DROP SCHEMA IF EXISTS {GUARD_SCHEMA} CASCADE;
"""
GUARD_STATE = f"""
SELECT (SELECT count(*) FROM pg_catalog.pg_event_trigger
        WHERE evtname = 'cutover_freeze' AND evtenabled <> 'D')
     || ',' || (SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = '{GUARD_SCHEMA}')
     || ',' || (SELECT count(*) FROM pg_catalog.pg_class c
                JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p')
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema', '{GUARD_SCHEMA}')
                  AND n.nspname NOT LIKE 'pg_toast%'
                  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid
                                  AND g.tgname = 'cutover_freeze' AND g.tgenabled <> 'D'))
"""


def guard_state(port: int, db: str) -> tuple[bool, bool]:
    """(every table and DDL guarded and enabled, any part of the guard present)."""
    out = psql(port, db, GUARD_STATE).stdout.strip()
    event, schema, unguarded = (int(x) for x in out.split(","))
    return event == 1 and schema == 1 and unguarded == 0, event > 0 or schema > 0


def owner(port: int, db: str) -> str | None:
    """The database's owner when it is not a superuser: the business role to probe with."""
    out = psql(port, "postgres", "SELECT r.rolname FROM pg_catalog.pg_database d JOIN pg_catalog.pg_roles r"
               f" ON r.oid = d.datdba WHERE d.datname = {lit(db)} AND NOT r.rolsuper").stdout.strip()
    return out or None


def end_sessions(port: int, db: str) -> int:
    out = psql(port, "postgres", "SELECT count(pg_catalog.pg_terminate_backend(pid))"
               " FROM pg_catalog.pg_stat_activity"
               f" WHERE datname = {lit(db)} AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
               " AND backend_type = 'client backend'").stdout.strip()
    return int(out or 0)


def is_frozen(port: int, db: str) -> bool:
    out = psql(port, "postgres", "SELECT coalesce(array_to_string(s.setconfig, ','), '') FROM pg_database d"
               " LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0"
               f" WHERE d.datname = {lit(db)}").stdout
    return "default_transaction_read_only=on" in out


# ---------------------------------------------------------------------------- freeze


FROZEN = "is frozen for the cutover"


def probe_as(port: int, db: str, role: str | None, sql: str) -> subprocess.CompletedProcess:
    """Run sql as role (SET ROLE from the superuser's session) with the read-only default
    switched off, as any client could: the guard must still refuse it."""
    steps = ([f"SET ROLE {ident(role)}"] if role else []) + ["SET default_transaction_read_only = off", sql]
    return run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-p", str(port), "-d", db]
               + [x for step in steps for x in ("-c", step)], check=False)


def freeze(a: argparse.Namespace) -> dict:
    out = {}
    for db in a.databases:
        changed = False
        if not is_frozen(a.port, db):
            psql(a.port, "postgres", f"ALTER DATABASE {ident(db)} SET default_transaction_read_only = on")
            changed = True
        # a prepared transaction survives the end of its session and can still commit its
        # writes after the freeze: the freeze is not proven while one is open
        prepared = psql(a.port, "postgres", "SELECT string_agg(gid || ' (' || owner || ', '"
                        " || prepared || ')', '; ') FROM pg_catalog.pg_prepared_xacts"
                        f" WHERE database = {lit(db)}").stdout.strip()
        if prepared:
            raise Refusal(f"{db}: prepared transaction(s) still open: {prepared}; they could commit writes "
                          "after the freeze", "COMMIT PREPARED or ROLLBACK PREPARED them (ask their "
                          "owner), then run the step again; the database is read-only by default already")
        # sessions first: one idle in a transaction would hold the locks the guard needs
        ended = end_sessions(a.port, db)
        complete, _ = guard_state(a.port, db)
        if not complete:
            psql(a.port, db, GUARD_SQL, env=RW)
            changed = True
            ended += end_sessions(a.port, db)
        probe = psql(a.port, db, "CREATE TABLE public.cutover_freeze_probe ()", check=False)
        if probe.returncode == 0 or "read-only transaction" not in probe.stderr:
            psql(a.port, db, "DROP TABLE IF EXISTS public.cutover_freeze_probe", env=RW, check=False)
            raise Refusal(f"{db}: a write succeeded after the freeze ({probe.stderr.strip() or 'no error'})",
                          "check the database's settings (ALTER DATABASE ... RESET ALL?)")
        business = owner(a.port, db)
        if business:  # the owner of every table, as the applications connect: refused all the same
            tried = probe_as(a.port, db, business, "CREATE TABLE public.cutover_freeze_probe ()")
            if tried.returncode == 0 or FROZEN not in tried.stderr:
                psql(a.port, db, "DROP TABLE IF EXISTS public.cutover_freeze_probe", env=RW, check=False)
                raise Refusal(f"{db}: {business} could still write after the freeze "
                              f"({tried.stderr.strip() or 'no error'})", "the guard is not in place: "
                              "see the server log; the freeze is not proven")
        out[db] = {"frozen": True, "guarded": True, "changed": changed, "sessions_ended": ended,
                   "probe": probe.stderr.strip().splitlines()[-1],
                   "business_probe": f"{business}: refused" if business else "owner is a superuser"}
    return {"changed": any(v["changed"] or v["sessions_ended"] for v in out.values()), "databases": out}


def unfreeze(a: argparse.Namespace) -> dict:
    out = {}
    for db in a.databases:
        _, present = guard_state(a.port, db)
        changed = is_frozen(a.port, db) or present
        psql(a.port, db, UNGUARD_SQL, env=RW)  # always: a guard half in place must not outlive 08:00
        if is_frozen(a.port, db):
            psql(a.port, "postgres", f"ALTER DATABASE {ident(db)} RESET default_transaction_read_only")
        business = owner(a.port, db)
        probe = "BEGIN; CREATE TABLE public.cutover_write_probe (); ROLLBACK;"
        tried = probe_as(a.port, db, business, probe) if business else psql(a.port, db, probe, check=False)
        if tried.returncode != 0:
            raise Refusal(f"{db}: still refuses a write after the unfreeze ({tried.stderr.strip()})",
                          "see the server log")
        out[db] = {"frozen": False, "changed": changed}
    return {"changed": any(v["changed"] for v in out.values()), "databases": out}


# ---------------------------------------------------------------------------- snapshot


def restore_list(path: Path) -> str:
    # the archive's table of contents without its header (which names the dump time only)
    text = run(["pg_restore", "--list", str(path)]).stdout
    return "\n".join(x for x in text.splitlines() if x and not x.startswith(";")) + "\n"


def hold_lock(base: Path, wait: int) -> None:
    """One snapshot or restore at a time per snapshot directory, including a pg_dump or
    pg_restore whose caller was killed (a cutover run SIGKILLed mid-step): the lock's file
    descriptor is passed on to them, so the lock lasts as long as the earlier work does.
    A new attempt waits up to `wait` seconds for it, then refuses; nothing races its files."""
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(base, 0o700)
    # beside, not inside, the snapshot directory: a refused snapshot leaves it as it was
    path = base.parent / f".{base.name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise Refusal(f"{path}: cannot take the snapshot lock: {exc.strerror}",
                      "the snapshot directory must belong to postgres (pg_data_snapshot_dir)") from None
    deadline = time.monotonic() + wait
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise Refusal(f"{base}: an earlier snapshot or restore is still at work after waiting "
                              f"{wait} s (a run that was stopped midway?); nothing was started",
                              "see `pgrep -a 'pg_dump|pg_restore'` on this host; when it has ended, run "
                              "the step again") from None
            if not said:
                print(f"{base}: an earlier snapshot or restore is still at work; waiting for it "
                      f"(up to {wait} s)", file=sys.stderr)
                said = True
            time.sleep(2)
    LOCK_FD.append(fd)


def snapshot(a: argparse.Namespace) -> dict:
    base = Path(a.dir) / a.id
    hold_lock(base, a.lock_wait)
    todo, done = [], {}
    for db in a.databases:
        mpath = base / db / "manifest.json"
        there = json.loads(mpath.read_text()) if mpath.exists() else None
        same = bool(a.key) and there is not None and there.get("key") == a.key
        # kept only when it is still the data as it is now, frozen: one taken before the
        # freeze (a dry run under the same journal) is taken again
        current = (same and there.get("frozen") and is_frozen(a.port, db)
                   and there.get("tables") == counts(a.port, db))
        if current and not verify_one(base / db, a):
            done[db] = {"skipped": "this cutover's verified snapshot of the frozen data is already there"}
        elif there is not None and not same and not a.replace:
            # another window's (or a run without a journal): it may be the only way back (N18)
            raise Refusal(f"{base / db} holds the snapshot of {there.get('created_at')} made under "
                          f"journal {there.get('key') or '(none)'}; this run's is {a.key or '(none)'}: "
                          "it is not replaced; nothing was written",
                          "a snapshot that belongs to a window is replaced only knowingly: "
                          "invoke data.snapshot --replace")
        else:  # none yet, this window's that no longer verifies, or --replace: a new one
            todo.append(db)
    if not todo:
        return {"changed": False, "dir": str(base), "databases": done}
    sizes = {db: int(psql(a.port, "postgres", f"SELECT pg_database_size({lit(db)})").stdout) for db in todo}
    free = shutil.disk_usage(base).free
    need = sum(sizes.values()) + a.reserve_mb * 1048576
    if free < need:
        raise Refusal(f"{base}: {free / 1048576:,.0f} MiB free, the snapshot needs up to "
                      f"{need / 1048576:,.0f} MiB ({sum(sizes.values()) / 1048576:,.0f} MiB of databases "
                      f"+ {a.reserve_mb} MiB reserve); nothing was written",
                      "free space there or point pg_data_snapshot_dir at a larger disk")
    for db in todo:
        partial = base / f"{db}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        started = time.monotonic()
        at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.umask(0o077)
        try:
            run(["pg_dump", "-p", str(a.port), "-Fd", "-j", str(a.jobs), "-Z", a.compress,
                 "-f", str(partial), db])
            rows = counts(a.port, db)
        except Refusal as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise Refusal(f"snapshot of {db} failed; its partial files were removed\n  {exc.message}",
                          exc.hint) from None
        listing = restore_list(partial)
        (partial / "restore-list.txt").write_text(listing)
        files = [{"name": p.name, "bytes": p.stat().st_size, "sha256": sha256(p)}
                 for p in sorted(partial.iterdir())]
        for p in partial.iterdir():
            os.chmod(p, 0o600)
        manifest = {
            "format": "cutover-snapshot/1", "database": db, "created_at": at, "key": a.key,
            "seconds": round(time.monotonic() - started, 3),
            "server_version": psql(a.port, "postgres", "SHOW server_version").stdout.strip(),
            "pg_dump": run(["pg_dump", "--version"]).stdout.strip(),
            "format_options": {"format": "directory", "jobs": a.jobs, "compress": a.compress},
            "database_bytes": sizes[db], "bytes": sum(f["bytes"] for f in files),
            "files": files, "toc_entries": listing.count("\n"),
            "restore_list_sha256": hashlib.sha256(listing.encode()).hexdigest(),
            "restore_list": listing, "tables": rows, "frozen": is_frozen(a.port, db)}
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2))
        os.chmod(partial / "manifest.json", 0o600)
        shutil.rmtree(base / db, ignore_errors=True)
        partial.rename(base / db)
        done[db] = {k: manifest[k] for k in ("bytes", "database_bytes", "seconds", "toc_entries",
                                             "created_at", "tables")} | {
            "files": len(files), "manifest_sha256": sha256(base / db / "manifest.json")}
        print(f"snapshot {db}: {len(files)} files, {manifest['bytes'] / 1048576:.1f} MiB "
              f"in {manifest['seconds']:.1f} s", file=sys.stderr)
    return {"changed": True, "dir": str(base), "databases": done}


# ---------------------------------------------------------------------------- verify


def verify_one(path: Path, a: argparse.Namespace) -> list[str]:
    mpath = path / "manifest.json"
    if not mpath.exists():
        return [f"{path}: no snapshot manifest"]
    manifest = json.loads(mpath.read_text())
    problems = []
    listed = {f["name"] for f in manifest["files"]}
    for f in manifest["files"]:
        p = path / f["name"]
        if not p.exists():
            problems.append(f"{p}: missing")
        elif p.stat().st_size != f["bytes"]:
            problems.append(f"{p}: {p.stat().st_size} bytes, the manifest says {f['bytes']}")
        elif sha256(p) != f["sha256"]:
            problems.append(f"{p}: sha256 differs from the manifest (changed after the snapshot)")
        elif p.stat().st_mode & 0o077:
            problems.append(f"{p}: mode {p.stat().st_mode & 0o777:o}, expected 600")
    problems += [f"{path / n}: not in the manifest" for n in
                 sorted({p.name for p in path.iterdir()} - listed - {"manifest.json"})]
    if not problems:
        proc = run(["pg_restore", "--list", str(path)], check=False)
        if proc.returncode != 0:
            problems.append(f"{path}: pg_restore --list fails: {proc.stderr.strip()}")
        elif hashlib.sha256(restore_list(path).encode()).hexdigest() != manifest["restore_list_sha256"]:
            problems.append(f"{path}: pg_restore --list differs from the manifest")
    return problems


def test_restore(path: Path, db: str, a: argparse.Namespace) -> dict:
    scratch = f"cutover_verify_{db}"[:63]
    manifest = json.loads((path / "manifest.json").read_text())
    run(["dropdb", "-p", str(a.port), "--if-exists", scratch])
    run(["createdb", "-p", str(a.port), scratch])
    try:
        run(["pg_restore", "-p", str(a.port), "-d", scratch, "-j", str(a.jobs), "--no-owner",
             "--exit-on-error", str(path)], env=RW)
        got = counts(a.port, scratch)
    finally:
        run(["dropdb", "-p", str(a.port), "--if-exists", scratch], check=False)
    diff = {t: {"snapshot": manifest["tables"].get(t), "restored": got.get(t)}
            for t in set(got) | set(manifest["tables"]) if got.get(t) != manifest["tables"].get(t)}
    return {"tables": len(got), "rows": sum(got.values()), "differences": diff}


def verify(a: argparse.Namespace) -> dict:
    base = Path(a.dir) / a.id
    out, problems = {}, []
    for db in a.databases:
        bad = verify_one(base / db, a)
        problems += bad
        out[db] = {"verified": not bad}
        if not bad:  # what a restore would discard: the rows written since (N18)
            snap = json.loads((base / db / "manifest.json").read_text())["tables"]
            now = counts(a.port, db)
            differ = {t: now.get(t, 0) - snap.get(t, 0) for t in set(now) | set(snap)
                      if now.get(t, 0) != snap.get(t, 0)}
            out[db] |= {"frozen": is_frozen(a.port, db) and guard_state(a.port, db)[0],
                        "rows_differ": dict(sorted(differ.items())),
                        "rows_differ_total": sum(abs(v) for v in differ.values())}
        if not bad and a.test_restore:
            tr = test_restore(base / db, db, a)
            out[db]["test_restore"] = tr
            problems += [f"{db}.{t}: snapshot {v['snapshot']} rows, test restore {v['restored']}"
                         for t, v in tr["differences"].items()]
    if problems:
        raise Refusal("the snapshot does not verify:\n  " + "\n  ".join(problems),
                      "a snapshot that does not verify is no way back: take a new one (data.snapshot)")
    return {"changed": False, "dir": str(base), "databases": out}


def restore(a: argparse.Namespace) -> dict:
    base = Path(a.dir) / a.id
    hold_lock(base, a.lock_wait)
    verify(argparse.Namespace(**{**vars(a), "test_restore": False}))
    out = {}
    for db in a.databases:
        manifest = json.loads((base / db / "manifest.json").read_text())
        run(["dropdb", "-p", str(a.port), "--if-exists", "--force", db])
        run(["pg_restore", "-p", str(a.port), "-C", "-d", "postgres", "-j", str(a.jobs),
             "--exit-on-error", str(base / db)], env=RW)
        got = counts(a.port, db)
        diff = {t: [n, got.get(t)] for t, n in manifest["tables"].items() if got.get(t) != n}
        if diff:
            raise Refusal(f"{db} restored, but row counts differ from the snapshot manifest: {diff}")
        out[db] = {"tables": got, "rows": sum(got.values()), "snapshot_created_at": manifest["created_at"],
                   "frozen": is_frozen(a.port, db)}
    return {"changed": True, "dir": str(base), "databases": out}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=("freeze", "unfreeze", "snapshot", "verify", "restore"))
    ap.add_argument("databases", nargs="+")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--dir", default="/var/backups/cutover")
    ap.add_argument("--id", default="snapshot")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--compress", default="1")
    ap.add_argument("--reserve-mb", type=int, default=512)
    ap.add_argument("--test-restore", action="store_true")
    ap.add_argument("--key", default="", help="snapshot: keep a verified snapshot made with this key")
    ap.add_argument("--replace", action="store_true", help="snapshot: replace one made under another key")
    ap.add_argument("--lock-wait", type=int, default=1800,
                    help="snapshot/restore: how long to wait for an earlier one still at work (s)")
    a = ap.parse_args()
    actions = {"freeze": freeze, "unfreeze": unfreeze, "snapshot": snapshot, "verify": verify,
               "restore": restore}
    try:
        print(json.dumps(actions[a.action](a), ensure_ascii=False))
    except Refusal as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
