"""The one wrapper around ansible-runner (see runner.py)."""

from cutover.ansible.runner import HostFailure, PlaybookResult, processes_of, run_playbook

__all__ = ["HostFailure", "PlaybookResult", "processes_of", "run_playbook"]
