"""Problems in configuration files, and where they are.

Every configuration gigawatt reads (site, grid, collectors, inventory, thresholds, scenario)
is validated once and reports every problem together, each with its dotted path and its line,
so an operator can go straight to it. This module holds the one problem type, the one error
type each configuration subclasses, the base of every configuration model, and what every
loader does before its own checks: read the file, parse its YAML, and place each problem
pydantic finds on its line.

What a file can cost is bounded before anything is built from it, because a configuration is
input like any other (a typo, a generated file gone wrong, a hostile edit):

* a YAML file is at most ``MAX_CONFIG_BYTES`` (an inventory, one row per device, has its own
  larger limit), read no further than that, and must be UTF-8 (an error names the byte
  offset and its line);
* anchors and aliases may add at most ``MAX_ALIAS_EXPANSION`` nodes to the document (an
  alias "bomb" of nested aliases is refused before it is expanded), and nesting is at most
  ``MAX_NESTING`` levels deep;
* a key given twice in one mapping is an error (YAML would keep the last silently);
* in every model built on ``ConfigModel`` a number is a number: ``true`` is not 1 and
  ``.inf`` or ``.nan`` is no value at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, ValidationError
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

# Site, grid, collectors, thresholds and scenario files are hand-written: a few kilobytes.
MAX_CONFIG_BYTES = 4 << 20
# An inventory lists every device of the site: the reference campus's 2.15 M accelerators
# take about 180 MB of CSV.
MAX_INVENTORY_BYTES = 512 << 20
# Nodes that aliases may add when expanded: plenty for shared templates, far from a bomb.
MAX_ALIAS_EXPANSION = 10_000
MAX_NESTING = 64
# How much of a value an error message shows: a binary file is not echoed back.
MAX_SHOWN_CHARACTERS = 60


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


def shown(value: object) -> str:
    """``value`` for an error message: its repr, cut to a few dozen characters."""
    text = repr(value)
    if len(text) <= MAX_SHOWN_CHARACTERS:
        return text
    return f"{text[:MAX_SHOWN_CHARACTERS]}... ({len(text)} characters)"


def _refuse_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("bool_is_not_a_number", "expected a number, not true or false")
    return value


def _strict_numbers(schema: Any) -> Any:
    """A copy of a core schema in which every int and float (and every numeric literal such
    as ``Literal[1, 3]``) refuses booleans, and every float refuses infinities and NaN."""
    if isinstance(schema, list):
        return [_strict_numbers(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "function-before" and schema["function"].get("function") is (
        _refuse_bool
    ):
        return schema  # a nested model's schema, made strict already
    strict = {key: _strict_numbers(value) for key, value in schema.items()}
    kind = strict.get("type")
    numeric_literal = kind == "literal" and any(
        isinstance(item, int | float) and not isinstance(item, bool)
        for item in strict.get("expected", ())
    )
    if kind == "float":
        strict["allow_inf_nan"] = False
    if kind in ("int", "float") or numeric_literal:
        return core_schema.no_info_before_validator_function(_refuse_bool, strict)
    return strict


class ConfigModel(BaseModel):
    """The base of every configuration model: frozen, unknown keys refused, and its numbers
    strict (pydantic would read ``true`` as 1 and accept ``.inf``; a configuration means
    neither)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema: CoreSchema = _strict_numbers(handler(source))
        return schema


def read_config(path: Path, error: type[ConfigError], max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A configuration file's text; an unreadable, oversized or non-UTF-8 file is that
    configuration's error. Never reads more than ``max_bytes`` + 1 bytes (``/dev/zero`` is a
    file too)."""
    try:
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as failure:
        problem = ConfigProblem("(file)", f"cannot read: {failure.strerror or failure}")
        raise error(str(path), [problem]) from None
    if len(data) > max_bytes:
        problem = ConfigProblem("(file)", f"larger than the limit of {max_bytes} bytes")
        raise error(str(path), [problem])
    return decoded(data, str(path), error)


def decoded(data: bytes, source: str, error: type[ConfigError]) -> str:
    """``data`` as UTF-8 text; bytes that are not UTF-8 are ``error``, with the byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as failure:
        line = data.count(b"\n", 0, failure.start) + 1
        byte = data[failure.start]
        problem = ConfigProblem(
            "(file)", f"not UTF-8 text: byte 0x{byte:02x} at byte offset {failure.start}", line
        )
        raise error(source, [problem]) from None


class _BoundedProblem(yaml.YAMLError):
    """A YAML document refused for its shape (a bound or a repeated key), with its line."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with bounds on nesting and alias expansion, and no repeated keys."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _BoundedProblem(f"nested deeper than {MAX_NESTING} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        root: yaml.Node | None = super().compose_document()
        if root is not None:
            _check_alias_expansion(root)
        return root

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[object, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue  # merged keys may be overridden; unhashable keys are refused below
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise _BoundedProblem(
                    f"key {shown(key)} appears twice in one mapping (first on line "
                    f"{first_line[key]})",
                    key_node.start_mark,
                )
            first_line[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _check_alias_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases, expanded, would add more than MAX_ALIAS_EXPANSION
    nodes, or that holds itself. Sizes are counted once per node (memoised), so a bomb is
    measured without being expanded."""
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = expanded.get(id(node))
        if known is not None:
            return known
        if id(node) in open_nodes:  # ``&a [*a]``: no configuration is infinite
            raise _BoundedProblem("an alias refers to a node that contains it", node.start_mark)
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        open_nodes.discard(id(node))
        expanded[id(node)] = total
        return total

    added = size(root) - len(expanded)
    if added > MAX_ALIAS_EXPANSION:
        raise _BoundedProblem(
            f"aliases expand to {added} more nodes, over the limit of {MAX_ALIAS_EXPANSION}",
            root.start_mark,
        )


def _bounded_compose(text: str) -> yaml.Node | None:
    loader = _BoundedLoader(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def yaml_document(text: str, source: str, error: type[ConfigError]) -> Any:
    """A configuration's YAML, parsed within the bounds above; text that is not YAML, or that
    breaks a bound, is ``error``, with its line."""
    try:
        loader = _BoundedLoader(text)  # the reader refuses control characters here already
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _BoundedProblem as failure:
        line = failure.problem_mark.line + 1 if failure.problem_mark is not None else None
        raise error(source, [ConfigProblem("(file)", failure.message, line)]) from None
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
    """Map each YAML path to the 1-based line where it starts, for error messages. Composed
    within the same bounds as the document, so a file refused there maps nothing here."""
    try:
        root = _bounded_compose(text)
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
