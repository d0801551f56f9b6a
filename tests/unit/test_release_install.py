"""roles/release_deploy on this machine (N8, N18): real ansible-playbook runs of the role, its
root and staging directory in a temporary directory, from real tarballs. What an operator
relies on after a deploy: current on the new release, PREVIOUS naming the way back, nothing
half-unpacked, a second run changing nothing, old releases pruned but never the way back, a
check run touching nothing. (Restarting units needs systemd: Molecule and the lab test it.)"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from cutover.ansible import run_playbook

ROOT = Path(__file__).resolve().parents[2]


def _tarball(path, version):
    data = f"{version}\n".encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, body in (("VERSION", data), ("app.py", b"print('hello')\n")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.uid = info.gid = 4242  # unpacked as root's, whoever packed it
            tar.addfile(info, io.BytesIO(body))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _deploy(tmp_path, version, *, check=False, keep=2, sha=None, fails=False):
    art = tmp_path / "artifacts"
    art.mkdir(exist_ok=True)
    tarball = art / f"demo-{version}.tar.gz"
    made = _tarball(tarball, version) if not tarball.exists() else hashlib.sha256(tarball.read_bytes()).hexdigest()
    sha = sha or made
    play = tmp_path / f"deploy-{version}.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Deploy", "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"name": "Deploy", "ansible.builtin.include_role": {"name": "release_deploy"},
             "vars": {"release_deploy_root": str(tmp_path / "opt"), "release_deploy_cache": str(tmp_path / "cache"),
                      "release_deploy_keep": keep,
                      "release_deploy_components": [{"name": "demo", "version": version, "artifact": str(tarball),
                                                     "sha256": sha.upper()}]}},
            {"name": "Keep what the install said", "ansible.builtin.copy": {
                "dest": str(tmp_path / f"said-{version}-{check}.json"),
                "content": "{{ __release_deploy_done | to_json }}", "mode": "0644"},
             "check_mode": False},
        ]}]))
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}))
    result = run_playbook(play, inv, ident=f"deploy-{version}", artifacts_dir=tmp_path / f"art-{version}-{check}",
                          check=check)
    if fails:
        assert not result.ok
        return result
    assert result.ok, result.summary()
    return json.loads((tmp_path / f"said-{version}-{check}.json").read_text())


def _releases(tmp_path):
    return sorted(os.listdir(tmp_path / "opt" / "demo" / "releases"))


def test_a_deploy_switches_current_records_the_way_back_and_a_rerun_changes_nothing(tmp_path):
    first = _deploy(tmp_path, "1.0")
    current = tmp_path / "opt" / "demo" / "current"
    assert os.readlink(current) == str(tmp_path / "opt/demo/releases/1.0")
    assert first["moved"] == ["demo"]
    assert not (tmp_path / "opt/demo/PREVIOUS").exists()  # nothing to go back to on a first install

    second = _deploy(tmp_path, "2.0")
    assert os.readlink(current) == str(tmp_path / "opt/demo/releases/2.0")
    assert (current / "VERSION").read_text() == "2.0\n"
    assert (tmp_path / "opt/demo/PREVIOUS").read_text() == "1.0\n"
    assert second["moved"] == ["demo"]
    assert os.stat(current / "app.py").st_uid == 0  # root's, not the packer's
    assert [p for p in os.listdir(tmp_path / "opt/demo") if p.startswith(".")] == []

    again = _deploy(tmp_path, "2.0")
    assert again["changed"] is False, again["changes"]
    assert again["moved"] == []


def test_an_interrupted_unpack_is_redone_and_pruning_keeps_the_way_back(tmp_path):
    _deploy(tmp_path, "1.0")
    _deploy(tmp_path, "2.0")
    # a kill mid-unpack of 3.0 left a partial directory behind
    partial = tmp_path / "opt/demo/releases/3.0.partial"
    partial.mkdir()
    (partial / "half").write_text("x")
    said = _deploy(tmp_path, "3.0", keep=1)
    # keep=1 is raised to 2: 3.0 and 2.0 (the way back, PREVIOUS) stay; 1.0 goes
    assert _releases(tmp_path) == ["2.0", "3.0"]
    assert not (tmp_path / "opt/demo/releases/3.0/half").exists()
    assert (tmp_path / "opt/demo/PREVIOUS").read_text() == "2.0\n"
    assert f"removed {tmp_path}/opt/demo/releases/1.0" in said["changes"]


def test_a_check_run_touches_nothing(tmp_path):
    _deploy(tmp_path, "1.0")
    before = sorted(str(p) for p in tmp_path.joinpath("opt").rglob("*"))
    said = _deploy(tmp_path, "2.0", check=True)
    assert said["changed"] is True
    assert f"switched {tmp_path}/opt/demo/current -> {tmp_path}/opt/demo/releases/2.0" in said["changes"]
    assert sorted(str(p) for p in tmp_path.joinpath("opt").rglob("*")) == before
    assert os.readlink(tmp_path / "opt/demo/current") == str(tmp_path / "opt/demo/releases/1.0")


def _staged(tmp_path):
    return {p.name: p.stat() for p in (tmp_path / "cache").iterdir()}


def test_a_rerun_sends_nothing_and_a_staged_copy_changed_on_the_host_is_sent_again(tmp_path):
    _deploy(tmp_path, "1.0")
    before = _staged(tmp_path)
    assert [name.endswith("-demo-1.0.tar.gz") for name in before] == [True]
    assert _deploy(tmp_path, "1.0")["changed"] is False
    assert {n: s.st_ino for n, s in _staged(tmp_path).items()} == {n: s.st_ino for n, s in before.items()}

    (copy,) = (tmp_path / "cache").iterdir()
    copy.write_bytes(b"not the release")  # changed on the host after staging
    said = _deploy(tmp_path, "1.0")
    assert said["changes"] == [f"staged {copy}"]  # sent again; the release itself was in place
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == copy.name.split("-")[0]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [copy.name]  # no .partial left


def test_an_artifact_that_is_not_the_manifests_is_refused_on_the_controller_and_nothing_reaches_the_host(tmp_path):
    result = _deploy(tmp_path, "1.0", sha="0" * 64, fails=True)
    said = result.summary()
    assert "demo-1.0.tar.gz: sha256 " in said
    assert f"does not match the release manifest ({'0' * 64})" in said
    assert "nothing was installed" in said
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "opt").exists()


def test_a_copy_that_arrives_damaged_is_refused_in_the_cache_and_nothing_is_unpacked(tmp_path):
    """The module alone, as Ansible runs it (its arguments in a file): what the controller sent
    is checked before it is renamed into place."""
    tarball = tmp_path / "demo-1.0.tar.gz"
    sha = _tarball(tarball, "1.0")
    damaged = tmp_path / "upload"
    damaged.write_bytes(tarball.read_bytes()[:-1])
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "components": [{"name": "demo", "version": "1.0", "artifact": str(tarball), "sha256": sha}],
        "root": str(tmp_path / "opt"), "cache": str(tmp_path / "cache"), "host": "h1",
        "uploads": {sha: str(damaged)}, "through_action": True}}))
    module = ROOT / "roles/release_deploy/library/release_install.py"
    done = subprocess.run([sys.executable, str(module), str(args)], capture_output=True, text=True, check=False)
    said = json.loads(done.stdout)
    assert said["failed"] is True
    assert f"the copy of {sha}-demo-1.0.tar.gz sent to h1 does not match sha256 {sha}" in said["msg"]
    assert "nothing was unpacked" in said["msg"]
    assert list((tmp_path / "cache").iterdir()) == []  # the damaged copy is not kept, not even as .partial
    assert not (tmp_path / "opt").exists()


def _module(tmp_path, **extra):
    tarball = tmp_path / "demo-1.0.tar.gz"
    sha = _tarball(tarball, "1.0")
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "components": [{"name": "demo", "version": "1.0", "artifact": str(tarball), "sha256": sha.upper()}],
        "root": str(tmp_path / "opt"), "cache": str(tmp_path / "cache"), **extra}}))
    module = ROOT / "roles/release_deploy/library/release_install.py"
    done = subprocess.run([sys.executable, str(module), str(args)], capture_output=True, text=True, check=False)
    return sha, json.loads(done.stdout)


def test_the_module_asks_its_action_for_what_the_host_lacks_and_does_nothing_else(tmp_path):
    sha, said = _module(tmp_path, through_action=True)
    assert said["send"] == [sha]
    assert said["changed"] is False
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "opt").exists()


def test_the_module_alone_refuses_a_host_that_lacks_an_artifact_instead_of_passing_without_installing(tmp_path):
    _, said = _module(tmp_path)
    assert said["failed"] is True
    assert "demo-1.0.tar.gz: not staged on this host; run the release_deploy role" in said["msg"]
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "opt").exists()


def test_a_staged_copy_someone_else_could_change_is_sent_again_and_never_unpacked(tmp_path):
    """The copy is the manifest's, but another user may write to it (or to the staging
    directory): it could be swapped after the check and before tar runs as root."""
    _deploy(tmp_path, "1.0")
    (copy,) = (tmp_path / "cache").iterdir()
    inode = copy.stat().st_ino
    copy.chmod(0o666)
    _deploy(tmp_path, "2.0")  # stages 2.0; 1.0's copy is not needed, so it stays as it is
    said = _deploy(tmp_path, "1.0")  # back to 1.0: its copy is not trusted
    assert f"staged {copy}" in said["changes"]
    assert copy.stat().st_ino != inode
    assert oct(copy.stat().st_mode & 0o777) == "0o644"
    (tmp_path / "cache").chmod(0o777)
    said = _deploy(tmp_path, "1.0")
    assert said["changes"][:2] == [f"set {tmp_path}/cache to root's, 0755", f"staged {copy}"]
    assert oct((tmp_path / "cache").stat().st_mode & 0o777) == "0o755"
