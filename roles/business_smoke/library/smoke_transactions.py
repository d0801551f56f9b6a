#!/usr/bin/python
"""Send the smoke check's transactions through the host's services, read each record back where
it must be, then remove it (business_smoke, N9–N12).

#17: the check was two looped tasks, a `uri` call per service, line and transaction and a
`postgresql_query` per record: a round trip each (a gateway with five exported lines: twenty).
This module does the same on the host in one call, in the same order: every transaction is
sent, then every record an answer names with a plain id is read back and removed, whether its
service accepted the transaction or not, so that no record a service named stays behind. The
judging stays on the controller (the role's asserts read `sent` and `read`).
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: smoke_transactions
short_description: Send transactions through services, then read each record back and remove it
description:
  - POSTs each send's JSON C(body) to C(url)C(path) with the C(X-Cutover-Check) header; never
    follows a redirect. Returns each answer in C(sent) as C(uri) would (C(item), C(status),
    C(content), C(json), C(msg)).
  - Then, for each record an answer names with a plain decimal id (the catalog's C(records)),
    runs the inventory's statement for that id inside a guard that rolls it back unless it
    touched exactly its one record. Returns each in C(read) (C(item), C(failed), C(msg),
    C(query_result)).
  - Nothing fails the module but bad arguments; the role judges what it returns. In check mode
    it runs too: the check's own records are written and removed.
options:
  sends: {type: list, elements: dict, required: true, description: "[{url, line, name, path, body}]"}
  catalog: {type: dict, required: true, description: The inventory's si_smoke_transactions.}
  check: {type: str, required: true, description: The X-Cutover-Check header's value.}
  timeout: {type: int, default: 30, description: Seconds each request and connection waits.}
  line_db: {type: dict, required: true, description: "{host, port, user, password, sslmode, sslrootcert}"}
  line_databases: {type: dict, required: true, description: "{LINE: database name}"}
  tax_db: {type: dict, default: {}, description: "{host, port, user, password, sslmode, sslrootcert, db}"}
"""

import contextlib
import json
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.smoke_answers import smoke_records

READ = 4 << 20  # what is read of an answer: a record echoed whole fits; more is said to be cut
# The inventory's statement (plan.check: one statement, %(id)s only) runs inside this guard:
# unless it touched exactly its one record, the whole statement fails and is rolled back, so a
# statement that would reach other rows (a `>=` for `=`, an OR) changes nothing.
GUARD = ("WITH smoke AS ({sql}) SELECT CASE WHEN count(*) = 1 THEN 1 ELSE "
         "('the check statement touched ' || count(*) || ' rows, not its one record: rolled back')::int "
         "END AS touched FROM smoke")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other: the check proves the service it was sent to."""

    def redirect_request(self, *_args, **_kwargs):
        return None


# never through a proxy: the check asks the host's own services
OPENER = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))


def read_body(answer, timeout: int) -> tuple[bytes, str]:
    """At most READ bytes, within `timeout` seconds in all (a service that trickles its answer
    does not hold the window); what arrived before a cut is kept. Returns it and what cut it."""
    deadline = time.monotonic() + timeout
    chunks, size = [], 0
    try:
        while size <= READ:
            if time.monotonic() > deadline:
                return b"".join(chunks), f"(answer cut after {timeout} s) "
            chunk = answer.read1(65536) if hasattr(answer, "read1") else answer.read(65536)
            if not chunk:
                return b"".join(chunks), ""
            chunks.append(chunk)
            size += len(chunk)
    except Exception as exc:  # the status came, the rest of the body did not (cut off, stalled)
        return b"".join(chunks), f"(its body broke off: {exc}) "
    return b"".join(chunks)[:READ], f"(answer cut at {READ} bytes) "


def send(item: dict, check: str, timeout: int) -> dict:
    """One transaction, answered as `uri` answers (status -1: no HTTP answer at all). Nothing a
    service answers raises: a body cut off, stalled or nested too deep is an answer that names
    no record, and the records the other services named are still read back and removed."""
    try:
        req = urllib.request.Request(f"{item['url']}{item['path']}", data=json.dumps(item["body"]).encode(),  # noqa: S310
                                     method="POST", headers={"Content-Type": "application/json",
                                                             "X-Cutover-Check": check})
        answer = OPENER.open(req, timeout=timeout)  # the host's own services
    except urllib.error.HTTPError as refused:
        answer = refused
    except Exception as exc:  # no HTTP answer at all: refused, reset, timed out, not HTTP, not a URL
        return {"item": item, "status": -1, "msg": f"Status code was -1 and not [200]: Request failed: {exc}"}
    status = answer.status if answer.status is not None else answer.code
    kind = answer.headers.get_content_subtype() if answer.headers is not None else ""
    try:
        body, cut = read_body(answer, timeout)
    finally:
        with contextlib.suppress(Exception):
            answer.close()
    content = body.decode("utf-8", "replace")
    said = cut + (f"OK ({len(body)} bytes)" if status == 200 else f"Status code was {status} and not [200]")
    result = {"item": item, "status": status, "content": cut + content, "msg": said}  # the cut said first
    if "json" in kind and not cut:  # as uri: JSON only when the answer says it is
        with contextlib.suppress(ValueError, RecursionError):
            result["json"] = json.loads(content)
    return result


def database_driver():
    """psycopg, or psycopg2 (as postgresql_query accepts); None when the host has neither."""
    try:
        import psycopg  # noqa: PLC0415 (a missing driver is said before anything is sent)
    except ImportError:
        try:
            import psycopg2  # noqa: PLC0415
        except ImportError:
            return None
        return psycopg2
    return psycopg


def connect(driver, conn: dict, db: str, timeout: int):
    kwargs = {"host": conn["host"], "port": int(conn["port"]), "user": conn["user"],
              "password": conn["password"], "dbname": db, "sslmode": conn["sslmode"],
              "connect_timeout": timeout, "application_name": "cutover-smoke",
              # a statement waiting on a lock (the service's own transaction still open) gives up
              "options": f"-c statement_timeout={timeout * 1000} -c lock_timeout={timeout * 1000}"}
    if conn.get("sslrootcert"):
        kwargs["sslrootcert"] = conn["sslrootcert"]
    if hasattr(driver, "ClientCursor"):  # psycopg 3: bind %(id)s on the client, as postgresql_query did
        kwargs["cursor_factory"] = driver.ClientCursor
    return driver.connect(**kwargs)


def read_back(driver, record: dict, p: dict) -> dict:
    """Run the record's statement for its id inside the guard, in a transaction of its own.
    Whatever goes wrong is this record's failure, never the others'."""
    if record["database"] == "line":
        conn_args, db = p["line_db"], str(p["line_databases"].get(record["line"]) or "")
    else:
        conn_args, db = p["tax_db"], str(p["tax_db"].get("db") or "")
    try:
        conn = connect(driver, conn_args, db, p["timeout"])
    except Exception as exc:  # any driver's error: the record is reported unread
        return {"item": record, "failed": True, "msg": f"could not connect to {db}: {exc}"}
    try:
        with conn.cursor() as cur:
            cur.execute(GUARD.format(sql=record["sql"]), {"id": record["id"]})
            rows = cur.fetchall()
        conn.commit()
        return {"item": record, "failed": False, "query_result": [{"touched": row[0]} for row in rows]}
    except Exception as exc:  # the guard's refusal is an error too; rolled back
        with contextlib.suppress(Exception):  # a dropped connection cannot: nothing was committed
            conn.rollback()
        return {"item": record, "failed": True, "msg": f"Cannot execute SQL in {db}: {exc}"}
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def main() -> None:
    database = {"host": {"type": "str", "required": True}, "port": {"type": "int", "required": True},
                "user": {"type": "str", "required": True},
                "password": {"type": "str", "required": True, "no_log": True},
                "sslmode": {"type": "str", "required": True}, "sslrootcert": {"type": "str", "default": ""}}
    tax = {key: {**spec, "required": False} for key, spec in database.items()}
    tax["db"] = {"type": "str", "default": ""}
    tax["port"] = {"type": "int", "default": 0}
    module = AnsibleModule(
        argument_spec={
            "sends": {"type": "list", "elements": "dict", "required": True},
            "catalog": {"type": "dict", "required": True},
            "check": {"type": "str", "required": True},
            "timeout": {"type": "int", "default": 30},
            "line_db": {"type": "dict", "required": True, "options": database},
            "line_databases": {"type": "dict", "required": True},  # {LINE: database name}
            # the tax side's, only for a transaction read back there (the role refuses one without it)
            "tax_db": {"type": "dict", "default": {}, "options": tax},
        },
        supports_check_mode=True,
    )
    p = module.params
    driver = database_driver()
    if driver is None:
        module.fail_json(msg=missing_required_lib("psycopg (or psycopg2), to read the records back")
                         + "; nothing was sent")
    databases = p["line_databases"]
    nameless = sorted({str(item.get("line")) for item in p["sends"]
                       if not str(databases.get(item.get("line")) or "")})
    if nameless:
        module.fail_json(msg=f"line(s) {', '.join(nameless)} name no database to read back from; "
                             "nothing was sent")
    sent: list[dict] = []
    read: list[dict] = []
    try:
        for item in p["sends"]:
            sent.append(send(item, p["check"], p["timeout"]))
    finally:  # every record a service named, accepted or not, so that none stays behind
        read = [read_back(driver, record, p) for record in smoke_records(sent, p["catalog"])]
    module.exit_json(changed=False, sent=sent, read=read)


if __name__ == "__main__":
    main()
