"""Problems in configuration files, and where they are.

Every configuration gigawatt reads (site, grid, collectors, inventory) is validated once and
reports every problem together, each with its dotted path and its line, so an operator can
go straight to it. This module holds the one problem type, the one error type each
configuration subclasses, and what every loader does before its own checks: read the file,
parse its YAML, and place each problem pydantic finds on its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


@dataclass(frozen=True)
class ConfigProblem:
    location: str  # dotted path in the document; empty where the line says it all (CSV)
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        path = f"{self.location}: " if self.location else ""
        return f"{where}{path}{self.message}"


class ConfigError(Exception):
    """Every problem found in one configuration file."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{listing}")


def read_config(path: Path, error: type[ConfigError]) -> str:
    """A configuration file's text; an unreadable file is that configuration's error."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as failure:
        problem = ConfigProblem("(file)", f"cannot read: {failure.strerror}")
        raise error(str(path), [problem]) from None


def yaml_document(text: str, source: str, error: type[ConfigError]) -> Any:
    """A configuration's YAML, parsed; text that is not YAML is ``error``, with its line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as failure:
        mark = getattr(failure, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = ConfigProblem("(file)", f"not valid YAML: {failure}", line)
        raise error(source, [problem]) from None


def yaml_mapping(
    text: str, source: str, error: type[ConfigError], *, empty_is_defaults: bool = False
) -> dict[str, Any]:
    """A configuration's top-level YAML mapping; anything else is ``error``.

    ``empty_is_defaults``: an empty document is an empty mapping (every setting's default).
    """
    data = yaml_document(text, source, error)
    if data is None and empty_is_defaults:
        return {}
    if not isinstance(data, dict):
        raise error(source, [ConfigProblem("(file)", "the top level must be a mapping", 1)])
    return data


def located(
    lines: dict[tuple[str | int, ...], int], path: tuple[str | int, ...], message: str
) -> ConfigProblem:
    """A problem at a path of the document (``(file)`` for the whole), on its nearest line."""
    location = ".".join(str(part) for part in path) or "(file)"
    return ConfigProblem(location, message, nearest_line(lines, path))


def validation_problems(
    error: ValidationError, lines: dict[tuple[str | int, ...], int]
) -> list[ConfigProblem]:
    """Every problem pydantic found, each at its path and line."""
    return [located(lines, tuple(detail["loc"]), detail["msg"]) for detail in error.errors()]


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
