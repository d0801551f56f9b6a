"""The one wrapper around ansible-runner.

Every playbook the project runs (lab provisioning, plan steps, data steps, verification)
goes through `run_playbook`: one ident per run, artifacts kept under the caller's
directory, events turned into a small `Progress` record for the live display and the
journal, and a `PlaybookResult` that says what failed where, in words.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from cutover.errors import CutoverError
from cutover.paths import ANSIBLE_CFG, ROOT

ATTEMPT_ENV = "CUTOVER_ATTEMPT"
HOST_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


# What ssh must be told so that it never asks (issue #15): an unknown or changed host key
# fails the host at once instead of waiting for "yes" in ansible-runner's pty.
NO_PROMPT_SSH_OPTIONS = ("StrictHostKeyChecking=yes", "BatchMode=yes")


def ssh_args(config: Path = ANSIBLE_CFG) -> str:
    """ansible.cfg's ssh_args, which say NO_PROMPT_SSH_OPTIONS; refused if they do not. The runner
    passes them itself, so no ANSIBLE_SSH_ARGS of the operator's shell replaces them."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    args = parser.get("ssh_connection", "ssh_args", fallback="")
    missing = [option for option in NO_PROMPT_SSH_OPTIONS if f"-o {option}" not in args]
    if missing:
        said = ", ".join(f"-o {option}" for option in missing)
        raise CutoverError(f"{config}: ssh_args does not say {said}: an unknown host key would wait for an "
                           "answer", "add them to [ssh_connection] ssh_args")
    return args


@dataclass
class Progress:
    """One host-level result, as the live display and the journal see it."""

    host: str
    task: str
    status: str  # ok, changed, failed, unreachable, skipped
    play: str = ""
    message: str = ""
    hint: str = ""


@dataclass
class HostFailure:
    host: str
    task: str
    message: str
    hint: str = ""  # what to do about it, when the task said (a module's `hint` field)


@dataclass
class PlaybookResult:
    ident: str
    status: str  # successful, failed, timeout, canceled
    rc: int
    artifact_dir: Path
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[HostFailure] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)  # set_stats data (gates)
    hosts_by_play: dict[str, list[str]] = field(default_factory=dict)  # hosts with a result, per play
    # hosts that, in some play, have no result for the last task any host had one for:
    # stopped early (by another host's failure under any_errors_fatal or run_once, by
    # end_host), not finished, though no failure of their own is counted
    unfinished: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    def summary(self) -> str:
        if self.ok and not self.failures:
            return f"{self.ident}: ok"
        lines = [f"{self.ident}: {self.status} (rc={self.rc})"]
        # the same failure on many hosts (an input check, a missing variable) is said once,
        # naming the hosts, not once per host
        hosts_of: dict[tuple[str, str, str], list[str]] = {}
        for f in self.failures:
            hosts_of.setdefault((f.task, f.message, f.hint), []).append(f.host)
        for (task, message, hint), hosts in hosts_of.items():
            named = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more hosts" if len(hosts) > 3 else "")
            lines.append(f"  {named}: {task}: {message}")
            if hint:
                lines.append(f"    hint: {hint}")
        return "\n".join(lines)


def _message(res: dict[str, Any]) -> tuple[str, str]:
    """(what failed, what to do about it) from a failed task's result, as Ansible's protocol
    has it: a module's `msg` and, from cutover's own (pg_data's module, data_step), `hint`.
    A command that failed adds the last lines it wrote on stderr, whatever they say."""
    items = [r for r in res.get("results") or []
             if isinstance(r, dict) and (r.get("failed") or r.get("unreachable"))]
    if items:  # a loop: which items failed (or found the host unreachable) and why, not "All items completed"
        found = [(_label(r), *_message(r)) for r in items]
        parts = [f"{label}: {message}" for label, message, _ in found[:5]]
        more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
        hints = list(dict.fromkeys(hint for _, _, hint in found if hint))
        return "; ".join(parts) + more, "; ".join(hints)
    hint = str(res.get("hint") or "").strip()[:1000]
    msg = str(res.get("msg") or "").strip()
    if msg and res.get("rc") not in (None, 0) and res.get("stderr"):
        # a command (the module's msg is only "non-zero return code"): the program's own words
        tail = "\n    ".join(str(res["stderr"]).strip().splitlines()[-6:])
        return f"{msg[:200]}:\n    {tail[:1500]}", hint
    if msg:
        return msg[:2000], hint
    for key in ("stderr", "module_stderr", "reason"):
        val = res.get(key)
        if val:
            return str(val).strip().splitlines()[-1][:500], hint
    return "failed", hint


def _unreachable_hint(message: str, host: str, inventory: str | Path) -> str:
    """When ssh ended before Ansible could hand it the task, Ansible reports only a broken pipe
    (a race inside it: which error wins depends on the machine's load) and ssh's own reason is
    lost. Say what it may be, and the command that shows ssh's words with this run's own ssh
    settings (its known_hosts, port and key), not the operator's defaults."""
    if "Data could not be sent" not in message or "Host key verification failed" in message:
        return ""
    return (f"ssh ended before it took the task, and Ansible kept only the broken pipe: {host}'s host key "
            "may be unknown or changed (Host key verification failed), the login refused, or the "
            f"connection lost; `ANSIBLE_CONFIG={ANSIBLE_CFG} ansible -i {inventory} {host} "
            "-m ansible.builtin.ping -vvv` shows ssh's own reason")


def _label(item_result: dict[str, Any]) -> str:
    label = item_result.get("_ansible_item_label", item_result.get("item", "?"))
    return str(label)[:120]


@dataclass
class _Plays:
    """What the playbook as a whole reports: its set_stats data, and which host reached the
    end of each play (the last task, not a handler, that any host had a result for)."""

    evidence: dict[str, Any] = field(default_factory=dict)
    handlers: set[str] = field(default_factory=set)
    last: dict[str, str] = field(default_factory=dict)  # play → its last task with a host result
    reached: dict[tuple[str, str], str] = field(default_factory=dict)  # (play, host) → its last task

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "playbook_on_stats":
            self.evidence.update(data.get("artifact_data") or {})
        elif kind == "playbook_on_handler_task_start":
            self.handlers.add(str(data.get("task_uuid", "")))
        elif kind in HOST_EVENTS and data.get("task_uuid") not in self.handlers:
            play, task = str(data.get("play", "")), str(data.get("task_uuid", ""))
            self.last[play] = self.reached[(play, str(data.get("host", "")))] = task

    def unfinished(self) -> set[str]:
        return {host for (play, host), task in self.reached.items() if task != self.last[play]}


def run_playbook(
    playbook: str | Path,
    inventory: str | Path,
    *,
    ident: str,
    artifacts_dir: str | Path,
    limit: str | None = None,
    tags: Iterable[str] | None = None,
    extravars: dict[str, Any] | None = None,
    check: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    forks: int | None = None,
    mark: str | None = None,
    halt_on_failure: bool = True,
) -> PlaybookResult:
    """Run one playbook to completion and say what happened. `mark` (default: the ident)
    is what `processes_of` finds this run's processes by; the engine makes it unique per
    journal, since two journals' attempts can have the same ident."""
    playbook = Path(playbook)
    if not playbook.is_absolute():
        playbook = ROOT / playbook
    if not playbook.is_file():
        raise CutoverError(f"playbook {playbook} does not exist", "check the path in the plan")
    artifacts_dir = Path(artifacts_dir).resolve()
    private = artifacts_dir / "runner"
    private.mkdir(parents=True, exist_ok=True)
    # ansible-runner keeps env/extravars and env/envvars of an earlier run in the same private
    # data dir and adds this run's on top: one step's variables would leak into the next.
    for name in ("extravars", "envvars"):
        (private / "env" / name).unlink(missing_ok=True)

    failures: list[HostFailure] = []
    hosts_by_play: dict[str, list[str]] = {}
    plays = _Plays()

    def handler(event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        plays.event(kind, data)
        status = HOST_EVENTS.get(kind)
        if status is None:
            return True
        res = data.get("res") or {}
        if status == "ok" and res.get("changed"):
            status = "changed"
        if status == "failed" and data.get("ignore_errors"):
            status = "ok"
        task = data.get("task", "")
        host = data.get("host", "")
        seen = hosts_by_play.setdefault(data.get("play", ""), [])
        if host not in seen:
            seen.append(host)
        msg = hint = ""
        if status in ("failed", "unreachable"):
            msg, hint = _message(res) if not data.get("no_log") else ("(output hidden: no_log)", "")
            hint = hint or (_unreachable_hint(msg, host, inventory) if status == "unreachable" else "")
            failures.append(HostFailure(host, task, msg, hint))
        if on_progress is not None:
            on_progress(Progress(host, task, status, data.get("play", ""), msg, hint))
        return True

    cmdline = ["--check", "--diff"] if check else []
    if forks:
        cmdline += ["--forks", str(forks)]
    envvars = {
        "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        # a play that does not say otherwise stops every host when one fails (ansible.cfg
        # says so too, for a playbook run alone); a phase with on_site_failure: continue
        # lets the other hosts go on (N17), said here so no outside setting decides it
        "ANSIBLE_ANY_ERRORS_FATAL": str(halt_on_failure),
        # ssh fails at once on an unknown host key, never asks (ansible.cfg; issue #15)
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": ssh_args(),
    }
    # Every process this attempt starts on this machine (ansible-playbook, its workers, the
    # helpers they run) carries the attempt's mark, so a resumed step can tell whether the
    # work of an attempt whose executor was killed is still running (`processes_of`).
    envvars[ATTEMPT_ENV] = mark or ident
    # ansible-playbook comes from the same environment as this Python (the project's venv).
    envvars["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(ROOT),
        playbook=str(playbook),
        inventory=str(Path(inventory).resolve()),
        ident=ident,
        limit=limit,
        tags=",".join(tags) if tags else None,
        extravars=extravars or {},
        cmdline=" ".join(cmdline) or None,
        envvars=envvars,
        quiet=True,
        event_handler=handler,
        rotate_artifacts=0,
    )
    stats = runner.stats or {}
    per_host: dict[str, dict[str, int]] = {}
    for key in ("ok", "changed", "failures", "dark", "skipped"):
        for host, n in (stats.get(key) or {}).items():
            per_host.setdefault(host, {})[key] = n
    result = PlaybookResult(
        ident=ident,
        status=runner.status,
        rc=runner.rc if runner.rc is not None else 1,
        artifact_dir=private / "artifacts" / ident,
        stats=per_host,
        failures=failures,
        evidence=plays.evidence,
        hosts_by_play=hosts_by_play,
        unfinished=plays.unfinished(),
    )
    if not result.ok and not failures:
        # Failed before any host ran (syntax error, missing role, bad inventory):
        # the reason is in the run's stdout; keep its last lines.
        tail = _tail(result.artifact_dir / "stdout")
        result.failures.append(HostFailure("-", "playbook", tail or "ansible-playbook failed"))
    return result


def processes_of(mark: str) -> list[int]:
    """Processes on this machine still at work for the run marked `mark` (from their environment)."""
    marker = f"{ATTEMPT_ENV}={mark}".encode() + b"\0"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            # an SSH ControlPersist master ("ssh: <path> [mux]") inherits the mark but does no
            # work of the attempt; it lingers for ControlPersist seconds and is shared
            if marker in (proc / "environ").read_bytes() and \
                    not (proc / "cmdline").read_bytes().startswith(b"ssh: "):
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return sorted(found)


def is_driver(pid: int) -> bool:
    """An ansible-playbook process (the main one or a worker), as opposed to the work it started."""
    try:
        return b"ansible-playbook" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


def stop_processes(pids: list[int], grace: float = 10.0) -> None:
    """SIGKILL: an orphaned ansible-playbook gets no chance to take the work it started (an
    upload, a command on a host) down with it; that work is waited for on its own."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:  # a zombie (nobody has reaped it yet) is gone for our purpose
        return (Path("/proc") / str(pid) / "stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
