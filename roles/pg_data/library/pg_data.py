#!/usr/bin/python
"""The pg_data role's module: freeze, snapshot, verify and restore the line databases (N5,
N18) on their own host, as the postgres user, with the standard library, Ansible's
module_utils and the PostgreSQL client tools only. The work is in the role's module_utils
(pg_data_freeze, pg_data_snapshot); this file is the module's interface."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_data
short_description: Freeze, snapshot, verify and restore PostgreSQL databases (N5, N18)
description:
  - Runs on the database host as the C(postgres) user (peer authentication, no password).
  - A refusal fails the task with C(msg) (what is wrong) and C(hint) (what to do about it).
  - In check mode C(verify) runs as always (it changes nothing); the other operations run
    their read-only checks, refuse as they would, and say in C(planned) what they would do.
options:
  operation:
    description: What to do to every database of I(databases).
    type: str
    required: true
    choices: [freeze, unfreeze, snapshot, verify, restore]
  databases:
    description: Database names on this host's cluster.
    type: list
    elements: str
    required: true
  port:
    description: The cluster's port (local socket).
    type: int
    default: 5432
  snapshot_dir:
    description: Snapshots live in C(<snapshot_dir>/<snapshot_id>/<database>/).
    type: str
    default: /var/backups/cutover
  snapshot_id:
    description: The snapshot's name.
    type: str
    default: snapshot
  snapshot_key:
    description: snapshot keeps a verified snapshot made with this same non-empty key; one made
      under another key is refused unless I(replace).
    type: str
    default: ""
  replace:
    description: snapshot replaces a snapshot made under another key.
    type: bool
    default: false
  lock_wait:
    description: Seconds a snapshot or restore waits for an earlier one still at work, then refuses.
    type: int
    default: 1800
  jobs:
    description: Parallel pg_dump / pg_restore jobs.
    type: int
    default: 2
  compress:
    description: The pg_dump C(-Z) value.
    type: str
    default: "1"
  reserve_mb:
    description: Free space (MiB) that must remain beyond the databases' size.
    type: int
    default: 512
  test_restore:
    description: verify also restores into a scratch database and compares row counts.
    type: bool
    default: false
  discard_writes:
    description:
      - restore goes ahead over databases that are live again or whose rows differ from the
        snapshot, discarding those writes (N18); without it, that restore is refused.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Freeze the line databases
  pg_data:
    operation: freeze
    databases: [si_qyyl, si_gs]
  become: true
  become_user: postgres
"""

RETURN = r"""
databases:
  description: Per database, what was done and proven (empty in check mode, except for verify).
  returned: always
  type: dict
dir:
  description: The snapshot's directory.
  returned: snapshot, verify, restore
  type: str
planned:
  description: Check mode, per database, what the operation would do.
  returned: check mode (not verify)
  type: dict
hint:
  description: With a refusal, what the operator can do about it.
  returned: failed
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pg_data_cluster import Options, Refusal
from ansible.module_utils.pg_data_freeze import freeze, unfreeze
from ansible.module_utils.pg_data_snapshot import restore, snapshot, verify

OPERATIONS = {"freeze": freeze, "unfreeze": unfreeze, "snapshot": snapshot, "verify": verify,
              "restore": restore}

ARGUMENT_SPEC = {
    "operation": {"type": "str", "required": True, "choices": list(OPERATIONS)},
    "databases": {"type": "list", "elements": "str", "required": True},
    "port": {"type": "int", "default": 5432},
    "snapshot_dir": {"type": "str", "default": "/var/backups/cutover"},
    "snapshot_id": {"type": "str", "default": "snapshot"},
    "snapshot_key": {"type": "str", "default": "", "no_log": False},  # a journal's id, not a secret
    "replace": {"type": "bool", "default": False},
    "lock_wait": {"type": "int", "default": 1800},
    "jobs": {"type": "int", "default": 2},
    "compress": {"type": "str", "default": "1"},
    "reserve_mb": {"type": "int", "default": 512},
    "test_restore": {"type": "bool", "default": False},
    "discard_writes": {"type": "bool", "default": False},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = {k: v for k, v in module.params.items() if k != "operation"}
    opts = Options(**params, check_mode=module.check_mode, warn=module.warn)
    if not opts.databases:
        module.fail_json(msg="no databases given", hint="pg_data_databases names the databases to act on")
    try:
        result = OPERATIONS[module.params["operation"]](opts)
    except Refusal as exc:
        module.fail_json(msg=exc.message, **({"hint": exc.hint} if exc.hint else {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
