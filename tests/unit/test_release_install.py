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
import tarfile

import yaml

from cutover.ansible import run_playbook


def _tarball(path, version):
    data = f"{version}\n".encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, body in (("VERSION", data), ("app.py", b"print('hello')\n")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.uid = info.gid = 4242  # unpacked as root's, whoever packed it
            tar.addfile(info, io.BytesIO(body))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _deploy(tmp_path, version, *, check=False, keep=2):
    art = tmp_path / "artifacts"
    art.mkdir(exist_ok=True)
    tarball = art / f"demo-{version}.tar.gz"
    sha = _tarball(tarball, version) if not tarball.exists() else hashlib.sha256(tarball.read_bytes()).hexdigest()
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
