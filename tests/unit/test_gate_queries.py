"""The gates' business queries are inventory data (issue #15): a site's own SQL against its own
schema (si_gate_queries). plan.check names a missing query, a second statement or an unknown
argument at the file and line where it is written; the real gate playbooks (N1, N3) run the
inventory's queries on a real PostgreSQL, inside a read-only transaction, and publish the
same evidence as before (the engine's gate polling and `recheck_of` read it)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from cutover.ansible.runner import run_playbook
from cutover.data import sql
from cutover.plan.lint import load_plan

from ..pgcluster import throwaway_postgres
from .problems import errors, line_of

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "plans" / "shanxi-2023-11.yml"
N1 = ROOT / "playbooks" / "stop" / "gate-collection-plan.yml"
N3 = ROOT / "playbooks" / "stop" / "gate-payments-approvals.yml"

_spec = importlib.util.spec_from_file_location("gate_filters", ROOT / "filter_plugins" / "gates.py")
gates = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gates)




@pytest.fixture
def example(tmp_path) -> Path:
    inv = tmp_path / "example"
    shutil.copytree(ROOT / "inventories" / "example", inv)
    return inv


# ---------------------------------------------------------------- plan.check


def test_a_query_taken_from_the_inventory_is_named_where_the_gates_queries_are_written(example):
    gates_file = example / "group_vars" / "db" / "gates.yml"
    text = gates_file.read_text()
    start, end = text.index("  collection_plan: >-\n"), text.index("  payments_approvals:\n")
    gates_file.write_text(text[:start] + text[end:])
    _, problems = load_plan(SHIPPED, example)
    found = errors(problems)
    assert found == [f"{gates_file}:{line_of(gates_file, 'si_gate_queries:')}: inventory {example}: "
                     "si_gate_queries has no collection_plan, which step n1-gate-collection-plan runs\n"
                     "    hint: add collection_plan as inventories/lab/group_vars/db/gates.yml does"]


def test_the_whole_variable_taken_away_is_named_on_the_db_hosts(example):
    (example / "group_vars" / "db" / "gates.yml").unlink()
    _, problems = load_plan(SHIPPED, example)
    found = errors(problems)
    assert len(found) == 1, found
    assert found[0].startswith(f"{example / 'hosts.yml'}:{line_of(example / 'hosts.yml', 'db-prov-01:')}: ")
    assert "si_gate_queries is missing on db-prov-01, db-prov-02, needed by play " \
           "\"N1 gate | every agency has this month's collection plan\"" in found[0]
    assert "group_vars/db/vars.yml (every host of db)" in found[0]


def test_a_second_statement_in_a_query_is_named_at_its_line(example):
    gates_file = example / "group_vars" / "db" / "gates.yml"
    text = gates_file.read_text().replace("GROUP BY o.agency_code, o.agency_name ORDER BY o.agency_code\n    in_transit:",
                                          "GROUP BY o.agency_code, o.agency_name ORDER BY o.agency_code;\n"
                                          "        DELETE FROM si.wf_task\n    in_transit:")
    gates_file.write_text(text)
    _, problems = load_plan(SHIPPED, example)
    found = errors(problems)
    assert len(found) == 1, found
    query_line = line_of(gates_file, "query:", after=line_of(gates_file, "pending_approvals:"))
    assert found[0].startswith(f"{gates_file}:{query_line}: inventory {example}: si_gate_queries.payments_approvals."
                               "pending_approvals.query holds a statement separator (;); a gate's query is one "
                               "statement\n    hint: write one SELECT returning agency, name, ids per agency")


def test_an_unknown_named_argument_a_write_and_a_kind_without_problem_are_each_named(example):
    gates_file = example / "group_vars" / "db" / "gates.yml"
    text = gates_file.read_text()
    text = text.replace("z.plan_month = %(period)s", "z.plan_month = %(month)s")
    text = text.replace("      problem: business in transit\n", "")
    text = text.replace("""      query: >-
        SELECT o.agency_code AS agency, o.agency_name AS name,
          coalesce(string_agg(b.batch_no""", """      query: >-
        UPDATE si.pay_batch SET x = 1 RETURNING agency_code AS agency, '' AS name,
          coalesce(string_agg(b.batch_no""")
    gates_file.write_text(text)
    _, problems = load_plan(SHIPPED, example)
    found = errors(problems)
    at = {line_of(gates_file, "collection_plan:"): "si_gate_queries.collection_plan names the argument %(month)s; "
          "the gate passes only %(period)s",
          line_of(gates_file, "query:", after=line_of(gates_file, "unpaid_batches:")):
          "si_gate_queries.payments_approvals.unpaid_batches.query starts with 'UPDATE'; a gate's query is a "
          "SELECT (or WITH … SELECT)",
          line_of(gates_file, "in_transit:"): "si_gate_queries.payments_approvals.in_transit has no problem text"}
    assert len(found) == 3, found
    for line, message in at.items():
        assert any(f.startswith(f"{gates_file}:{line}: inventory {example}: {message}") for f in found), (message, found)


def test_the_runtime_check_refuses_what_sql_refuses():
    """The gate's own check (it runs where cutover's package may not) has cutover.data.sql's markers."""
    assert set(gates.FORBIDDEN) == set(sql.FORBIDDEN)
    assert gates.gate_query_problems({"collection_plan": "SELECT 1 -- x"}, "collection_plan") == [
        "si_gate_queries.collection_plan holds --: a gate's query is one statement without comments"]
    assert gates.gate_query_problems(None, "payments_approvals") == [
        "si_gate_queries is missing or not a mapping of gate to query (the inventory's group_vars/db)"]
    assert gates.gate_query_problems({"payments_approvals": {"name": {"problem": "p", "query": "SELECT 1"}}},
                                     "payments_approvals") == [
        "si_gate_queries.payments_approvals.name: the kind is not a lower-case name (letters, digits, _) of its own"]


# ---------------------------------------------------------------- the real gates on a real PostgreSQL

SCHEMA = """
CREATE TABLE org (code text PRIMARY KEY, title text, tier text);
CREATE TABLE month_plan (code text, month text);
CREATE TABLE batch (no int, code text, returned boolean);
CREATE TABLE todo (no int, code text, done boolean);
CREATE FUNCTION touch() RETURNS int LANGUAGE sql VOLATILE AS 'INSERT INTO todo VALUES (99, ''A1'', true) RETURNING 1';
INSERT INTO org VALUES ('A1', '{{ 7 * 6 }} [bold]x', 'city'), ('A2', '乙县', 'county');
INSERT INTO month_plan VALUES ('A1', '202311'), ('A2', '202311');
INSERT INTO batch VALUES (3, 'A1', false), (1, 'A1', false), (2, 'A2', true);
INSERT INTO todo VALUES (7, 'A2', false);
"""
N1_QUERY = ("SELECT o.code AS agency, o.title AS name, o.tier AS level, count(m.code) AS plans FROM org o "
            "LEFT JOIN month_plan m ON m.code = o.code AND m.month = %(period)s GROUP BY o.code, o.title, o.tier "
            "ORDER BY o.code")
UNPAID = ("SELECT o.code AS agency, o.title AS name, coalesce(string_agg(b.no::text, ',' ORDER BY b.no), '') AS ids "
          "FROM org o LEFT JOIN batch b ON b.code = o.code AND NOT b.returned GROUP BY o.code, o.title ORDER BY o.code")
TODO = ("SELECT o.code AS agency, o.title AS name, coalesce(string_agg(t.no::text, ',' ORDER BY t.no), '') AS ids "
        "FROM org o LEFT JOIN todo t ON t.code = o.code AND NOT t.done GROUP BY o.code, o.title ORDER BY o.code")


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster: two line databases with a schema of their own."""
    with throwaway_postgres("postgres", ["line_a", "line_b"]) as cluster:
        for db in ("line_a", "line_b"):
            with psycopg.connect(f"{cluster['dsn']} dbname={db}") as conn:
                conn.execute(SCHEMA)
        yield cluster["port"]


def _count(port: int, db: str, table: str) -> int:
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


LINES = {"a": {"title": "A", "db": "line_a", "core_port": 1}, "b": {"title": "B", "db": "line_b", "core_port": 2}}


def _gate(tmp_path: Path, port: int, book: Path, queries: dict, lines: dict = LINES) -> object:
    tmp_path.mkdir(exist_ok=True)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"db": {
        "hosts": {"pgtest": None},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "si_lines": lines,
                 "si_db_host": "127.0.0.1", "si_db_port": port, "si_db_user": "postgres",
                 "si_db_password": "unused-with-trust", "si_db_sslmode": "disable",
                 "si_gate_queries": queries}}}}}, allow_unicode=True, sort_keys=False))
    return run_playbook(book, inventory, ident=book.stem, artifacts_dir=tmp_path / "art",
                        extravars={"cutover_period": "202311"})


def test_the_gates_ask_the_inventorys_own_schema_and_publish_the_same_evidence(tmp_path, postgres):
    queries = {"collection_plan": N1_QUERY,
               "payments_approvals": {"unpaid": {"problem": "benefit payment batch without return file",
                                                 "query": UNPAID},
                                      "open_todo": {"problem": "approval pending", "query": TODO}}}
    n1 = _gate(tmp_path / "n1", postgres, N1, queries)
    assert n1.ok, n1.summary()
    assert n1.evidence["gate"]["passed"] is True
    assert n1.evidence["gate"]["summary"] == "4/4 agency×line collection plans present for 202311"

    n3 = _gate(tmp_path / "n3", postgres, N3, queries)
    assert not n3.ok
    gate = n3.evidence["gate"]
    assert (gate["requirement"], gate["period"], gate["passed"]) == ("N3", "202311", False)
    assert gate["summary"] == "4 agency×line checked: 4 benefit payment batch without return file, 2 approval pending"
    name = "{{ 7 * 6 }} [bold]x"  # the database's text, never templated
    assert gate["findings"] == [
        {"line": "a", "agency": "A1", "name": name, "problem": "benefit payment batch without return file",
         "ids": "1,3"},
        {"line": "a", "agency": "A2", "name": "乙县", "problem": "approval pending", "ids": "7"},
        {"line": "b", "agency": "A1", "name": name, "problem": "benefit payment batch without return file",
         "ids": "1,3"},
        {"line": "b", "agency": "A2", "name": "乙县", "problem": "approval pending", "ids": "7"}]
    assert gate["per_agency"][0] == {"line": "a", "agency": "A1", "name": name, "unpaid": 2, "unpaid_ids": "1,3",
                                     "open_todo": 0, "open_todo_ids": ""}
    assert len(gate["per_agency"]) == 4
    said = n3.summary()
    assert f"N3: benefit payment batch without return file at agency A1 ({name}), line a, id 1,3; " in said


@pytest.mark.parametrize("query", [
    f"WITH gone AS (DELETE FROM todo RETURNING no) {TODO}",
    TODO.replace("coalesce(", "touch()::text || coalesce(", 1),
], ids=["with-delete", "volatile-function"])
def test_a_query_that_writes_is_refused_by_the_database_and_the_gate_fails_naming_it(tmp_path, postgres, query):
    before = _count(postgres, "line_a", "todo")
    queries = {"collection_plan": N1_QUERY,
               "payments_approvals": {"unpaid": {"problem": "benefit payment batch without return file",
                                                 "query": UNPAID},
                                      "open_todo": {"problem": "approval pending", "query": query}}}
    result = _gate(tmp_path, postgres, N3, queries)
    assert not result.ok
    assert "gate" not in result.evidence  # no verdict: the engine fails it, never lets it pass
    said = result.summary()
    assert "a: si_gate_queries.payments_approvals.open_todo: Cannot execute SQL" in said
    assert "read-only transaction" in said
    assert _count(postgres, "line_a", "todo") == before


@pytest.mark.parametrize("gate", ["n1", "n3"])
def test_a_query_that_finds_no_agency_gives_no_verdict_instead_of_passing(tmp_path, postgres, gate):
    """A wrong filter or an empty table returns no rows: that is not "every agency has its
    plan" nor "nothing is open". The gate fails without a verdict (never let pass unseen)."""
    def nothing(query: str) -> str:
        return " HAVING false ORDER BY".join(query.rsplit(" ORDER BY", 1))

    queries = {"collection_plan": nothing(N1_QUERY) if gate == "n1" else N1_QUERY,
               "payments_approvals": {"unpaid": {"problem": "benefit payment batch without return file",
                                                 "query": nothing(UNPAID) if gate == "n3" else UNPAID}}}
    result = _gate(tmp_path, postgres, N1 if gate == "n1" else N3, queries)
    assert not result.ok
    assert "gate" not in result.evidence
    assert "returned no agency at all: the gate gives no verdict on nothing" in result.summary()


def test_a_second_statement_is_refused_before_any_database_is_asked(tmp_path, postgres):
    """Several statements could end the read-only transaction and write in the next one: the
    gate refuses them itself, as plan.check does, when the playbook is run alone."""
    before = _count(postgres, "line_a", "todo")
    queries = {"collection_plan": f"{N1_QUERY}; COMMIT; DELETE FROM todo",
               "payments_approvals": {"unpaid": {"problem": "x", "query": UNPAID}}}
    result = _gate(tmp_path, postgres, N1, queries)
    assert not result.ok
    assert "si_gate_queries.collection_plan holds ;: a gate's query is one statement without comments" \
        in result.summary()
    assert _count(postgres, "line_a", "todo") == before


def test_the_labs_queries_find_the_labs_planted_faults(tmp_path, postgres):
    """The lab inventory's queries (inventories/lab/group_vars/db/gates.yml) on the lab's own
    schema and data (lab/datagen), every gate fault planted in one line: what the lab
    integration tests and the plan's N3 re-check expect."""
    spec = importlib.util.spec_from_file_location("datagen", ROOT / "lab" / "datagen" / "generate.py")
    datagen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(datagen)
    with psycopg.connect(host="127.0.0.1", port=postgres, user="postgres", dbname="postgres", autocommit=True) as c:
        for db in ("lab_qyyl", "lab_sy"):
            c.execute(f"DROP DATABASE IF EXISTS {db}")
            c.execute(f"CREATE DATABASE {db}")
    for line, faults in (("qyyl", datagen.FAULTS), ("sy", ())):
        datagen.load(f"host=127.0.0.1 port={postgres} user=postgres dbname=lab_{line}", line, 20, 20231118,
                     frozenset(faults))
    lab = yaml.safe_load((ROOT / "inventories" / "lab" / "group_vars" / "db" / "gates.yml").read_text())
    lines = {"qyyl": {"title": "企保", "db": "lab_qyyl", "core_port": 1}, "sy": {"title": "失业", "db": "lab_sy",
                                                                              "core_port": 2}}
    n1 = _gate(tmp_path / "n1", postgres, N1, lab["si_gate_queries"], lines)
    assert [(f["line"], f["agency"], f["problem"]) for f in n1.evidence["gate"]["findings"]] == \
        [("qyyl", "140102", "no collection plan")]
    n3 = _gate(tmp_path / "n3", postgres, N3, lab["si_gate_queries"], lines)
    gate = n3.evidence["gate"]
    assert [(f["line"], f["agency"], f["problem"]) for f in gate["findings"]] == [
        ("qyyl", "140102", "benefit payment batch without return file"), ("qyyl", "140102", "approval pending"),
        ("qyyl", "140102", "business in transit")]
    assert all(f["ids"].isdigit() for f in gate["findings"])
    assert gate["summary"] == ("90 agency×line checked: 1 benefit payment batch without return file, "
                               "1 approval pending, 1 business in transit")
    assert "N3: benefit payment batch without return file at agency 140102 (" in n3.summary()
