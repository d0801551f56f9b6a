"""Notifications (N16): phase start and end, failures, overrides, through apprise.

Every message is rendered from a Jinja2 template and recorded in the journal with whether
it was delivered. A delivery failure is reported but never stops the cutover."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apprise
import jinja2

from cutover.errors import CutoverError
from cutover.inventory import hostvars, resolved_var
from cutover.paths import ROOT
from cutover.plan.model import Plan

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "templates")),
                          autoescape=False, trim_blocks=True, lstrip_blocks=True,  # noqa: S701 - plain text
                          undefined=jinja2.StrictUndefined)


def render(event: str, **context: Any) -> tuple[str, str]:
    title = _env.get_template("notify/title.txt.j2").render(event=event, **context).strip()
    body = _env.get_template("notify/body.txt.j2").render(event=event, **context).strip()
    return title, body


def send(urls: list[str], event: str, journal=None, **context: Any) -> bool:
    """Delivered only when there was a target and every target took it: a message sent to
    nobody, or to a URL apprise cannot use, is recorded as not delivered."""
    title, body = render(event, **context)
    ok = False
    if urls:
        targets = apprise.Apprise()
        usable = [targets.add(url) for url in urls]
        # plain text: an e-mail target would otherwise read outside text as HTML
        ok = all(usable) and bool(targets.notify(title=title, body=body,
                                                 body_format=apprise.NotifyFormat.TEXT))
    if journal is not None:
        journal.record_notification(event, title, body, len(urls), ok)
    return ok


def notify_urls(plan: Plan, inventory: Path) -> list[str]:
    """The plan's notification URLs and the inventory's `cutover_notify_urls` (N16), resolved
    as Ansible resolves them (templates, vault), once per distinct value in the inventory."""
    urls = list(plan.plan.notify)
    seen: list[Any] = []
    for host, variables in sorted(hostvars(inventory).items()):
        raw = variables.get("cutover_notify_urls")
        if not raw or raw in seen:
            continue
        seen.append(raw)
        value = resolved_var(inventory, host, "cutover_notify_urls")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(url, str) for url in value):
            raise CutoverError(f"cutover_notify_urls of {host} in {inventory} is not a list of URLs",
                               "write it as a YAML list of apprise URLs")
        urls += [url for url in value if url not in urls]
    return urls
