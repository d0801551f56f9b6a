"""roles/channel_notice on a host with nginx channels (N2, N4, N12), in its one module call
(#17): the notice pages and the route are written, nginx's configuration must pass `nginx -t`
before nginx is reloaded, and taking the notice down removes them and reloads again. A
configuration nginx refuses is never loaded. Real ansible-playbook on this machine, the
role's directories in a temporary directory; `nginx` and `systemctl` are small stand-ins on
PATH that record how they were called (Molecule's scenario and the lab run the real ones)."""

from __future__ import annotations

import json
import os

import pytest

from .role_here import run_role

FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
{body}
"""


@pytest.fixture
def host(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    log.touch()
    for name in ("nginx", "systemctl"):
        (bin_dir / name).write_text(FAKE.format(log=log, body="exit 0"))
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path, log


def _role(tmp_path, state: str, **extra):
    return run_role(tmp_path, "channel_notice", {
        "channel_notice_state": state, "channel_notice_scope": "functions",
        "channel_notice_functions": ["collection", "account"],
        "channel_notice_nginx_paths": ["/online/"],
        "channel_notice_nginx_dir": str(tmp_path / "nginx"),
        "channel_notice_www": str(tmp_path / "www"),
        "channel_notice_app_dir": str(tmp_path / "etc-si"),
        "channel_notice_until": "2023-12-01 13:00", **extra},
        ident=f"{state}-{len(list(tmp_path.glob('art/runner/artifacts/*')))}")


def test_the_pages_and_the_route_go_up_and_nginx_is_validated_then_reloaded(host):
    tmp_path, log = host
    up = _role(tmp_path, "present")
    assert up.ok, up.summary()
    route = (tmp_path / "nginx" / "window.conf").read_text()
    assert "location ~ ^/(?:online)/(?:collection|account)(?:/|\\?|$)" in route
    assert "return 503;" in route
    text = (tmp_path / "www" / "window.json").read_text()
    assert text.endswith("}\n")  # as nginx serves it to apps: JSON, one newline
    page = json.loads(text)
    assert "2023-12-01 13:00" in json.dumps(page, ensure_ascii=False)
    assert "<html" in (tmp_path / "www" / "window.html").read_text()
    assert log.read_text().splitlines() == ["nginx -t", "systemctl reload-or-restart nginx"]

    log.write_text("")
    again = _role(tmp_path, "present")
    assert again.ok, again.summary()
    assert again.stats["localhost"].get("changed", 0) == 0
    assert log.read_text() == ""  # nothing changed: nginx is left alone

    down = _role(tmp_path, "absent")
    assert down.ok, down.summary()
    assert list((tmp_path / "nginx").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "www").iterdir()) == []
    assert log.read_text().splitlines() == ["nginx -t", "systemctl reload-or-restart nginx"]


def test_a_configuration_nginx_refuses_is_never_loaded_and_its_files_are_put_back(host):
    """What is on disk stays what nginx serves: a reboot would not start an nginx with a
    configuration it refuses, and the run after the fix writes and reloads again."""
    tmp_path, log = host
    nginx = tmp_path / "bin" / "nginx"
    nginx.write_text(FAKE.format(
        log=log, body='echo "nginx: [emerg] unknown directive \\"\\033[31mx\\" in other.conf:3" >&2; exit 1'))
    up = _role(tmp_path, "present")
    assert not up.ok
    said = " ".join(f.message for f in up.failures)
    assert "nginx -t refused the configuration, so nginx was not reloaded" in said
    assert "what this run changed was put back as it was" in said
    assert "unknown directive" in said
    assert "\x1b" not in said  # what the host said is shown, never obeyed by the terminal
    assert log.read_text().splitlines() == ["nginx -t"]  # no reload
    assert list((tmp_path / "nginx").iterdir()) == []  # no route left for the next (re)start to load
    assert sorted(p.name for p in (tmp_path / "www").iterdir()) == []

    nginx.write_text(FAKE.format(log=log, body="exit 0"))  # the other vhost fixed
    log.write_text("")
    again = _role(tmp_path, "present")
    assert again.ok, again.summary()
    assert (tmp_path / "nginx" / "window.conf").exists()
    assert log.read_text().splitlines() == ["nginx -t", "systemctl reload-or-restart nginx"]


def test_a_run_that_did_not_get_to_the_reload_is_reloaded_by_the_next(host):
    """The files were written, then the run stopped before nginx took them (here its reload
    failed; a kill or a stand-in that did not answer is the same): the next run finds the files
    as wanted and still validates and reloads."""
    tmp_path, log = host
    systemctl = tmp_path / "bin" / "systemctl"
    systemctl.write_text(FAKE.format(log=log, body='echo "Job for nginx.service failed" >&2; exit 1'))
    up = _role(tmp_path, "present")
    assert not up.ok
    assert "systemctl reload-or-restart nginx failed: Job for nginx.service failed" in " ".join(
        f.message for f in up.failures)
    assert (tmp_path / "nginx" / "window.conf").exists()

    systemctl.write_text(FAKE.format(log=log, body="exit 0"))
    log.write_text("")
    again = _role(tmp_path, "present")
    assert again.ok, again.summary()
    assert log.read_text().splitlines() == ["nginx -t", "systemctl reload-or-restart nginx"]
    log.write_text("")
    third = _role(tmp_path, "present")  # now loaded: left alone
    assert third.ok
    assert third.stats["localhost"].get("changed", 0) == 0
    assert log.read_text() == ""
    assert sorted(p.name for p in (tmp_path / "nginx").iterdir()) == ["window.conf"]  # no mark left


def test_after_a_stopped_run_a_refusal_says_the_files_were_never_loaded_and_keeps_the_mark(host):
    """A run wrote a new route and stopped before nginx took it (here its reload failed);
    someone else's vhost breaks `nginx -t` meanwhile. The next run changes nothing, so it puts
    nothing back (it cannot know what nginx loaded since): it says the files were never loaded
    and keeps the mark, and once nginx -t passes again, a run loads them."""
    tmp_path, log = host
    assert _role(tmp_path, "present").ok  # loaded: the functions notice
    systemctl = tmp_path / "bin" / "systemctl"
    systemctl.write_text(FAKE.format(log=log, body="exit 1"))
    widened = _role(tmp_path, "present", channel_notice_scope="all")  # written, never loaded
    assert not widened.ok
    route = (tmp_path / "nginx" / "window.conf").read_text()
    systemctl.write_text(FAKE.format(log=log, body="exit 0"))
    nginx = tmp_path / "bin" / "nginx"
    nginx.write_text(FAKE.format(log=log, body='echo "[emerg] in other.conf" >&2; exit 1'))
    again = _role(tmp_path, "present", channel_notice_scope="all")
    assert not again.ok
    said = " ".join(f.message for f in again.failures)
    assert "written by an earlier run that did not get to its reload, were never loaded" in said
    assert (tmp_path / "nginx" / "window.conf").read_text() == route
    assert (tmp_path / "nginx" / ".window.reload-pending").exists()

    nginx.write_text(FAKE.format(log=log, body="exit 0"))
    log.write_text("")
    fixed = _role(tmp_path, "present", channel_notice_scope="all")
    assert fixed.ok, fixed.summary()
    assert log.read_text().splitlines() == ["nginx -t", "systemctl reload-or-restart nginx"]
    assert sorted(p.name for p in (tmp_path / "nginx").iterdir()) == ["window.conf"]  # the mark gone


def test_taking_the_notice_down_keeps_its_pages_until_nginx_no_longer_routes_to_them(host):
    """The route goes first and nginx is reloaded; only then the pages: a refused or failed
    reload never leaves a loaded route pointing at pages that are gone (a bare 404)."""
    tmp_path, log = host
    assert _role(tmp_path, "present").ok
    (tmp_path / "bin" / "nginx").write_text(FAKE.format(log=log, body="exit 1"))
    down = _role(tmp_path, "absent")
    assert not down.ok
    assert (tmp_path / "nginx" / "window.conf").exists()  # put back: nginx still routes to the pages
    assert sorted(p.name for p in (tmp_path / "www").iterdir()) == ["window.html", "window.json"]


def test_a_page_that_is_a_link_is_refused_and_nothing_is_changed(host):
    tmp_path, log = host
    (tmp_path / "www").mkdir()
    (tmp_path / "branded.html").write_text("<html>ours</html>")
    (tmp_path / "www" / "window.html").symlink_to(tmp_path / "branded.html")
    up = _role(tmp_path, "present")
    assert not up.ok
    assert "is there and is not a plain file (a link?); nothing was changed" in " ".join(
        f.message for f in up.failures)
    assert (tmp_path / "www" / "window.html").is_symlink()
    assert (tmp_path / "branded.html").read_text() == "<html>ours</html>"
    assert not (tmp_path / "nginx" / "window.conf").exists()
    assert log.read_text() == ""


def test_taking_the_notice_down_refuses_a_page_that_became_a_link(host):
    tmp_path, log = host
    assert _role(tmp_path, "present").ok
    (tmp_path / "www" / "window.html").unlink()
    (tmp_path / "www" / "window.html").symlink_to(tmp_path / "inv.yml")
    log.write_text("")
    down = _role(tmp_path, "absent")
    assert not down.ok
    assert "is not a plain file" in " ".join(f.message for f in down.failures)
    assert (tmp_path / "nginx" / "window.conf").exists()  # nothing was changed
    assert (tmp_path / "www" / "window.html").is_symlink()
    assert log.read_text() == ""


def test_a_notice_name_that_is_not_a_plain_name_writes_nothing(host):
    tmp_path, log = host
    up = _role(tmp_path, "present", channel_notice_name="../../etc/cron.d/x")
    assert not up.ok
    assert "notice name" in " ".join(f.message for f in up.failures)
    assert not (tmp_path / "nginx").exists()
    assert not (tmp_path / "www").exists()
    assert log.read_text() == ""


@pytest.mark.parametrize(("wrong", "said"), [
    # a stand-in for a component this role writes no maintenance file for, on a host with no
    # component at all: refused, never skipped as a host with nothing to do
    ({"channel_notice_nginx_paths": [], "channel_notice_standins": [{"name": "si-counter", "port": 28099}]},
     "list 'si-counter' in channel_notice_components too"),
    # a stand-in's name from the inventory is shown escaped, never obeyed
    ({"channel_notice_nginx_paths": [], "channel_notice_standins": [{"name": "si-x\x1b[2J", "port": 28099}]},
     "list 'si-x\\x1b[2J' in channel_notice_components too"),
    ({"channel_notice_functions": []}, "scope 'functions' needs functions"),
    ({"channel_notice_nginx_paths": ["online"]}, "nginx paths look like /online/"),
    ({"channel_notice_components": ["si-counter"],
      "channel_notice_standins": [{"name": "si-counter.service\nx", "port": 28099}]}, "plain unit names"),
])
def test_inputs_the_role_cannot_act_on_are_refused_before_the_host_is_touched(host, wrong, said):
    tmp_path, log = host
    up = _role(tmp_path, "present", **wrong)
    assert not up.ok
    assert said in " ".join(f.message for f in up.failures)
    assert "\x1b" not in " ".join(f.message for f in up.failures)
    assert not (tmp_path / "nginx").exists()
    assert not (tmp_path / "www").exists()
    assert not (tmp_path / "etc-si").exists()
    assert log.read_text() == ""
