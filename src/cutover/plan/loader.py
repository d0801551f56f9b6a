"""YAML loading that remembers where every value came from (file and line).

Times stay strings here (no YAML timestamp magic), so `2023-11-31 24:00` reaches the model
as written and gets a precise error instead of a silent conversion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cutover.errors import CutoverError

Loc = tuple[Any, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps; duplicate keys are errors."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class LoadedYaml:
    def __init__(self, path: Path, data: Any, lines: dict[Loc, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line(self, loc: Loc) -> int:
        """The line of `loc`, or of its nearest ancestor that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                raise CutoverError(
                    f"{path}:{key_node.start_mark.line + 1}: duplicate key {key!r}",
                    "each key may appear once in a mapping",
                )
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*loc, key), lines, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, (*loc, i), lines, path) for i, v in enumerate(node.value)]
    loader = _Loader("")
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path) -> LoadedYaml:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CutoverError(f"{path}: file not found", "pass --plan PATH") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CutoverError(f"{path}: cannot be read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise CutoverError(f"{path}:{line}: YAML syntax error: {problem}",
                           "check indentation, quotes and colons on that line") from None
    if node is None:
        raise CutoverError(f"{path}:1: the file is empty", "a plan needs `plan:` and `phases:`")
    lines: dict[Loc, int] = {}
    data = _walk(node, (), lines, path)
    return LoadedYaml(path, data, lines)
