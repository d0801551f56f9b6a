"""COPY a query's rows into a CSV file (N5), hashed (sha256) while it is written, through a
`.partial` file renamed only when complete: a half-written file never carries the final name."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

from cutover.data.files import free_space
from cutover.errors import CutoverError

BLOCK = 1 << 20


def copy_to(conn: psycopg.Connection, query: str, dest: Path) -> tuple[int, int, str]:
    """COPY query to dest (via .partial), hashing while writing; (rows, bytes, sha256).

    libpq hands COPY data over one row per call; psycopg's `copy()` iterator costs about
    a microsecond per row around that call, so rows are taken from its libpq connection
    (`conn.pgconn`, psycopg.pq) directly and hashed and written in 1 MiB blocks."""
    partial = dest.with_name(dest.name + ".partial")
    digest, size, block = hashlib.sha256(), 0, bytearray()
    pg = conn.pgconn
    # The extended protocol (PQsendQueryParams) runs exactly one statement: text joined from
    # inventory fragments can never carry a second command here.
    pg.send_query_params(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)".encode(), None)
    res = pg.get_result()
    if res is None or res.status != pq.ExecStatus.COPY_OUT:
        message = (res.error_message.decode(errors="replace") if res else "no result").strip()
        while pg.get_result() is not None:
            pass
        raise CutoverError(f"COPY of {dest.stem} failed: {message}",
                           "check the table's settings in si_export")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while True:
                nbytes, data = pg.get_copy_data(0)
                if nbytes < 0:
                    break
                block += data
                if len(block) >= BLOCK:
                    digest.update(block)
                    out.write(block)
                    size += len(block)
                    block.clear()
            digest.update(block)
            out.write(block)
            size += len(block)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:  # a full disk, most often: nothing half-written stays
        partial.unlink(missing_ok=True)
        _drain(pg)
        raise CutoverError(f"cannot write {dest}: {exc.strerror or exc} "
                           f"({free_space(dest.parent)} free there)",
                           "free space there (or point cutover_data_dir elsewhere), then export again"
                           ) from exc
    res = pg.get_result()
    while pg.get_result() is not None:
        pass
    if res is None or res.status != pq.ExecStatus.COMMAND_OK:
        partial.unlink(missing_ok=True)
        message = (res.error_message.decode(errors="replace") if res else "connection lost").strip()
        raise CutoverError(f"COPY of {dest.stem} failed midway: {message}", "is the database up?")
    rows = int(res.command_status.split()[-1])
    partial.replace(dest)
    return rows, size, digest.hexdigest()


def _drain(pg: Any) -> None:
    """Read what is left of a COPY that is given up, so the connection can be closed cleanly."""
    with contextlib.suppress(psycopg.Error, OSError):  # the connection is closed next in any case
        while pg.get_copy_data(0)[0] >= 0:
            pass
        while pg.get_result() is not None:
            pass
