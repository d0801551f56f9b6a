"""The data phase's pure parts: the SQL both sides run, and the table-by-table comparison."""

from __future__ import annotations

from cutover.data import sql
from cutover.data.reconcile import compare, table_text, wait_for_receipt


def manifest(rows: int, checksum: str = "42") -> dict:
    return {"tables": [{"table": "person", "rows": rows, "checksum": checksum},
                       {"table": "account", "rows": 7, "checksum": "9"}]}


def test_checksum_sql_hashes_the_row_text_of_an_explicit_column_list():
    text = sql.checksum_sql("person", ["id", "id_no"], "id > 0", None)
    assert 'ROW("id", "id_no")::text' in text
    assert 'FROM "person" WHERE (id > 0)' in text
    assert "sum(" in text  # a sum is order-independent


def test_a_rule_that_is_null_counts_as_failed():
    assert sql.passes([{"check": "amount > 0"}]) == "coalesce((amount > 0), false)"
    assert sql.passes([]) is None


def test_identifiers_are_quoted():
    assert sql.ident('we"ird') == '"we""ird"'
    assert sql.select_sql("t", ["a b"]) == 'SELECT "a b" FROM "t"'


def test_a_matching_receipt_reconciles():
    receipt = {"lines": {"qyyl": {"tables": {"person": {"rows": 5, "checksum": "42"},
                                             "account": {"rows": 7, "checksum": "9"}}}}}
    rows = compare({"qyyl": manifest(5)}, receipt)
    assert [r["status"] for r in rows] == ["match", "match"]


def test_one_row_short_is_named_with_its_difference():
    receipt = {"lines": {"qyyl": {"tables": {"person": {"rows": 4, "checksum": "41"},
                                             "account": {"rows": 7, "checksum": "9"}}}}}
    rows = {r["table"]: r for r in compare({"qyyl": manifest(5)}, receipt)}
    assert rows["person"]["status"] == "rows differ by -1"
    assert "DIFFERS" in table_text({"tables": list(rows.values())})


def test_same_count_other_content_is_a_checksum_difference():
    receipt = {"lines": {"qyyl": {"tables": {"person": {"rows": 5, "checksum": "43"},
                                             "account": {"rows": 7, "checksum": "9"}}}}}
    rows = {r["table"]: r["status"] for r in compare({"qyyl": manifest(5)}, receipt)}
    assert rows == {"person": "checksum differs", "account": "match"}


def test_missing_and_extra_tables_and_lines_are_differences():
    receipt = {"lines": {"qyyl": {"tables": {"person": {"rows": 5, "checksum": "42"},
                                             "surprise": {"rows": 1, "checksum": "1"}}},
                         "cjyl": {"tables": {"person": {"rows": 1, "checksum": "1"}}}}}
    rows = {(r["line"], r["table"]): r["status"] for r in compare({"qyyl": manifest(5)}, receipt)}
    assert rows[("qyyl", "account")] == "missing at receiver"
    assert rows[("qyyl", "surprise")] == "extra at receiver"
    assert rows[("cjyl", "person")] == "extra at receiver"


class Clock:
    """A fake time source: sleeping advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class SlowReceiver:
    """A drop on which the receipt appears at a given time; counts the sessions opened."""

    name = "sftp://drop"

    def __init__(self, clock: Clock, appears_at: float | None) -> None:
        self.clock, self.appears_at, self.sessions, self.open = clock, appears_at, 0, 0

    def __call__(self):
        self.sessions += 1
        return self

    def __enter__(self):
        self.open += 1
        return self

    def __exit__(self, *exc):
        self.open -= 1

    def size(self, path: str):
        return 10 if self.appears_at is not None and self.clock() >= self.appears_at else None


def test_the_reconciliation_waits_for_a_late_receipt_in_new_sessions():
    clock, said = Clock(), []
    drop = SlowReceiver(clock, appears_at=130)
    assert wait_for_receipt(drop, "receipts/b/receipt.json", wait=600, poll=60, say=said.append,
                            sleep=clock.sleep, clock=clock)
    assert clock.now == 180  # looked at 0, 60, 120, 180
    assert drop.sessions == 4
    assert drop.open == 0  # no session is held open while it waits
    assert said[0] == ("no receipt yet at sftp://drop/receipts/b/receipt.json; looking again in 60 s "
                       "(600 s of 600 s left)")


def test_the_wait_ends_at_its_limit_without_a_receipt():
    clock = Clock()
    drop = SlowReceiver(clock, appears_at=None)
    assert not wait_for_receipt(drop, "r.json", wait=100, poll=60, say=lambda _: None,
                                sleep=clock.sleep, clock=clock)
    assert clock.now == 100  # the last look is at the limit, not one poll past it
    assert drop.sessions == 3
