"""The controller's half of release_install (#17): check, send only what a host lacks, install.

The staging was three tasks per host (the staging directory, a `copy` per artifact: a stat, a
transfer and a module each, and a sha256 `stat` of every artifact on the controller, a module
run per host and artifact). Now, on the controller, each distinct artifact must exist and
match the release manifest's sha256 before anything reaches the host (plain Python, no module
run); then the module is asked once. A host that already has every artifact staged does the
whole install in that call. Otherwise the module names what it lacks and has done nothing; only
those artifacts are sent, into Ansible's temporary directory on the host, and the module is
called again with them: it checks each copy in the cache before renaming it into place.
"""

from __future__ import annotations

import hashlib
import os

from ansible.plugins.action import ActionBase
from ansible.utils.hashing import secure_hash

MODULE = "ansible.legacy.release_install"


def artifacts(components: list) -> dict[str, str]:
    """{sha256: the controller's path} of each distinct artifact, the first component's path
    (the module stages it under that component's file name)."""
    found: dict[str, str] = {}
    for component in components:
        if isinstance(component, dict) and component.get("sha256") and component.get("artifact"):
            found.setdefault(str(component["sha256"]).lower(), str(component["artifact"]))
    return found


def refusals(wanted: dict[str, str]) -> list[str]:
    """One line per artifact that is missing on the controller or is not the manifest's."""
    said = []
    for sha, path in wanted.items():
        found = secure_hash(path, hashlib.sha256) or "(file missing)"  # Ansible's own, as `stat` used
        if found != sha:
            said.append(f"{path}: sha256 {found} does not match the release manifest ({sha})")
    return said


class ActionModule(ActionBase):
    TRANSFERS_FILES = False  # a temporary directory on the host only when something is sent

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        wanted = artifacts(args.get("components") or [])
        wrong = refusals(wanted)
        if wrong:  # before the host is asked anything
            return {**result, "failed": True, "changed": False,
                    "msg": "; ".join(wrong) + "; nothing was installed."}
        args["through_action"] = True
        answer = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        send = answer.get("send") or []
        if answer.get("failed") or not send:
            return {**result, **answer}
        unknown = [sha for sha in send if sha not in wanted]
        if unknown:
            return {**result, "failed": True, "changed": False,
                    "msg": f"the host asked for artifacts this task does not have: {', '.join(unknown)}"}
        try:
            # the module's own run may have made it already (without pipelining)
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            uploads = {}
            for sha in send:
                remote = self._connection._shell.join_path(tmpdir, f"{sha}-{os.path.basename(wanted[sha])}")
                self._transfer_file(wanted[sha], remote)
                uploads[sha] = remote
            self._fixup_perms2([tmpdir, *uploads.values()])
            answer = self._execute_module(module_name=MODULE, module_args={**args, "uploads": uploads},
                                          task_vars=task_vars)
            if answer.get("send") and not answer.get("failed"):  # never ok with nothing installed
                answer = {"failed": True, "changed": False,
                          "msg": f"the host still lacks {', '.join(answer['send'])} after they were sent "
                                 "(another run staging at the same time?); nothing was installed"}
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return {**result, **answer}
