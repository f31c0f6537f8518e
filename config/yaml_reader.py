"""Reading the YAML strictly (no duplicate keys, ``17:00`` stays text) and finding the line of any path in it."""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from config.issues import ConfigError, ConfigIssue
from config.model import Loc, format_path

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads ``17:00`` as text.

    YAML 1.1 (PyYAML) reads unquoted ``17:00`` as the base-60 integer 1020 but ``09:00`` as text;
    this loader drops the base-60 forms of int and float so every HH:MM stays a string.
    """

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f'duplicate key "{key}" (first at line {seen[key] + 1})',
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:  # type: ignore[override]
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise ConstructorError(None, None, f'invalid date "{node.value}": {exc}', node.start_mark) from exc


StrictSafeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictSafeLoader.add_implicit_resolver(
    _INT_TAG,
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
StrictSafeLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
StrictSafeLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    StrictSafeLoader.construct_yaml_timestamp,  # type: ignore[arg-type]
)


def _yaml_issue(exc: yaml.YAMLError) -> ConfigIssue:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        kind = "invalid YAML" if isinstance(exc, ConstructorError) else "YAML syntax error"
        if mark is None:
            return ConfigIssue("", f"{kind}: {problem}")
        return ConfigIssue("", f"{kind} at column {mark.column + 1}: {problem}", mark.line + 1)
    return ConfigIssue("", f"invalid YAML: {exc}")


def _duplicate_keys(node: Node, loc: Loc, out: list[tuple[Loc, str, int]], seen: set[int]) -> None:
    """Every duplicate key under ``node``, with its path and line."""
    if id(node) in seen:  # aliases share nodes
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if isinstance(key_node, ScalarNode):
                key = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if key in first:
                    out.append(((*loc, key_node.value), f"duplicate key (first at line {first[key]})", line))
                else:
                    first[key] = line
                _duplicate_keys(value_node, (*loc, key_node.value), out, seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, (*loc, i), out, seen)


def _child(node: Node, part: str | int) -> tuple[Node, Node] | None:
    """(node whose line names ``part``, node of its value), or None."""
    if isinstance(node, SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            return node.value[part], node.value[part]
        return None
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG and key_node.value == str(part):
            return key_node, value_node
    for key_node, value_node in node.value:  # keys merged in with <<: *anchor
        if key_node.tag == _MERGE_TAG:
            merged = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in merged:
                found = _child(source, part)
                if found is not None:
                    return found
    return None


def line_of(root: Node | None, loc: Loc) -> int | None:
    """The 1-based line of the node at ``loc``, or of its nearest existing parent."""
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in loc:
        found = _child(node, part)
        if found is None:
            break
        named, node = found
        line = named.start_mark.line + 1
    return line


def parse_yaml(text: str, source: str) -> tuple[Any, Node | None]:
    loader = StrictSafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        duplicates: list[tuple[Loc, str, int]] = []
        _duplicate_keys(root, (), duplicates, set())
        if duplicates:
            raise ConfigError(source, [ConfigIssue(format_path(loc), msg, line) for loc, msg, line in duplicates])
        return loader.construct_document(root), root
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_yaml_issue(exc)]) from None
    finally:
        loader.dispose()
