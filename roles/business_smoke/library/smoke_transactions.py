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
  line_databases: {type: dict, required: true, description: "{LINE: {db: NAME}}"}
  tax_db: {type: dict, default: {}, description: "{host, port, user, password, sslmode, sslrootcert, db}"}
"""

import contextlib
import http.client
import json
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.smoke_answers import smoke_records

READ = 65536
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


OPENER = urllib.request.build_opener(_NoRedirect)


def send(item: dict, check: str, timeout: int) -> dict:
    """One transaction, answered as `uri` answers (status -1: no HTTP answer at all)."""
    req = urllib.request.Request(f"{item['url']}{item['path']}", data=json.dumps(item["body"]).encode(),  # noqa: S310
                                 method="POST", headers={"Content-Type": "application/json",
                                                         "X-Cutover-Check": check})
    try:
        with OPENER.open(req, timeout=timeout) as answer:  # the host's own services
            status, body, kind = answer.status, answer.read(READ), answer.headers.get_content_subtype()
    except urllib.error.HTTPError as answer:
        status, body, kind = answer.code, answer.read(READ), answer.headers.get_content_subtype()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return {"item": item, "status": -1, "msg": f"Status code was -1 and not [200]: Request failed: {exc}"}
    content = body.decode("utf-8", "replace")
    said = f"OK ({len(body)} bytes)" if status == 200 else f"Status code was {status} and not [200]"
    result = {"item": item, "status": status, "content": content, "msg": said}
    if "json" in kind:  # as uri: JSON only when the answer says it is
        with contextlib.suppress(ValueError):
            result["json"] = json.loads(content)
    return result


def connect(conn: dict, db: str, timeout: int):
    try:  # imported here: a missing driver is a record reported unread, not a crash
        import psycopg as driver  # noqa: PLC0415
    except ImportError as first:  # a host with psycopg2 only, as postgresql_query accepts
        try:
            import psycopg2 as driver  # noqa: PLC0415
        except ImportError:
            raise first from None
    kwargs = {"host": conn["host"], "port": int(conn["port"]), "user": conn["user"],
              "password": conn["password"], "dbname": db, "sslmode": conn["sslmode"],
              "connect_timeout": timeout, "application_name": "cutover-smoke"}
    if conn.get("sslrootcert"):
        kwargs["sslrootcert"] = conn["sslrootcert"]
    return driver.connect(**kwargs)


def read_back(record: dict, p: dict) -> dict:
    """Run the record's statement for its id inside the guard, in a transaction of its own."""
    if record["database"] == "line":
        conn_args, db = p["line_db"], (p["line_databases"].get(record["line"]) or {}).get("db", "")
    else:
        conn_args, db = p["tax_db"], p["tax_db"].get("db", "")
    try:
        conn = connect(conn_args, db, p["timeout"])
    except Exception as exc:  # any driver's error: the record is reported unread
        return {"item": record, "failed": True, "msg": f"could not connect to {db}: {exc}"}
    try:
        with conn.cursor() as cur:
            cur.execute(GUARD.format(sql=record["sql"]), {"id": record["id"]})
            rows = cur.fetchall()
        conn.commit()
        return {"item": record, "failed": False, "query_result": [{"touched": row[0]} for row in rows]}
    except Exception as exc:  # the guard's refusal is an error too; rolled back
        conn.rollback()
        return {"item": record, "failed": True, "msg": f"Cannot execute SQL in {db}: {exc}"}
    finally:
        conn.close()


def main() -> None:
    database = {"host": {"type": "str", "required": True}, "port": {"type": "int", "required": True},
                "user": {"type": "str", "required": True},
                "password": {"type": "str", "required": True, "no_log": True},
                "sslmode": {"type": "str", "required": True}, "sslrootcert": {"type": "str", "default": ""}}
    # the tax side's is needed only by a transaction read back there (the role refuses one without it)
    tax = {key: {**spec, "required": False} for key, spec in database.items()} | {"db": {"type": "str"}}
    module = AnsibleModule(
        argument_spec={
            "sends": {"type": "list", "elements": "dict", "required": True},
            "catalog": {"type": "dict", "required": True},
            "check": {"type": "str", "required": True},
            "timeout": {"type": "int", "default": 30},
            "line_db": {"type": "dict", "required": True, "options": database},
            "line_databases": {"type": "dict", "required": True},
            "tax_db": {"type": "dict", "default": {}, "options": tax},
        },
        supports_check_mode=True,
    )
    p = module.params
    sent = [send(item, p["check"], p["timeout"]) for item in p["sends"]]
    # every record a service named, accepted or not, so that none stays behind
    read = [read_back(record, p) for record in smoke_records(sent, p["catalog"])]
    module.exit_json(changed=False, sent=sent, read=read)


if __name__ == "__main__":
    main()
