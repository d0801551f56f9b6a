"""Bad lab input gets a clear message before anything is started."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cutover.errors import CutoverError
from cutover.lab import artifacts, podman
from cutover.lab.topology import LAB_INVENTORY, every_lab_host, lab_hosts, select

ROOT = Path(__file__).resolve().parents[2]
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]


def copy_inventory(tmp_path: Path) -> Path:
    dest = tmp_path / "lab"
    shutil.copytree(LAB_INVENTORY, dest)
    return dest


def test_lab_topology_has_every_group_and_distinct_ports():
    hosts = lab_hosts()
    groups = {g for h in hosts for g in h.groups}
    assert groups == {"db", "core", "gateway", "counter", "portal", "jobs", "drop", "tax"}
    ports = [p for h in hosts for p in h.ports()]
    assert len(ports) == len(set(ports))
    core = [h for h in hosts if "core" in h.groups]
    assert {s.name for h in core for s in h.services if s.kind == "http"} == {
        f"si-core-{line}" for line in ("qyyl", "jgyl", "zynj", "gs", "sy", "cjyl")}
    jobs = next(h for h in hosts if "jobs" in h.groups)
    assert any(not s.enabled for s in jobs.services), "one timed job must be off on purpose"


def test_cities_selects_counters_in_order():
    hosts = lab_hosts()
    chosen = [h.name for h in select(hosts, 2) if "counter" in h.groups]
    assert chosen == ["counter-taiyuan", "counter-datong"]
    assert len(select(hosts, 11)) == 23  # the default lab: no county counter
    with pytest.raises(CutoverError, match=r"(?s)--cities 12 is out of range.*pick 1\.\.11"):
        select(hosts, 12)


def test_counties_adds_the_first_county_counters_of_each_started_city_in_its_site_subtree():
    hosts = lab_hosts()
    chosen = [h for h in select(hosts, 2, counties=2) if "counter" in h.groups]
    assert [h.name for h in chosen] == ["counter-taiyuan", "counter-datong", "counter-taiyuan-c01",
                                        "counter-taiyuan-c02", "counter-datong-c01", "counter-datong-c02"]
    assert [h.vars["cutover_site"] for h in chosen[2:4]] == ["taiyuan-c01", "taiyuan-c02"]
    assert len(select(hosts, 11, counties=1)) == 23 + 11  # the 34-host lab
    assert len(select(hosts, 11, counties=3)) == 23 + 33
    assert len(select(hosts, 11, counties=9)) == 23 + 99  # #17's fleet scale: about 120 hosts
    ports = [port for h in select(hosts, 11, counties=9) for port in h.ports()]
    assert len(ports) == len(set(ports))  # every county counter on its own ssh and http port
    with pytest.raises(CutoverError, match=r"(?s)--counties 10 is out of range.*pick 0\.\.9"):
        select(hosts, 2, counties=10)


def test_broken_inventory_names_the_file_and_line(tmp_path):
    inv = copy_inventory(tmp_path)
    text = (inv / "hosts.yml").read_text().replace("    core:\n", "    core:\n   bad: [\n", 1)
    (inv / "hosts.yml").write_text(text)
    with pytest.raises(CutoverError) as err:
        lab_hosts(inv)
    msg = str(err.value)
    assert "cannot be parsed" in msg
    assert "hosts.yml" in msg
    assert "line" in msg


def test_duplicate_port_in_inventory_is_refused(tmp_path):
    inv = copy_inventory(tmp_path)
    text = (inv / "hosts.yml").read_text().replace("ansible_port: 22012", "ansible_port: 22011")
    (inv / "hosts.yml").write_text(text)
    with pytest.raises(CutoverError, match="port 22011 is used by both core-qyyl and core-jgyl"):
        lab_hosts(inv)


def test_missing_podman_without_apt_is_a_clear_refusal(monkeypatch):
    monkeypatch.setattr(podman, "missing_tools", lambda tools=(): ["podman"])
    monkeypatch.setattr(podman.shutil, "which", lambda name: None)
    monkeypatch.setattr(podman.os, "geteuid", lambda: 0)
    with pytest.raises(CutoverError) as err:
        podman.ensure_host_tools(say=lambda *_: None)
    assert "podman missing and apt-get is not available" in str(err.value)
    assert "install podman" in str(err.value)


def test_missing_podman_as_non_root_says_how_to_install(monkeypatch):
    monkeypatch.setattr(podman, "missing_tools", lambda tools=(): ["podman", "runc"])
    monkeypatch.setattr(podman.os, "geteuid", lambda: 1000)
    with pytest.raises(CutoverError, match=r"sudo apt-get install podman runc"):
        podman.ensure_host_tools(say=lambda *_: None)


def test_release_artifacts_are_reproducible(tmp_path):
    first = artifacts.build(tmp_path / "a")
    second = artifacts.build(tmp_path / "b")
    assert first[artifacts.OLD][1] == second[artifacts.OLD][1]
    assert first[artifacts.OLD][1] != first[artifacts.NEW][1]
    sha_file = (tmp_path / "a" / f"si-app-{artifacts.OLD}.tar.gz.sha256").read_text()
    assert sha_file.split()[0] == first[artifacts.OLD][1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lab.up", "--bogus"], "No idea what '--bogus' is"),
        (["lab.up", "--cities", "0"], "--cities 0 is out of range"),
        (["lab.up", "--fault", "nope"], "unknown --fault nope"),
        (["lab.status", "--host", "db9"], "no lab host named db9"),
    ],
)
def test_lab_cli_refuses_bad_options_without_a_traceback(args, message):
    proc = subprocess.run([*INV, *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert message in out
    assert "Traceback" not in out


def test_release_manifest_names_the_artifact_lab_up_builds(tmp_path):
    import yaml

    manifest = yaml.safe_load((ROOT / "releases" / "shanxi-2023-11.yml").read_text())
    built = artifacts.build(tmp_path)
    entry = manifest["artifacts"]["si-app"]
    assert entry["version"] == artifacts.NEW
    assert entry["previous"] == artifacts.OLD
    assert entry["sha256"] == built[artifacts.NEW][1], (
        f"lab/app changed: set sha256 of si-app in releases/shanxi-2023-11.yml to {built[artifacts.NEW][1]}")


def test_lab_down_on_a_machine_without_podman_removes_nothing_and_goes_on(tmp_path, monkeypatch):
    """`lab.rehearse` begins by tearing down an old lab; on a fresh machine podman is not
    installed yet (lab.up installs it), and there is no lab: down says so instead of stopping."""
    from cutover.lab import lab as labmod

    bare = tmp_path / "bin"  # a PATH with no podman on it
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    state = tmp_path / "lab-state.json"
    state.write_text("{}")
    monkeypatch.setattr(labmod, "LAB_STATE_FILE", state)
    monkeypatch.setattr(labmod, "LAB_JOURNAL_PGPASS", tmp_path / "journal.pgpass")  # not this checkout's
    said: list[str] = []
    assert labmod.down(say=said.append) == []
    assert said == ["no lab to remove (podman is not installed yet)"]
    assert not state.exists()  # a stale state of an earlier machine's lab is not kept


def test_many_containers_raise_the_inotify_limit_as_root_or_say_how(tmp_path, monkeypatch):
    """34 systemd containers under the usual limit of 128: the last ones came up without sshd."""
    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")
    said: list[str] = []
    monkeypatch.setattr(podman.os, "geteuid", lambda: 0)
    podman.ensure_inotify(34, said.append, limit)
    assert limit.read_text() == "236\n"
    assert said == ["==> raised fs.inotify.max_user_instances from 128 to 236: each of the 34 containers' "
                    "systemd needs its own"]
    podman.ensure_inotify(23, said.append, limit)  # enough already: left as it is
    assert limit.read_text() == "236\n"
    assert len(said) == 1

    limit.write_text("128\n")
    monkeypatch.setattr(podman.os, "geteuid", lambda: 1000)
    podman.ensure_inotify(34, said.append, limit)
    assert limit.read_text() == "128\n"
    assert said[-1] == ("warning: fs.inotify.max_user_instances is 128; 34 containers need about 236, or the "
                        "last ones start without sshd: sudo sysctl -w fs.inotify.max_user_instances=236")


def test_the_ops_host_runs_the_shared_journal_and_no_plan_can_reach_it():
    """#16 item 3 (N15, N16): the journal's PostgreSQL lives on a lab host of its own, started
    with every lab, outside the window's inventory (the business db host is frozen and
    snapshotted during the window; the record of that must not be)."""
    window = {h.name for h in lab_hosts()}
    every = every_lab_host()
    ops = [h for h in every if "ops" in h.groups]
    assert [h.name for h in ops] == ["ops1"]
    assert "ops1" not in window
    assert ops[0] in select(every, 1)
    assert [(s.name, s.port) for s in ops[0].services] == [("ssh", 22071), ("postgresql@15-main", 25434)]
    ports = [p for h in every for p in h.ports()]
    assert len(ports) == len(set(ports))


def test_a_rehearsal_writes_into_its_own_file_or_the_labs_journal_only_and_refuses_before_the_lab_is_touched(
        tmp_path, monkeypatch):
    """A rehearsal auto-confirms every manual step: pointed at a team's real journal (empty,
    made for the window) it would leave the real window with nothing to do. Anything but the
    lab's ops journal is refused: a file, a team's URL, "" or "null" (a failed `jq`), a URL with
    a password (never shown). Neither the lab nor the journal is touched."""
    from invoke import Context, Exit

    from cutover.cli import lab as cli_lab
    from cutover.engine.journal import Journal

    touched = []
    monkeypatch.setattr(cli_lab.labmod, "down", lambda **_: touched.append("down"))
    monkeypatch.setattr(cli_lab.labmod, "up", lambda **_: touched.append("up"))
    team = tmp_path / "team.sqlite"
    with Journal.open(team):
        pass
    before = team.read_bytes()
    for given in (str(team), "postgresql://cutover@ops.example:5432/cutover_shanxi_2023_11",
                  "postgresql://cutover@127.0.0.1:25434/another_db", "", "null"):
        with pytest.raises(Exit) as refused:
            cli_lab.rehearse(Context(), journal=given)
        assert "is not the lab's shared journal; nothing was run" in str(refused.value.message), given
    assert team.read_bytes() == before
    with pytest.raises(Exit) as refused:
        cli_lab.rehearse(Context(), journal="postgresql://cutover@127.0.0.1:25434/cutover_journal?PASSWORD=S3cret-x")
    assert "carries a password" in str(refused.value.message)
    assert "S3cret-x" not in str(refused.value.message)
    assert touched == []


def test_the_labs_journal_url_names_its_password_file_and_holds_no_secret(tmp_path, monkeypatch):
    from cutover.engine.journal_db import journal_location
    from cutover.lab import lab as labmod

    monkeypatch.setattr(labmod, "LAB_JOURNAL_PGPASS", tmp_path / "a dir" / "journal.pgpass")
    monkeypatch.setattr(labmod, "lab_state", lambda: {})
    assert labmod.journal_url() is None  # no lab, no URL
    monkeypatch.setattr(labmod, "lab_state", lambda: {"hosts": ["ops1"]})
    (tmp_path / "a dir").mkdir()
    (tmp_path / "a dir" / "journal.pgpass").write_text("x")
    url = labmod.journal_url()
    assert url == ("postgresql://cutover@127.0.0.1:25434/cutover_journal?passfile="
                   f"{str(tmp_path).replace(' ', '%20')}/a%20dir/journal.pgpass")
    assert journal_location(url) == url  # no password in it
    assert labmod.is_lab_journal(url)
    assert labmod.is_lab_journal("postgresql://cutover@localhost:25434/cutover_journal")
    assert not labmod.is_lab_journal("postgresql://cutover@127.0.0.1:5432/cutover_journal")


def test_only_the_newest_provisionings_images_are_kept():
    """#17: a reset starts from the images of the last provisionings; older ones are removed,
    never the newest, whatever order their hosts' images were kept in."""
    from cutover.lab.lab import stale_snapshots

    repo = "localhost/cutover-lab-provisioned"
    newest_first = [f"{repo}:db1-ccc", f"{repo}:core-qyyl-ccc", f"{repo}:db1-bbb", f"{repo}:core-qyyl-bbb",
                    f"{repo}:counter-taiyuan-c01-aaa", f"{repo}:db1-aaa"]
    assert stale_snapshots(newest_first, 2) == [f"{repo}:counter-taiyuan-c01-aaa", f"{repo}:db1-aaa"]
    assert stale_snapshots(newest_first, 3) == []
    assert stale_snapshots([], 2) == []
