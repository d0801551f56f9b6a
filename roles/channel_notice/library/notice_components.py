#!/usr/bin/python
"""The components' side of the friendly notice on one host, in one call (roles/channel_notice).

#17: a task per file and per unit was a round trip each; at 110 county counters the stop spent
most of its time in them. This module does the same work on the host in one go: it writes
the nginx channels' notice pages and route (validated, then nginx reloaded), the components'
maintenance files, installs the stand-in program and unit, starts each stand-in (N4) and
waits until each answers with the notice; or, with state absent, takes the route away (nginx
reloaded), stops the stand-ins, removes the files and the pages (N9-N12). Standard library and Ansible's
module utilities only.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: notice_components
short_description: The maintenance files and notice stand-ins of a host's components
description:
  - With I(nginx=true), the host's nginx channels too; I(state=present) writes the notice
    pages C(WWW/NAME.html) and C(WWW/NAME.json) and the route C(NGINX_DIR/NAME.conf),
    I(state=absent) removes the route, reloads, then removes the pages. When any of them
    changed (now, or in a run that did not get to its reload: the mark
    C(NGINX_DIR/.NAME.reload-pending)), C(nginx -t) must pass before nginx is reloaded
    (C(systemctl reload-or-restart nginx)), before the components' part. On a refusal, what
    the run changed is put back as it was.
  - With I(state=present), writes C(APP_DIR/COMPONENT.json) for each component; with stand-ins,
    installs the stand-in program and the unit C(si-notice@.service), writes each stand-in's
    copy of the notice, (re)starts each C(si-notice@NAME) and waits until it answers 503 with
    the notice and its own name in C(X-SI-Notice-Standin).
  - With I(state=absent), stops the stand-ins of the components (when the unit is installed)
    and removes their maintenance files and stand-in copies.
  - Files are written only when their content or mode differs, atomically, owned by root.
options:
  state: {type: str, choices: [present, absent], default: present, description: On or off.}
  components: {type: list, elements: str, default: [], description: Components reading a maintenance file.}
  component_notice: {type: str, default: "", description: The content of every component's maintenance file.}
  app_dir: {type: path, required: true, description: Directory of the components' maintenance files.}
  www: {type: path, required: true, description: The stand-ins' copies of the notice live in WWW/standin.}
  notice: {type: dict, default: {}, description: "The stand-ins' notice: {notice, json, html}."}
  standins: {type: list, elements: dict, default: [], description: "[{name, port, address}]."}
  program_path: {type: path, description: Where the stand-in program goes.}
  program: {type: str, default: "", description: The stand-in program's text.}
  unit_path: {type: path, default: /etc/systemd/system/si-notice@.service, description: The stand-in unit.}
  unit: {type: str, default: "", description: The stand-in unit's text.}
  wait: {type: int, default: 15, description: Seconds each stand-in has to answer.}
  name: {type: str, default: window, description: "The notice's name: its pages' and route's file names."}
  nginx: {type: bool, default: false, description: The host has nginx channels (the pages and the route).}
  nginx_dir: {type: path, default: /etc/nginx/si-maintenance.d, description: Included by the server block.}
  nginx_conf: {type: str, default: "", description: "The route's text (state present)."}
  pages: {type: dict, default: {}, description: "The notice pages: {html, json} (state present)."}
"""

import contextlib
import http.client
import json
import os
import re
import stat
import tempfile
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

UNIT_PREFIX = "si-notice@"
SHOWN = 200  # of what a host answered
SHOWN_DIAGNOSIS = 8000  # of a unit's status and journal: its end
FIRST_PAUSE = 0.1  # seconds before a stand-in is asked again (then doubled, up to 1 s)


def shown(text: str, most: int = SHOWN, lines: bool = False) -> str:
    """What a host said, as operators read it: short, and never a control character (a
    newline kept where `lines`)."""
    keep = "\n" if lines else ""
    text = "".join(c if c.isprintable() or c in keep else f"\\x{ord(c):02x}" for c in text[: most + 1])
    return text if len(text) <= most else text[:most] + "…"


def _write(path: str, data: bytes, mode: int) -> None:
    """Atomically, root's (when root runs it): a symlink at path is replaced, never followed."""
    os.makedirs(os.path.dirname(path), exist_ok=True)  # a parent it does not own is left as it is
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".si-notice-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _root_owned(st: os.stat_result, mode: int) -> bool:
    return stat.S_IMODE(st.st_mode) == mode and (os.geteuid() != 0 or (st.st_uid, st.st_gid) == (0, 0))


class Host:
    """The changes made (or, in check mode, that would be made), in order."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.changes: list[str] = []

    def directory(self, path: str) -> None:
        """root's, 0755 (anyone may read: the stand-in runs as nobody): made when missing, put
        right when it is not."""
        try:
            st = os.stat(path)  # a directory behind a symlink is one too
        except FileNotFoundError:
            self.changes.append(f"created {path}")
            st = None
        if st is not None:
            if not stat.S_ISDIR(st.st_mode):
                self.fail(f"{path} is not a directory; nothing there was changed")
            if _root_owned(st, 0o755):
                return
            self.changes.append(f"set {path} to root's, 0755")
        if not self.module.check_mode:
            os.makedirs(path, mode=0o755, exist_ok=True)
            os.chmod(path, 0o755)  # noqa: S103 (a directory anyone may read, as the role always made)
            self._own(path)

    @staticmethod
    def same(path: str, content: str | bytes, mode: int) -> bool:
        """The file is there, a plain file, root's with this mode, with this content."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        try:
            same = stat.S_ISREG(os.lstat(path).st_mode) and _root_owned(os.lstat(path), mode)
            if same:
                with open(path, "rb") as fh:
                    same = fh.read() == data
        except FileNotFoundError:
            same = False
        return same

    def file(self, path: str, content: str | bytes, mode: int) -> bool:
        data = content.encode("utf-8") if isinstance(content, str) else content
        if self.same(path, data, mode):
            return False
        self.changes.append(f"wrote {path}")
        if not self.module.check_mode:
            _write(path, data, mode)
        return True

    def remove(self, path: str) -> bool:
        if not os.path.lexists(path):
            return False
        self.changes.append(f"removed {path}")
        if not self.module.check_mode:
            os.unlink(path)
        return True

    def systemctl(self, *args: str) -> tuple[int, str]:
        rc, out, err = self.module.run_command(["systemctl", *args])
        return rc, (out + err).strip()

    def unit_active(self, unit: str) -> bool:
        return self.systemctl("is-active", "--quiet", unit)[0] == 0

    def unit_down(self, unit: str) -> bool:
        """Inactive or failed: not running, not starting, not waiting to restart."""
        _, out = self.systemctl("show", "--property=ActiveState", "--value", unit)
        return out.strip() in ("inactive", "failed", "")

    def unit_do(self, verb: str, unit: str) -> None:
        self.changes.append(f"{verb} {unit}")
        if self.module.check_mode:
            return
        rc, out = self.systemctl(verb, unit)
        if rc != 0:
            self.fail(f"systemctl {verb} {unit} failed: {shown(out)}", unit)

    def fail(self, msg: str, unit: str | None = None) -> None:
        if unit:
            _, status = self.systemctl("status", "--no-pager", "--lines=0", unit)
            _, out, err = self.module.run_command(["journalctl", "-u", unit, "-n", "25", "--no-pager"])
            text = f"{status}\n{(out + err).strip()}"
            msg = f"{msg}\n{shown(text[-SHOWN_DIAGNOSIS:], SHOWN_DIAGNOSIS, lines=True)}"
        self.module.fail_json(msg=msg, changes=self.changes)

    @staticmethod
    def _own(path: str) -> None:
        if os.geteuid() == 0:
            os.chown(path, 0, 0)


def answers_with_notice(name: str, address: str, port: int, wait: int) -> str:
    """'' once the stand-in answers as itself with the notice; else what it answered last."""
    host = "127.0.0.1" if address in ("0.0.0.0", "") else address  # noqa: S104 (every address: ask loopback)
    url = f"http://[{host}]:{port}/health" if ":" in host else f"http://{host}:{port}/health"
    last = "no answer"
    deadline = time.monotonic() + wait
    pause = FIRST_PAUSE  # #17: a stand-in answers a fraction of a second after its start
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (http to the host itself)
                last = f"{answer.status} (the stand-in answers 503)"
        except urllib.error.HTTPError as answer:
            body = answer.read(65536)
            standin = answer.headers.get("X-SI-Notice-Standin", "")
            try:
                code = json.loads(body).get("code")
            except (ValueError, AttributeError):
                code = None
            if answer.code == 503 and code == "MAINTENANCE" and standin == name:
                return ""
            last = f"{answer.code}, code {shown(repr(code))}, X-SI-Notice-Standin {shown(repr(standin))}"
        except (OSError, ValueError, http.client.HTTPException) as exc:  # not HTTP at all: no answer either
            last = f"no answer ({shown(repr(exc))})"
        if time.monotonic() >= deadline:
            return last
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def nginx_files(p: dict) -> dict[str, tuple[str, int]]:
    """The nginx channels' files: path -> (content, mode)."""
    pages = {os.path.join(p["www"], f"{p['name']}.{ext}"): (p["pages"].get(ext, ""), 0o644)
             for ext in ("html", "json")}
    return {**pages, os.path.join(p["nginx_dir"], f"{p['name']}.conf"): (p["nginx_conf"], 0o644)}


class Nginx:
    """The nginx channels' pages and route on this host. Before a run changes them it leaves a
    mark, NGINX_DIR/.NAME.reload-pending; after nginx took the change (`nginx -t`, then a
    reload) the mark goes. A run stopped in between (killed, or its reload failed) leaves the
    mark, and the next run validates and reloads although the files are already as wanted.
    When nginx refuses, what this run changed is put back as it was when the run began; files
    an earlier run wrote are left, with the mark, and the message says they were never loaded.
    The mark is only a flag: nothing is read from it."""

    def __init__(self, host: Host, p: dict) -> None:
        self.host = host
        self.mark = os.path.join(p["nginx_dir"], f".{p['name']}.reload-pending")
        self.due = os.path.lexists(self.mark)
        self.before: dict[str, tuple[bytes, int] | None] = {}  # what this run changed, as it was

    def apply(self, wanted: dict[str, tuple[str, int] | None]) -> None:
        """Each path with its (content, mode), or removed (None); then, when anything changed
        (now or in a run that did not get to its reload), `nginx -t` and a reload (a start, if
        nginx was down)."""
        host = self.host
        todo = {path: spec for path, spec in wanted.items()
                if (not host.same(path, *spec) if spec else os.path.lexists(path))}
        if todo and not host.module.check_mode and not os.path.lexists(self.mark):
            os.close(os.open(self.mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        for path, spec in todo.items():
            if not host.module.check_mode:
                self.before[path] = _saved(path)
            if spec:
                host.file(path, *spec)
            else:
                host.remove(path)
        if not (todo or self.due):
            return
        if host.module.check_mode:
            host.changes.append("nginx -t, then reload nginx")
            return
        self._load()

    def _load(self) -> None:
        """`nginx -t`, then a reload; on a refusal, this run's changes are put back."""
        host = self.host
        try:
            rc, out, err = host.module.run_command(["nginx", "-t"], handle_exceptions=False)
        except OSError as exc:  # no nginx at all
            rc, out, err = 127, "", str(exc)
        if rc != 0:
            said = shown((out + err).strip(), SHOWN_DIAGNOSIS, lines=True)
            try:
                self.put_back()
            except OSError as exc:
                host.fail(f"nginx -t refused the configuration, so nginx was not reloaded; putting back what "
                          f"this run changed failed too ({exc}): {', '.join(self.before)}\n{said}")
            put = (f"what this run changed was put back as it was: {', '.join(self.before)}" if self.before
                   else f"this run changed nothing; the files on disk were written by an earlier run that "
                        f"did not get to its reload, were never loaded, and stay with the mark {self.mark}")
            host.fail(f"nginx -t refused the configuration, so nginx was not reloaded and serves the one "
                      f"before; {put}:\n{said}")
        rc, out = host.systemctl("reload-or-restart", "nginx")
        if rc != 0:  # the mark stays: the next run validates and reloads again
            host.fail(f"systemctl reload-or-restart nginx failed: {shown(out)}", "nginx.service")
        host.changes.append("nginx -t, then reload nginx")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.mark)

    def put_back(self) -> None:
        for path, was in self.before.items():
            if was is None:
                self.host.remove(path)
            else:
                self.host.file(path, was[0], was[1])
        if self.before and not self.due:  # on disk again what nginx loaded
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.mark)


def plain_files(host: Host, paths) -> None:
    """Refuse, before anything is changed, a page or route that is there and is not a plain file."""
    for path in paths:
        if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
            host.fail(f"{path} is there and is not a plain file (a link?); nothing was changed")


def _saved(path: str) -> tuple[bytes, int] | None:
    """A plain file's content and mode, to put back; None when there is none."""
    try:
        with open(path, "rb") as fh:  # a plain file: apply() refused anything else
            return fh.read(), stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
    except FileNotFoundError:
        return None


def present(host: Host, p: dict) -> dict:
    if p["nginx"]:  # the channels' notice live before anything else is done on the host
        plain_files(host, nginx_files(p))
        host.directory(p["www"])
        host.directory(p["nginx_dir"])
        Nginx(host, p).apply(nginx_files(p))
    return components_present(host, p)


def components_present(host: Host, p: dict) -> dict:
    if p["components"]:
        host.directory(p["app_dir"])
    for name in p["components"]:
        host.file(os.path.join(p["app_dir"], f"{name}.json"), p["component_notice"], 0o644)
    if not p["standins"]:
        return {}
    return standins_up(host, p)


def standins_up(host: Host, p: dict) -> dict:
    standins = p["standins"]
    host.directory(os.path.dirname(p["program_path"]))
    host.file(p["program_path"], p["program"], 0o755)
    standin_dir = os.path.join(p["www"], "standin")
    host.directory(standin_dir)
    renewed = set()
    for item in standins:
        copy = {**p["notice"], "standin": {"address": item["address"], "port": item["port"]}}
        text = json.dumps(copy, ensure_ascii=False, indent=4, sort_keys=True)  # as the role wrote it before
        if host.file(os.path.join(standin_dir, f"{item['name']}.json"), text, 0o644):
            renewed.add(item["name"])
    unit_changed = host.file(p["unit_path"], p["unit"], 0o644)
    if unit_changed:
        host.changes.append("systemctl daemon-reload")
        if not host.module.check_mode:
            rc, out = host.systemctl("daemon-reload")
            if rc != 0:
                host.fail(f"systemctl daemon-reload failed: {out}")
    acted = set()
    for item in standins:  # N4: the conflict stops the component's own unit if it still ran
        unit = f"{UNIT_PREFIX}{item['name']}.service"
        if unit_changed or item["name"] in renewed:
            host.unit_do("restart", unit)
            acted.add(item["name"])
        elif not host.unit_active(unit):
            host.unit_do("start", unit)
            acted.add(item["name"])
    answers = {}
    for item in standins:  # as an app would ask: each answers with the notice, as itself
        if host.module.check_mode and item["name"] in acted:
            continue  # a check run started nothing: only the stand-ins already up are asked
        last = answers_with_notice(item["name"], item["address"], item["port"], p["wait"])
        if last:
            host.fail(f"{UNIT_PREFIX}{item['name']} does not answer with the notice on "
                      f"{item['address']}:{item['port']} after {p['wait']} s: {last}",
                      f"{UNIT_PREFIX}{item['name']}.service")
        answers[item["name"]] = f"{item['address']}:{item['port']}"
    return {"answering": answers}


def absent(host: Host, p: dict) -> dict:
    pages = [path for path in nginx_files(p) if not path.endswith(".conf")] if p["nginx"] else []
    if p["nginx"]:  # the route first, and nginx reloaded: the pages it routes to stay until then
        plain_files(host, nginx_files(p))
        Nginx(host, p).apply({path: None for path in nginx_files(p) if path not in pages})
    if p["components"] and os.path.exists(p["unit_path"]):
        for name in p["components"]:  # before its maintenance file goes (starting it stops it too)
            unit = f"{UNIT_PREFIX}{name}.service"
            if not host.unit_down(unit):  # running, starting, or waiting to restart
                host.unit_do("stop", unit)
    for name in p["components"]:
        host.remove(os.path.join(p["app_dir"], f"{name}.json"))
        host.remove(os.path.join(p["www"], "standin", f"{name}.json"))
    for path in pages:
        host.remove(path)
    return {}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "components": {"type": "list", "elements": "str", "default": []},
            "component_notice": {"type": "str", "default": ""},
            "app_dir": {"type": "path", "required": True},
            "www": {"type": "path", "required": True},
            "notice": {"type": "dict", "default": {}},
            "standins": {"type": "list", "elements": "dict", "default": [], "options": {
                "name": {"type": "str", "required": True},
                "port": {"type": "int", "required": True},
                "address": {"type": "str", "default": "0.0.0.0"}}},  # noqa: S104 (as a front listens)
            "program_path": {"type": "path"},
            "program": {"type": "str", "default": ""},
            "unit_path": {"type": "path", "default": "/etc/systemd/system/si-notice@.service"},
            "unit": {"type": "str", "default": ""},
            "wait": {"type": "int", "default": 15},
            "name": {"type": "str", "default": "window"},
            "nginx": {"type": "bool", "default": False},
            "nginx_dir": {"type": "path", "default": "/etc/nginx/si-maintenance.d"},
            "nginx_conf": {"type": "str", "default": ""},
            "pages": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    for item in p["standins"]:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", item["name"]):
            module.fail_json(msg=f"stand-in {item['name']!r}: a plain unit name (letters, digits, - and _)")
        if item["name"] not in p["components"]:
            module.fail_json(msg=f"stand-in {item['name']!r} is not one of the components")
    if p["state"] == "present" and p["standins"] and not (p["program"] and p["unit"] and p["program_path"]):
        module.fail_json(msg="stand-ins need the program, its path and the unit")
    if p["nginx"] and not re.fullmatch(r"[A-Za-z0-9_-]+", p["name"]):
        module.fail_json(msg=f"notice name {shown(repr(p['name']))}: letters, digits, - and _ "
                             "(it names the pages and the route)")
    if p["state"] == "present" and p["nginx"] and not (
            p["nginx_conf"] and all(p["pages"].get(ext) for ext in ("html", "json"))):
        module.fail_json(msg="nginx channels need the route (nginx_conf) and both pages "
                             "(pages: {html, json})")
    host = Host(module)
    try:
        out = present(host, p) if p["state"] == "present" else absent(host, p)
    except OSError as exc:  # a full disk, a path in the way: say what was done before it
        host.fail(f"{exc}; done before it: {'; '.join(host.changes) or 'nothing'}")
    module.exit_json(changed=bool(host.changes), changes=host.changes, **out)


if __name__ == "__main__":
    main()
