"""`invoke lab.*`: the container lab that reproduces the social-insurance system."""

from __future__ import annotations

import datetime as dt
import json
import time

from invoke import Context, Exit, task
from rich.table import Table

from cutover.cli.common import refusals
from cutover.engine.executor import Executor
from cutover.engine.journal_db import is_url, journal_location, shown
from cutover.engine.session import RunOptions
from cutover.errors import CutoverError
from cutover.lab import lab as labmod
from cutover.paths import resolve
from cutover.plan.lint import check as lint_check
from cutover.plan.model import VERBS
from cutover.report import render
from cutover.ui import PlaybookProgress, console


@task(
    help={
        "cities": "counter hosts to start, one per city (1-11; default from invoke.yaml)",
        "counties": "county counters to start in each of those cities (0-9; default from invoke.yaml: 0)",
        "scale": "insured persons per insurance line in the synthetic data",
        "seed": "seed of the synthetic data (same seed, same rows)",
        "fault": "plant a gate failure in the data: missing-plan, unpaid-batch, "
        "pending-approval, in-transit (repeatable)",
        "reset": "provision again even when nothing changed: databases unfrozen, snapshots removed, "
        "data re-seeded, the old release running (the drop's inbox and the tax database are kept)",
    },
    iterable=["fault"],
)
@refusals
def up(c: Context, cities: int | None = None, scale: int | None = None, seed: int | None = None,
       fault: list[str] | None = None, reset: bool = False, counties: int | None = None) -> None:
    """Build the lab image if needed, start the lab and provision it; show its status."""
    summary = labmod.up(
        cities=int(cities if cities is not None else c.config.lab.cities),
        counties=int(counties if counties is not None else c.config.lab.counties),
        scale=int(scale if scale is not None else c.config.lab.scale),
        seed=int(seed if seed is not None else c.config.lab.seed),
        faults=list(fault or []),
        say=console.print,
        progress_factory=PlaybookProgress,
        reset=reset,
    )
    made = f"{len(summary['created'])} container(s) started" if summary["created"] else "containers unchanged"
    prov = "provisioned" if summary["provisioned"] else "provisioning unchanged"
    console.print(f"lab up in {summary['seconds']} s: {made}, {prov}")
    console.print(f"shared journal (ops host): --journal '{labmod.journal_url()}'")
    _show(labmod.status(), as_json=False)


@task
@refusals
def down(c: Context) -> None:
    """Remove the lab's containers and state (its images stay cached for the next lab.up)."""
    labmod.down(say=console.print)


@task(help={"json": "machine-readable output, including every HTTP endpoint",
            "host": "only this lab host (repeatable)"}, iterable=["host"])
@refusals
def status(c: Context, json: bool = False, host: list[str] | None = None) -> None:
    """Every lab host and service: state, health and version. Exit 1 if anything is unhealthy."""
    _show(labmod.status(hosts=list(host or [])), as_json=json)


def _show(lab_status: dict, *, as_json: bool) -> None:
    hosts = lab_status["hosts"]
    if as_json:
        print(json.dumps(lab_status, indent=2, ensure_ascii=False))
    else:
        table = Table(title="cutover lab", show_lines=False)
        for col in ("host", "groups", "service", "state", "health", "version", "endpoint"):
            table.add_column(col)
        for host in hosts:
            first = True
            for service in host["services"]:
                health = "[green]ok[/]" if service["healthy"] else "[red]FAIL[/]"
                if service["kind"] in ("timer", "cron") and not service["enabled"]:
                    health += " (off on purpose)"
                state = service.get("state", "") if host["running"] else "no container"
                table.add_row(host["host"] if first else "", ",".join(host["groups"]) if first else "",
                              service["name"], state,
                              health, service.get("version") or "", service.get("url") or
                              (f"127.0.0.1:{service['port']}" if service.get("port") else ""))
                first = False
        console.print(table)
    if not hosts or not lab_status["healthy"]:
        bad = [host["host"] for host in hosts if not host["healthy"]]
        raise Exit(f"lab unhealthy: {', '.join(bad) or 'no hosts'}" if bad or not hosts
                   else "lab unhealthy", code=1)


@task(
    help={
        "cities": "counter hosts to start, one per city (default from invoke.yaml)",
        "counties": "county counters to start in each of those cities (default from invoke.yaml: 0)",
        "scale": "insured persons per insurance line",
        "fresh": "start from a new lab (default); --no-fresh reuses the running one, provisioned "
        "again to before the window",
        "journal": "the rehearsal's journal: by default a new file beside its report; or the lab's shared "
        "journal on its ops host (its postgresql:// URL: `invoke lab.status --json`, journal_url), which "
        "the rehearsal empties first. A rehearsal never writes into any other journal",
    },
)
@refusals
def rehearse(c: Context, cities: int | None = None, scale: int | None = None, fresh: bool = True,
             counties: int | None = None, journal: str | None = None) -> None:
    """The README's main job: lab up, the whole shipped plan on the rehearsal clock, the report."""
    started = time.monotonic()
    given = None
    if journal is not None:  # "" or "null" (a failed `jq`) is refused too, never read as "the default"
        given = journal_location(journal)
        if not (is_url(given) and labmod.is_lab_journal(str(given))):
            raise CutoverError(f"lab.rehearse --journal {shown(given)!r} is not the lab's shared journal; "
                               "nothing was run",
                               "a rehearsal writes into its own new file (leave --journal out) or into the "
                               "lab's journal on ops1 (journal_url of `invoke lab.status --json`), never "
                               "into a team's real journal")
    if fresh:
        labmod.down(say=console.print)
    labmod.up(cities=int(cities if cities is not None else c.config.lab.cities),
              counties=int(counties if counties is not None else c.config.lab.counties),
              scale=int(scale if scale is not None else c.config.lab.scale),
              seed=int(c.config.lab.seed), faults=[], say=console.print,
              progress_factory=PlaybookProgress, reset=True)  # an earlier window's state is undone
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = resolve(c.config.cutover.artifacts) / "rehearsals" / stamp
    journal = given if given is not None else out / "journal.sqlite"
    plan = c.config.cutover.plan
    for verb in VERBS:
        console.rule(f"cutover.{verb} (rehearsal)")
        opts = RunOptions(plan=plan, journal=str(journal), artifacts=str(out), rehearsal=True,
                          auto_confirm=True, say=console.print, progress_factory=PlaybookProgress)
        Executor(verb, opts).run()
    the_plan, _ = lint_check(plan)
    paths = render.build(the_plan, journal, out)
    latest = out.parent / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(out.name)
    console.rule("rehearsal complete")
    console.print(f"every step of {the_plan.plan.name} done in {time.monotonic() - started:.0f} s")
    console.print(f"journal: {shown(journal)}")
    for kind, path in paths.items():
        console.print(f"report ({kind}): {path}")

