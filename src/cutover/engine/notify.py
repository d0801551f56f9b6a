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
# a value from outside (a step's title, a reason, a host's answer) stays on its line: a newline
# in it must not forge a line of the message (an "operator:" of its own)
_env.filters["oneline"] = lambda value: " ".join(str(value).split())


def render(event: str, **context: Any) -> tuple[str, str]:
    title = _env.get_template("notify/title.txt.j2").render(event=event, **context).strip()
    body = _env.get_template("notify/body.txt.j2").render(event=event, **context).strip()
    return title, body


def send(urls: list[str], event: str, journal=None, **context: Any) -> bool:
    """Delivered only when there was a target and every target took it: a message sent to
    nobody, or to a URL apprise cannot use, is recorded as not delivered."""
    title, body = render(event, **context)
    ok = deliver(urls, title, body)
    if journal is not None:
        journal.record_notification(event, title, body, len(urls), ok)
    return ok


def deliver(urls: list[str], title: str, body: str) -> bool:
    """True only when there was a target and every target took the message."""
    if not urls:
        return False
    targets = apprise.Apprise()
    usable = [targets.add(url) for url in urls]
    # plain text: an e-mail target would otherwise read outside text as HTML
    return all(usable) and bool(targets.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT))


def notify_urls(plan: Plan, inventory: Path) -> list[str]:
    """The plan's notification URLs and the inventory's `cutover_notify_urls` (N16)."""
    urls = list(plan.plan.notify)
    return urls + [url for url in inventory_urls(inventory, "cutover_notify_urls") if url not in urls]


def inventory_urls(inventory: Path, var: str) -> list[str]:
    """The apprise URLs an inventory variable holds, resolved as Ansible resolves them
    (templates, vault), once per distinct value in the inventory."""
    urls: list[str] = []
    seen: list[Any] = []
    for host, variables in sorted(hostvars(inventory).items()):
        raw = variables.get(var)
        if not raw or raw in seen:
            continue
        seen.append(raw)
        value = resolved_var(inventory, host, var)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(url, str) for url in value):
            raise CutoverError(f"{var} of {host} in {inventory} is not a list of URLs",
                               "write it as a YAML list of apprise URLs")
        urls += [url for url in value if url not in urls]
    return urls
