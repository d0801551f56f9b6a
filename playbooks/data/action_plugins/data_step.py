"""data_step: one data step that runs on this machine (N5-N7), reported the Ansible way.

Runs `python -m cutover.data OPERATION --spec JSON` (src/cutover/data/__main__.py) with the
Python that runs ansible-playbook, the secrets as one JSON document on its standard input
(never its command line or environment, which `ps` shows and ansible-runner keeps), and turns
the one JSON object it prints into the task's result:

  ok       changed (export and handoff write), result (what the step found or did: the
           playbook records it with set_stats)
  refused  failed, msg (what is wrong), hint (what to do), result when the refusal comes with
           evidence (a reconciliation that found differences)

Its progress lines (stderr) stay out of the result, as they did under no_log: a library it
uses may log a URL with its token there. Only a step that ends without its answer (a crash)
shows their last lines, the end of its traceback, with every secret it was given and any
URL's credentials and query masked.

The step's output goes to files, not pipes: a step whose ansible-playbook is killed (a
cutover run SIGKILLed and resumed) finishes its work, which the resumed run waits for.

Check mode: `screen` runs (it reads only); the others are skipped.

Options (all required but secrets):
  operation  screen | export | handoff | reconcile
  spec       the step's plain inputs (a dict), as __main__.py reads them
  secrets    passwords and webhook URLs (a dict): db_password, drop_password, notify_urls
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

WRITES = {"screen": False, "export": True, "handoff": True, "reconcile": True}
CHANGES = {"screen": False, "export": True, "handoff": True, "reconcile": False}
ARGUMENT_SPEC = {
    "operation": {"type": "str", "required": True, "choices": sorted(WRITES)},
    "spec": {"type": "dict", "required": True},
    "secrets": {"type": "dict", "default": {}, "no_log": True},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        operation = args["operation"]
        if self._task.check_mode and WRITES[operation]:
            return result | {"skipped": True, "changed": False,
                             "msg": f"check mode: {operation} is not run (it writes)"}
        python = (task_vars or {}).get("ansible_playbook_python") or sys.executable
        document, log, ended = _run(str(python), operation, args["spec"], args["secrets"])
        if document is None:  # it ended without its answer: a crash (the traceback's end says which)
            tail = "\n    ".join(_masked(log[-6:], args["secrets"])) or "(nothing on stderr)"
            return result | {"failed": True,
                             "msg": f"python -m cutover.data {operation} ended (exit {ended}) without its "
                                    f"result:\n    {tail}",
                             "hint": "an error the step does not explain: the end of its output is above"}
        if "result" in document:
            result["result"] = document["result"]
        if document.get("failed") or ended != 0:
            result |= {"failed": True,
                       "msg": str(document.get("msg") or f"{operation} failed (exit {ended})")}
            if document.get("hint"):
                result["hint"] = str(document["hint"])
            return result
        return result | {"changed": CHANGES[operation]}


# a URL's user:password@ and its ?query (webhook tokens live there)
_URL_SECRETS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?:[^/@\s]*@)?(?P<rest>[^\s?#'\"]*)(?:\?[^\s#'\"]*)?",
                          re.IGNORECASE)


def _masked(lines: list[str], secrets: dict[str, Any]) -> list[str]:
    """Lines with every secret value the step was given, and URLs' credentials and queries,
    replaced by ***: what a crash shows goes to the runner's artifacts and the journal."""
    values: list[str] = []
    for value in secrets.values():
        values += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    out = []
    for line in lines:
        text = line
        for value in sorted(filter(None, values), key=len, reverse=True):
            text = text.replace(value, "***")
        out.append(_URL_SECRETS.sub(lambda m: f"{m['scheme']}***@{m['rest']}?***", text))
    return out


def _run(python: str, operation: str, spec: dict[str, Any],
         secrets: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str], int]:
    """(the step's answer, or None when it gave none; its progress lines; its exit status)."""
    with tempfile.TemporaryDirectory(prefix="cutover-data-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            proc = subprocess.run([python, "-m", "cutover.data", operation,
                                   "--spec", json.dumps(spec, default=str)],
                                  input=json.dumps(secrets, default=str), stdout=stdout, stderr=stderr,
                                  text=True, check=False)
        log = err.read_text(errors="replace").splitlines()
        try:
            document = json.loads(out.read_text(errors="replace"))
        except ValueError:
            document = None
    if not isinstance(document, dict) or not isinstance(document.get("failed"), bool):
        document = None
    return document, log, proc.returncode
