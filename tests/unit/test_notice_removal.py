"""roles/channel_notice taken down (N9–N12): the components' maintenance files and the
stand-ins' copies of the notice are removed, so a component started again serves its
business instead of the notice. Real ansible-playbook on this machine, the role's
directories pointed at a temporary directory (no stand-in unit is installed here)."""

from __future__ import annotations

from .role_here import run_role


def _role(tmp_path, state: str):
    return run_role(tmp_path, "channel_notice", {
        "channel_notice_state": state, "channel_notice_scope": "all",
        "channel_notice_components": ["si-counter", "si-core-qyyl"],
        "channel_notice_app_dir": str(tmp_path / "etc-si"),
        "channel_notice_www": str(tmp_path / "www")}, ident=state)


def test_taking_the_notice_down_removes_every_components_file(tmp_path):
    assert _role(tmp_path, "present").ok
    assert sorted(p.name for p in (tmp_path / "etc-si").iterdir()) == ["si-core-qyyl.json", "si-counter.json"]
    standin = tmp_path / "www" / "standin"
    standin.mkdir(parents=True)
    (standin / "si-counter.json").write_text("{}")  # as a stand-in's copy of the notice
    down = _role(tmp_path, "absent")
    assert down.ok, down.summary()
    assert list((tmp_path / "etc-si").iterdir()) == []
    assert list(standin.iterdir()) == []
