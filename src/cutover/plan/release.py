"""The release manifest (`releases/*.yml`): what every updated program must be after the
deploy (N8), the release it replaces (the way back) and how to ask a host which version it
runs.

The deploy's playbooks read the manifest once per play, as data (a file lookup, never
templated), and filter_plugins/probes.py turns it into the roles' inputs; this model is what they
may rely on. cutover.plan.release_check loads it with the line of every value and reports
what breaks it as `file:line: message`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cutover.plan.problems import close_match

# A component is a systemd unit, /opt/<name>/ and part of a command probe: a plain name.
# filter_plugins/probes.py holds the same rule (it runs where this package may not).
COMPONENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
# A version names /opt/<name>/releases/<version> and is what a probe must find: no `/`.
VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+~:-]*$"
SHA256 = r"^[0-9a-f]{64}$"  # as `sha256sum` and Ansible's stat print it, which the deploy compares
GROUP = r"^[A-Za-z_][A-Za-z0-9_]*$"  # a valid Ansible group name
RELEASE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
PROBE_KINDS = ("file", "http", "command", "package")  # what roles/version_verify runs
PLACEHOLDERS = ("name", "port")  # filled in per host by version_probes
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

Loc = tuple[Any, ...]
Finding = tuple[Loc, str, str, str]  # where, message, hint, severity


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    what: ClassVar[str] = "this mapping"  # how a message names it


class Artifact(_Strict):
    what: ClassVar[str] = "an artifact"
    version: str = Field(pattern=VERSION, description="the version it installs, which every probe must find")
    previous: str = Field(pattern=VERSION, description="the release it replaces, which cutover.rollback "
                          "switches back to and verifies")
    path: str = Field(min_length=1, description="the tarball, absolute or relative to the project root")
    sha256: str = Field(pattern=SHA256, description="the tarball's sha256, checked before any host is "
                        "touched")


class Component(_Strict):
    what: ClassVar[str] = "a component"
    name: str = Field(pattern=COMPONENT_NAME, description="the component: its systemd unit and /opt/<name>/")
    artifact: str = Field(min_length=1, description="the key under `artifacts:` of what it runs")
    group: str = Field(pattern=GROUP, description="the inventory group whose hosts run it")
    probes: list[str] = Field(min_length=1, description="the probes that ask it for its version, "
                              "e.g. [file, http]; every one listed runs")


class FileProbe(_Strict):
    what: ClassVar[str] = "the file probe"
    file: str = Field(min_length=1, description="the absolute path of the VERSION file on the host")


class HttpProbe(_Strict):
    what: ClassVar[str] = "the http probe"
    http: str = Field(min_length=1, description="the URL that answers the version, as JSON")
    json_key: str = Field("version", min_length=1, description="the key of the version in the answer")


class CommandProbe(_Strict):
    what: ClassVar[str] = "the command probe"
    command: str = Field(min_length=1, description="a command (no shell) that prints the version")


class PackageProbe(_Strict):
    what: ClassVar[str] = "the package probe"
    package: str = Field(min_length=1, description="the Debian or RPM package whose version is the "
                         "component's")


class Probes(_Strict):
    what: ClassVar[str] = "probes"
    file: FileProbe | None = None
    http: HttpProbe | None = None
    command: CommandProbe | None = None
    package: PackageProbe | None = None


class ReleaseManifest(_Strict):
    what: ClassVar[str] = "the release manifest"
    release: str = Field(pattern=RELEASE, description="the release's name, e.g. shanxi-2023-11")
    artifacts: dict[str, Artifact] = Field(min_length=1, description="every artifact the release installs")
    components: list[Component] = Field(min_length=1, description="every component the release updates")
    probes: Probes = Field(description="how to ask a host which version a component runs: "
                           + ", ".join(PROBE_KINDS))

    def defined_probes(self) -> dict[str, BaseModel]:
        return {kind: probe for kind in PROBE_KINDS if (probe := getattr(self.probes, kind)) is not None}


def findings(manifest: ReleaseManifest, groups: set[str] | None = None) -> Iterator[Finding]:
    """What the model alone cannot say: every reference resolves, every probe is usable, and
    (given the inventory's groups) every component has hosts to run on."""
    yield from _component_findings(manifest, groups)
    used = {c.artifact for c in manifest.components}
    for key, artifact in manifest.artifacts.items():
        if key not in used:
            yield (("artifacts", key), f"artifact {key} is run by no component",
                   "remove it, or name it in a component's `artifact:` (the deploy checks its sha256 anyway)",
                   "warning")
        if artifact.version == artifact.previous:
            yield (("artifacts", key, "previous"), f"artifact {key}: previous is its own version "
                   f"{artifact.version}", "previous is the release this one replaces: the way back",
                   "warning")
    yield from _probe_findings(manifest)


def _component_findings(manifest: ReleaseManifest, groups: set[str] | None) -> Iterator[Finding]:
    defined = manifest.defined_probes()
    seen: dict[tuple[str, str], int] = {}
    for i, c in enumerate(manifest.components):
        loc: Loc = ("components", i)
        if c.artifact not in manifest.artifacts:
            yield ((*loc, "artifact"), f"component {c.name} runs artifact {c.artifact!r}, which `artifacts:` "
                   "does not list", close_match(c.artifact, manifest.artifacts,
                                                 "add it under `artifacts:` or fix the name"), "error")
        for j, kind in enumerate(c.probes):
            if kind not in PROBE_KINDS:
                yield ((*loc, "probes", j), f"component {c.name}: {kind!r} is not a probe kind",
                       close_match(kind, PROBE_KINDS, "probe kinds: " + ", ".join(PROBE_KINDS)), "error")
            elif kind not in defined:
                yield ((*loc, "probes", j), f"component {c.name} asks the {kind} probe, which `probes:` "
                       "does not define", "define it under `probes:` (defined: "
                       f"{', '.join(defined) or 'none'})", "error")
            elif kind in c.probes[:j]:
                yield ((*loc, "probes", j), f"component {c.name} lists the {kind} probe twice",
                       "list each probe once", "error")
        if (c.name, c.group) in seen:
            yield ((*loc, "name"), f"component {c.name} of group {c.group} is listed twice",
                   f"the first is entry {seen[c.name, c.group] + 1} of `components:`; keep one", "error")
        seen.setdefault((c.name, c.group), i)
        if groups is not None and c.group not in groups:
            yield ((*loc, "group"), f"component {c.name}: the inventory has no group {c.group!r}, so no host "
                   "would install or verify it", close_match(c.group, groups, "use a group of the inventory"),
                   "error")


def _probe_findings(manifest: ReleaseManifest) -> Iterator[Finding]:
    for kind, probe in manifest.defined_probes().items():
        fields = probe.model_dump()
        for key, text in fields.items():
            for word in PLACEHOLDER.findall(text):
                if word not in PLACEHOLDERS:
                    hint = close_match(word, PLACEHOLDERS, "only {name} and {port} are filled in per host")
                    yield (("probes", kind, key), f"the {kind} probe's {key} uses {{{word}}}, which is not "
                           "filled in", hint, "error")
        if kind == "file" and not fields["file"].startswith("/"):
            yield (("probes", "file", "file"), "the file probe's file is not an absolute path",
                   "it is read on the host: e.g. /opt/{name}/current/VERSION", "error")
        if kind == "http" and not re.match(r"https?://", fields["http"]):
            yield (("probes", "http", "http"), "the http probe's http is not an http:// or https:// URL",
                   "e.g. http://127.0.0.1:{port}/version", "error")
