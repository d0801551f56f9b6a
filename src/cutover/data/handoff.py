"""Hand-off (N6): upload every line's export to the drop, resumably, and check it there.

Each file goes to `<name>.part` first; an interrupted upload continues from the size the
drop already holds. When the last byte is there, the remote size and sha256 (read back
from the drop) must equal the manifest's, and only then is the file renamed to its final
name. A remote copy that does not match is removed and sent once more from the start.
The line manifests go last, and the batch index `manifest.json` after them: a receiver
that sees the index sees a complete hand-off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cutover.data.drop import Drop, join
from cutover.data.files import verify_export
from cutover.errors import CutoverError


def upload(drop: Drop, local: Path, remote: str, *, size: int, sha256: str,
           say: Callable[[str], None]) -> dict[str, Any]:
    if drop.size(remote) == size and drop.sha256(remote) == sha256:
        say(f"  {remote}: already on the drop and verified")
        return {"file": remote, "bytes": size, "sha256": sha256, "resumed_at": None, "skipped": True}
    part = remote + ".part"
    resumed_at = None
    for attempt in (1, 2):
        offset = drop.size(part) or 0
        if offset > size:
            drop.remove(part)
            offset = 0
        if offset:
            resumed_at = offset
            say(f"  {remote}: resuming at {offset:,} of {size:,} bytes")
        with local.open("rb") as fp:
            fp.seek(offset)
            drop.put(fp, part, offset)
        got_size = drop.size(part)
        got_sha = drop.sha256(part) if got_size == size else None
        if got_size == size and got_sha == sha256:
            if drop.size(remote) is not None:
                drop.remove(remote)
            drop.rename(part, remote)
            say(f"  {remote}: {size:,} bytes, sha256 verified on the drop")
            return {"file": remote, "bytes": size, "sha256": sha256, "resumed_at": resumed_at,
                    "skipped": False}
        drop.remove(part)
        say(f"  {remote}: the drop holds {got_size} bytes / sha256 {got_sha or '?'}; "
            f"expected {size} / {sha256[:12]}…; removed" + ("; sending again from the start"
                                                            if attempt == 1 else ""))
    raise CutoverError(f"{remote}: the copy on {drop.name} does not match the export after two attempts",
                       "check the drop's disk and the network, then run data.handoff again")


def batch_index(export_dir: Path, lines: list[str], batch: str) -> bytes:
    """The batch index the receiver reads first; its sha256 names this hand-off, and the
    receipt must repeat it (N7), so an old receipt can never answer a new batch."""
    index: dict[str, Any] = {"format": "cutover-handoff/1", "batch": batch, "lines": {}}
    for line in lines:
        path = export_dir / line / "manifest.json"
        if not path.exists():
            raise CutoverError(f"{path}: no export manifest", "run data.export first")
        data = path.read_bytes()
        manifest = json.loads(data)
        index["lines"][line] = {"manifest": join(line, "manifest.json"),
                                "sha256": hashlib.sha256(data).hexdigest(),
                                "rows": manifest["rows"], "tables": len(manifest["tables"])}
    return json.dumps(index, ensure_ascii=False, indent=2).encode()


def answers(drop: Drop, receipt: str) -> str | None:
    """The hand-off (index sha256) a receipt on the drop names, if it is readable at all."""
    try:
        data = json.loads(drop.get_bytes(receipt))
    except ValueError:
        return None
    return data.get("handoff_sha256") if isinstance(data, dict) else None


def handoff(drop: Drop, export_dir: Path, lines: list[str], *, batch: str, remote_root: str,
            receipt: str, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Verify the local export, clear an earlier receipt, upload, write the batch index;
    returns what was sent."""
    manifests, problems = {}, []
    for line in lines:
        manifest, bad = verify_export(export_dir / line)
        manifests[line] = manifest
        problems += bad
    if problems:
        raise CutoverError("the export does not match its manifest; nothing was uploaded:\n  "
                           + "\n  ".join(problems), "run data.export again, then data.handoff")
    base = join(remote_root, batch)
    index = batch_index(export_dir, lines, batch)
    digest = hashlib.sha256(index).hexdigest()
    if drop.size(receipt) is not None and answers(drop, receipt) != digest:
        # left by a dry run or an earlier batch: never read as this one's (one that answers
        # this very hand-off, on a re-run to notify again, stays)
        drop.remove(receipt)
        say(f"  {receipt}: an earlier receipt was removed; the receiver answers this hand-off anew")
    earlier = join(base, "manifest.json")
    if drop.size(earlier) is not None and drop.get_bytes(earlier) != index:
        # an earlier hand-off's index: gone before any file is replaced, so that a receiver never
        # reads a batch half old, half new (it takes the index as "the hand-off is complete")
        drop.remove(earlier)
        say(f"  {earlier}: the earlier hand-off's index is removed until this one is complete")
    sent = []
    for line, manifest in manifests.items():
        drop.makedirs(join(base, line))
        for t in manifest["tables"]:
            sent.append(upload(drop, export_dir / line / t["file"], join(base, line, t["file"]),
                               size=t["bytes"], sha256=t["sha256"], say=say))
    for line in manifests:
        data = (export_dir / line / "manifest.json").read_bytes()
        sent.append(upload(drop, export_dir / line / "manifest.json", join(base, line, "manifest.json"),
                           size=len(data), sha256=hashlib.sha256(data).hexdigest(), say=say))
    drop.put_bytes(index, join(base, "manifest.json"))
    return {"drop": drop.name, "path": base, "files": sent, "index_sha256": digest,
            "bytes": sum(f["bytes"] for f in sent),
            "resumed": [f["file"] for f in sent if f["resumed_at"]],
            "rows": {line: m["rows"] for line, m in manifests.items()}}
