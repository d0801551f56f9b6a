"""Snapshot, verify and restore the line databases (N5, N18): the `snapshot`, `verify` and
`restore` actions of the `pg_data` module.

  snapshot  pg_dump directory format, parallel, fast compression, into <db>.partial; then a
            manifest (every file's sha256, the pg_restore --list output, server version,
            size, time, row counts), files 0600, rename to <db>. Refuses when free space is
            short of the databases' size plus a reserve, before anything is written.
            A verified snapshot made with the same key is kept (a resumed cutover).
  verify    re-hash every file, compare pg_restore --list; with test_restore restore into a
            scratch database and compare row counts
  restore   verify, then recreate each database from its snapshot and compare row counts
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ansible.module_utils.pg_data_cluster import (
    LOCK_FD,
    RW,
    Options,
    Refusal,
    counts,
    is_frozen,
    lit,
    psql,
    run,
    sha256,
)
from ansible.module_utils.pg_data_freeze import guard_state


def restore_list(path: Path) -> str:
    # the archive's table of contents without its header (which names the dump time only)
    text = run(["pg_restore", "--list", str(path)]).stdout
    return "\n".join(x for x in text.splitlines() if x and not x.startswith(";")) + "\n"


def hold_lock(opts: Options) -> None:
    """One snapshot or restore at a time per snapshot directory, including a pg_dump or
    pg_restore whose caller was killed (a cutover run SIGKILLed mid-step): the lock's file
    descriptor is passed on to them, so the lock lasts as long as the earlier work does.
    A new attempt waits up to `opts.lock_wait` seconds for it, then refuses; nothing races
    its files."""
    base = opts.base
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(base, 0o700)
    # beside, not inside, the snapshot directory: a refused snapshot leaves it as it was
    path = base.parent / f".{base.name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise Refusal(f"{path}: cannot take the snapshot lock: {exc.strerror}",
                      "the snapshot directory must belong to postgres (pg_data_snapshot_dir)") from None
    deadline = time.monotonic() + opts.lock_wait
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise Refusal(f"{base}: an earlier snapshot or restore is still at work after waiting "
                              f"{opts.lock_wait} s (a run that was stopped midway?); nothing was started",
                              "see `pgrep -a 'pg_dump|pg_restore'` on this host; when it has ended, run "
                              "the step again") from None
            if not said:
                opts.warn(f"{base}: an earlier snapshot or restore was still at work; waited for it "
                          f"(up to {opts.lock_wait} s)")
                said = True
            time.sleep(2)
    LOCK_FD.append(fd)


def _existing(path: Path) -> Path:
    """path, or its nearest ancestor that exists (check mode creates no directory)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _sort_out(opts: Options) -> tuple[list[str], dict[str, Any]]:
    """(the databases to dump, those whose snapshot is kept and why); refuses to replace
    another window's snapshot. Read-only: check mode runs it too."""
    base = opts.base
    todo, kept = [], {}
    for db in opts.databases:
        mpath = base / db / "manifest.json"
        there = json.loads(mpath.read_text()) if mpath.exists() else None
        same = bool(opts.snapshot_key) and there is not None and there.get("key") == opts.snapshot_key
        # kept only when it is still the data as it is now, frozen: one taken before the
        # freeze (a dry run under the same journal) is taken again
        current = (same and there.get("frozen") and is_frozen(opts.port, db)
                   and there.get("tables") == counts(opts.port, db))
        if current and not verify_one(base / db):
            kept[db] = {"skipped": "this cutover's verified snapshot of the frozen data is already there"}
        elif there is not None and not same and not opts.replace:
            # another window's (or a run without a journal): it may be the only way back (N18)
            raise Refusal(f"{base / db} holds the snapshot of {there.get('created_at')} made under "
                          f"journal {there.get('key') or '(none)'}; this run's is "
                          f"{opts.snapshot_key or '(none)'}: it is not replaced; nothing was written",
                          "a snapshot that belongs to a window is replaced only knowingly: "
                          "invoke data.snapshot --replace")
        else:  # none yet, this window's that no longer verifies, or --replace: a new one
            todo.append(db)
    return todo, kept


def _refuse_short_space(opts: Options, sizes: dict[str, int]) -> None:
    free = shutil.disk_usage(_existing(opts.base)).free
    need = sum(sizes.values()) + opts.reserve_mb * 1048576
    if free < need:
        raise Refusal(f"{opts.base}: {free / 1048576:,.0f} MiB free, the snapshot needs up to "
                      f"{need / 1048576:,.0f} MiB ({sum(sizes.values()) / 1048576:,.0f} MiB of databases "
                      f"+ {opts.reserve_mb} MiB reserve); nothing was written",
                      "free space there or point pg_data_snapshot_dir at a larger disk")


def snapshot(opts: Options) -> dict[str, Any]:
    if not opts.check_mode:
        hold_lock(opts)
    todo, kept = _sort_out(opts)
    sizes = {db: int(psql(opts.port, "postgres", f"SELECT pg_database_size({lit(db)})").stdout)
             for db in todo}
    if todo:
        _refuse_short_space(opts, sizes)
    result = {"changed": bool(todo), "dir": str(opts.base)}
    if opts.check_mode:
        planned = {db: f"keep: {why['skipped']}" for db, why in kept.items()}
        planned |= {db: f"take a new snapshot ({sizes[db] / 1048576:,.1f} MiB of database)" for db in todo}
        return result | {"databases": {}, "planned": planned}
    return result | {"databases": kept | {db: _dump(opts, db, sizes[db]) for db in todo}}


def _dump(opts: Options, db: str, database_bytes: int) -> dict[str, Any]:
    """One database into <base>/<db>.partial, its manifest written, renamed to <base>/<db>."""
    base = opts.base
    partial = base / f"{db}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    os.umask(0o077)
    try:
        run(["pg_dump", "-p", str(opts.port), "-Fd", "-j", str(opts.jobs), "-Z", opts.compress,
             "-f", str(partial), db])
        rows = counts(opts.port, db)
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
        "format": "cutover-snapshot/1", "database": db, "created_at": at, "key": opts.snapshot_key,
        "seconds": round(time.monotonic() - started, 3),
        "server_version": psql(opts.port, "postgres", "SHOW server_version").stdout.strip(),
        "pg_dump": run(["pg_dump", "--version"]).stdout.strip(),
        "format_options": {"format": "directory", "jobs": opts.jobs, "compress": opts.compress},
        "database_bytes": database_bytes, "bytes": sum(f["bytes"] for f in files),
        "files": files, "toc_entries": listing.count("\n"),
        "restore_list_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "restore_list": listing, "tables": rows, "frozen": is_frozen(opts.port, db)}
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2))
    os.chmod(partial / "manifest.json", 0o600)
    shutil.rmtree(base / db, ignore_errors=True)
    partial.rename(base / db)
    return {k: manifest[k] for k in ("bytes", "database_bytes", "seconds", "toc_entries",
                                     "created_at", "tables")} | {
        "files": len(files), "manifest_sha256": sha256(base / db / "manifest.json")}


def verify_one(path: Path) -> list[str]:
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


def test_restore(path: Path, db: str, opts: Options) -> dict[str, Any]:
    scratch = f"cutover_verify_{db}"[:63]
    manifest = json.loads((path / "manifest.json").read_text())
    run(["dropdb", "-p", str(opts.port), "--if-exists", scratch])
    run(["createdb", "-p", str(opts.port), scratch])
    try:
        run(["pg_restore", "-p", str(opts.port), "-d", scratch, "-j", str(opts.jobs), "--no-owner",
             "--exit-on-error", str(path)], env=RW)
        got = counts(opts.port, scratch)
    finally:
        run(["dropdb", "-p", str(opts.port), "--if-exists", scratch], check=False)
    diff = {t: {"snapshot": manifest["tables"].get(t), "restored": got.get(t)}
            for t in set(got) | set(manifest["tables"]) if got.get(t) != manifest["tables"].get(t)}
    return {"tables": len(got), "rows": sum(got.values()), "differences": diff}


def verify(opts: Options) -> dict[str, Any]:
    """Read-only (a test restore uses a scratch database): it runs in check mode as well."""
    base = opts.base
    out, problems = {}, []
    for db in opts.databases:
        bad = verify_one(base / db)
        problems += bad
        out[db] = {"verified": not bad}
        if not bad:  # what a restore would discard: the rows written since (N18)
            snap = json.loads((base / db / "manifest.json").read_text())["tables"]
            now = counts(opts.port, db)
            differ = {t: now.get(t, 0) - snap.get(t, 0) for t in set(now) | set(snap)
                      if now.get(t, 0) != snap.get(t, 0)}
            out[db] |= {"frozen": is_frozen(opts.port, db) and guard_state(opts.port, db)[0],
                        "rows_differ": dict(sorted(differ.items())),
                        "rows_differ_total": sum(abs(v) for v in differ.values())}
        if not bad and opts.test_restore:
            tr = test_restore(base / db, db, opts)
            out[db]["test_restore"] = tr
            problems += [f"{db}.{t}: snapshot {v['snapshot']} rows, test restore {v['restored']}"
                         for t, v in tr["differences"].items()]
    if problems:
        raise Refusal("the snapshot does not verify:\n  " + "\n  ".join(problems),
                      "a snapshot that does not verify is no way back: take a new one (data.snapshot)")
    return {"changed": False, "dir": str(base), "databases": out}


def _refuse_lost_writes(verified: dict[str, Any], opts: Options) -> None:
    """N18: restoring over a database that is live again, or whose rows differ from the
    snapshot, throws away what was written since: refused unless said knowingly (the engine
    says it only with the operator's name and reason on record)."""
    live = [f"{db} ({'frozen' if answer.get('frozen') is True else 'open for business again'}): "
            f"{answer.get('rows_differ_total', '?')} row(s) differ from the snapshot"
            for db, answer in sorted(verified.items())
            if answer.get("frozen") is not True or answer.get("rows_differ_total") != 0]
    if live and not opts.discard_writes:
        raise Refusal("the databases have changed since the snapshot; restoring it would discard that:\n  "
                      + "\n  ".join(live) + "\nnothing was changed",
                      "to discard those writes knowingly: invoke cutover.rollback --data "
                      "--discard-writes-since-snapshot --by NAME --reason TEXT (recorded); run alone, "
                      "pg_data_discard_writes=true says it")


def restore(opts: Options) -> dict[str, Any]:
    base = opts.base
    if opts.check_mode:  # what would be restored: the snapshot verifies, nothing is dropped
        _refuse_lost_writes(verify(dataclasses.replace(opts, test_restore=False))["databases"], opts)
        planned = {db: "drop it and restore the snapshot of "
                       + json.loads((base / db / "manifest.json").read_text())["created_at"]
                   for db in opts.databases}
        return {"changed": True, "dir": str(base), "databases": {}, "planned": planned}
    hold_lock(opts)
    _refuse_lost_writes(verify(dataclasses.replace(opts, test_restore=False))["databases"], opts)
    out = {}
    for db in opts.databases:
        manifest = json.loads((base / db / "manifest.json").read_text())
        run(["dropdb", "-p", str(opts.port), "--if-exists", "--force", db])
        run(["pg_restore", "-p", str(opts.port), "-C", "-d", "postgres", "-j", str(opts.jobs),
             "--exit-on-error", str(base / db)], env=RW)
        got = counts(opts.port, db)
        diff = {t: [n, got.get(t)] for t, n in manifest["tables"].items() if got.get(t) != n}
        if diff:
            raise Refusal(f"{db} restored, but row counts differ from the snapshot manifest: {diff}")
        out[db] = {"tables": got, "rows": sum(got.values()), "snapshot_created_at": manifest["created_at"],
                   "frozen": is_frozen(opts.port, db)}
    return {"changed": True, "dir": str(base), "databases": out}
