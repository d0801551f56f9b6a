"""Release tarballs of the sample application, built reproducibly from lab/app/.

Two versions exist: OLD (what `lab.up` installs, the programs before the window) and NEW
(what the deploy step installs, N8). The same sources give the same bytes and sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

from cutover.paths import LAB_STATE, ROOT

APP_SRC = ROOT / "lab" / "app"
OLD = "2023.10.1"
NEW = "2023.11.0"
VERSIONS = (OLD, NEW)
FILES = ("si_app.py", "si_job.py")


def _tar_bytes(version: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        members = [(name, (APP_SRC / name).read_bytes(), 0o755) for name in FILES]
        members.append(("VERSION", f"{version}\n".encode(), 0o644))
        for name, data, mode in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build(dest: Path = LAB_STATE / "artifacts") -> dict[str, tuple[Path, str]]:
    """Write si-app-<version>.tar.gz and its .sha256 for each version; return both."""
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for version in VERSIONS:
        data = _tar_bytes(version)
        digest = hashlib.sha256(data).hexdigest()
        path = dest / f"si-app-{version}.tar.gz"
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        (dest / f"{path.name}.sha256").write_text(f"{digest}  {path.name}\n")
        out[version] = (path, digest)
    return out
