#!/usr/bin/python3
"""A module that refuses the Ansible way, as cutover's own do: msg and hint."""

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(argument_spec={"msg": {"type": "str"}, "hint": {"type": "str"}})
    module.fail_json(msg=module.params["msg"], hint=module.params["hint"])


if __name__ == "__main__":
    main()
