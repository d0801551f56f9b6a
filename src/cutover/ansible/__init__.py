"""The one wrapper around ansible-runner (see runner.py)."""

from cutover.ansible.runner import (
                                    HostFailure,
                                    PlaybookResult,
                                    is_driver,
                                    processes_of,
                                    run_playbook,
                                    stop_processes,
)

__all__ = ["HostFailure", "PlaybookResult", "is_driver", "processes_of", "run_playbook", "stop_processes"]
