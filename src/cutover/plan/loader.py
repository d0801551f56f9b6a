"""YAML loading that remembers where every value came from (file and line).

Times stay strings here (no YAML timestamp magic), so `2023-11-31 24:00` reaches the model
as written and gets a precise error instead of a silent conversion. Aliases are kept in
bounds by cutover.yamlsafe (a recursive alias or a "billion laughs" document is refused
with file:line); merge keys (`<<: *defaults`) merge as in YAML 1.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cutover.errors import CutoverError
from cutover.yamlsafe import GuardedLoader, YamlRefused, compose

Loc = tuple[Any, ...]
MERGE = "tag:yaml.org,2002:merge"


class _Loader(GuardedLoader):
    """SafeLoader without implicit timestamps, aliases in bounds; duplicate keys are errors."""


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


def _pairs(node: yaml.MappingNode, path: Path) -> list[tuple[yaml.Node, yaml.Node]]:
    """A mapping's key/value nodes with merge keys applied: merged first (an earlier source
    wins), then the mapping's own keys, which override what was merged."""
    own: list[tuple[yaml.Node, yaml.Node]] = []
    seen: set[str] = set()
    sources: list[yaml.MappingNode] = []
    for key_node, value_node in node.value:
        if key_node.tag == MERGE:
            items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for item in items:
                if not isinstance(item, yaml.MappingNode):
                    raise YamlRefused(path, key_node.start_mark.line + 1,
                                      "`<<` merges a mapping or a list of mappings",
                                      "use `<<: *anchor` where the anchor is a mapping")
                sources.append(item)
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlRefused(path, key_node.start_mark.line + 1,
                              "a key must be a plain value, not a list or mapping", "write the key as text")
        key = key_node.value
        if key in seen:
            raise YamlRefused(path, key_node.start_mark.line + 1, f"duplicate key {key!r}",
                              "each key may appear once in a mapping")
        seen.add(key)
        own.append((key_node, value_node))
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    for source in sources:
        for key_node, value_node in _pairs(source, path):
            if key_node.value not in seen:
                seen.add(key_node.value)
                merged.append((key_node, value_node))
    return merged + own


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path, loader: _Loader) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in _pairs(node, path):
            key = key_node.value
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*loc, key), lines, path, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, (*loc, i), lines, path, loader) for i, v in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlRefused(path, node.start_mark.line + 1, str(problem),
                          "write the value as plain YAML (no tags such as !vault)") from None


def load_yaml(path: Path, *, missing_hint: str = "pass --plan PATH",
              empty_hint: str = "a plan needs `plan:` and `phases:`") -> LoadedYaml:
    """The document with the line of every value; the hints say what the file should be."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CutoverError(f"{path}: file not found", missing_hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CutoverError(f"{path}: cannot be read: {exc}") from None
    node = compose(text, path, _Loader)  # syntax and alias problems raise with file:line
    if node is None:
        raise CutoverError(f"{path}:1: the file is empty", empty_hint)
    lines: dict[Loc, int] = {}
    data = _walk(node, (), lines, path, _Loader(""))
    return LoadedYaml(path, data, lines)
