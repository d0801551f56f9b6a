"""The lab image: built once, reused until lab/Containerfile changes.

The base is Debian 12 from a registry where one is reachable (a user's machine), else a
debootstrap of bookworm imported into podman (no registry here: LAB.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

from cutover.errors import CutoverError
from cutover.lab.podman import podman
from cutover.paths import ROOT

CONTAINERFILE = ROOT / "lab" / "Containerfile"
IMAGE_REPO = "localhost/cutover-lab"
LATEST = f"{IMAGE_REPO}:latest"  # what Molecule scenarios use
BASE_LOCAL = "localhost/cutover-lab-base:bookworm"
BASE_REGISTRY = "docker.io/library/debian:bookworm"
DEBIAN_MIRROR = os.environ.get("CUTOVER_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def image_tag() -> str:
    digest = hashlib.sha256(CONTAINERFILE.read_bytes()).hexdigest()[:12]
    return f"{IMAGE_REPO}:{digest}"


def exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def _base(say) -> str:
    if exists(BASE_LOCAL):
        return BASE_LOCAL
    if exists(BASE_REGISTRY):
        return BASE_REGISTRY
    if os.environ.get("CUTOVER_LAB_BASE", "auto") in ("auto", "registry"):
        say(f"==> trying {BASE_REGISTRY} from a registry")
        try:
            pulled = podman("pull", "-q", BASE_REGISTRY, check=False, timeout=90).returncode == 0
        except subprocess.TimeoutExpired:
            pulled = False
        if pulled:
            return BASE_REGISTRY
        say("    no registry reachable; building the base with debootstrap instead")
    return _debootstrap(say)


def _debootstrap(say) -> str:
    say(f"==> debootstrap bookworm from {DEBIAN_MIRROR} (about 30 s)")
    tmp = tempfile.mkdtemp(prefix="cutover-debootstrap-")
    try:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", tmp, DEBIAN_MIRROR],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise CutoverError(
                f"debootstrap failed: {proc.stdout.strip()[-600:]}",
                "check that Debian's package mirror is reachable (CUTOVER_DEBIAN_MIRROR)",
            )
        tar = subprocess.Popen(["tar", "-C", tmp, "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            ["podman", "import", "-q", "-", BASE_LOCAL], stdin=tar.stdout,
            capture_output=True, text=True, check=False,
            env={**os.environ, "CONTAINERS_CONF": str(ROOT / "lab" / "containers.conf")},
        )
        tar.wait()
        if imp.returncode != 0:
            raise CutoverError(f"podman import of the base failed: {imp.stderr.strip()[-600:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BASE_LOCAL


def ensure_image(say=print) -> str:
    """The tag of an up-to-date lab image, building it when needed."""
    tag = image_tag()
    if exists(tag):
        if not exists(LATEST) or _id(LATEST) != _id(tag):
            podman("tag", tag, LATEST)
        return tag
    base = _base(say)
    say(f"==> building {tag} from {base} (about a minute)")
    podman("build", "-q", "--build-arg", f"BASE={base}", "-t", tag, "-t", LATEST,
           "-f", str(CONTAINERFILE), str(CONTAINERFILE.parent), timeout=1800)
    return tag


def _id(ref: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", ref, check=False).stdout.strip()
