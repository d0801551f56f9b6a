"""#17: a service or a stand-in is usually up a fraction of a second after its start. The
modules that wait for one look again after 0.1 s and then twice as long each time, up to the
longest pause the role allows (service_control_delay; 1 s for the stand-ins), instead of a
whole second before every second look. Still within the same deadline, and still failing with
what was answered last when the time is up.

The clock is the modules' own `time`, replaced by one that moves only when they pause: the
schedule of looks is what is asserted, never how long a run took."""

from __future__ import annotations

import http.server
import importlib.util
import json
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    """monotonic() and sleep() of a clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(round(seconds, 3))
        self.now += seconds


@pytest.fixture
def units_module(monkeypatch):
    module = load(ROOT / "roles" / "service_control" / "library" / "service_units.py")
    clock = Clock()
    monkeypatch.setattr(module, "time", clock)
    return module, clock


def waiter(module, timeout: int, delay: int):
    units = module.Units.__new__(module.Units)
    units.p = {"timeout": timeout, "delay": delay}
    return units


def test_a_service_up_soon_after_its_start_is_seen_within_a_fraction_of_a_second(units_module):
    module, clock = units_module
    answers = iter(["connection refused", "connection refused", ""])
    waiter(module, timeout=60, delay=1).until("did not answer", lambda: next(answers))
    assert clock.pauses == [0.1, 0.2]


def test_the_pause_grows_to_the_delay_and_the_deadline_still_holds(units_module):
    module, clock = units_module
    with pytest.raises(module.Failed) as failed:
        waiter(module, timeout=5, delay=2).until("did not answer", lambda: "503 Service Unavailable")
    assert clock.pauses == [0.1, 0.2, 0.4, 0.8, 1.6, 2]
    assert "did not answer: 503 Service Unavailable after 5 s" in str(failed.value)


def test_a_delay_of_nought_means_no_pause(units_module):
    module, clock = units_module
    answers = iter(["no", "no", ""])
    waiter(module, timeout=60, delay=0).until("did not answer", lambda: next(answers))
    assert clock.pauses == [0, 0]


class Standin(http.server.BaseHTTPRequestHandler):
    """Answers /health as a stand-in does, but only from its third request on (as if it were
    still starting); before that, as something else does (200)."""

    asked = 0

    def do_GET(self):
        type(self).asked += 1
        if type(self).asked < 3:
            self.send_response(200)
            self.end_headers()
            return
        body = json.dumps({"code": "MAINTENANCE"}).encode()
        self.send_response(503)
        self.send_header("X-SI-Notice-Standin", "counter")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def standin():
    Standin.asked = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Standin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_stand_in_is_asked_again_soon_and_then_less_often(monkeypatch, standin):
    module = load(ROOT / "roles" / "channel_notice" / "library" / "notice_components.py")
    clock = Clock()
    monkeypatch.setattr(module, "time", clock)
    assert module.answers_with_notice("counter", "127.0.0.1", standin, wait=15) == ""
    assert clock.pauses == [0.1, 0.2]

    Standin.asked = -100  # answers as something else from now on
    clock.pauses.clear()
    last = module.answers_with_notice("counter", "127.0.0.1", standin, wait=4)
    assert clock.pauses == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert last == "200 (the stand-in answers 503)"
