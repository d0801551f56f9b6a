"""The one wrapper around ansible-runner (see runner.py)."""

from cutover.ansible.runner import HostFailure, PlaybookResult, run_playbook

__all__ = ["HostFailure", "PlaybookResult", "run_playbook"]
