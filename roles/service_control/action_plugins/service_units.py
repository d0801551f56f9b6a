"""The controller's half of service_units: one module call per service, in order (#17).

The role was a looped task and a task that failed naming the service the loop broke at: two
tasks per host on the controller, the second skipped on every host that was fine. Now one task
asks the module once per service, in the given order, and stops at the first that does not
get there, failing with the module's own message (its unit's status and the tail of its
journal). A call acts on its own service only: a controller killed mid-way leaves at most that
service's wait running on the host, never a next service started or stopped behind the back of
whatever runs next. The services after the one that failed are not touched.
"""

from __future__ import annotations

import contextlib

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.service_units"


def _shown(text: object) -> str:
    """A name the host gave back, as shown: what is not printable as ?, shown, never obeyed."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))[:200]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        services = args.get("services")
        if not isinstance(services, list):  # before the host is asked anything
            return {**result, "failed": True, "changed": False,
                    "msg": f"service_units: services is a list of {{name, probe}}, "
                           f"not {type(services).__name__}"}
        changes: list = []
        done: list = []
        warnings: list = []
        try:
            for service in services:
                name = service.get("name") if isinstance(service, dict) else service
                try:
                    answer = self._execute_module(module_name=MODULE, task_vars=task_vars,
                                                  module_args={**args, "services": [service]})
                except AnsibleConnectionFailure as exc:  # the host went away: at which service, after what
                    before = ", ".join(map(_shown, done)) or "none"
                    return {**result, "unreachable": True, "changed": bool(changes), "changes": changes,
                            "done": done, "msg": f"{_shown(name)}: the host could not be reached: {exc}"
                                                 f" (done before it: {before})"}
                for kept, key in ((changes, "changes"), (done, "done"), (warnings, "warnings")):
                    given = answer.get(key)
                    kept.extend(given if isinstance(given, list) else [])  # a string would add each letter
                if answer.get("failed") or not answer.get("ok"):
                    return {**result, **answer, "failed": True, "changed": bool(changes), "changes": changes,
                            "done": done, "msg": answer.get("msg") or f"{name}: the module gave no answer"}
        finally:  # a host gone away keeps its temporary directory; the message above says where it was
            with contextlib.suppress(AnsibleConnectionFailure):
                self._remove_tmp_path(self._connection._shell.tmpdir)
        return {**result, "changed": bool(changes), "changes": changes, "done": done, "ok": True,
                **({"warnings": warnings} if warnings else {})}
