"""`invoke verify.versions`: every host against the release manifest, any time."""

from __future__ import annotations

import json as _json
import time
from pathlib import Path

from invoke import Context, Exit, task
from rich.markup import escape
from rich.table import Table

from cutover.ansible import run_playbook
from cutover.cli.common import refusals
from cutover.contract import PlaybookVars, check_evidence
from cutover.errors import CutoverError
from cutover.inventory import run_limit
from cutover.paths import resolve
from cutover.plan.loader import load_yaml
from cutover.plan.release_check import load_manifest
from cutover.sites import inventory_targets, site_limit
from cutover.ui import console

PLAYBOOK = "playbooks/deploy/verify-versions.yml"


def versions_vars(manifest: Path, require_running: bool) -> PlaybookVars:
    """What verify-versions.yml receives here (cutover.contract): no plan, a manifest."""
    return PlaybookVars(cutover_release_manifest=str(manifest), cutover_require_running=require_running)


def _limit(inventory: Path, limit: str | None) -> str | None:
    """--limit with its sites spelled as hosts, checked against the inventory (N17)."""
    if limit is None:
        return run_limit(inventory)
    return run_limit(inventory, site_limit(limit, inventory_targets(inventory), inventory=str(inventory)))


def check_versions(manifest: str, inventory: str, *, limit: str | None, require_running: bool,
                   artifacts: str) -> tuple[list[dict], list]:
    path = resolve(manifest)
    load_manifest(path)  # every problem as file:line, as plan.check says it, before any host is asked
    inventory_path = resolve(inventory)
    result = run_playbook(resolve(PLAYBOOK), inventory_path, ident=f"verify-{int(time.time())}",
                          artifacts_dir=resolve(artifacts) / "verify", limit=_limit(inventory_path, limit),
                          extravars=versions_vars(path, require_running).to_extravars())
    evidence, wrong = check_evidence(result.evidence, PLAYBOOK)
    if wrong:
        raise CutoverError("the version check's evidence is not what the contract says:\n  "
                           + "\n  ".join(wrong), f"log: {result.artifact_dir / 'stdout'}")
    rows = list(evidence.get("versions") or [])
    problems = [failure for failure in result.failures if "expected" not in failure.message]
    return rows, problems


@task(help={"manifest": "release manifest (default: the plan's)",
            "inventory": "inventory (default from invoke.yaml)",
            "limit": "only these hosts or groups",
            "json": "machine-readable output",
            "require_running": "an HTTP probe of a stopped service fails (default); "
            "--no-require-running reports it as not running (during the window)"})
@refusals
def versions(c: Context, manifest: str | None = None, inventory: str | None = None,
             limit: str | None = None, json: bool = False, require_running: bool = True) -> None:
    """Expected vs found version of every component on every host, by every probe."""
    cfg = c.config.cutover
    if manifest is None:
        plan = load_yaml(resolve(cfg.plan)).data
        manifest = (plan.get("plan") or {}).get("release_manifest") if isinstance(plan, dict) else None
        if not manifest:
            raise CutoverError("no --manifest given and the plan names no release_manifest")
    rows, problems = check_versions(manifest, inventory or cfg.inventory, limit=limit,
                                    require_running=require_running, artifacts=cfg.artifacts)
    bad = [row for row in rows if not row["ok"]]
    if json:
        print(_json.dumps({"manifest": manifest, "rows": rows,
                           "unreachable_or_failed": [problem.__dict__ for problem in problems],
                           "ok": not bad and not problems}, indent=2, ensure_ascii=False))
    else:
        table = Table(title=f"versions against {manifest}")
        for col in ("host", "component", "expected", "found", "probe", ""):
            table.add_column(col)
        for row in sorted(rows, key=lambda row: (row["host"], row["component"], row["probe"])):
            # what a host replied is shown as text, never as markup (it could fake an "ok")
            columns = ("host", "component", "expected", "found", "probe")
            table.add_row(*(escape(str(row[column])) for column in columns),
                          "[green]ok[/]" if row["ok"] else "[red]MISMATCH[/]")
        console.print(table)
        for problem in problems:
            console.print(f"[red]{escape(problem.host)}[/]: {escape(problem.task)}: "
                          f"{escape(problem.message)}")
    if bad or problems:
        names = sorted({f"{row['host']}/{row['component']}" for row in bad}
                       | {problem.host for problem in problems})
        raise Exit(f"version check failed: {', '.join(names)}", code=1)
    if not json:
        console.print(f"{len(rows)} probe(s) on {len({row['host'] for row in rows})} host(s): all match")
