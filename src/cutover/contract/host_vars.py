"""The inventory's side of the contract: which variables each play's hosts need, and of what
type (host_vars.yml beside this module). A type named by a role option (`feeds:`) is read
from that role's meta/argument_specs.yml, so the inventory check and the role's own check
before its first task cannot disagree.

Values are judged as the inventory writes them, untemplated: a template (`"{{ ... }}"`) is
present but its type is the play's to check when it runs; a vaulted value is present and a
string, never decrypted here."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cutover.errors import CutoverError
from cutover.paths import ROOT
from cutover.yamlsafe import safe_load

TABLE = Path(__file__).with_name("host_vars.yml")
TYPES = ("str", "int", "bool", "list", "dict", "path", "port", "raw")


@dataclass(frozen=True)
class VarSpec:
    name: str
    type: str
    about: str
    elements: str | None = None
    choices: tuple[Any, ...] = ()
    secret: bool = False

    def describe(self) -> str:
        kind = f"list of {self.elements}" if self.type == "list" and self.elements else self.type
        return f"{self.name} ({kind}: {self.about})"


@dataclass(frozen=True)
class PlayNeeds:
    needs: dict[str, tuple[str, ...]]  # a group of the play's hosts (or "all") → variables
    optional: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostVarsContract:
    variables: dict[str, VarSpec]
    plays: dict[str, dict[str, PlayNeeds]]  # playbook (relative to the checkout) → play name → needs


def role_option(ref: str, roles: Path = ROOT / "roles") -> dict[str, Any]:
    """`ROLE.ENTRY.OPTION[.SUB...]` of a role's argument specs."""
    role, entry, *path = ref.split(".")
    spec_file = roles / role / "meta" / "argument_specs.yml"
    spec = safe_load(spec_file.read_text(encoding="utf-8"), spec_file)
    node: Any = {"options": spec["argument_specs"][entry]["options"]}
    for part in path:
        node = (node.get("options") or {})[part]
    return node


@cache
def load_contract(table: Path = TABLE) -> HostVarsContract:
    data = safe_load(table.read_text(encoding="utf-8"), table)
    variables = {}
    for name, raw in data["variables"].items():
        spec = {**role_option(raw["feeds"]), **raw} if raw.get("feeds") else dict(raw)
        if spec.get("type") not in TYPES:
            raise CutoverError(f"{table}: {name}: type {spec.get('type')!r} is not one of "
                               f"{', '.join(TYPES)}")
        secret = bool(spec.get("secret") or spec.get("no_log"))
        variables[name] = VarSpec(name, spec["type"], str(raw.get("about", "")), spec.get("elements"),
                                  tuple(spec.get("choices") or ()), secret)
    plays = {book: {play: PlayNeeds({g: tuple(v) for g, v in (p.get("needs") or {}).items()},
                                    tuple(p.get("optional") or ()))
                    for play, p in book_plays.items()}
             for book, book_plays in data["plays"].items()}
    return HostVarsContract(variables, plays)


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _is_vaulted(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"__ansible_vault"}


def _kind(value: Any) -> str:
    """A value's type, as an inventory author would say it."""
    if _is_vaulted(value):
        return "a vaulted string"
    for python, said in ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"),
                         (list, "a list"), (dict, "a mapping")):
        if isinstance(value, python):
            return said
    return type(value).__name__


def _fits(value: Any, kind: str) -> bool:
    if _is_template(value) or kind == "raw":
        return True
    if _is_vaulted(value):
        return kind in ("str", "path")
    if kind == "port":
        number = value if isinstance(value, int) and not isinstance(value, bool) else \
            int(value) if isinstance(value, str) and value.isdigit() else None
        return number is not None and 0 < number < 65536
    if kind == "path":
        return isinstance(value, str) and value.startswith("/")
    wanted = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict}[kind]
    return isinstance(value, wanted) and not (kind == "int" and isinstance(value, bool))


def value_problem(value: Any, spec: VarSpec) -> str | None:
    """What is wrong with a value the inventory writes for `spec`, or None. Never the value of
    a secret."""
    if value is None or value == "":
        return "is empty"
    if not _fits(value, spec.type):
        want = {"path": "an absolute path", "port": "a port number"}.get(spec.type, f"a {spec.type}")
        return f"is {_kind(value)}, not {want}"
    if spec.type == "list" and spec.elements and isinstance(value, list):
        bad = [i for i, item in enumerate(value) if not _fits(item, spec.elements)]
        if bad:
            return f"item {bad[0]} is {_kind(value[bad[0]])}, not a {spec.elements}"
    if spec.choices and not _is_template(value) and not _is_vaulted(value) and value not in spec.choices:
        said = "" if spec.secret else f" {value!r}"
        return f"is{said} not one of {', '.join(map(str, spec.choices))}"
    return None
