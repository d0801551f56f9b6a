"""Freeze and unfreeze the line databases (N5, N9): the `freeze` and `unfreeze` actions of
the `pg_data` module.

The freeze that holds (N5): default_transaction_read_only is only a default, which any
client may turn off (SET, BEGIN READ WRITE, PGOPTIONS). While frozen, a guard refuses every
write by a business role: statement triggers on every table (INSERT, UPDATE, DELETE,
TRUNCATE, COPY FROM) and an event trigger on every DDL command (so a table's owner cannot
drop or disable the triggers, or create tables). Disabling triggers needs
session_replication_role, which only a superuser may set. The maintenance role that
snapshots, restores and unfreezes is the database host's superuser (postgres, over peer
authentication): the guard lets superusers through, nobody else.
"""

from __future__ import annotations

import subprocess
from typing import Any

from ansible.module_utils.pg_data_cluster import RW, Options, Refusal, ident, is_frozen, lit, owner, psql, run

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
FROZEN = "is frozen for the cutover"


def guard_state(port: int, db: str) -> tuple[bool, bool]:
    """(every table and DDL guarded and enabled, any part of the guard present)."""
    out = psql(port, db, GUARD_STATE).stdout.strip()
    event, schema, unguarded = (int(x) for x in out.split(","))
    return event == 1 and schema == 1 and unguarded == 0, event > 0 or schema > 0


def _client_sessions(db: str) -> str:
    return (" FROM pg_catalog.pg_stat_activity"
            f" WHERE datname = {lit(db)} AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
            " AND backend_type = 'client backend'")


def open_sessions(port: int, db: str) -> int:
    return int(psql(port, "postgres", "SELECT count(*)" + _client_sessions(db)).stdout.strip() or 0)


def end_sessions(port: int, db: str) -> int:
    out = psql(port, "postgres", "SELECT count(pg_catalog.pg_terminate_backend(pid))"
               + _client_sessions(db)).stdout.strip()
    return int(out or 0)


def probe_as(port: int, db: str, role: str | None, sql: str) -> subprocess.CompletedProcess:
    """Run sql as role (SET ROLE from the superuser's session) with the read-only default
    switched off, as any client could: the guard must still refuse it."""
    steps = ([f"SET ROLE {ident(role)}"] if role else []) + ["SET default_transaction_read_only = off", sql]
    return run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-p", str(port), "-d", db]
               + [x for step in steps for x in ("-c", step)], check=False)


def _refuse_prepared(port: int, db: str) -> None:
    """A prepared transaction survives the end of its session and can still commit its
    writes after the freeze: the freeze is not proven while one is open."""
    prepared = psql(port, "postgres", "SELECT string_agg(gid || ' (' || owner || ', '"
                    " || prepared || ')', '; ') FROM pg_catalog.pg_prepared_xacts"
                    f" WHERE database = {lit(db)}").stdout.strip()
    if prepared:
        raise Refusal(f"{db}: prepared transaction(s) still open: {prepared}; they could commit writes "
                      "after the freeze", "COMMIT PREPARED or ROLLBACK PREPARED them (ask their "
                      "owner), then run the step again; the database is read-only by default already")


def _freeze_planned(opts: Options, db: str) -> str:
    """Check mode: what the freeze would do to db (read-only queries)."""
    todo = [] if is_frozen(opts.port, db) else ["make it read-only by default"]
    _refuse_prepared(opts.port, db)
    sessions = open_sessions(opts.port, db)
    if sessions:
        todo.append(f"end {sessions} open session(s)")
    if not guard_state(opts.port, db)[0]:
        todo.append("install the guard")
    return ", ".join(todo) or "nothing: already frozen and guarded"


def freeze(opts: Options) -> dict[str, Any]:
    if opts.check_mode:
        planned = {db: _freeze_planned(opts, db) for db in opts.databases}
        return {"changed": any(not p.startswith("nothing") for p in planned.values()), "databases": {},
                "planned": planned}
    out = {}
    for db in opts.databases:
        changed = False
        if not is_frozen(opts.port, db):
            psql(opts.port, "postgres", f"ALTER DATABASE {ident(db)} SET default_transaction_read_only = on")
            changed = True
        _refuse_prepared(opts.port, db)
        # sessions first: one idle in a transaction would hold the locks the guard needs
        ended = end_sessions(opts.port, db)
        complete, _ = guard_state(opts.port, db)
        if not complete:
            psql(opts.port, db, GUARD_SQL, env=RW)
            changed = True
            ended += end_sessions(opts.port, db)
        probe = psql(opts.port, db, "CREATE TABLE public.cutover_freeze_probe ()", check=False)
        if probe.returncode == 0 or "read-only transaction" not in probe.stderr:
            psql(opts.port, db, "DROP TABLE IF EXISTS public.cutover_freeze_probe", env=RW, check=False)
            raise Refusal(f"{db}: a write succeeded after the freeze ({probe.stderr.strip() or 'no error'})",
                          "check the database's settings (ALTER DATABASE ... RESET ALL?)")
        business = owner(opts.port, db)
        if business:  # the owner of every table, as the applications connect: refused all the same
            tried = probe_as(opts.port, db, business, "CREATE TABLE public.cutover_freeze_probe ()")
            if tried.returncode == 0 or FROZEN not in tried.stderr:
                psql(opts.port, db, "DROP TABLE IF EXISTS public.cutover_freeze_probe", env=RW, check=False)
                raise Refusal(f"{db}: {business} could still write after the freeze "
                              f"({tried.stderr.strip() or 'no error'})", "the guard is not in place: "
                              "see the server log; the freeze is not proven")
        out[db] = {"frozen": True, "guarded": True, "changed": changed, "sessions_ended": ended,
                   "probe": probe.stderr.strip().splitlines()[-1],
                   "business_probe": f"{business}: refused" if business else "owner is a superuser"}
    return {"changed": any(v["changed"] or v["sessions_ended"] for v in out.values()), "databases": out}


def unfreeze(opts: Options) -> dict[str, Any]:
    if opts.check_mode:
        planned = {db: "remove the guard and the read-only default"
                   if is_frozen(opts.port, db) or guard_state(opts.port, db)[1]
                   else "nothing: already read-write" for db in opts.databases}
        return {"changed": any(not p.startswith("nothing") for p in planned.values()), "databases": {},
                "planned": planned}
    out = {}
    for db in opts.databases:
        _, present = guard_state(opts.port, db)
        changed = is_frozen(opts.port, db) or present
        psql(opts.port, db, UNGUARD_SQL, env=RW)  # always: a guard half in place must not outlive 08:00
        if is_frozen(opts.port, db):
            psql(opts.port, "postgres", f"ALTER DATABASE {ident(db)} RESET default_transaction_read_only")
        business = owner(opts.port, db)
        probe = "BEGIN; CREATE TABLE public.cutover_write_probe (); ROLLBACK;"
        tried = (probe_as(opts.port, db, business, probe) if business
                 else psql(opts.port, db, probe, check=False))
        if tried.returncode != 0:
            raise Refusal(f"{db}: still refuses a write after the unfreeze ({tried.stderr.strip()})",
                          "see the server log")
        out[db] = {"frozen": False, "changed": changed}
    return {"changed": any(v["changed"] for v in out.values()), "databases": out}
