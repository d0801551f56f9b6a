"""roles/business_smoke end to end (N9–N12, issue #15 items 7 and 12): the lab's own
transactions (inventories/lab/group_vars/all/business_checks.yml) sent by real ansible-playbook
through the project's runner to the lab's business service (lab/app/si_app.py: a core and the
HR–tax shared platform) on a throwaway PostgreSQL 15, each record read back where it must be
and removed. Nothing is left behind: not after success, not after a refusal, and an answer
that lies is shown harmlessly and never used."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import yaml

from cutover.ansible import run_playbook
from cutover.paths import ROOT

from ..pgcluster import throwaway_postgres

CATALOG = yaml.safe_load((ROOT / "inventories" / "lab" / "group_vars" / "all" / "business_checks.yml").read_text())
MARK = "cutover-smoke"

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg(datagen):
    """A PostgreSQL cluster of our own: the qyyl line's database with the lab's data, and the
    tax side's receiving database with the ledger playbooks/lab/provision.yml creates there."""
    with throwaway_postgres("smoke", ["si_qyyl", "tax_receive"]) as cluster:
        dsn = cluster["dsn"]
        datagen.load(f"{dsn} dbname=si_qyyl", "qyyl", 50, 7, frozenset())
        with psycopg.connect(f"{dsn} dbname=tax_receive") as conn:  # as provision.yml's Tax play
            conn.execute("CREATE TABLE shared_ledger (id bigserial PRIMARY KEY, line text NOT NULL, "
                         "function text NOT NULL, line_record_id bigint, body jsonb NOT NULL, "
                         "booked_at timestamptz NOT NULL)")
        yield cluster


def _wait(url: str) -> None:
    for _ in range(100):
        try:
            with urllib.request.urlopen(url + "health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


@pytest.fixture(scope="module")
def services(pg, tmp_path_factory):
    """The lab's service as the lab runs it: a qyyl core, and the shared platform in front of
    it that books on the tax side; a second platform whose tax side has no ledger."""
    app = tmp_path_factory.mktemp("app")
    shutil.copy(ROOT / "lab" / "app" / "si_app.py", app)
    (app / "VERSION").write_text("2023.10.1\n")
    ports = {"core": _free_port(), "platform": _free_port(), "broken": _free_port()}
    core = f"http://127.0.0.1:{ports['core']}/"
    envs = {
        "core": {"SI_MODE": "core", "SI_LINE": "qyyl", "SI_DSN": f"{pg['dsn']} dbname=si_qyyl"},
        "platform": {"SI_MODE": "front", "SI_UPSTREAMS": json.dumps({"qyyl": core.rstrip("/")}),
                     "SI_TAX_DSN": f"{pg['dsn']} dbname=tax_receive"},
        "broken": {"SI_MODE": "front", "SI_UPSTREAMS": json.dumps({"qyyl": core.rstrip("/")}),
                   "SI_TAX_DSN": f"{pg['dsn']} dbname=postgres"},  # no shared_ledger there
    }
    procs = []
    try:
        for name, env in envs.items():
            procs.append(subprocess.Popen(
                [sys.executable, app / "si_app.py"], stderr=subprocess.DEVNULL,
                env={**os.environ, **env, "SI_COMPONENT": f"si-{name}", "SI_PORT": str(ports[name]),
                     "SI_MAINTENANCE_DIR": str(app / "maintenance")}))
        urls = {name: f"http://127.0.0.1:{port}/" for name, port in ports.items()}
        for url in urls.values():
            _wait(url)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def _state(pg) -> dict:
    """What a user of the data would notice: rows per table, the check person's balance, and
    whether any record carries the check's mark."""
    with psycopg.connect(f"{pg['dsn']} dbname=si_qyyl") as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("approval", "contribution", "account")}
        balance = conn.execute("SELECT balance FROM account WHERE person_id = 1").fetchone()[0]
        marked = conn.execute("SELECT (SELECT count(*) FROM approval WHERE kind = %s)"
                              " + (SELECT count(*) FROM contribution WHERE period = %s)", (MARK, MARK)).fetchone()[0]
    with psycopg.connect(f"{pg['dsn']} dbname=tax_receive") as conn:
        booked = conn.execute("SELECT count(*) FROM shared_ledger").fetchone()[0]
    return {"counts": counts, "balance": balance, "marked": marked, "booked": booked}


def _smoke(tmp_path: Path, pg, url: str | list[str], transactions: list[str], ident: str, catalog: dict | None = None):
    book = tmp_path / "smoke.yml"
    book.write_text(yaml.safe_dump([{
        "name": "Smoke", "hosts": "gateway", "gather_facts": False,
        "tasks": [{"name": "Smoke", "ansible.builtin.include_role": {"name": "business_smoke"}, "vars": {
            "business_smoke_urls": url if isinstance(url, list) else [url], "business_smoke_lines": ["qyyl"],
            "business_smoke_transactions": transactions,
            "business_smoke_catalog": "{{ si_smoke_transactions }}",
            "business_smoke_line_databases": {"qyyl": {"db": "si_qyyl"}},
            "business_smoke_db": {"host": "127.0.0.1", "port": pg["port"], "user": "smoke",
                                  "password": "unused-trust", "sslmode": "disable"},
            "business_smoke_tax_db": {"host": "127.0.0.1", "port": pg["port"], "user": "smoke",
                                      "password": "unused-trust", "sslmode": "disable", "db": "tax_receive"},
        }}]}]))
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"gateway": {"hosts": {"gw-a": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "si_smoke_transactions": catalog or CATALOG["si_smoke_transactions"]}}}}}}))
    return run_playbook(book, inv, ident=ident, artifacts_dir=tmp_path / "art")


def test_every_lab_transaction_reaches_its_databases_and_leaves_no_trace(tmp_path, pg, services):
    before = _state(pg)
    result = _smoke(tmp_path, pg, services["core"], ["approval", "collection", "account"], "core")
    assert result.ok, result.summary()
    result = _smoke(tmp_path, pg, services["platform"], ["tax-transfer"], "platform")
    assert result.ok, result.summary()
    after = _state(pg)
    assert after == before  # no row more or less, and the check person's balance exactly as it was
    assert after["marked"] == 0
    assert after["booked"] == 0


def test_a_transfer_the_tax_side_refused_fails_and_its_line_record_is_removed(tmp_path, pg, services):
    before = _state(pg)
    result = _smoke(tmp_path, pg, services["broken"], ["tax-transfer"], "broken")
    assert not result.ok
    said = " ".join(f.message for f in result.failures)
    assert f"{services['broken']}collection refused the qyyl tax-transfer transaction (status 502)" in said
    assert "every record a service named was removed" in said
    assert _state(pg) == before  # the contribution the core wrote before the tax side refused is gone


class _Liar(BaseHTTPRequestHandler):
    """A service that accepts and answers a forged id, markup and terminal control characters."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"ok": True, "id": "1; DROP TABLE approval",
                           "note": "<script>alert(1)</script>\x1b[2J\u202e"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_a_forged_id_is_never_used_and_the_answer_is_shown_harmlessly(tmp_path, pg):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Liar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = _state(pg)
    try:
        result = _smoke(tmp_path, pg, f"http://127.0.0.1:{server.server_address[1]}/", ["approval"], "liar")
    finally:
        server.shutdown()
    assert not result.ok
    said = " ".join(f.message for f in result.failures)
    assert "accepted the qyyl approval transaction but answered no record id" in said
    assert "1; DROP TABLE approval" in said  # shown, as text, never run
    assert "\x1b" not in said
    assert "\u202e" not in said
    assert _state(pg) == before


def test_a_statement_that_reaches_beyond_its_record_is_rolled_back_and_removes_nothing_real(tmp_path, pg, services):
    """An inventory statement with `>=` where `=` was meant (run alone, without plan.check) would
    delete every later approval: the role runs it in a guard that rolls it back unless it
    touched exactly its one record, and says so."""
    catalog = {"approval": {**CATALOG["si_smoke_transactions"]["approval"], "records": [
        {"database": "line", "sql": "DELETE FROM approval WHERE id >= %(id)s - 50 RETURNING id"}]}}
    with psycopg.connect(f"{pg['dsn']} dbname=si_qyyl") as conn:
        real = conn.execute("SELECT count(*) FROM approval WHERE kind <> %s", (MARK,)).fetchone()[0]
    result = _smoke(tmp_path, pg, services["core"], ["approval"], "reach", catalog)
    assert not result.ok
    said = " ".join(f.message for f in result.failures)
    assert "the check statement touched" in said
    assert "rolled back" in said
    with psycopg.connect(f"{pg['dsn']} dbname=si_qyyl") as conn:
        assert conn.execute("SELECT count(*) FROM approval WHERE kind <> %s", (MARK,)).fetchone()[0] == real
        conn.execute("DELETE FROM approval WHERE kind = %s", (MARK,))  # the check's own record, as the message says


def test_a_service_that_redirects_the_transaction_elsewhere_is_refused_and_the_other_place_gets_nothing(
        tmp_path, pg, services):
    """#17: the check is one module call on the host now; as the `uri` calls before it, it proves
    the service it was sent to, never one a redirect names (here the real core, which would
    accept the transaction)."""
    core = services["core"]

    class _Elsewhere(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", f"{core}{self.path.lstrip('/')}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Elsewhere)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = _state(pg)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        result = _smoke(tmp_path, pg, url, ["approval"], "redirect")
    finally:
        server.shutdown()
    assert not result.ok
    said = " ".join(f.message for f in result.failures)
    assert f"{url}approval refused the qyyl approval transaction (status 307)" in said
    assert _state(pg) == before  # the core never saw it


class _CutOff(BaseHTTPRequestHandler):
    """A service that refuses with a body it never finishes (chunked, the connection dropped),
    or, on /deep, accepts with JSON nested deeper than any parser goes."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/deep"):
            data = ("[" * 30000 + "]" * 30000).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"40\r\n{\"half\": ")  # promises 64 bytes, sends 9, hangs up
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("path", ["", "deep/"])
def test_an_answer_that_breaks_off_or_cannot_be_parsed_fails_the_check_and_the_others_records_are_removed(
        tmp_path, pg, services, path):
    """#17: one module call sends everything and reads everything back; one service's broken
    answer must neither crash it nor keep the good service's record from being removed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CutOff)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = _state(pg)
    bad = f"http://127.0.0.1:{server.server_address[1]}/{path}"
    try:
        result = _smoke(tmp_path, pg, [services["core"], bad], ["approval"], "cut-off")
    finally:
        server.shutdown()
    assert not result.ok
    said = " ".join(f.message for f in result.failures)
    if path:
        assert f"{bad}approval accepted the qyyl approval transaction but answered no record id" in said
    else:
        assert f"{bad}approval refused the qyyl approval transaction (status 503)" in said
        assert "its body broke off" in said
    assert services["core"] not in said.split("(every record")[0]  # the good one passed
    assert "Traceback" not in said
    assert _state(pg) == before  # the record the good service wrote was removed


def test_a_check_the_role_cannot_run_sends_nothing_and_no_password_reaches_the_record(tmp_path, pg, services):
    """The inputs are judged on the controller in the role's one task (#17), before the host
    is asked anything; the database password is never in what the run keeps."""
    before = _state(pg)
    refused = _smoke(tmp_path, pg, services["core"], ["approval", "payment"], "refused")
    assert not refused.ok
    assert "'payment' is not a transaction of si_smoke_transactions" in " ".join(f.message for f in refused.failures)
    assert "nothing was sent" in " ".join(f.message for f in refused.failures)
    assert _state(pg) == before
    failed = _smoke(tmp_path, pg, services["broken"], ["tax-transfer"], "failed")
    passed = _smoke(tmp_path, pg, services["core"], ["approval"], "passed")
    assert not failed.ok
    assert passed.ok, passed.summary()
    kept = [p for p in (tmp_path / "art").rglob("*") if p.is_file()]
    assert kept
    assert [p for p in kept if "unused-trust" in p.read_text(errors="replace")] == []
