"""The lab's data is what the generator says it is: same seed, same counts; and the N5
screening of it only reads, whatever the inventory's quality rules say."""

from __future__ import annotations

import pytest

from .conftest import SCALE, SEED

pytestmark = pytest.mark.lab


def test_row_counts_match_the_generator(lab, lab_vars, datagen):
    import psycopg

    for line, spec in lab_vars["si_lines"].items():
        dsn = (f"host=127.0.0.1 port=25432 dbname={spec['db']} user=si_owner "
               f"password={lab_vars['vault_si_db_password']}")
        expected = datagen.expected_counts(line, SCALE, SEED, frozenset())
        with psycopg.connect(dsn) as conn:
            found = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in expected}
        assert found == expected, line


def test_tax_side_has_its_own_empty_receiving_database(lab, lab_vars):
    import psycopg

    dsn = (f"host=127.0.0.1 port=25433 dbname=tax_receive user=tax_loader "
           f"password={lab_vars['vault_si_tax_db_password']}")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "tax_receive"


def test_a_rule_smuggling_a_second_statement_is_refused_and_runs_nothing(lab, lab_vars):
    import psycopg

    from cutover.data.export import screen_line
    from cutover.errors import CutoverError

    dsn = f"host=127.0.0.1 port=25432 user=si_owner password={lab_vars['vault_si_db_password']}"
    # as one command each, this rule closes the read-only transaction and creates a table
    rule = {"name": "smuggled", "table": "person",
            "check": "true); COMMIT; CREATE TABLE cutover_smuggled (a int); SELECT (1"}
    with pytest.raises(CutoverError) as err:
        screen_line(dsn, line="gs", title="工伤保险", database="si_gs", rules=[rule], say=lambda _: None)
    assert "si_export.quality_rules[smuggled] (table person) is not valid SQL" in err.value.message
    assert "multiple commands" in err.value.message
    with psycopg.connect(dsn, dbname="si_gs") as conn:
        assert conn.execute("SELECT to_regclass('cutover_smuggled')").fetchone()[0] is None
