"""Calling podman (and installing it) the way LAB.md says works on this kind of host."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from cutover.errors import CutoverError
from cutover.paths import ROOT

CONTAINERS_CONF = ROOT / "lab" / "containers.conf"
# command (or file) -> the Debian package that provides it
HOST_TOOLS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap",
              "ssh-keygen": "openssh-client", "ss": "iproute2"}


def env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, timeout: float | None = 600,
           input_bytes: bytes | None = None) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            ["podman", *args], env=env(), capture_output=True, text=input_bytes is None,
            timeout=timeout, check=False, input=input_bytes,
        )
    except FileNotFoundError as exc:
        raise CutoverError("podman is not installed", "run `invoke lab.up`, which installs it") from exc
    if check and proc.returncode != 0:
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
        raise CutoverError(f"podman {' '.join(args[:3])} failed: {err.strip()[-800:]}")
    return proc


def _present(tool: str) -> bool:
    """A command on PATH (or in /usr/sbin, which a non-login root shell may lack), or a file."""
    if os.path.isabs(tool):
        return os.path.exists(tool)
    return shutil.which(tool) is not None or os.path.exists(f"/usr/sbin/{tool}")


def missing_tools(tools: Sequence[str] = tuple(HOST_TOOLS)) -> list[str]:
    return [t for t in tools if not _present(t)]


def ensure_host_tools(say=print, tools: dict[str, str] | None = None) -> None:
    """Install what the lab needs (podman, runc, debootstrap, ...) with apt when missing."""
    tools = tools or HOST_TOOLS
    missing = missing_tools(tuple(tools))
    if not missing:
        return
    packages = [tools.get(t, HOST_TOOLS.get(t, t)) for t in missing]
    if os.geteuid() != 0:
        raise CutoverError(
            f"{', '.join(missing)} missing and this user cannot install them",
            f"run as root, or: sudo apt-get install {' '.join(packages)}",
        )
    if shutil.which("apt-get") is None:
        raise CutoverError(
            f"{', '.join(missing)} missing and apt-get is not available to install them",
            f"install {' '.join(packages)} with this system's package manager",
        )
    say(f"==> installing {' '.join(packages)} (apt-get; about a minute)")
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=600"]  # another apt run (unattended upgrades) finishes first
    for cmd in (["apt-get", *wait, "update", "-qq"],
                ["apt-get", *wait, "install", "-y", "-qq", "--no-install-recommends", *packages]):
        proc = subprocess.run(cmd, env=apt_env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CutoverError(
                f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-600:]}",
                f"install {' '.join(packages)} by hand, then run `invoke lab.up` again",
            )
    still = missing_tools()
    if still:
        raise CutoverError(f"{', '.join(still)} still missing after apt-get install")


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


def ensure_inotify(containers: int, say=print, limit: Path = INOTIFY_INSTANCES) -> None:
    """Each container's systemd takes about five inotify instances of the host's per-user
    limit (often 128): past about 25 containers the last ones start without sshd. Raise the
    limit when it is too low (root), or say how; a host that does not let it be raised gets
    a warning, and the lab may still come up."""
    need = 32 + 6 * containers
    try:
        have = int(limit.read_text().strip())
    except (OSError, ValueError):
        return  # not Linux's /proc: nothing to check
    if have >= need:
        return
    how = f"sudo sysctl -w fs.inotify.max_user_instances={need}"
    if os.geteuid() == 0:
        try:
            limit.write_text(f"{need}\n")
            say(f"==> raised fs.inotify.max_user_instances from {have} to {need}: each of the "
                f"{containers} containers' systemd needs its own")
            return
        except OSError as exc:
            how = f"{how} (here: {exc.strerror})"
    say(f"warning: fs.inotify.max_user_instances is {have}; {containers} containers need about {need}, "
        f"or the last ones start without sshd: {how}")
