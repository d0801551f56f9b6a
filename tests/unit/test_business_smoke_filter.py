"""roles/business_smoke: what is sent for each transaction, which answers are records to read
back and remove, and which are refusals to report. Every answer comes from a host; only a
plain decimal id is ever used."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "business_smoke_filter", ROOT / "roles" / "business_smoke" / "action_plugins" / "smoke_check.py")
smoke = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smoke)

URL = "http://127.0.0.1:28011/"
LINE_SQL = "DELETE FROM approval WHERE id = %(id)s AND kind = 'cutover-smoke' RETURNING id"
TAX_SQL = "DELETE FROM shared_ledger WHERE id = %(id)s RETURNING id"
CATALOG = {
    "approval": {"path": "approval", "body": {"kind": "cutover-smoke"}, "mark": "cutover-smoke",
                 "records": [{"database": "line", "sql": LINE_SQL}]},
    "tax-transfer": {"path": "collection", "body": {"period": "cutover-smoke"}, "mark": "cutover-smoke",
                     "records": [{"database": "line", "sql": LINE_SQL},
                                 {"database": "tax", "id_from": "tax_id", "sql": TAX_SQL}]},
}
TAX_DB = {"host": "h", "port": 5432, "user": "u", "password": "p", "sslmode": "disable", "db": "tax_receive"}


def answer(status=200, name="approval", line="qyyl", **extra):
    send = {"url": URL, "line": line, "name": name, "path": CATALOG[name]["path"], "body": {}}
    return {"item": send, "status": status, **extra}


def test_each_service_gets_each_transaction_in_each_line_with_the_line_in_its_body():
    sends = smoke.smoke_sends([URL, "http://b/"], ["qyyl", "gs"], ["approval"], CATALOG)
    assert [(s["url"], s["line"]) for s in sends] == [(URL, "qyyl"), (URL, "gs"), ("http://b/", "qyyl"),
                                                      ("http://b/", "gs")]
    assert sends[1]["body"] == {"kind": "cutover-smoke", "line": "gs"}
    assert CATALOG["approval"]["body"] == {"kind": "cutover-smoke"}  # the inventory's own is untouched


def test_an_accepted_transaction_is_a_record_to_remove_and_no_refusal():
    results = [answer(json={"ok": True, "id": 42}), answer(json={"id": "7"})]
    assert smoke.smoke_records(results, CATALOG) == [
        {"url": URL, "line": "qyyl", "name": "approval", "path": "approval", "database": "line",
         "sql": LINE_SQL, "id": 42, "accepted": True},
        {"url": URL, "line": "qyyl", "name": "approval", "path": "approval", "database": "line",
         "sql": LINE_SQL, "id": 7, "accepted": True}]
    assert smoke.smoke_refusals(results, CATALOG) == []


def test_a_transfer_is_read_back_in_the_line_and_on_the_tax_side_each_by_its_own_id():
    records = smoke.smoke_records([answer(name="tax-transfer", json={"id": 5, "tax_id": 9})], CATALOG)
    assert [(r["database"], r["id"], r["sql"]) for r in records] == [("line", 5, LINE_SQL), ("tax", 9, TAX_SQL)]


def test_a_refusal_that_names_a_record_has_it_removed_but_never_counted_as_proof():
    """The shared platform wrote to the core, then the tax side refused: the line's record goes."""
    results = [answer(502, name="tax-transfer", json={"ok": False, "id": 5}, content='{"ok": false}')]
    assert [(r["database"], r["id"], r["accepted"]) for r in smoke.smoke_records(results, CATALOG)] == [
        ("line", 5, False)]
    assert smoke.smoke_refusals(results, CATALOG) == [
        f'{URL}collection refused the qyyl tax-transfer transaction (status 502): {{"ok": false}}']


def test_an_accepted_transfer_without_its_tax_booking_id_is_a_refusal_and_its_line_record_goes():
    results = [answer(name="tax-transfer", json={"id": 5}, content='{"id": 5}')]
    assert [r["database"] for r in smoke.smoke_records(results, CATALOG)] == ["line"]
    assert smoke.smoke_refusals(results, CATALOG) == [
        f'{URL}collection accepted the qyyl tax-transfer transaction but answered no record tax_id: {{"id": 5}}']


@pytest.mark.parametrize("made_up", [
    "1; DROP TABLE approval", "12\n", "-1", "1e3", "١٢", True, None, [1], {"id": 1}, 3.5, "", "9" * 19,
])
def test_an_id_that_is_not_a_plain_decimal_is_never_used_and_is_reported(made_up):
    results = [answer(json={"id": made_up}, content='{"id": "..."}')]
    assert smoke.smoke_records(results, CATALOG) == []
    assert smoke.smoke_refusals(results, CATALOG) == [
        f'{URL}approval accepted the qyyl approval transaction but answered no record id: {{"id": "..."}}']


def test_a_refusal_names_the_service_line_and_status_and_shows_a_short_clean_answer():
    hostile = "<script>x</script>\x1b[2J\u202eevil\u2066" + "x" * 500
    [said] = smoke.smoke_refusals([answer(503, content=hostile)], CATALOG)
    assert said.startswith(f"{URL}approval refused the qyyl approval transaction (status 503): "
                           "<script>x</script>?[2J?evil?")
    assert "\x1b" not in said
    assert "\u202e" not in said
    assert said.endswith("…")
    assert len(said) < 350


def test_an_answer_without_status_or_body_is_a_refusal_too():
    [said] = smoke.smoke_refusals([{**answer(line="gs"), "status": None, "msg": "Connection refused"}], CATALOG)
    assert said == f"{URL}approval refused the gs approval transaction (status None): Connection refused"
    no_status = {"item": answer(line="gs")["item"], "msg": "Connection refused"}
    assert smoke.smoke_refusals([no_status], CATALOG)[0].endswith("(status none): Connection refused")
    assert smoke.smoke_records([no_status], CATALOG) == []


def test_a_transaction_the_catalog_lacks_or_cannot_read_back_is_refused_before_anything_is_sent():
    assert smoke.smoke_unrunnable(["approval", "tax-transfer"], CATALOG, TAX_DB) == []
    assert smoke.smoke_unrunnable(["payment"], CATALOG, TAX_DB) == [
        "'payment' is not a transaction of si_smoke_transactions with path, body and records"]
    assert smoke.smoke_unrunnable(["tax-transfer"], CATALOG, {}) == [
        "'tax-transfer' reads a record back on the tax side, and business_smoke_tax_db (the inventory's "
        "si_smoke_tax_db) does not give its host, port, user, password, sslmode, db"]
    odd = {"x": {**CATALOG["approval"], "records": [{"database": "ledger", "sql": LINE_SQL}]}}
    assert smoke.smoke_unrunnable(["x"], odd) == ["'x' reads a record back from 'ledger': say line or tax"]
    sideways = {"x": {**CATALOG["approval"], "path": "../admin?x=1"}}
    assert smoke.smoke_unrunnable(["x"], sideways) == ["'x' has path '../admin?x=1', not a plain function name"]
    assert smoke.smoke_unrunnable(["x"], "not a mapping") == [
        "si_smoke_transactions is not a mapping of named transactions"]


def test_every_reason_not_to_send_is_said_at_once_before_anything_is_sent():
    """One check on the controller (#17): an empty check, a line without a database and a
    transaction the inventory does not define completely, each said; a good check passes."""
    dbs = {"qyyl": {"db": "si_qyyl"}, "gs": {"db": "si_gs"}}
    assert smoke.smoke_refused([URL], ["qyyl", "gs"], ["approval", "tax-transfer"], CATALOG, dbs, TAX_DB) == []
    said = smoke.smoke_refused([URL], ["qyyl", "cjyl"], ["approval", "payment"], CATALOG, dbs, TAX_DB)
    assert said == [
        "line(s) 'cjyl' have no database in business_smoke_line_databases (the inventory's si_lines): nothing "
        "could be read back",
        "'payment' is not a transaction of si_smoke_transactions with path, body and records: fix "
        "si_smoke_transactions in the inventory (invoke plan.check says where)"]
    empty = smoke.smoke_refused([], ["qyyl"], ["approval"], CATALOG, dbs, TAX_DB)
    assert empty == ["business_smoke_urls, business_smoke_lines and business_smoke_transactions name at least "
                     "one service, line and transaction; an empty check proves nothing"]
    assert smoke.smoke_refused([URL], ["qyyl"], ["approval"], CATALOG, "not a mapping", TAX_DB)[0].startswith(
        "line(s) 'qyyl' have no database")


def test_a_line_name_from_the_inventory_is_shown_escaped_never_obeyed():
    said = smoke.smoke_refused([URL], ["qy\x1b[2Jyl\nok"], ["approval"], CATALOG, {}, TAX_DB)[0]
    assert "\x1b" not in said
    assert "\n" not in said
    assert said.startswith("line(s) 'qy\\x1b[2Jyl\\nok' have no database")


def test_a_send_the_host_left_unanswered_fails_the_check_naming_it():
    """An answer left out proves nothing about its service (the host answers what it likes)."""
    sends = smoke.smoke_sends([URL], ["qyyl", "gs"], ["approval"], CATALOG)
    answered = [answer(json={"id": 1}, line="qyyl"), answer(json={"id": 2}, line="gs")]
    assert smoke.smoke_unanswered(sends, answered) == []
    for made_up in ([answered[0]], [answered[1], answered[0]], [answered[0], "x"], {}, None):
        [said] = smoke.smoke_unanswered(sends, made_up)
        assert said.startswith(f"the host answered {len(made_up) if isinstance(made_up, list) else 0} of the 2 "
                               "transactions sent, and not ")
        assert "those services are not proven" in said
    assert "gs approval to http://127.0.0.1:28011/" in smoke.smoke_unanswered(sends, [answered[0]])[0]


def test_the_module_gets_the_tax_side_only_when_a_transaction_reads_back_there():
    line_db = {"host": "db1", "port": 5432, "user": "u", "password": "secret", "sslmode": "disable"}
    base = {"urls": [URL], "lines": ["qyyl"], "catalog": CATALOG, "db": line_db, "tax_db": TAX_DB,
            "line_databases": {"qyyl": {"db": "si_qyyl", "owner": "x"}}}
    plain = smoke.module_args({**base, "transactions": ["approval"]})
    assert plain["tax_db"] == {"host": "", "user": "", "password": "", "sslmode": "", "db": "", "sslrootcert": "",
                               "port": 0}
    assert plain["line_databases"] == {"qyyl": "si_qyyl"}
    assert [s["name"] for s in plain["sends"]] == ["approval"]
    taxed = smoke.module_args({**base, "transactions": ["tax-transfer"]})
    assert (taxed["tax_db"]["db"], taxed["tax_db"]["port"], taxed["tax_db"]["password"]) == ("tax_receive", 5432, "p")
    assert smoke.smoke_unrunnable(["tax-transfer"], CATALOG, {**TAX_DB, "port": "5432; x"}) == [
        "'tax-transfer' reads a record back on the tax side, and business_smoke_tax_db's port '5432; x' is not "
        "a port number"]
