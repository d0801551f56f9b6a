"""What the operator sees while something long runs: one place for progress output.

On a terminal, a live panel shows the step, the current task and per-host results
(ok / changed / failed). Without a terminal (CI, a log file) it prints one line per task
when the task is done, so the log still tells the story in order.
"""

from __future__ import annotations

import sys
from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from cutover.ansible.runner import Progress

# Without a terminal (CI logs), do not squeeze tables into 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


class PlaybookProgress:
    """Feed `update` from `run_playbook(on_progress=...)`; use as a context manager."""

    def __init__(self, step: str, *, live: bool | None = None) -> None:
        self.step = step
        self.live_enabled = console.is_terminal if live is None else live
        self.task = ""
        self.tally: Counter[str] = Counter()
        self.task_tally: Counter[str] = Counter()
        self.hosts: dict[str, str] = {}
        self.failures: list[Progress] = []
        self._live: Live | None = None

    def __enter__(self) -> PlaybookProgress:
        if self.live_enabled:
            self._live = Live(self._render(), console=console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        else:
            console.print(f"[bold]▶ {self.step}[/]")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._flush_task()
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
        tally = self.tally
        console.print(
            f"  {self.step}: ok={tally['ok']} changed={tally['changed']} failed={tally['failed']}"
            f" unreachable={tally['unreachable']} skipped={tally['skipped']}"
        )

    def update(self, event: Progress) -> None:
        if event.task != self.task:
            self._flush_task()
            self.task = event.task
        self.tally[event.status] += 1
        self.task_tally[event.status] += 1
        self.hosts[event.host] = event.status
        if event.status in ("failed", "unreachable"):
            self.failures.append(event)
            # a message is text, never markup: `si_export.tables[person]` must print as written
            console.print(f"  [red]✗ {escape(event.host)}[/]: {escape(event.task)}: {escape(event.message)}")
            if event.hint:
                console.print(f"    hint: {escape(event.hint)}")
        if self._live is not None:
            self._live.update(self._render())

    def _flush_task(self) -> None:
        if not self.task or self._live is not None:
            self.task_tally.clear()
            return
        tally = self.task_tally
        statuses = ("ok", "changed", "failed", "unreachable", "skipped")
        parts = [f"{status}={tally[status]}" for status in statuses if tally[status]]
        console.print(f"  · {self.task} [dim]({' '.join(parts)})[/]")
        self.task_tally.clear()

    def _render(self) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_row("[bold]step[/]", self.step)
        table.add_row("[bold]task[/]", self.task or "…")
        tally = self.tally
        table.add_row(
            "[bold]hosts[/]",
            f"[green]ok {tally['ok']}[/] [yellow]changed {tally['changed']}[/] "
            f"[red]failed {tally['failed'] + tally['unreachable']}[/] skipped {tally['skipped']}",
        )
        return table
