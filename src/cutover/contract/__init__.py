"""The one contract between the engine and the playbooks (issue #13).

Both directions live here, so a playbook and the Python that runs it cannot drift apart:

* **What a playbook receives.** `PlaybookVars`: the variables the engine passes, built by
  every caller that runs a plan's playbooks (the executor for a step and for the way back,
  `invoke data.*`, `invoke verify.versions`) and turned into extra vars by its one
  `to_extravars()`. The plan's own `vars` and a step's `vars` are the plan author's and
  merge in under the engine's. `PLAN_VARS` names the `cutover_*` variables a playbook reads
  that the plan (or an operator's `-e`) supplies instead. Every entry playbook checks what
  it needs in its first play, `INPUT_PLAY`, tagged `always`.
* **What a playbook hands back.** Every key a playbook publishes with
  `ansible.builtin.set_stats` has one model in `EVIDENCE`; `check_evidence` holds a
  playbook's stats to them before anything stores or reads them. A key the contract does
  not know, or a value of the wrong shape, is refused, naming the key and the playbook.
"""

from cutover.contract.evidence import EVIDENCE, check_evidence
from cutover.contract.inputs import (
    ENGINE_VARS,
    INPUT_PLAY,
    OPERATOR_ONLY_VARS,
    PLAN_ROLE_OPTIONS,
    PLAN_VARS,
    RELEASE_PLAYBOOKS,
    PlaybookVars,
    work_stats,
)

__all__ = ["ENGINE_VARS", "EVIDENCE", "INPUT_PLAY", "OPERATOR_ONLY_VARS", "PLAN_ROLE_OPTIONS", "PLAN_VARS",
           "RELEASE_PLAYBOOKS", "PlaybookVars", "check_evidence", "work_stats"]
