"""The controller's half of notice_components: the role's inputs checked, then one module call.

#17: the check was an assert of its own, one more task per host on the controller in every
step that puts a notice up or takes it down. The same check now runs here, before the host is
asked anything, with the role's words; `check` holds what only this check reads (the scope,
its functions and the nginx paths) and never reaches the module. The role's task skips a host
with no component, no nginx channel and no stand-in (nothing to check its inputs against);
called on one anyway, the action checks the inputs and does not call the module.
"""

from __future__ import annotations

import re
from typing import Any

from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.notice_components"
NGINX_PATH = re.compile(r"/.*/")
UNIT_NAME = re.compile(r"[A-Za-z0-9_-]+")


def notice_refused(state: str, scope: str, functions: Any, nginx_paths: Any, standins: Any,
                   components: Any) -> str:
    """Why this notice cannot be put up or taken down, empty when it can. A list given as
    anything else (one path as a string: a route built a character at a time) is refused."""
    lists = {"channel_notice_nginx_paths": nginx_paths, "channel_notice_standins": standins,
             "channel_notice_components": components, "channel_notice_functions": functions or []}
    given = [name for name, value in lists.items() if not isinstance(value, list)]
    if given:
        return f"channel_notice: {', '.join(given)} must be a list (one item is [item], not item)"
    names = [s.get("name") if isinstance(s, dict) else s for s in standins]
    paths = nginx_paths
    stray = [repr(n) for n in names if n not in components]  # shown, never obeyed
    fine = (
        (state != "present" or scope == "all" or bool(functions))
        and (state != "present" or all(isinstance(p, str) and NGINX_PATH.fullmatch(p) for p in paths))
        and not stray
        and all(isinstance(n, str) and UNIT_NAME.fullmatch(n) for n in names))
    if fine:
        return ""
    return ("channel_notice: scope 'functions' needs functions; nginx paths look like /online/; a "
            "stand-in answers for a component whose maintenance file this role writes: list "
            f"{', '.join(stray) or 'each stand-in'} in channel_notice_components too; names are plain "
            "unit names (letters, digits, - and _) without .service")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        check = args.pop("check", None) or {}
        refused = notice_refused(str(args.get("state", "present")), str(check.get("scope", "all")),
                                 check.get("functions"), check.get("nginx_paths"), args.get("standins", []),
                                 args.get("components", []))
        if refused:  # before the host is asked anything
            return {**result, "failed": True, "changed": False, "msg": refused}
        if not args.get("components") and not args.get("nginx"):  # checked, and nothing on this host to do
            return {**result, "changed": False, "msg": "no component and no nginx channel: nothing to do"}
        try:
            answer = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return {**result, **answer}
