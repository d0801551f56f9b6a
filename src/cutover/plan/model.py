"""The plan model. Unknown keys are errors (a typo must not silently drop a safeguard)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cutover.plan.times import parse_time

VERBS = ("stop", "deploy", "restore", "followup")
Verb = Literal["stop", "deploy", "restore", "followup"]
Kind = Literal["playbook", "gate", "manual", "wait"]
SiteLevel = Literal["province", "cities", "counties"]  # the site tree's levels (sites.LEVELS)
# N14: who answers for a fault. system: the systems themselves (vendors, cloud, network,
# hardware, software); business: continuity of the service people get (a contingency plan)
FaultKind = Literal["system", "business"]
FAULT_KINDS: tuple[str, ...] = ("system", "business")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Contact(_Strict):
    """An escalation contact (N14): the kinds of fault it owns, and where it is told of one:
    apprise URLs in the plan (`notify`) and/or an inventory variable holding a list of them
    (`notify_var`, resolved as Ansible resolves it: templates, vault)."""
    name: str = Field(min_length=1)
    role: str = ""
    contact: str = ""
    handles: list[FaultKind] = Field(min_length=1)
    notify: list[str] = []
    notify_var: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Step(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: str
    kind: Kind = "playbook"
    sites: SiteLevel | None = None  # a manual step each site of this level confirms (N11, N12)
    playbook: str | None = None
    tags: list[str] = []
    limit: str | None = None
    vars: dict[str, Any] = {}
    after: list[str] = []
    not_before: str | None = None
    due_by: str | None = None
    owner: str | None = None
    cooperating: list[str] = []
    rollback: str | None = None
    point_of_no_return: bool = False
    # what a failure of this step stops: the whole run (halt), or only the steps that depend on
    # it, the others going on and the run ending failed (hold_dependents: N7's receipt may come
    # days after the hand-off while N8's deploy goes on beside it)
    on_failure: Literal["halt", "hold_dependents"] = "halt"
    # a manual step whose confirmation must say something (e.g. the version the tax side
    # deployed, N8): the text says what; `cutover.confirm` refuses an empty --note
    note_required: str | None = None
    # a gate that is checked again every `poll` (e.g. "10m", "1h", seconds as a number) until its
    # due_by while its verdict is "not yet" (N1: collection plans are due at 18:00, not at 09:00);
    # a real clock only: a rehearsal checks once
    poll: int | str | None = None
    # a gate that checks again what an earlier gate checked (N3, right before the 18:00 full stop:
    # new approvals arrive during the day): what an override let pass there is not found again,
    # only what is new since fails it
    recheck_of: str | None = None
    evidence: list[str] = []
    requirement: str | None = None  # the mission's N-number this step serves
    fault: FaultKind | None = None  # whose its failure is (N14); default: a gate's business, else system
    # filled in by the loader: the phase, resolved times
    phase: str = ""
    verb: Verb = "stop"
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @field_validator("note_required")
    @classmethod
    def _note_only_for_manual(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind", "manual")
        if value is not None and kind != "manual":
            raise ValueError(f"only a manual step is confirmed with a note; this one is kind {kind}")
        return value

    @field_validator("poll")
    @classmethod
    def _poll(cls, value: int | str | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        kind = info.data.get("kind", "gate")
        if kind != "gate":
            raise ValueError(f"only a gate is checked again until its due_by; this one is kind {kind}")
        seconds = poll_seconds(value)
        if seconds is None or seconds < 1:
            raise ValueError(f"poll is an interval such as 30s, 10m or 1h (or seconds), not {value!r}")
        return seconds

    @field_validator("recheck_of")
    @classmethod
    def _recheck_only_for_gates(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind", "gate")
        if value is not None and kind != "gate":
            raise ValueError("only a gate checks again what an earlier gate checked; this one is kind "
                             f"{kind}")
        return value

    @field_validator("sites")
    @classmethod
    def _sites_only_for_manual(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind", "manual")  # a bad kind is reported on its own
        if value is not None and kind != "manual":
            raise ValueError(f"only a manual step is confirmed site by site; this one is kind {kind}")
        return value


def poll_seconds(value: int | str) -> int | None:
    """An interval as a plan writes it ("30s", "10m", "1h", or seconds) in seconds; None: not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    return int(number) * unit if number.isdigit() else None


class Phase(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: str
    verb: Verb
    not_before: str | None = None
    due_by: str | None = None
    owner: str | None = None
    cooperating: list[str] = []
    requirement: str | None = None
    fault: FaultKind | None = None  # inherited by steps without one (N14)
    # how its sites move (N17): all at once (no waves), or wave by wave, each a level of
    # the tree (province, cities, counties) in batches of wave_size sites; a wave starts when
    # the one before it ended
    waves: list[Literal["province", "cities", "counties"]] = []
    wave_size: int | None = Field(default=None, ge=1)
    # what one site's failure does: halt everything (Ansible's any_errors_fatal), or let the
    # other sites go on, the failed one reported and resumable alone with --limit SITE
    on_site_failure: Literal["halt", "continue"] = "halt"
    steps: list[Step] = Field(min_length=1)
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @field_validator("waves")
    @classmethod
    def _waves(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a level is named twice in waves: each level is one wave (or wave_size batches)")
        return value

    @model_validator(mode="after")
    def _wave_size(self) -> Phase:
        if self.wave_size is not None and not self.waves:
            raise ValueError("wave_size batches the sites of each wave: name the waves too, e.g. "
                             "waves: [cities]")
        return self


class Meta(_Strict):
    name: str
    title: str = ""
    timezone: str = "UTC"
    inventory: str = "inventories/lab"
    release_manifest: str | None = None
    escalation: list[Contact] = []
    notify: list[str] = []
    vars: dict[str, Any] = {}  # extra variables for every step's playbook (a step's own vars win)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Asia/Shanghai)") from None
        return value


class Plan(_Strict):
    plan: Meta
    phases: list[Phase] = Field(min_length=1)
    path: Path = Path()
    digest: str = ""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.plan.timezone)

    def steps(self, verb: str | None = None) -> list[Step]:
        return [s for p in self.phases for s in p.steps if verb is None or s.verb == verb]

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps() if s.id == step_id), None)

    def phase(self, phase_id: str) -> Phase | None:
        return next((p for p in self.phases if p.id == phase_id), None)


def resolve_times(plan: Plan, errors: list[tuple[tuple[Any, ...], str, str]]) -> None:
    """Parse every time; steps inherit their phase's window where they give none."""
    tz = plan.tz

    def parse(value: str | None, loc: tuple[Any, ...]) -> dt.datetime | None:
        if value is None:
            return None
        try:
            return parse_time(value, tz)
        except ValueError as exc:
            errors.append((loc, str(exc), "fix the date; the validator knows each month's length"))
            return None

    for pi, phase in enumerate(plan.phases):
        phase.start = parse(phase.not_before, ("phases", pi, "not_before"))
        phase.end = parse(phase.due_by, ("phases", pi, "due_by"))
        for si, step in enumerate(phase.steps):
            step.phase, step.verb = phase.id, phase.verb
            loc = ("phases", pi, "steps", si)
            step.start = parse(step.not_before, (*loc, "not_before")) or phase.start
            step.end = parse(step.due_by, (*loc, "due_by")) or phase.end
            if step.owner is None:
                step.owner = phase.owner
            if step.requirement is None:
                step.requirement = phase.requirement
            if step.fault is None:
                step.fault = phase.fault
            if not step.cooperating:
                step.cooperating = list(phase.cooperating)


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


__all__ = ["FAULT_KINDS", "VERBS", "Contact", "FaultKind", "Phase", "Plan", "SiteLevel", "Step",
           "ValidationError", "digest_of", "resolve_times"]
