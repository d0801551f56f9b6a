"""One headless Chromium page kept open while the lab works, driven over the DevTools protocol:
what a department's screen shows during a window, read without ever reloading the page."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from .test_report_in_chromium import FLAGS


class Page:
    """`with Page(chromium, profile, url) as page:` opens `url` once; `page.html()`,
    `page.screenshot(path)` read it as it is now."""

    def __init__(self, chromium: str, profile: Path, url: str, width: int = 1400, height: int = 1800) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        # chromium's own words go to a file nobody has to keep reading (a pipe left unread
        # would fill and stall it mid-window); the port it chose is in DevToolsActivePort
        with open(profile.parent / f"{profile.name}.chromium.log", "wb") as log:
            self.proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                          f"--window-size={width},{height}", "about:blank"],
                                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        self.ids = itertools.count(1)
        try:
            port = self._devtools_port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
                target = next(t for t in json.loads(resp.read()) if t.get("type") == "page")
            self.ws = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
            self.call("Page.enable")
            self.call("Page.navigate", url=url)
        except BaseException:
            self.close()
            raise

    def _devtools_port(self) -> int:
        deadline = time.monotonic() + 30
        active = self.profile / "DevToolsActivePort"
        while time.monotonic() < deadline and self.proc.poll() is None:
            first = active.read_text().split("\n", 1)[0] if active.exists() else ""
            if first.isdigit():
                return int(first)
            time.sleep(0.2)
        raise AssertionError(f"chromium did not open its DevTools port (exit {self.proc.poll()}); "
                             f"see {self.profile.parent / (self.profile.name + '.chromium.log')}")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == ident:
                assert "error" not in message, message
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def html(self) -> str:
        return self.evaluate("document.documentElement.outerHTML") or ""

    def screenshot(self, path: Path) -> bytes:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(png)
        return png

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        with contextlib.suppress(ProcessLookupError):  # chromium and its renderers, zygote, GPU process
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
