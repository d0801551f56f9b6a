"""N7: a receipt answers one hand-off. An old receipt (a dry run's) is removed by the next
hand-off and refused if it is read anyway; a receipt's backup path cannot leave its batch.

The drop here is an in-memory stand-in for the transport (the lab's integration tests use
the real SFTP/FTP drop); everything above the transport is the real code."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from cutover.data.drop import Drop
from cutover.data.files import write_json
from cutover.data.handoff import batch_index, handoff
from cutover.data.reconcile import receipt_path, reconcile
from cutover.errors import CutoverError


class MemoryDrop(Drop):
    name = "memory://drop"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()

    def size(self, path):
        if path in self.dirs:
            return 0
        return len(self.files[path]) if path in self.files else None

    def put(self, fp, path, offset):
        self.files[path] = self.files.get(path, b"")[:offset] + fp.read()

    def read(self, path):
        yield self.files[path]

    def mkdir(self, path):
        self.dirs.add(path)

    def rename(self, src, dst):
        self.files[dst] = self.files.pop(src)

    def remove(self, path):
        del self.files[path]

    def close(self):
        pass


def _export(tmp_path: Path, rows: int) -> Path:
    export = tmp_path / "export"
    (export / "qyyl").mkdir(parents=True, exist_ok=True)
    data = b"id\n" + b"".join(b"%d\n" % i for i in range(rows))
    (export / "qyyl" / "person.csv").write_bytes(data)
    write_json(export / "qyyl" / "manifest.json", {
        "rows": rows, "tables": [{"table": "person", "file": "person.csv", "rows": rows, "bytes": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest(), "checksum": str(rows * 7)}]})
    return export


def _receipt(drop: MemoryDrop, index_sha: str | None, rows: int, backup_path: str = "backup") -> None:
    receipt = {"batch": "b", "receiver": "tax", "received_at": "2023-11-25T10:00:00+00:00",
               "lines": {"qyyl": {"tables": {"person": {"rows": rows, "checksum": str(rows * 7)}}}},
               "backup": {"path": backup_path}}
    if index_sha:
        receipt["handoff_sha256"] = index_sha
    drop.put(io.BytesIO(json.dumps(receipt).encode()), receipt_path("receipts", "b"), 0)
    for name, data in list(drop.files.items()):
        if name.startswith("inbox/b/qyyl/person.csv"):
            drop.files[f"receipts/b/{backup_path}/qyyl/person.csv"] = data


def test_a_receipt_naming_this_hand_off_reconciles(tmp_path):
    export, drop = _export(tmp_path, 5), MemoryDrop()
    sent = handoff(drop, export, ["qyyl"], batch="b", remote_root="inbox",
                   receipt=receipt_path("receipts", "b"), say=lambda _: None)
    assert sent["index_sha256"] == hashlib.sha256(drop.files["inbox/b/manifest.json"]).hexdigest()
    _receipt(drop, sent["index_sha256"], 5)
    result = reconcile(drop, export, ["qyyl"], batch="b", receipts_root="receipts", say=lambda _: None)
    assert result["passed"]


def test_a_dry_runs_receipt_is_removed_by_the_hand_off_and_refused_if_read(tmp_path):
    drop = MemoryDrop()
    dry = _export(tmp_path / "dry", 5)
    dry_index = hashlib.sha256(batch_index(dry, ["qyyl"], "b")).hexdigest()
    _receipt(drop, dry_index, 5)  # the dry run's answer, still on the drop
    export = _export(tmp_path / "window", 6)  # the window's export differs
    said: list[str] = []
    handoff(drop, export, ["qyyl"], batch="b", remote_root="inbox", receipt=receipt_path("receipts", "b"),
            say=said.append)
    assert receipt_path("receipts", "b") not in drop.files
    assert any("an earlier receipt was removed" in s for s in said)
    _receipt(drop, dry_index, 6)  # the old receipt put back (or written late by the receiver)
    with pytest.raises(CutoverError) as err:
        reconcile(drop, export, ["qyyl"], batch="b", receipts_root="receipts", say=lambda _: None)
    assert "does not answer this hand-off" in err.value.message
    assert dry_index in err.value.message


def test_a_receipt_that_names_no_hand_off_is_refused(tmp_path):
    export, drop = _export(tmp_path, 5), MemoryDrop()
    handoff(drop, export, ["qyyl"], batch="b", remote_root="inbox", receipt=receipt_path("receipts", "b"),
            say=lambda _: None)
    _receipt(drop, None, 5)
    with pytest.raises(CutoverError, match=r"names index sha256 \(none\)"):
        reconcile(drop, export, ["qyyl"], batch="b", receipts_root="receipts", say=lambda _: None)


@pytest.mark.parametrize("path", ["../../inbox/b", "/etc", "backup/../../x", "..", "c:\\x"])
def test_a_backup_path_that_leaves_the_batch_directory_is_refused(tmp_path, path):
    export, drop = _export(tmp_path, 5), MemoryDrop()
    sent = handoff(drop, export, ["qyyl"], batch="b", remote_root="inbox",
                   receipt=receipt_path("receipts", "b"), say=lambda _: None)
    _receipt(drop, sent["index_sha256"], 5, backup_path="backup")
    receipt = json.loads(drop.files[receipt_path("receipts", "b")])
    receipt["backup"]["path"] = path
    drop.files[receipt_path("receipts", "b")] = json.dumps(receipt).encode()
    with pytest.raises(CutoverError, match="leaves the batch directory"):
        reconcile(drop, export, ["qyyl"], batch="b", receipts_root="receipts", say=lambda _: None)


@pytest.mark.parametrize("receipt", [[1], {"lines": [1]}, {"lines": {"qyyl": {"tables": {"person": 5}}}},
                                     {"lines": {"qyyl": {"tables": {"person": {"rows": "5"}}}}},
                                     {"lines": {}, "backup": "x"}])
def test_a_receipt_of_the_wrong_shape_is_a_named_refusal(tmp_path, receipt):
    export, drop = _export(tmp_path, 5), MemoryDrop()
    handoff(drop, export, ["qyyl"], batch="b", remote_root="inbox", receipt=receipt_path("receipts", "b"),
            say=lambda _: None)
    drop.files[receipt_path("receipts", "b")] = json.dumps(receipt).encode()
    with pytest.raises(CutoverError, match="is malformed"):
        reconcile(drop, export, ["qyyl"], batch="b", receipts_root="receipts", say=lambda _: None)


def test_a_hand_off_run_again_keeps_the_receipt_that_answers_it(tmp_path):
    export, drop = _export(tmp_path, 5), MemoryDrop()
    sent = handoff(drop, export, ["qyyl"], batch="b", remote_root="inbox",
                   receipt=receipt_path("receipts", "b"), say=lambda _: None)
    _receipt(drop, sent["index_sha256"], 5)
    handoff(drop, export, ["qyyl"], batch="b", remote_root="inbox", receipt=receipt_path("receipts", "b"),
            say=lambda _: None)
    assert receipt_path("receipts", "b") in drop.files
    assert reconcile(drop, export, ["qyyl"], batch="b", receipts_root="receipts", say=lambda _: None)["passed"]


def test_a_new_hand_off_removes_the_earlier_index_before_it_replaces_any_file(tmp_path):
    # a receiver that answers on its own takes the index as "complete": while the files are being
    # replaced, no index may say so (the lab's tax1 service answers within seconds)
    drop = MemoryDrop()
    handoff(drop, _export(tmp_path / "dry", 5), ["qyyl"], batch="b", remote_root="inbox",
            receipt=receipt_path("receipts", "b"), say=lambda _: None)
    seen: list[tuple[str, bool]] = []
    put = drop.put

    def watching_put(fp, path, offset):  # what a receiver would see at each file written
        seen.append((path, "inbox/b/manifest.json" in drop.files))
        return put(fp, path, offset)

    drop.put = watching_put
    said: list[str] = []
    sent = handoff(drop, _export(tmp_path / "window", 6), ["qyyl"], batch="b", remote_root="inbox",
                   receipt=receipt_path("receipts", "b"), say=said.append)
    data_writes = [present for path, present in seen if "person.csv" in path]
    assert data_writes
    assert not any(data_writes)  # no index while the data file was replaced
    assert hashlib.sha256(drop.files["inbox/b/manifest.json"]).hexdigest() == sent["index_sha256"]
    assert any("the earlier hand-off's index is removed" in line for line in said)
