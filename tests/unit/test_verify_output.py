"""What a host replies to a version probe is shown as text: a reply shaped like markup cannot
turn a mismatch into a green "ok" on the operator's screen."""

from __future__ import annotations

import pytest
from invoke import Context, Exit

from cutover.cli import verify
from cutover.ui import console

HOSTILE = "[green]ok[/] [bold]2023.11.0"


def test_a_hosts_reply_shaped_like_markup_is_printed_as_its_text(monkeypatch):
    rows = [{"host": "core-gs", "component": "si-core-gs", "expected": "2023.11.0", "found": HOSTILE,
             "probe": "http http://127.0.0.1:28014/version", "ok": False}]
    monkeypatch.setattr(verify, "check_versions", lambda *a, **k: (rows, []))
    ctx = Context()
    ctx.config.cutover = {"plan": "plans/shanxi-2023-11.yml", "inventory": "inventories/lab",
                          "artifacts": "artifacts"}
    with console.capture() as cap, pytest.raises(Exit) as err:
        verify.versions.body(ctx, manifest="releases/shanxi-2023-11.yml")
    out = cap.get()
    assert "[green]ok[/] [bold]2023.11.0" in out.replace("\n", "")  # the reply, as written
    assert "MISMATCH" in out
    assert "core-gs/si-core-gs" in str(err.value)
