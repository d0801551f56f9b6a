#!/usr/bin/python
"""Ask every file, HTTP and command probe of a host's components in one call (version_verify).

#17: a looped task per kind of probe was three round trips per host, the costliest tasks of
the deploy's and the restore's version checks. This module asks them all on the host and
returns what each found in the shape the role's action judges (`version_verify_rows`), as the
looped slurp, uri and command tasks returned it; the verdict stays on the controller. It only
reads: in check mode it asks too.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: version_answers
short_description: What a host's version probes find (files read, HTTP asked, commands run)
description:
  - For each file probe, the file's content (base64, as slurp gives it; none when unreadable).
  - For each HTTP probe, the status (-1 when nothing answers), the body and the stand-in header.
  - For each command probe (split into words, no shell), its exit code and output.
  - Each result carries C(item), the [component, probe] pair it answers.
options:
  files: {type: list, elements: raw, default: [], description: "[component, probe] pairs, file probes"}
  https: {type: list, elements: raw, default: [], description: "[component, probe] pairs, HTTP probes"}
  commands: {type: list, elements: raw, default: [], description: "[component, probe] pairs, command probes"}
  timeout: {type: int, default: 5, description: Seconds an HTTP probe waits.}
"""

import base64
import http.client
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

MOST = 65536  # a probe's answer is a version: what is beyond this is never needed


def read_file(pair: list) -> dict:
    try:
        with open(pair[1]["file"], "rb") as fh:
            return {"item": pair, "content": base64.b64encode(fh.read(MOST)).decode("ascii")}
    except OSError as exc:
        return {"item": pair, "msg": str(exc)}


def ask(pair: list, timeout: int) -> dict:
    try:
        with urllib.request.urlopen(pair[1]["http"], timeout=timeout) as answer:  # noqa: S310 (the probe's own URL)
            status, headers, body = answer.status, answer.headers, answer.read(MOST)
    except urllib.error.HTTPError as answer:
        status, headers, body = answer.code, answer.headers, answer.read(MOST)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # not HTTP at all: not running either
        return {"item": pair, "status": -1, "msg": repr(exc)[:200]}
    return {"item": pair, "status": status, "content": body.decode("utf-8", "replace"),
            "x_si_notice_standin": headers.get("X-SI-Notice-Standin", "")}


def run(module: AnsibleModule, pair: list) -> dict:
    try:  # split into words, no shell
        rc, out, err = module.run_command(str(pair[1]["command"]), handle_exceptions=False)
    except (OSError, ValueError) as exc:  # a command that cannot start is an answer too
        return {"item": pair, "rc": getattr(exc, "errno", None) or 2, "stdout": "", "stderr": str(exc)}
    return {"item": pair, "rc": rc, "stdout": out[:MOST], "stderr": err[:MOST]}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "raw", "default": []},
            "https": {"type": "list", "elements": "raw", "default": []},
            "commands": {"type": "list", "elements": "raw", "default": []},
            "timeout": {"type": "int", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    module.exit_json(changed=False,
                     files=[read_file(pair) for pair in p["files"]],
                     https=[ask(pair, p["timeout"]) for pair in p["https"]],
                     commands=[run(module, pair) for pair in p["commands"]])


if __name__ == "__main__":
    main()
