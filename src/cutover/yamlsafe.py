"""YAML from an operator's files, with aliases kept in bounds.

A plan, an inventory or a release manifest is YAML someone wrote (or pasted). Two alias
tricks would otherwise end in a traceback or a hang instead of a clear refusal:

* a recursive alias, one that refers to the anchor still being built (`evidence: &loop
  [*loop]`, `a: &m {b: *m}`): the value contains itself and has no end;
* a "billion laughs" document: a few levels of lists of aliases to the level before,
  small as text and astronomically large once every alias is expanded.

Both are refused while the document is composed, before any value is built, with
`file:line:` naming the alias. So are values nested deeper than anyone writes by hand
(they would otherwise exhaust Python's recursion). Ordinary anchors, aliases and merge
keys (`<<: *defaults`) load as before.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent

from cutover.errors import CutoverError

MAX_ALIAS_NODES = 100_000  # values that aliases may add to one document, all expansions counted
MAX_DEPTH = 100  # nesting of lists and mappings

RECURSIVE_HINT = ("an alias (*name) repeats a value anchored (&name) and finished before it; "
                  "it cannot stand inside the value it names: write that value out instead")
TOO_MANY_HINT = ("aliases may repeat values, not multiply a document beyond all use: write the "
                 "values out, or anchor fewer and smaller ones")
SYNTAX_HINT = "check indentation, quotes and colons on that line"


class YamlRefused(CutoverError):
    """A YAML file refused at `file:line` (kept apart so a caller can report it as a problem)."""

    def __init__(self, path: Path | str, line: int, problem: str, hint: str = "") -> None:
        super().__init__(f"{path}:{line}: {problem}", hint)
        self.file, self.line, self.problem = str(path), line, problem


class AliasProblem(yaml.composer.ComposerError):
    """Raised by the composer; turned into a YamlRefused with the file's name."""

    def __init__(self, problem: str, mark: yaml.Mark, hint: str) -> None:
        super().__init__(None, None, problem, mark)
        self.hint = hint


class GuardedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses recursive aliases, too many alias expansions and
    too deep nesting. Everything else (resolvers, constructors) is SafeLoader's."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._building: list[str] = []  # anchors whose node is still being composed
        self._sizes: dict[int, int] = {}  # id(node) → values in it with aliases expanded
        self._expanded = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            if event.anchor in self._building:
                raise AliasProblem(f"recursive alias *{event.anchor}: it refers to the value "
                                   f"anchored &{event.anchor} that it is itself part of", event.start_mark,
                                   RECURSIVE_HINT)
            node = super().compose_node(parent, index)
            self._expanded += self._sizes.get(id(node), 1)
            if self._expanded > MAX_ALIAS_NODES:
                raise AliasProblem(f"too many aliases: expanding *{event.anchor} takes this document "
                                   f"beyond {MAX_ALIAS_NODES} values (a 'billion laughs' document?)",
                                   event.start_mark, TOO_MANY_HINT)
            return node
        event = self.peek_event()
        anchor = event.anchor
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise AliasProblem(f"values nested more than {MAX_DEPTH} levels deep", event.start_mark,
                               "flatten the structure")
        if anchor is not None:
            self._building.append(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._building.pop()
        self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark else 1


def compose(text: str, path: Path | str, loader: type[GuardedLoader] = GuardedLoader,
            *, syntax_errors: bool = True) -> yaml.Node | None:
    """The document's node tree. Alias problems always raise YamlRefused; syntax errors do
    too unless `syntax_errors` is False (then None: someone else reports them)."""
    try:
        return yaml.compose(text, Loader=loader)
    except AliasProblem as exc:
        raise YamlRefused(path, _line(exc), str(exc.problem), exc.hint) from None
    except yaml.YAMLError as exc:
        if not syntax_errors:
            return None
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlRefused(path, _line(exc), f"YAML syntax error: {problem}", SYNTAX_HINT) from None


def safe_load(text: str, path: Path | str) -> Any:
    """`yaml.safe_load` with the alias guard: alias problems raise YamlRefused, other YAML
    errors raise yaml.YAMLError as before."""
    loader = GuardedLoader(text)
    try:
        return loader.get_single_data()
    except AliasProblem as exc:
        raise YamlRefused(path, _line(exc), str(exc.problem), exc.hint) from None
    finally:
        loader.dispose()


def check_file(path: Path) -> None:
    """Refuse a file whose aliases are out of bounds; anything else about it (syntax,
    tags such as `!vault`, the file being INI) is left to the tool that reads it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    _check_text(text, str(path))


@lru_cache(maxsize=512)
def _check_text(text: str, path: str) -> None:
    """check_file of a text: the same text passes again (an inventory's files are checked at
    each reading of it); a refused one is checked, and refused, every time."""
    compose(text, path, syntax_errors=False)
