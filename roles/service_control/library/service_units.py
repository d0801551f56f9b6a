#!/usr/bin/python
"""Bring a host's services to a state in order, and wait until each really is (service_control).

#17: the role used to include a task file per service, six tasks each, so a host with one
service cost seven round trips and a fleet of 110 counters most of a stage. This module acts
on every listed service in one call on the host, in the given order, each one stopped (and
its unit seen inactive) or started (and its probes answering) before the next.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: service_units
short_description: Stop or start systemd services in order and wait until they really are
description:
  - For each service in order, I(state=stopped) stops the unit (when it runs) and waits until
    systemd reports it inactive or failed; I(state=started) starts it (when it does not run)
    and waits for each probe it has (an HTTP URL answering 200, 201 or 204; a TCP port on
    127.0.0.1 accepting connections; a command, without a shell, exiting 0).
  - A service that does not get there within I(timeout) seconds fails the host with its
    unit's status and the tail of its journal; the services after it are not touched.
  - In check mode nothing is changed and nothing is waited for.
options:
  services: {type: list, elements: dict, required: true, description: "[{name, probe: {http, tcp, command}}]"}
  state: {type: str, choices: [started, stopped], default: started, description: The state to bring them to.}
  timeout: {type: int, default: 60, description: Seconds each service has.}
  delay:
    type: int
    default: 1
    description: Seconds between checks at most (the first again after 0.1 s, then twice as long each time).
  log_lines: {type: int, default: 25, description: Journal lines shown when a service fails.}
  host: {type: str, default: "", description: The host's name in failure messages.}
"""

import http.client
import socket
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

SHOWN = 200  # of a probe's answer
FIRST_PAUSE = 0.1  # seconds before the second look (then doubled, up to delay)
SHOWN_DIAGNOSIS = 8000  # of the unit's status and journal: its end, where the journal's last lines are


class Failed(Exception):
    pass


def shown(text: str, most: int = SHOWN, lines: bool = False) -> str:
    """What a host said, as operators read it: short, and never a control character (a
    newline kept where `lines`)."""
    keep = "\n" if lines else ""
    text = "".join(c if c.isprintable() or c in keep else f"\\x{ord(c):02x}" for c in text[: most + 1])
    return text if len(text) <= most else text[:most] + "…"


class Units:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.p = module.params
        self.changes: list[str] = []

    def systemctl(self, *args: str) -> tuple[int, str]:
        rc, out, err = self.module.run_command(["systemctl", *args])
        return rc, (out + err).strip()

    def show(self, unit: str) -> dict[str, str]:
        _, out = self.systemctl("show", "--property=LoadState,ActiveState", unit)
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def until(self, what: str, ok) -> None:
        """Call ok() until it returns '' (done) or the time is up: again after FIRST_PAUSE
        seconds, then twice as long each time up to delay. #17: a service is usually up a
        fraction of a second after its start; a whole second's pause before every second
        look cost most of a counter's restore."""
        deadline = time.monotonic() + self.p["timeout"]
        pause = min(FIRST_PAUSE, self.p["delay"])
        while True:
            last = ok()
            if not last:
                return
            if time.monotonic() >= deadline:
                raise Failed(f"{what}: {shown(last)} after {self.p['timeout']} s")
            time.sleep(pause)
            pause = min(pause * 2, self.p["delay"])

    def bring(self, unit: str, probe: dict) -> None:
        state = self.show(unit)
        if state.get("LoadState") == "not-found":
            raise Failed(f"no unit {unit} on this host")
        running = state.get("ActiveState") not in ("inactive", "failed")
        if self.p["state"] == "stopped":
            if running:
                self.act("stop", unit)
            if not self.module.check_mode:
                self.until("still not stopped", lambda: "" if self.show(unit).get("ActiveState") in (
                    "inactive", "failed") else f"it is {self.show(unit).get('ActiveState')}")
            return
        if state.get("ActiveState") not in ("active", "reloading"):
            self.act("start", unit)
        if self.module.check_mode:
            return
        http, tcp, command = probe.get("http"), probe.get("tcp"), probe.get("command")
        if http:
            self.until(f"{http} did not answer 200, 201 or 204", lambda: http_probe(http))
        if tcp is not None:
            self.until(f"nothing accepts connections on 127.0.0.1:{tcp}", lambda: tcp_probe(tcp))
        if command:
            self.until(f"probe `{command}` kept failing", lambda: self.command_probe(command))

    def act(self, verb: str, unit: str) -> None:
        self.changes.append(f"{verb} {unit}")
        if self.module.check_mode:
            return
        rc, out = self.systemctl(verb, unit)
        if rc != 0:
            raise Failed(f"systemctl {verb} failed: {shown(out)}")

    def command_probe(self, command: str) -> str:
        try:  # split into words, no shell
            rc, out, err = self.module.run_command(command, handle_exceptions=False)
        except (OSError, ValueError) as exc:  # a program that is not there: kept asking, as before
            return str(exc)
        return "" if rc == 0 else (err or out).strip() or f"exit code {rc}"

    def diagnosis(self, unit: str) -> str:
        _, status = self.systemctl("status", "--no-pager", "--lines=0", unit)
        lines = str(self.p["log_lines"])
        _, out, err = self.module.run_command(["journalctl", "-u", unit, "-n", lines, "--no-pager"])
        text = f"{status}\n{(out + err).strip()}"
        return shown(text[-SHOWN_DIAGNOSIS:], SHOWN_DIAGNOSIS, lines=True)


def http_probe(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (the service's own probe URL)
            return "" if answer.status in (200, 201, 204) else f"it answered {answer.status}"
    except urllib.error.HTTPError as answer:
        return f"it answered {answer.code}"
    except (OSError, ValueError, http.client.HTTPException) as exc:  # not HTTP at all: no answer either
        return f"no answer ({exc!r})"


def tcp_probe(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
            return ""
    except OSError as exc:
        return str(exc)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "services": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "probe": {"type": "dict", "options": {
                    "http": {"type": "str"}, "tcp": {"type": "int"}, "command": {"type": "str"}}}}},
            "state": {"type": "str", "choices": ["started", "stopped"], "default": "started"},
            "timeout": {"type": "int", "default": 60},
            "delay": {"type": "int", "default": 1},
            "log_lines": {"type": "int", "default": 25},
            "host": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    units = Units(module)
    done = []
    for item in module.params["services"]:
        unit = item["name"] if "." in item["name"] else f"{item['name']}.service"
        try:
            units.bring(unit, item.get("probe") or {})
        except Failed as exc:
            host = module.params["host"] or "this host"
            module.fail_json(msg=f"{unit} on {host} did not become {module.params['state']}: {exc}\n"
                                 f"{units.diagnosis(unit)}", changes=units.changes, done=done, ok=False)
        done.append(unit)
    module.exit_json(changed=bool(units.changes), changes=units.changes, done=done, ok=True)


if __name__ == "__main__":
    main()
