"""The export's files on this machine: JSON written whole or not at all, sha256, and a line's
export checked against its manifest before it is handed over (N6)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from cutover.errors import CutoverError


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CutoverError(f"cannot write {path}: {exc.strerror or exc} "
                           f"({free_space(path.parent)} free there)",
                           "free space there, then run the step again") from exc
    tmp.replace(path)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_export(outdir: Path) -> tuple[dict[str, Any], list[str]]:
    """Re-hash every file of a line's export against its manifest; (manifest, problems)."""
    mpath = outdir / "manifest.json"
    if not mpath.exists():
        return {}, [f"{mpath}: no manifest (was the export run?)"]
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    problems = []
    for t in manifest["tables"]:
        path = outdir / t["file"]
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        size = path.stat().st_size
        if size != t["bytes"]:
            problems.append(f"{path}: {size} bytes, the manifest says {t['bytes']}")
        elif sha256_file(path) != t["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest (changed after the export)")
    return manifest, problems


def free_space(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 1048576:,.1f} MiB"
    except OSError:
        return "unknown space"
