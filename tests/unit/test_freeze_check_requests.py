"""N2's check of what a user sees (playbooks/stop/library/channel_requests.py, one call per host, #17):
every request is sent, and each channel that answers otherwise is named with what it said.
Real ansible-playbook runs against a real HTTP server on loopback standing in for a host's
services."""

from __future__ import annotations

import http.server
import json
import threading
from typing import ClassVar

import pytest
import yaml

from cutover.ansible import run_playbook
from cutover.paths import ROOT


class _Service(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, str]]] = {}
    seen: ClassVar[list[tuple[str, str, str]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.seen.append((self.command, self.path, body))
        status, text = self.answers.get(self.path, (404, "no such path"))
        data = text.encode()
        self.send_response(status)
        if status in (301, 302, 303, 307):
            self.send_header("Location", text)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


@pytest.fixture
def service():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Service.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _ask(tmp_path, requests):
    (tmp_path / "library").symlink_to(ROOT / "playbooks" / "stop" / "library")
    play = tmp_path / "ask.yml"
    play.write_text(yaml.safe_dump([{"name": "Ask", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Ask", "channel_requests": {"requests": requests}}]}]))
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}))
    return run_playbook(play, inv, ident="ask", artifacts_dir=tmp_path / "art")


def _requests(url):
    return [{"url": f"{url}/a/collection", "method": "POST", "body": {}, "status": 503},
            {"url": f"{url}/b/collection", "method": "POST", "body": {}, "status": 503},
            {"url": f"{url}/a/benefit-payment", "method": "POST", "body": {"line": "qyyl"}, "status": 400}]


def test_every_channel_answering_as_frozen_passes(tmp_path, service):
    _Service.answers = {"/a/collection": (503, "{}"), "/b/collection": (503, "{}"),
                        "/a/benefit-payment": (400, "incomplete")}
    result = _ask(tmp_path, _requests(service))
    assert result.ok, result.summary()
    assert [(m, p, json.loads(b)) for m, p, b in _Service.seen] == [
        ("POST", "/a/collection", {}), ("POST", "/b/collection", {}), ("POST", "/a/benefit-payment", {"line": "qyyl"})]


def test_each_channel_still_taking_collection_is_named_after_every_one_was_asked(tmp_path, service):
    hostile = "<script>x</script>\x1b[31m" + "y" * 500
    _Service.answers = {"/a/collection": (200, hostile), "/b/collection": (503, "{}"),
                        "/a/benefit-payment": (503, "{}")}
    result = _ask(tmp_path, _requests(service))
    assert not result.ok
    said = result.summary()
    assert f"POST {service}/a/collection answered 200, not 503" in said
    assert f"POST {service}/a/benefit-payment answered 503, not 400" in said
    assert "/b/collection answered" not in said
    assert "y" * 250 not in said  # a host's answer is shown short
    assert "\x1b" not in said  # and never drives the terminal
    assert len(_Service.seen) == 3  # every request was sent before the verdict


def test_a_channel_that_does_not_answer_is_named(tmp_path):
    result = _ask(tmp_path, [{"url": "http://127.0.0.1:9/collection", "method": "POST", "body": {},
                              "status": 503}])
    assert not result.ok
    assert "http://127.0.0.1:9/collection answered nothing, not 503" in result.summary()


def test_a_channel_redirecting_collection_elsewhere_does_not_pass_by_what_the_other_place_says(tmp_path, service):
    _Service.answers = {"/a/collection": (302, "/frozen"), "/frozen": (503, "{}")}
    result = _ask(tmp_path, [{"url": f"{service}/a/collection", "method": "POST", "body": {}, "status": 503}])
    assert not result.ok
    assert f"POST {service}/a/collection answered 302, not 503" in result.summary()
    assert [p for _, p, _ in _Service.seen] == ["/a/collection"]  # never followed
