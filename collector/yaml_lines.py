"""Where a problem in a YAML configuration file is: the line of each path in the document.

Every configuration gigawatt reads (site, grid, collectors) reports each problem with its
dotted path and its line, so an operator can go straight to it.
"""

from __future__ import annotations

import yaml


def line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each YAML path to the 1-based line where it starts, for error messages."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        # A mapping key's own line wins over the line where its value (a block) starts.
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return lines


def nearest_line(
    lines: dict[tuple[str | int, ...], int], path: tuple[str | int, ...]
) -> int | None:
    for depth in range(len(path), -1, -1):
        line = lines.get(path[:depth])
        if line is not None:
            return line
    return None
