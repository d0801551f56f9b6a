#!/usr/bin/python
"""Stage a host's releases, install them and switch each component to its new one (release_deploy).

#17: the install was a looped task per step (check, unpack, rename, record, link, switch,
list, prune), about fifteen round trips per host and most of the deploy. This module does the
same steps on the host in one call, over every component, in the same order and with the
same guarantees (N8, N18). Its action (action_plugins/release_install.py) checks the artifacts
on the controller, asks this module which ones the host lacks (`send`, nothing done then) and
sends only those; a host that has them all takes one call.

- each staged artifact's sha256 is checked before anything is unpacked, and a copy sent by the
  controller is checked in the cache before it is renamed into place;
- a release is unpacked into `<version>.partial` and renamed into place only when complete;
- the way back is recorded first (PREVIOUS names the release current pointed to) and the
  rename of the new link over `current` is the last act: a kill at any point leaves PREVIOUS
  naming the release `current` points to;
- pruning keeps the newest max(keep, 2) releases and never the new one, the one current
  pointed to before, or the one PREVIOUS names.

The decisions are plain functions, unit-tested (tests/unit/test_release_deploy_filters.py).
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: release_install
short_description: Stage and unpack releases and switch each component's current atomically
description:
  - Without C(uploads) for every missing or wrong staged artifact, returns C(send) (their
    sha256) and does nothing else; the action sends them and calls again.
  - Stages each sent copy (CACHE/SHA256-BASENAME, checked before it is renamed into place),
    checks the sha256 of every staged artifact, unpacks each
    component's release into ROOT/NAME/releases/VERSION (through VERSION.partial), records
    PREVIOUS, moves ROOT/NAME/current with a symlink and a rename, and prunes old releases.
  - Returns C(moved) (the components whose current moved) and C(restart) (their units).
options:
  components: {type: list, elements: dict, required: true, description: "[{name, version, artifact, sha256}]"}
  root: {type: path, default: /opt, description: Parent directory of every component.}
  cache: {type: path, required: true, description: Where the artifacts were staged on the host.}
  keep: {type: int, default: 3, description: Releases kept per component (never fewer than 2).}
  host: {type: str, default: "", description: The host's name in failure messages.}
  uploads: {type: dict, default: {}, description: "{sha256: path on the host} of the copies sent this run."}
  through_action:
    type: bool
    default: false
    description: Set by the role's action; alone, a missing artifact fails the host.
"""

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import stat
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

SHA256 = re.compile(r"[0-9a-f]{64}")


def release_dir(root: str, component: dict) -> str:
    return posixpath.join(root, component["name"], "releases", str(component["version"]))


def staged_path(cache: str, component: dict) -> str:
    name = posixpath.basename(component["artifact"])
    return posixpath.join(cache, f"{str(component['sha256']).lower()}-{name}")


def points_at(root: str, name: str, target: str | None) -> str:
    """Where a `current` link points, as written, made absolute against the component's
    directory: never the resolved path, which differs from the root's own spelling when the
    root, or a directory above it, is itself a symlink."""
    if not target:
        return ""
    return posixpath.normpath(posixpath.join(root, name, target))


def release_named(text: str | None) -> str | None:
    """The release a PREVIOUS file names, or None (no file, or not a release name)."""
    if text is None:
        return None
    name = text.strip()
    return name if name and "/" not in name and name not in (".", "..") else None


def to_prune(listing: list[tuple[str, float]], spared: set[str], keep: int) -> list[str]:
    """Of one component's release directories (path, mtime), those beyond the newest
    max(keep, 2), except the spared ones (the new release, the one current pointed to, the
    one PREVIOUS names): a release's mtime is its tarball's, so age alone cannot tell which
    one is the way back."""
    newest_first = sorted(listing, key=lambda entry: entry[1], reverse=True)
    return [path for path, _ in newest_first[max(int(keep), 2):] if path not in spared]


def units_to_restart(components: list[dict], moved: list[str]) -> list[str]:
    """The units of the components whose current moved, each once, in order."""
    units: list[str] = []
    for component in components:
        if component["name"] in moved:
            units += [u for u in component.get("units") or [] if u not in units]
    return units


class Host:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.check = module.check_mode
        self.changes: list[str] = []

    def fail(self, msg: str) -> None:
        done = "; ".join(self.changes) or "nothing"
        self.module.fail_json(msg=f"{msg}; done before it: {done}", changes=self.changes)

    def directory(self, path: str) -> None:
        """A directory root owns, mode 0755 (programs' directories, readable by their services):
        made when missing, put right when it is not."""
        try:
            st = os.stat(path)  # a directory behind a symlink (a data volume) is one too
        except FileNotFoundError:
            self.changes.append(f"created {path}")
            if not self.check:
                os.makedirs(path, exist_ok=True)
                self._settle(path)
            return
        if not stat.S_ISDIR(st.st_mode):
            self.fail(f"{path} is not a directory; nothing there was changed")
        if stat.S_IMODE(st.st_mode) != 0o755 or (os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0)):
            self.changes.append(f"set {path} to root's, 0755")
            if not self.check:
                self._settle(path)

    @staticmethod
    def _settle(path: str) -> None:
        os.chmod(path, 0o755)  # noqa: S103 (as above)
        if os.geteuid() == 0:
            os.chown(path, 0, 0)

    def read(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return fh.read(4096)
        except OSError:
            return None

    def write(self, path: str, text: str) -> None:
        self.changes.append(f"wrote {path}")
        if self.check:
            return
        fd, tmp = tempfile.mkstemp(dir=posixpath.dirname(path), prefix=".si-release-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def staged(p: dict) -> dict[str, str]:
    """{sha256: where its copy is staged}, each distinct artifact once (under the first
    component's file name: two components may name one tarball differently)."""
    paths: dict[str, str] = {}
    for component in p["components"]:
        paths.setdefault(str(component["sha256"]).lower(), staged_path(p["cache"], component))
    return paths


def trusted(path: str, kind: int, mode: int) -> bool:
    """Only root (or, not running as root, this user) can have changed it: owned so, of this
    kind, writable by nobody else. A symlink is followed only when the link itself is root's
    (a staging directory on a data volume); anything else is staged again, never used."""
    me = os.geteuid()
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) and kind == stat.S_IFDIR and st.st_uid in (0, me):
            st = os.stat(path)
    except OSError:
        return False
    owned = (st.st_uid, st.st_gid) == (0, 0) if me == 0 else st.st_uid in (0, me)
    return stat.S_IFMT(st.st_mode) == kind and owned and stat.S_IMODE(st.st_mode) == mode


def unstaged(p: dict) -> list[str]:
    """The artifacts (sha256) whose staged copy is missing, not the manifest's, or not one only
    root could have changed (in a staging directory only root can write to)."""
    cache_ok = trusted(p["cache"], stat.S_IFDIR, 0o755)
    return sorted(sha for sha, path in staged(p).items()
                  if not (cache_ok and trusted(path, stat.S_IFREG, 0o644) and sha256_of(path) == sha))


def stage(host: Host, p: dict, missing: list[str]) -> None:
    """Every staged copy must be the manifest's before anything is unpacked: a copy the
    controller sent (`uploads`) is copied into the staging directory, hashed as it is written,
    and renamed into place only when it matches. A check run stages nothing."""
    host.directory(p["cache"])
    if not host.check:  # what a killed run left half-written
        for entry in os.scandir(p["cache"]):
            left = entry.name.startswith(".") and entry.name.endswith(".partial")
            if left and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
    paths = staged(p)
    for sha in missing:
        path = paths[sha]
        name = posixpath.basename(path)
        if host.check:
            host.changes.append(f"staged {path}")
            continue
        sent = p["uploads"].get(sha)
        if not sent or not os.path.isfile(sent):
            host.fail(f"{name} is not staged on {p['host'] or 'this host'} and was not sent; "
                      "nothing was unpacked")
        fd, partial = tempfile.mkstemp(dir=p["cache"], prefix=f".{sha[:16]}-", suffix=".partial")
        try:
            digest = hashlib.sha256()
            with open(sent, "rb") as src, os.fdopen(fd, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    dst.write(block)
                dst.flush()
                os.fsync(dst.fileno())
                os.fchmod(dst.fileno(), 0o644)  # on the file written, never on a path swapped under it
                if os.geteuid() == 0:
                    os.fchown(dst.fileno(), 0, 0)
            if digest.hexdigest() != sha:
                host.fail(f"the copy of {name} sent to {p['host'] or 'this host'} does not match sha256 "
                          f"{sha} (found {digest.hexdigest()}); nothing was unpacked")
            os.replace(partial, path)
        finally:  # a full disk, a mismatch, a kill: no partial copy stays in the way
            if os.path.exists(partial):
                os.unlink(partial)
        with contextlib.suppress(OSError):  # sent into Ansible's temporary directory: not needed twice
            os.unlink(sent)
        host.changes.append(f"staged {path}")


def extract(host: Host, staged_copy: str, sha: str, into: str) -> None:
    """Unpack the staged copy from the very file that was hashed (one open descriptor: nothing
    can swap it between the check and tar)."""
    fd = os.open(staged_copy, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        digest = hashlib.sha256()
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
        if digest.hexdigest() != sha:
            host.fail(f"staged {posixpath.basename(staged_copy)} changed before it was unpacked "
                      f"(sha256 {digest.hexdigest()}, not {sha}); nothing of it was unpacked")
        # tar opens the same file again through the descriptor (so it can tell the compression)
        done = subprocess.run(["tar", "--extract", "--no-same-owner", "--file", f"/dev/fd/{fh.fileno()}",
                               "--directory", into], pass_fds=(fh.fileno(),), capture_output=True, text=True,
                              errors="replace", check=False)
    if done.returncode != 0:
        host.fail(f"tar --extract of {posixpath.basename(staged_copy)} failed (rc={done.returncode}): "
                  f"{(done.stderr or done.stdout).strip()}")


def unpack(host: Host, p: dict) -> None:
    for component in p["components"]:
        final = release_dir(p["root"], component)
        host.directory(posixpath.dirname(final))
        if os.path.exists(posixpath.join(final, "VERSION")):
            continue
        host.changes.append(f"unpacked {final}")
        if host.check:
            continue
        partial = final + ".partial"
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted unpack left behind
        os.makedirs(partial)
        os.chmod(partial, 0o755)  # noqa: S103 (as above)
        sha = str(component["sha256"]).lower()
        extract(host, staged(p)[sha], sha, partial)
        os.rename(partial, final)  # complete: into place


def switch(host: Host, p: dict) -> tuple[list[str], dict[str, str]]:
    """Move each current whose link is elsewhere; PREVIOUS first, the rename last (N18).
    Returns the components moved and where each current pointed before."""
    moved, before = [], {}
    for component in p["components"]:
        home = posixpath.join(p["root"], component["name"])
        current = posixpath.join(home, "current")
        target = os.readlink(current) if os.path.islink(current) else None
        before[component["name"]] = points_at(p["root"], component["name"], target)
        new = release_dir(p["root"], component)
        if before[component["name"]] == new:
            continue
        if target is not None:
            host.write(posixpath.join(home, "PREVIOUS"), posixpath.basename(before[component["name"]]) + "\n")
        moved.append(component["name"])
        host.changes.append(f"switched {current} -> {new}")
        if host.check:
            continue
        link = posixpath.join(home, ".current.new")
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(new, link)
        try:
            os.replace(link, current)
        except OSError as exc:
            os.unlink(link)
            host.fail(f"{current} could not be switched to {new}: {exc}")
    return moved, before


def prune(host: Host, p: dict, before: dict[str, str]) -> None:
    for component in p["components"]:
        home = posixpath.join(p["root"], component["name"])
        releases = posixpath.join(home, "releases")
        named = release_named(host.read(posixpath.join(home, "PREVIOUS")))
        spared = {release_dir(p["root"], component), before.get(component["name"], "")}
        if named is not None:
            spared.add(release_dir(p["root"], {**component, "version": named}))
        try:
            entries = [e for e in os.scandir(releases) if e.is_dir(follow_symlinks=False)
                       and not e.name.endswith(".partial")]
        except FileNotFoundError:
            continue  # a check run that would create it
        listing = [(e.path, e.stat(follow_symlinks=False).st_mtime) for e in entries]
        for path in to_prune(listing, spared, p["keep"]):
            host.changes.append(f"removed {path}")
            if not host.check:
                shutil.rmtree(path)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "components": {"type": "list", "elements": "dict", "required": True},
            "root": {"type": "path", "default": "/opt"},
            "cache": {"type": "path", "required": True},
            "keep": {"type": "int", "default": 3},
            "host": {"type": "str", "default": ""},
            # {sha256: path on the host} of the copies the action sent this run
            "uploads": {"type": "dict", "default": {}},
            # set by the role's action, which sends what the host lacks; alone, the module
            # refuses a host that lacks an artifact instead of answering `send` and doing nothing
            "through_action": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    for component in p["components"]:
        for key in ("name", "version", "artifact", "sha256"):
            if not str(component.get(key) or "").strip():
                module.fail_json(msg=f"component {component.get('name')!r} has no {key}")
        if not SHA256.fullmatch(str(component["sha256"]).lower()):
            module.fail_json(msg=f"component {component['name']!r}: sha256 is not 64 hex digits")
        if "/" in str(component["name"]) + str(component["version"]) or {
                str(component["name"]), str(component["version"])} & {".", ".."}:
            module.fail_json(msg=f"component {component['name']!r}: name and version are directory names")
    p["uploads"] = {str(sha).lower(): path for sha, path in (p["uploads"] or {}).items()}
    host = Host(module)
    moved: list[str] = []
    try:
        missing = unstaged(p)
        ask = [sha for sha in missing if sha not in p["uploads"]]
        if ask and not host.check and p["through_action"]:  # nothing done: the action sends these
            module.exit_json(changed=False, send=ask)
        if ask and not host.check:
            names = ", ".join(posixpath.basename(staged(p)[sha]) for sha in ask)
            module.fail_json(msg=f"{names}: not staged on {p['host'] or 'this host'}; run the release_deploy "
                                 "role, whose action sends what a host lacks; nothing was done")
        stage(host, p, missing)
        unpack(host, p)
        moved, before = switch(host, p)
        prune(host, p, before)
    except (OSError, ValueError) as exc:  # a full disk, a release directory in the way: say what was done
        done = "; ".join(host.changes) or "nothing"
        module.fail_json(msg=f"{p['host'] or 'this host'}: {exc}; done before it: {done}",
                         changes=host.changes, moved=moved)
    module.exit_json(changed=bool(host.changes), changes=host.changes, moved=moved,
                     restart=units_to_restart(p["components"], moved))


if __name__ == "__main__":
    main()
