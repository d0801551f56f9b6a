"""What an operator checks after the role ran: the database refuses writes, the snapshot is
there with a manifest that matches its files, and only postgres can read it."""

import json

SNAP = "/var/backups/cutover/molecule/si_demo"


def test_the_database_refuses_writes(host):
    out = host.run("sudo -u postgres psql -X -d si_demo -c 'CREATE TABLE x ()'")
    assert out.rc != 0
    assert "read-only transaction" in out.stderr


def test_the_business_roles_traps_ran_nothing_as_the_superuser(host):
    out = host.check_output("sudo -u postgres psql -X -At -d postgres"
                            " -c \"SELECT rolsuper FROM pg_roles WHERE rolname = 'demo_app'\"")
    assert out.strip() == "f"


def _as_business_role(host, *statements):
    """demo_app owns the tables, as the business applications' role does in the lab; each
    statement is its own transaction, in one session."""
    commands = " ".join(f"-c \"{sql}\"" for sql in ("SET ROLE demo_app", *statements))
    return host.run(f"sudo -u postgres psql -X -v ON_ERROR_STOP=1 -d si_demo {commands}")


def test_a_business_role_cannot_switch_the_freeze_off_and_write(host):
    off = "SET default_transaction_read_only = off"
    for attempt in ((off, "DELETE FROM person WHERE id = 1"),
                    ("BEGIN READ WRITE; UPDATE contribution SET amount = 0; COMMIT",),
                    (off, "TRUNCATE contribution"),
                    (off, "DROP TRIGGER cutover_freeze ON person"),
                    (off, "ALTER TABLE person DISABLE TRIGGER ALL"),
                    (off, "CREATE TABLE smuggled (a int)"),
                    ("SET search_path = public, pg_catalog", off, "DELETE FROM person WHERE id = 2")):
        out = _as_business_role(host, *attempt)
        assert out.rc != 0, attempt
        assert "is frozen for the cutover" in out.stderr, (attempt, out.stderr)
    assert _as_business_role(host, "SELECT count(*) FROM person").rc == 0


def test_the_rows_are_still_readable(host):
    out = host.check_output("sudo -u postgres psql -X -At -d si_demo -c 'SELECT count(*) FROM person'")
    assert out.strip() == "5000"


def test_the_snapshot_manifest_matches_its_files(host):
    manifest = json.loads(host.file(f"{SNAP}/manifest.json").content_string)
    assert manifest["database"] == "si_demo"
    assert manifest["tables"] == {"public.person": 5000, "public.contribution": 12000}
    assert manifest["frozen"] is True
    assert manifest["key"] == "molecule-run"  # the check-mode snapshot under another key wrote nothing
    modes = dict(reversed(line.split(" ", 1)) for line in
                 host.check_output(f"cd {SNAP} && stat -c '%a:%U %n' *").splitlines())
    sums = dict(reversed(line.split()) for line in
                host.check_output(f"cd {SNAP} && sha256sum *").splitlines())
    for f in manifest["files"]:
        assert modes[f["name"]] == "600:postgres", f["name"]
        assert sums[f["name"]] == f["sha256"], f["name"]


def test_the_snapshot_directory_is_private(host):
    assert host.file("/var/backups/cutover/molecule").mode == 0o700
    assert not host.file(f"{SNAP}.partial").exists
