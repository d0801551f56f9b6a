"""plan.check holds the inventory's smoke transactions (si_smoke_transactions; issue #15 items
7 and 12) to what the restore's business_smoke role relies on, before any host is touched: a
statement that is more than one, reads by another parameter, removes nothing or could remove
someone else's record is named with its file and line and what to write instead."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cutover.plan.lint import load_plan

from .problems import errors, line_of

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "plans" / "shanxi-2023-11.yml"
EXAMPLE = ROOT / "inventories" / "example"
APPROVAL_SQL = "DELETE FROM approval WHERE id = %(id)s AND kind = 'cutover-smoke' RETURNING id"




@pytest.fixture
def checks(tmp_path) -> Path:
    """The example inventory's business_checks.yml, in a copy to break."""
    shutil.copytree(EXAMPLE, tmp_path / "example")
    return tmp_path / "example" / "group_vars" / "all" / "business_checks.yml"


def _check(checks: Path, old: str, new: str) -> list[str]:
    text = checks.read_text(encoding="utf-8")
    assert old in text
    checks.write_text(text.replace(old, new, 1), encoding="utf-8")
    _, problems = load_plan(SHIPPED, checks.parents[2])
    return errors(problems)


@pytest.mark.parametrize("inventory", ["example", "lab"])
def test_the_shipped_smoke_transactions_pass(inventory):
    _, problems = load_plan(SHIPPED, ROOT / "inventories" / inventory)
    assert not [e for e in errors(problems) if "si_smoke" in e]


@pytest.mark.parametrize(("new_sql", "said", "hint"), [
    (APPROVAL_SQL + "; DROP TABLE approval", "holds a statement separator (;); a smoke statement is exactly one "
     "statement", "write one statement"),
    (APPROVAL_SQL + " -- and more", "holds a comment marker (--)", "no comments"),
    (APPROVAL_SQL.replace("%(id)s", "%(id)s AND line = %(line)s"),
     "uses %(line)s: the only parameter is %(id)s, the id the service answered", "write %% for a literal percent"),
    (APPROVAL_SQL + " AND kind LIKE 'c%'", "uses a bare %", "write %% for a literal percent"),
    ("DELETE FROM approval WHERE kind = 'cutover-smoke' RETURNING id",
     "does not read its record back by <its id column> = %(id)s", "add WHERE <its id column> = %(id)s"),
    (APPROVAL_SQL.replace("id = %(id)s", "id >= %(id)s"),
     "does not read its record back by <its id column> = %(id)s", "add WHERE <its id column> = %(id)s"),
    (APPROVAL_SQL.replace("AND kind", "OR kind"), "holds OR: a smoke statement reaches its one record only",
     "write WHERE <its id column> = %(id)s AND <mark column> = <the mark>"),
    ("SELECT id FROM approval WHERE id = %(id)s AND kind = 'cutover-smoke'",
     "neither removes nor undoes its record", "DELETE FROM <table> WHERE id = %(id)s"),
    ("DELETE FROM approval WHERE id = %(id)s RETURNING id", "does not keep to the check's mark 'cutover-smoke'",
     "add AND <column> = 'cutover-smoke', so only a check's own record can be removed"),
])
def test_a_bad_statement_is_named_at_its_line_with_what_to_write(checks, new_sql, said, hint):
    found = _check(checks, APPROVAL_SQL, new_sql)
    assert len(found) == 1, found
    assert found[0].startswith(f"{checks}:{line_of(checks, new_sql)}: inventory ")
    assert f"si_smoke_transactions.approval.records[0].sql {said}" in found[0]
    assert hint in found[0]


def test_a_path_that_is_not_a_plain_function_name_is_refused(checks):
    found = _check(checks, "path: account", "path: ../admin/account?x=1")
    assert len(found) == 1, found
    assert found[0].startswith(f"{checks}:{line_of(checks, 'path: ../admin')}: ")
    assert "si_smoke_transactions.account.path '../admin/account?x=1' is not a plain function name" in found[0]


def test_a_mark_the_body_does_not_carry_is_named(checks):
    found = _check(checks, "kind: cutover-smoke, status: done}\n    mark: cutover-smoke",
                   "kind: check, status: done}\n    mark: cutover-smoke")
    assert len(found) == 1, found
    assert found[0].startswith(f"{checks}:{line_of(checks, 'mark: cutover-smoke')}: ")
    assert "si_smoke_transactions.approval.mark 'cutover-smoke' is no value of the body" in found[0]


def test_an_unknown_database_is_named(checks):
    found = _check(checks, "- database: tax", "- database: ledger")
    assert len(found) == 1, found
    assert found[0].startswith(f"{checks}:{line_of(checks, 'database: ledger')}: ")
    assert "si_smoke_transactions.tax-transfer.records[1].database 'ledger' is not a database the check knows" \
        in found[0]


def test_a_transaction_a_stage_sends_that_the_inventory_lacks_is_named_with_the_step(checks):
    text = checks.read_text(encoding="utf-8")
    start = text.index("  account:")
    checks.write_text(text[:start] + text[text.index("  tax-transfer:"):], encoding="utf-8")
    _, problems = load_plan(SHIPPED, checks.parents[2])
    found = errors(problems)
    assert len(found) == 1, found
    assert found[0].startswith(f"{checks}:{line_of(checks, 'si_smoke_transactions:')}: ")
    assert "si_smoke_transactions has no transaction 'account', which playbooks/restore/restore.yml sends " \
           "(step n9-restore-core)" in found[0]
    assert "hint: add account: {path, body, mark, records} (inventories/lab/group_vars/all/business_checks.yml " \
           "is the example)" in found[0]


def test_a_record_on_the_tax_side_needs_where_the_tax_side_is(checks):
    found = _check(checks, "  db: shared_ledger\n", "")
    assert len(found) == 1, found
    assert "reads records back on the tax side (database: tax), but si_smoke_tax_db is missing or incomplete" \
        in found[0]
    assert "add si_smoke_tax_db: {host, port, user, password, sslmode, db}" in found[0]
    assert "vault_si_smoke_tax_db_password" not in found[0]


def test_no_smoke_transactions_at_all_is_missing_for_every_restore_stage(checks):
    checks.unlink()
    _, problems = load_plan(SHIPPED, checks.parents[2])
    found = errors(problems)
    assert found
    assert all("si_smoke_transactions is missing on" in e for e in found), found
