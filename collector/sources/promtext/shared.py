"""What both parsers share: the frame schemas and the Exposition they fill, the pieces of
grammar common to both formats, problem collection and the parser base class."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl

Format = Literal["text", "openmetrics"]

LABEL = pl.Struct({"name": pl.String, "value": pl.String})

SAMPLES: dict[str, pl.DataType] = {
    "line": pl.UInt32(),  # 1-based line in the payload
    "family": pl.String(),  # the metric family (the name in # TYPE), e.g. a histogram's base
    "name": pl.String(),  # the sample's own name, e.g. "..._bucket"
    "labels": pl.List(LABEL),  # in payload order, unescaped
    "value": pl.Float64(),
    "timestamp_seconds": pl.Float64(),  # null when the line carries none
    "type": pl.String(),  # counter, gauge, summary, histogram, untyped (text) / unknown (OM), ...
}

PARSE_PROBLEMS: dict[str, pl.DataType] = {
    "line": pl.UInt32(),  # 0 for the payload as a whole
    "reason": pl.String(),  # short machine-readable reason
    "message": pl.String(),
}

FAMILIES: dict[str, pl.DataType] = {
    "family": pl.String(),
    "type": pl.String(),
    "help": pl.String(),
    "unit": pl.String(),  # OpenMetrics only
    "line": pl.UInt32(),  # first line that names the family
}

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# What a scraper sends. Text first: it parses fastest here; OpenMetrics (whose "# EOF" exposes a
# payload cut short at a line boundary) is accepted from exporters that only speak it.
ACCEPT_HEADER = (
    "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
)


@dataclass(frozen=True)
class Exposition:
    """The outcome of parsing one payload."""

    samples: pl.DataFrame  # SAMPLES
    problems: pl.DataFrame  # PARSE_PROBLEMS, by line
    families: pl.DataFrame  # FAMILIES, declared ones included even without samples
    format: Format
    strict: bool

    @property
    def accepted(self) -> bool:
        """True when Prometheus would ingest the payload exactly as it is."""
        return self.problems.height == 0


def label_value(label: str, labels: str | pl.Expr = "labels") -> pl.Expr:
    """Expression named ``label``: that label's value in a ``labels`` column, null if absent."""
    column = pl.col(labels) if isinstance(labels, str) else labels
    return (
        column.list.eval(
            pl.element().filter(pl.element().struct.field("name") == label).struct.field("value")
        )
        .list.first()
        .alias(label)
    )


LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# Go strconv.ParseFloat without hex, '_' or 'p' (prometheus/common parseFloat); it is also the
# OpenMetrics "number": signed decimals, [+-]Inf/Infinity, unsigned NaN, in any letter case.
NUMBER = (
    r"(?:[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)|[nN][aA][nN])"
)
NUMBER_RE = re.compile(NUMBER)
_SURROGATE_RE = re.compile("[\udc80-\udcff]")

_ESCAPES = (["\\\\", '\\"', "\\n"], ["\\", '"', "\n"])

Rule = tuple[pl.Expr, str, pl.Expr]  # condition, reason, message


def message_expr(template: str, *columns: str | pl.Expr) -> pl.Expr:
    """``template`` with each ``{}`` replaced by a column, as one string expression."""
    pieces = template.split("{}")
    parts: list[pl.Expr] = [pl.lit(pieces[0])]
    for column, piece in zip(columns, pieces[1:], strict=True):
        parts.append(pl.col(column) if isinstance(column, str) else column)
        parts.append(pl.lit(piece))
    return pl.concat_str(parts)


def labels_from_pairs(raw: pl.Expr, pair: str, escapes: bool) -> pl.Expr:
    """List[Struct{name, value}] from a validated label string such as ``a="1",b="x\\"y"``.

    ``pair`` matches one ``name="value`` without its closing quote, so splitting at the first
    ``="`` leaves the value as it stands; ``escapes`` says whether any backslash needs undoing.
    """
    split = pl.element().str.splitn('="', 2).struct.rename_fields(["name", "value"])
    if escapes:
        split = split.struct.with_fields(pl.field("value").str.replace_many(*_ESCAPES))
    return raw.fill_null("").str.extract_all(pair).list.eval(split)


def decode(payload: str | bytes) -> tuple[str, list[int]]:
    """Text, and the 1-based lines that held bytes that are not UTF-8 (now U+FFFD)."""
    if isinstance(payload, bytes):
        try:
            return payload.decode("utf-8"), []
        except UnicodeDecodeError:
            text = payload.decode("utf-8", "surrogateescape")
    else:
        text = payload
        if text.isascii():
            return text, []
        try:
            text.encode("utf-8")
            return text, []
        except UnicodeEncodeError:
            pass
    bad = [i + 1 for i, line in enumerate(text.split("\n")) if _SURROGATE_RE.search(line)]
    return _SURROGATE_RE.sub("\ufffd", text), bad


def lines_frame(text: str) -> pl.DataFrame:
    """One row per line, ``line`` (1-based) and ``text``; no empty piece after a final LF."""
    pieces = text.split("\n")
    if text.endswith("\n") or not text:
        pieces.pop()
    return pl.DataFrame(
        {"line": np.arange(1, len(pieces) + 1, dtype=np.uint32), "text": pieces},
        schema={"line": pl.UInt32, "text": pl.String},
    )


def clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


class Problems:
    """Problems from Python code and from vectorized rules, capped at ``limit`` rows."""

    def __init__(self, limit: int) -> None:
        self.limit = max(2, limit)
        self.rows: list[tuple[int, str, str]] = []
        self.frames: list[pl.DataFrame] = []
        self.count = 0

    def add(self, line: int, reason: str, message: str) -> None:
        self.rows.append((line, reason, message))
        self.count += 1

    def add_frame(self, frame: pl.DataFrame) -> None:
        """Rows of (line, reason, message)."""
        if frame.height:
            self.frames.append(frame.cast(PARSE_PROBLEMS))  # type: ignore[arg-type]
            self.count += frame.height

    def frame(self) -> pl.DataFrame:
        if not self.count:
            return pl.DataFrame(schema=PARSE_PROBLEMS)
        rows = pl.DataFrame(self.rows, schema=PARSE_PROBLEMS, orient="row")
        frame = pl.concat([rows, *self.frames]).sort("line", maintain_order=True)
        if frame.height <= self.limit:
            return frame
        left_off = frame.height - self.limit + 1
        summary = pl.DataFrame(
            [(0, "too_many_problems", f"{left_off} more problems left off")],
            schema=PARSE_PROBLEMS,
            orient="row",
        )
        return pl.concat([frame.head(self.limit - 1), summary])


@dataclass
class ParserBase:
    text: str
    bad_lines: list[int]
    problems: Problems
    error_lines: set[int] = field(default_factory=set)

    def error(self, line: int, reason: str, message: str) -> None:
        self.problems.add(line, reason, message)
        self.error_lines.add(line)

    def check(self, frame: pl.DataFrame, condition: pl.Expr, reason: str, message: pl.Expr) -> None:
        """Report every row of ``frame`` where ``condition`` holds."""
        rows = frame.filter(condition.fill_null(False)).select(
            pl.col("line"),
            pl.lit(reason).alias("reason"),
            message.fill_null(pl.lit(reason.replace("_", " "))).alias("message"),
        )
        self.problems.add_frame(rows)
        self.error_lines.update(rows.get_column("line").to_list())

    def apply_rules(self, frame: pl.LazyFrame, rules: list[Rule]) -> pl.DataFrame:
        """Collect ``frame``, count every rule in one pass, report the rows of those that fire."""
        collected = frame.collect()
        if not rules:
            return collected
        counts = collected.select(
            [
                condition.fill_null(False).sum().alias(f"c{i}")
                for i, (condition, _, _) in enumerate(rules)
            ]
        ).row(0)
        for (condition, reason, message), count in zip(rules, counts, strict=True):
            if count:
                self.check(collected, condition, reason, message)
        return collected


Event = tuple[int, int, str, str, str | None]  # line, order within the line, kind, name, rest
