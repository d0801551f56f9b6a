"""The lab's data is what the generator says it is: same seed, same counts; and the N5
screening of it only reads, whatever the inventory's quality rules say."""

from __future__ import annotations

import pytest

from .conftest import FAULTS, SCALE, SEED

pytestmark = pytest.mark.lab


def test_row_counts_match_the_generator(lab, lab_vars, datagen):
    import psycopg

    for line, spec in lab_vars["si_lines"].items():
        dsn = (f"host=127.0.0.1 port=25432 dbname={spec['db']} user=si_owner "
               f"password={lab_vars['vault_si_db_password']}")
        expected = datagen.expected_counts(line, SCALE, SEED, frozenset(FAULTS))
        with psycopg.connect(dsn) as conn:
            found = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in expected}
        assert found == expected, line


def test_tax_side_has_its_own_empty_receiving_database(lab, lab_vars):
    import psycopg

    dsn = (f"host=127.0.0.1 port=25433 dbname=tax_receive user=tax_loader "
           f"password={lab_vars['vault_si_tax_db_password']}")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "tax_receive"


def _connection(lab_vars) -> dict:
    return {"host": "127.0.0.1", "port": 25432, "user": "si_owner", "sslmode": "disable",
            "password": lab_vars["vault_si_db_password"]}


def test_a_rule_smuggling_a_second_statement_is_refused_and_runs_nothing(lab, lab_vars):
    import psycopg

    from cutover.data.screen import screen_line
    from cutover.errors import CutoverError

    # as one command each, this rule closes the read-only transaction and creates a table
    rule = {"name": "smuggled", "table": "person",
            "check": "true); COMMIT; CREATE TABLE cutover_smuggled (a int); SELECT (1"}
    with pytest.raises(CutoverError) as err:
        screen_line(_connection(lab_vars), line="gs", title="工伤保险", database="si_gs", rules=[rule],
                    say=lambda _: None)
    assert "si_export.quality_rules[smuggled] (table person) holds a statement separator" in err.value.message
    with psycopg.connect(**_connection(lab_vars), dbname="si_gs") as conn:
        assert conn.execute("SELECT to_regclass('cutover_smuggled')").fetchone()[0] is None


def test_two_fragments_joined_by_a_comment_marker_are_refused_by_name_and_run_nothing(lab, lab_vars, tmp_path):
    """The joined-text attack: a row filter ending in `--` and a rule carrying a second
    command; each plans alone, together they wrote past READ ONLY. Refused by name now."""
    import psycopg

    from cutover.data.export import export_line
    from cutover.errors import CutoverError

    tables = [{"name": "person", "where": "true --"}]
    rule = {"name": "receiver-rule", "table": "person",
            "check": "\ntrue)) TO STDOUT; BEGIN READ WRITE; CREATE TABLE cutover_smuggled2 (a int); COMMIT"}
    with pytest.raises(CutoverError) as err:
        export_line(_connection(lab_vars), line="gs", title="工伤保险", database="si_gs", tables=tables,
                    rules=[rule], outdir=tmp_path / "out", reject_dir=tmp_path / "rej", say=lambda _: None)
    assert "si_export.tables[person].where holds a comment marker (--)" in err.value.message
    assert not (tmp_path / "out").exists()
    with psycopg.connect(**_connection(lab_vars), dbname="si_gs") as conn:
        assert conn.execute("SELECT to_regclass('cutover_smuggled2')").fetchone()[0] is None


def test_every_statement_built_for_the_export_runs_one_command_only(lab, lab_vars, tmp_path):
    """The class, not the example: the COPY and the counts go through the extended protocol,
    so even text that slipped past the fragment check cannot run a second command."""
    import psycopg

    from cutover.data.copyout import copy_to
    from cutover.data.session import one_statement
    from cutover.errors import CutoverError

    two = "SELECT 1) TO STDOUT; CREATE TABLE cutover_smuggled3 (a int); COPY (SELECT 1"
    with psycopg.connect(**_connection(lab_vars), dbname="si_gs", autocommit=True) as conn:
        with pytest.raises(CutoverError, match="multiple commands"):
            copy_to(conn, two, tmp_path / "x.csv")
        with pytest.raises(psycopg.Error, match="multiple commands"):
            one_statement(conn.cursor(), "SELECT 1; CREATE TABLE cutover_smuggled3 (a int)")
        assert conn.execute("SELECT to_regclass('cutover_smuggled3')").fetchone()[0] is None
        assert not list(tmp_path.iterdir())


def test_a_full_disk_during_the_export_is_a_clear_refusal_and_leaves_nothing_half_written(lab, lab_vars,
                                                                                           tmp_path):
    import subprocess

    from cutover.data.export import export_line
    from cutover.errors import CutoverError

    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(CutoverError) as err:
            export_line(_connection(lab_vars), line="gs", title="工伤保险", database="si_gs",
                        outdir=small / "export" / "gs", reject_dir=small / "fix" / "gs", say=lambda _: None)
        assert "No space left on device" in err.value.message
        assert "free there" in err.value.message
        assert "then export again" in err.value.hint
        assert not [p for p in small.rglob("*") if p.is_file()]  # no .partial, no CSV without its manifest
    finally:
        subprocess.run(["umount", str(small)], check=False)


@pytest.mark.parametrize("check", ["id IN (SELECT person_id FROM account WHERE balance > 0)",
                                   "(SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity) >= 0"])
def test_a_receivers_rule_that_reads_beyond_its_own_row_is_refused_before_anything_runs(lab, lab_vars, check):
    """A rule from the receiving organisation judges the row it is given; one that reads other
    tables or the catalogs could learn what the export leaves out (N5)."""
    from cutover.data.screen import screen_line
    from cutover.errors import CutoverError

    rule = {"name": "nosy", "table": "person", "check": check}
    with pytest.raises(CutoverError, match=r"quality_rules\[nosy\] \(table person\) reads more than its own row"):
        screen_line(_connection(lab_vars), line="gs", title="工伤保险", database="si_gs", rules=[rule],
                    say=lambda _: None)
