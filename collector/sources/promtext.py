"""Strict parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0 text.

``parse_exposition(payload, content_type)`` returns an :class:`Exposition`: a frame of samples,
a frame of parse problems and a frame of metric families. For a dcgm-exporter payload line::

    DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-20c5...",Hostname="424773df46e0"} 8.969000

the samples frame holds one row (``SAMPLES`` schema)::

    line=12  family="DCGM_FI_DEV_POWER_USAGE"  name="DCGM_FI_DEV_POWER_USAGE"
    labels=[{name:"gpu",value:"0"}, {name:"UUID",value:"GPU-20c5..."}, ...]
    value=8.969  timestamp_seconds=null  type="gauge"

``label_value("UUID")`` is the expression that reads one label out of ``labels``.

Strictness. ``Exposition.accepted`` is the verdict Prometheus reaches:

* Text 0.0.4 follows prometheus/common ``expfmt.TextParser``: only blanks and tabs are white
  space (a CR before the LF spoils the value), label values know exactly the escapes ``\\\\``,
  ``\\"`` and ``\\n``, a timestamp is an int64 of milliseconds and nothing may follow it (not even
  a blank), ``__name__`` is reserved, label names are unique (bar a summary's ``quantile`` and a
  histogram's ``le``, as in expfmt), a TYPE line must precede the family's first sample, HELP
  and TYPE appear once per family, every ``quantile`` of a summary and ``le`` of a histogram is
  a float, values are Go floats (``Inf``, ``NaN``; no hex, no ``_``, no overflow to infinity).
  The quoted UTF-8 names of newer releases (``{"my.metric", "a.b"="x"}``) are read as
  ``expfmt`` reads them. One deliberate difference: ``expfmt`` lets a line that starts with
  ``{`` and names no metric borrow the previous line's family; here that line is an error.
* OpenMetrics 1.0 follows the specification's ABNF and the checks of its reference parser
  (prometheus/client_python): ``# EOF`` ends the payload, no blank lines or free comments, single
  spaces, metric grouping, histogram, summary, info and stateset rules, counter values, exemplars,
  units, clashing names. It agrees with the OpenMetrics test suite on every case.

Trailing newline. Prometheus's text parser rejects a payload whose last line has no newline
("unexpected end of input stream"), yet real captures lack it (DataDog's dcgm fixture, files
edited by hand). ``strict=True`` behaves like Prometheus and rejects the payload.
``strict=False``, the default and the operator-friendly choice, reads the last line as if it
ended with a newline and reports a ``missing_final_newline`` problem, so the defect stays visible
without costing the scrape. (OpenMetrics needs no such rule: its payload ends with ``# EOF``.)

``strict`` also decides what problems cost: strict returns no samples at all (the scrape is
rejected, as Prometheus rejects it); lenient drops only the lines a problem names and keeps the
rest, so one bad line degrades a scrape instead of losing it. Problems are listed either way.

Speed. Lines matching a strict regular expression of the common form ``name{a="b",...} value
[timestamp]`` are split, converted and checked with vectorized Polars string operations; only
comments, uncommon spellings (blanks inside braces, quoted names) and invalid lines take a careful
character-by-character path. Family rules replay only the comment lines and the first line of
each sample name (text) or of each run of one name (OpenMetrics). Every per-sample rule is first
counted in one pass; messages are built only for the rules that fire. OpenMetrics, whose grouping
and histogram rules need more passes, parses about four times slower than text, which is why
ACCEPT_HEADER asks for text first.
"""

from __future__ import annotations

import functools
import math
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


def format_for_content_type(content_type: str | None) -> Format | None:
    """The format a Content-Type names; None for one this parser cannot read (protobuf).

    A missing Content-Type reads as text, as it does for Prometheus.
    """
    if content_type is None or not content_type.strip():
        return "text"
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/openmetrics-text":
        return "openmetrics"
    if media == "text/plain":
        return "text"
    return None


def parse_exposition(
    payload: str | bytes,
    content_type: str | None = None,
    *,
    format: Format | None = None,
    strict: bool = False,
    max_problems: int = 100,
) -> Exposition:
    """Parse one scrape; ``format`` overrides the Content-Type. See the module docstring."""
    problems = _Problems(max_problems)
    if format is None:
        format = format_for_content_type(content_type)
        if format is None:
            problems.add(0, "unsupported_content_type", f"cannot parse {content_type!r}")
            return Exposition(
                pl.DataFrame(schema=SAMPLES),
                problems.frame(),
                pl.DataFrame(schema=FAMILIES),
                "text",
                strict,
            )
    text, bad_lines = _decode(payload)
    parser = _TextParser if format == "text" else _OpenMetricsParser
    samples, families, error_lines = parser(text, bad_lines, problems).run()
    if problems.count:
        if strict:
            samples = samples.clear()
        elif error_lines:
            samples = samples.filter(~pl.col("line").is_in(sorted(error_lines)))
    return Exposition(samples, problems.frame(), families, format, strict)


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


def as_problems(exposition: Exposition, source: str, target: str) -> pl.DataFrame:
    """Parse problems in the collector.schemas.PROBLEMS shape (location ``line N``)."""
    return exposition.problems.select(
        pl.lit(source, pl.String).alias("source"),
        pl.lit(target, pl.String).alias("target"),
        pl.when(pl.col("line") > 0)
        .then(_message("line {}", pl.col("line")))
        .otherwise(pl.lit("payload"))
        .alias("location"),
        pl.col("reason"),
        pl.col("message"),
    )


# --- shared pieces ----------------------------------------------------------------------------

_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# Go strconv.ParseFloat without hex, '_' or 'p' (prometheus/common parseFloat); it is also the
# OpenMetrics "number": signed decimals, [+-]Inf/Infinity, unsigned NaN, in any letter case.
_NUMBER = (
    r"(?:[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)|[nN][aA][nN])"
)
_REAL = r"(?:[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
_NUMBER_RE = re.compile(_NUMBER)
_INT64_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SURROGATE_RE = re.compile("[\udc80-\udcff]")

_TEXT_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
_TEXT_PAIR = rf"{_LABEL_NAME}={_TEXT_VALUE}"
_TEXT_PAIR_OPEN = rf'{_LABEL_NAME}="(?:[^"\\\n]|\\[\\"n])*'  # without the closing quote
# The common text line. Whatever it accepts expfmt accepts with the same meaning; what it does not
# match is read by _TextParser._sample, which follows expfmt state by state. It has no capture
# groups, so it runs on a DFA; _split_text_lines then cuts matching lines with plain string ops.
_TEXT_LINE = (
    rf"^{_METRIC_NAME}(?:\{{(?:{_TEXT_PAIR}(?:,{_TEXT_PAIR})*,?)?\}})? {_NUMBER}(?: [+-]?[0-9]+)?$"
)
# The value and optional timestamp at the end of a matching line: one or two tokens free of
# '"' and '}', which no space inside a label set can be followed by up to the end of the line.
_TEXT_TAIL = r' [^ }"]+(?: [^ }"]+)?$'
# The common HELP/TYPE line; anything else starting with '#' takes the careful path.
_TEXT_COMMENT_RE = re.compile(rf"[ \t]*#[ \t]*(HELP|TYPE)[ \t]+({_METRIC_NAME})[ \t]+(.*)")

_OM_VALUE = r'"(?:[^"\\\n]|\\.)*"'
_OM_PAIR = rf"{_LABEL_NAME}={_OM_VALUE}"
_OM_PAIR_OPEN = rf'{_LABEL_NAME}="(?:[^"\\\n]|\\.)*'  # without the closing quote
_OM_LABELS = rf"(?:{_OM_PAIR}(?:,{_OM_PAIR})*)?"
# The whole OpenMetrics sample grammar (ABNF "sample", exemplar included).
_OM_SAMPLE = (
    rf"^(?P<name>{_METRIC_NAME})(?:\{{(?P<labels>{_OM_LABELS})\}})?"
    rf" (?P<value>{_NUMBER})(?: (?P<ts>{_REAL}))?"
    rf"(?: # \{{(?P<exlabels>{_OM_LABELS})\}} (?P<exvalue>{_NUMBER})(?: (?P<exts>{_REAL}))?)?$"
)
_OM_METADATA_RE = re.compile(rf"# (HELP|TYPE|UNIT) ({_METRIC_NAME}) (.*)", re.DOTALL)
_OM_PAIR_RE = re.compile(rf'({_LABEL_NAME})="((?:[^"\\\n]|\\.)*)"')

_ESCAPES = (["\\\\", '\\"', "\\n"], ["\\", '"', "\n"])
_ESCAPE_RE = re.compile(r'\\[\\"n]')
_ESCAPED = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

_Rule = tuple[pl.Expr, str, pl.Expr]  # condition, reason, message


def _message(template: str, *columns: str | pl.Expr) -> pl.Expr:
    """``template`` with each ``{}`` replaced by a column, as one string expression."""
    pieces = template.split("{}")
    parts: list[pl.Expr] = [pl.lit(pieces[0])]
    for column, piece in zip(columns, pieces[1:], strict=True):
        parts.append(pl.col(column) if isinstance(column, str) else column)
        parts.append(pl.lit(piece))
    return pl.concat_str(parts)


def _unescape(text: str) -> str:
    """Undo \\\\, \\" and \\n in one left-to-right pass; any other backslash stays as it is."""
    if "\\" not in text:
        return text
    return _ESCAPE_RE.sub(lambda m: _ESCAPED[m[0]], text)


def _labels_from_pairs(raw: pl.Expr, pair: str, escapes: bool) -> pl.Expr:
    """List[Struct{name, value}] from a validated label string such as ``a="1",b="x\\"y"``.

    ``pair`` matches one ``name="value`` without its closing quote, so splitting at the first
    ``="`` leaves the value as it stands; ``escapes`` says whether any backslash needs undoing.
    """
    split = pl.element().str.splitn('="', 2).struct.rename_fields(["name", "value"])
    if escapes:
        split = split.struct.with_fields(pl.field("value").str.replace_many(*_ESCAPES))
    return raw.fill_null("").str.extract_all(pair).list.eval(split)


def _label_names() -> pl.Expr:
    return pl.col("labels").list.eval(pl.element().struct.field("name"))


def _split_text_lines(lines: pl.LazyFrame, escapes: bool) -> pl.LazyFrame:
    """Lines matching _TEXT_LINE cut into sample columns, with per-line rule flags.

    Columns: line, name, labels, value_raw, ts_raw, value, timestamp_seconds and the flags
    bad_value (a finite spelling that overflows), bad_timestamp (beyond int64), reserved_label
    (``__name__``) and repeated_label (a label name twice; expfmt exempts quantile and le).
    """
    steps = _split_steps(escapes)
    return (
        lines.with_columns(steps[0])
        .select(steps[1])
        .unnest("value_ts")
        .with_columns(steps[2])
        .select(steps[3])
    )


@functools.cache
def _split_steps(escapes: bool) -> tuple[list[pl.Expr], ...]:
    """The expressions of _split_text_lines, built once per process.

    Label pairs are found with a regular expression; ``escapes`` (any backslash in the payload)
    says whether values need unescaping.
    """
    text = pl.col("text")
    block = (
        text.str.strip_suffix(pl.col("tail"))
        .str.strip_prefix(pl.col("name"))
        .str.strip_prefix("{")
        .str.strip_suffix("}")
    )
    # A literal split at '",' would be wrong: a value may begin with a comma (l="," ...).
    labels = _labels_from_pairs(block, _TEXT_PAIR_OPEN, escapes)
    names = pl.col("labels").list.eval(pl.element().struct.field("name"))
    value_raw, ts_raw = pl.col("value_raw"), pl.col("ts_raw")
    return (
        [
            text.str.extract(rf"^{_METRIC_NAME}", 0).alias("name"),
            text.str.extract(_TEXT_TAIL, 0).alias("tail"),
        ],
        [
            pl.col("line"),
            pl.col("name"),
            labels.alias("labels"),
            pl.col("tail")
            .str.strip_prefix(" ")
            .str.split_exact(" ", 1)
            .struct.rename_fields(["value_raw", "ts_raw"])
            .alias("value_ts"),
        ],
        [
            value_raw.cast(pl.Float64, strict=False).alias("value"),
            ts_raw.cast(pl.Int64, strict=False).alias("ts_ms"),
            names.alias("names"),
        ],
        [
            pl.col("line"),
            pl.col("name"),
            pl.col("labels"),
            value_raw,
            ts_raw,
            pl.col("value"),
            _milliseconds_as_seconds(ts_raw).alias("timestamp_seconds"),
            (pl.col("value").is_infinite() & ~value_raw.str.contains("[nN]")).alias("bad_value"),
            (ts_raw.is_not_null() & pl.col("ts_ms").is_null()).alias("bad_timestamp"),
            pl.col("names").list.contains("__name__").alias("reserved_label"),
            (pl.col("names").list.n_unique() < pl.col("names").list.len()).alias("repeated_label"),
        ],
    )


def _milliseconds_as_seconds(raw: pl.Expr) -> pl.Expr:
    """An integer string of milliseconds as Float64 seconds, correctly rounded.

    Dividing by 1000.0 in Polars can land one ULP off the nearest double; placing the decimal
    point in the text and parsing it cannot (and agrees with Python's ``int(raw) / 1000``).
    """
    digits = raw.str.strip_prefix("+").str.strip_prefix("-").str.zfill(4)
    sign = pl.when(raw.str.starts_with("-")).then(pl.lit("-")).otherwise(pl.lit(""))
    whole = digits.str.slice(0, digits.str.len_chars() - 3)
    text = pl.concat_str(sign, whole, pl.lit("."), digits.str.slice(-3))
    return pl.when(pl.col("ts_ms").is_not_null()).then(text.cast(pl.Float64, strict=False))


def _decode(payload: str | bytes) -> tuple[str, list[int]]:
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


def _lines(text: str) -> pl.DataFrame:
    """One row per line, ``line`` (1-based) and ``text``; no empty piece after a final LF."""
    pieces = text.split("\n")
    if text.endswith("\n") or not text:
        pieces.pop()
    return pl.DataFrame(
        {"line": np.arange(1, len(pieces) + 1, dtype=np.uint32), "text": pieces},
        schema={"line": pl.UInt32, "text": pl.String},
    )


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


class _Problems:
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
class _Base:
    text: str
    bad_lines: list[int]
    problems: _Problems
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

    def apply_rules(self, frame: pl.LazyFrame, rules: list[_Rule]) -> pl.DataFrame:
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


# --- Prometheus text 0.0.4 --------------------------------------------------------------------

_GO_TYPES = {
    "COUNTER": "counter",
    "GAUGE": "gauge",
    "SUMMARY": "summary",
    "UNTYPED": "untyped",
    "HISTOGRAM": "histogram",
    "GAUGE_HISTOGRAM": "gauge_histogram",
}


class _SyntaxError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _skip_blank(s: str, i: int) -> int:
    while s[i] == " " or s[i] == "\t":
        i += 1
    return i


def _is_name_start(c: str, metric: bool) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or c in '_"' or (metric and c == ":")


def _is_name_continuation(c: str, metric: bool) -> bool:
    return _is_name_start(c, metric) or ("0" <= c <= "9")


def _found(c: str) -> str:
    return "end of line" if c == "\n" else repr(c)


def _go_name(s: str, i: int, metric: bool) -> tuple[str, int]:
    """expfmt readTokenAsMetricName / readTokenAsLabelName: a plain or quoted name at s[i].

    ``s`` ends with a newline. As in expfmt a quote may open anywhere in a name (``a"b.c"`` reads
    ``ab.c``) and inside quotes every character but a raw newline belongs to the name.
    """
    if not _is_name_start(s[i], metric):
        return "", i
    token: list[str] = []
    quoted = escaped = False
    while True:
        c = s[i]
        if escaped:
            if c == "\\":
                token.append("\\")
            elif c == "n":
                token.append("\n")
            elif c == '"':
                token.append('\\"')
            else:
                shown = "\\n" if c == "\n" else c
                raise _SyntaxError("invalid_escape", f"invalid escape sequence '\\{shown}' in name")
            escaped = False
        elif c == '"':
            quoted = not quoted
            if not quoted:
                return "".join(token), i + 1
        elif c == "\n":
            raise _SyntaxError(
                "invalid_name", f"name {''.join(token)!r} contains unescaped new-line"
            )
        elif c == "\\":
            escaped = True
        else:
            token.append(c)
        i += 1
        if not quoted and not _is_name_continuation(s[i], metric):
            return "".join(token), i


def _unescaped(escaped: str, where: str) -> str:
    """The character a backslash escape stands for: \\\\, \\" and \\n only, as expfmt allows
    in label values and HELP text; anything else is a syntax error."""
    if escaped == "\\" or escaped == '"':
        return escaped
    if escaped == "n":
        return "\n"
    shown = "\\n" if escaped == "\n" else escaped
    raise _SyntaxError("invalid_escape", f"invalid escape sequence '\\{shown}'{where}")


def _go_label_value(s: str, i: int) -> tuple[str, int]:
    """expfmt readTokenAsLabelValue: s[i] is the first character after the opening quote."""
    out: list[str] = []
    while True:
        c = s[i]
        if c == "\\":
            out.append(_unescaped(s[i + 1], ""))
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        if c == "\n":
            raise _SyntaxError(
                "invalid_label_value", f"label value {''.join(out)!r} contains unescaped new-line"
            )
        out.append(c)
        i += 1


def _go_token(s: str, i: int) -> tuple[str, int]:
    """expfmt readTokenUntilWhitespace."""
    j = i
    while s[j] not in " \t\n":
        j += 1
    return s[i:j], j


def _go_float_ok(token: str) -> bool:
    if not _NUMBER_RE.fullmatch(token):
        return False
    # strconv.ParseFloat fails with ErrRange where a finite spelling overflows.
    return not (math.isinf(float(token)) and "n" not in token.lower())


def _go_int64_ok(token: str) -> bool:
    return bool(_INT64_RE.fullmatch(token)) and _INT64_MIN <= int(token) <= _INT64_MAX


def _go_help(raw: str) -> str:
    """expfmt readTokenUntilNewline(true): \\\\, \\n and \\" only; a lone final \\ is an error."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            out.append(_unescaped(raw[i + 1] if i + 1 < len(raw) else "\n", " in HELP"))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@dataclass
class _GoFamily:
    name: str
    line: int
    type: str | None = None
    help: str | None = None


_SlowRow = tuple[int, str, list[dict[str, str]], str, str | None]
_Event = tuple[int, int, str, str, str | None]  # line, order within the line, kind, name, rest
_SPLIT_SCHEMA: dict[str, pl.DataType] = {
    "line": pl.UInt32(),
    "name": pl.String(),
    "labels": pl.List(LABEL),
    "value_raw": pl.String(),
    "ts_raw": pl.String(),
    "value": pl.Float64(),
    "timestamp_seconds": pl.Float64(),
    "bad_value": pl.Boolean(),
    "bad_timestamp": pl.Boolean(),
    "reserved_label": pl.Boolean(),
    "repeated_label": pl.Boolean(),
}


@dataclass
class _TextParser(_Base):
    families: dict[str, _GoFamily] = field(default_factory=dict)

    def run(self) -> tuple[pl.DataFrame, pl.DataFrame, set[int]]:
        text = self.text
        if text and not text.endswith("\n") and text[text.rfind("\n") + 1 :].strip(" \t"):
            # A problem, but the line is not an error line: lenient mode keeps its sample.
            self.problems.add(
                text.count("\n") + 1,
                "missing_final_newline",
                "the last line has no newline; Prometheus rejects such a payload",
            )
        lines = _lines(text)
        fast_mask = lines.get_column("text").str.contains(_TEXT_LINE)
        if self.bad_lines:
            fast_mask = fast_mask & ~lines.get_column("line").is_in(self.bad_lines)
        fast = _split_text_lines(
            lines.hstack([fast_mask.alias("fast")]).lazy().filter(pl.col("fast")), "\\" in text
        ).collect()
        slow_mask = ~fast_mask
        slow = zip(
            lines.get_column("line").filter(slow_mask).to_list(),
            lines.get_column("text").filter(slow_mask).to_list(),
            strict=True,
        )
        fast_names = fast.get_column("name")
        first = fast_names.is_first_distinct()
        first_line: dict[str, int] = dict(
            zip(
                fast_names.filter(first).to_list(),
                fast.get_column("line").filter(first).to_list(),
                strict=True,
            )
        )
        events: list[_Event] = []
        slow_rows: list[_SlowRow] = []
        bad = set(self.bad_lines)
        for line, raw in slow:
            try:
                comment = _TEXT_COMMENT_RE.fullmatch(raw)
                if comment is not None:
                    keyword, name, rest = comment.groups()
                    events.append((line, 0, keyword, name, rest or None))
                    continue
                s = raw + "\n"
                i = _skip_blank(s, 0)
                if s[i] == "\n":
                    continue
                if s[i] == "#":
                    event = self._comment(s, i + 1)
                    if event is not None:
                        events.append((line, 0, *event))
                elif line in bad:
                    raise _SyntaxError("invalid_utf8", "the line holds bytes that are not UTF-8")
                else:
                    row = (line, *self._sample(s, i))
                    slow_rows.append(row)
                    first_line.setdefault(row[1], line)
                    first_line[row[1]] = min(first_line[row[1]], line)
            except _SyntaxError as problem:
                self.error(line, problem.reason, problem.message)

        if slow_rows:
            fast = pl.concat([fast, _slow_frame(slow_rows)]).sort("line")
        events.extend((line, 1, "sample", name, None) for name, line in first_line.items())
        events.sort(key=lambda event: (event[0], event[1]))
        resolved = {name: (family, kind) for name, family, kind in self._replay(events)}
        samples = self._check(_with_families(fast, resolved))
        return (
            pl.DataFrame([samples.get_column(c) for c in SAMPLES]),
            self._families(),
            self.error_lines,
        )

    def _comment(self, s: str, i: int) -> tuple[str, str, str | None] | None:
        """expfmt startComment: (keyword, family name, rest or None) when the line names one."""
        i = _skip_blank(s, i)
        if s[i] == "\n":
            return None
        keyword, i = _go_token(s, i)
        if s[i] == "\n" or keyword not in ("HELP", "TYPE"):
            return None
        i = _skip_blank(s, i)
        name, i = _go_name(s, i, metric=True)
        if s[i] == "\n":
            return None  # "# HELP name": no error, and no family is created
        if s[i] not in " \t":
            raise _SyntaxError("invalid_metric_name", f"invalid metric name in {keyword} line")
        i = _skip_blank(s, i)
        if s[i] == "\n":
            return keyword, name, None
        return keyword, name, s[i:-1]

    def _sample(self, s: str, i: int) -> tuple[str, list[dict[str, str]], str, str | None]:
        """A sample line the fast expression did not take, read as expfmt reads it."""
        name: str | None = None
        inside_braces = s[i] == "{"
        if not inside_braces:
            name, i = _go_name(s, i, metric=True)
            if not name:
                raise _SyntaxError("invalid_metric_name", f"invalid metric name at {s[i]!r}")
            i = _skip_blank(s, i)
        labels: list[dict[str, str]] = []
        if s[i] == "{":
            i += 1
            while True:
                i = _skip_blank(s, i)
                if s[i] == "}":
                    i = _skip_blank(s, i + 1)
                    break
                label, i = _go_name(s, i, metric=False)
                if not label:
                    raise _SyntaxError("invalid_label_name", f"invalid label name at {s[i]!r}")
                i = _skip_blank(s, i)
                if s[i] != "=":
                    if inside_braces and s[i] in ",}":
                        # {"metric.name", label="x"}: a bare (often quoted) name is the metric.
                        if name is not None:
                            raise _SyntaxError("invalid_metric_name", "metric name given twice")
                        name = label
                        if s[i] == ",":
                            i += 1
                            continue
                        i = _skip_blank(s, i + 1)
                        break
                    raise _SyntaxError(
                        "invalid_label", f"expected '=' after label name, found {_found(s[i])}"
                    )
                if label == "__name__":
                    raise _SyntaxError("reserved_label", 'label name "__name__" is reserved')
                i = _skip_blank(s, i + 1)
                if s[i] != '"':
                    raise _SyntaxError(
                        "invalid_label_value",
                        f"expected '\"' at start of label value, found {_found(s[i])}",
                    )
                value, i = _go_label_value(s, i + 1)
                labels.append({"name": label, "value": value})
                i = _skip_blank(s, i)
                if s[i] == ",":
                    i += 1
                    continue
                if s[i] == "}":
                    i = _skip_blank(s, i + 1)
                    break
                raise _SyntaxError("invalid_label", f"unexpected end of label value {value!r}")
        if name is None:
            raise _SyntaxError("invalid_metric_name", "the line names no metric")
        value_raw, i = _go_token(s, i)
        if not _go_float_ok(value_raw):
            raise _SyntaxError(
                "invalid_value", f"expected float as value, got {_clip(value_raw)!r}"
            )
        if s[i] == "\n":
            return name, labels, value_raw, None
        ts_raw, i = _go_token(s, _skip_blank(s, i))
        if not _go_int64_ok(ts_raw):
            raise _SyntaxError(
                "invalid_timestamp", f"expected integer as timestamp, got {_clip(ts_raw)!r}"
            )
        if s[i] != "\n":
            raise _SyntaxError(
                "trailing_characters", f"spurious string after timestamp: {_clip(s[i:-1])!r}"
            )
        return name, labels, value_raw, ts_raw

    def _resolve(self, name: str, line: int) -> _GoFamily:
        """expfmt setOrCreateCurrentMF: a _sum/_count (/_bucket) joins its summary (histogram)."""
        family = self.families.get(name)
        if family is not None:
            return family
        for suffixes, kind in (
            (("_count", "_sum"), "summary"),
            (("_count", "_sum", "_bucket"), "histogram"),
        ):
            for suffix in suffixes:
                if len(name) > len(suffix) and name.endswith(suffix):
                    parent = self.families.get(name[: -len(suffix)])
                    if parent is not None and parent.type == kind:
                        return parent
                    break
        family = _GoFamily(name, line)
        self.families[name] = family
        return family

    def _replay(self, events: list[_Event]) -> list[tuple[str, str, str]]:
        """Comments and first samples through expfmt's family rules: (name, family, type)."""
        resolved: list[tuple[str, str, str]] = []
        for line, _, kind, name, rest in events:
            family = self._resolve(name, line)
            if kind == "sample":
                if family.type is None:
                    family.type = "untyped"
                resolved.append((name, family.name, family.type))
            elif rest is None:
                continue
            elif kind == "HELP":
                if family.help is not None:
                    self.error(
                        line, "duplicate_help", f"second HELP line for metric name {family.name!r}"
                    )
                    continue
                try:
                    family.help = _go_help(rest)
                except _SyntaxError as problem:
                    self.error(line, problem.reason, problem.message)
            elif family.type is not None:
                self.error(
                    line,
                    "duplicate_type",
                    f"second TYPE line for metric name {family.name!r}, "
                    "or TYPE reported after samples",
                )
            elif (go_type := _GO_TYPES.get(rest.upper())) is None:
                self.error(line, "unknown_type", f"unknown metric type {_clip(rest)!r}")
            else:
                family.type = go_type
        return resolved

    def _families(self) -> pl.DataFrame:
        return pl.DataFrame(
            [(f.name, f.type or "untyped", f.help, None, f.line) for f in self.families.values()],
            schema=FAMILIES,
            orient="row",
        )

    def _check(self, samples: pl.DataFrame) -> pl.DataFrame:
        """Report the rule flags that fired, and the rules that need the family's type."""
        flags = (
            ("bad_value", "invalid_value", "expected float as value, got {} (out of range)"),
            ("bad_timestamp", "invalid_timestamp", "expected integer as timestamp, got {}"),
            ("reserved_label", "reserved_label", 'label name "__name__" is reserved{}'),
        )
        for flag, reason, template in flags:
            if samples.get_column(flag).any():
                shown = "ts_raw" if flag == "bad_timestamp" else "value_raw"
                for line, raw in samples.filter(pl.col(flag)).select("line", shown).iter_rows():
                    detail = "" if flag == "reserved_label" else raw
                    self.error(line, reason, template.format(detail))
        if samples.get_column("repeated_label").any():
            # expfmt leaves a summary's quantile and a histogram's le out of this check.
            repeated = samples.filter(pl.col("repeated_label"))
            for line, family, kind, labels in repeated.select(
                "line", "family", "type", "labels"
            ).iter_rows():
                exempt = {"summary": "quantile", "histogram": "le"}.get(kind)
                seen = [pair["name"] for pair in labels if pair["name"] != exempt]
                if len(seen) != len(set(seen)):
                    self.error(
                        line, "duplicate_label", f"duplicate label names for metric {family!r}"
                    )
        kinds = samples.get_column("type")
        for label, kind in (("quantile", "summary"), ("le", "histogram")):
            if not (kinds == kind).any():
                continue
            bounds = samples.filter(pl.col("type") == kind).select(
                "line",
                pl.col("labels")
                .list.eval(
                    pl.element()
                    .filter(pl.element().struct.field("name") == label)
                    .struct.field("value")
                )
                .alias("bounds"),
            )
            for line, values in bounds.iter_rows():
                bad = [value for value in values if not _go_float_ok(value)]
                if bad:
                    self.error(
                        line,
                        f"invalid_{label}",
                        f"expected float as value for {label!r} label, got {_clip(bad[0])!r}",
                    )
        return samples


def _slow_frame(rows: list[_SlowRow]) -> pl.DataFrame:
    """Rows read by _TextParser._sample in the columns of _split_text_lines."""
    records = []
    for line, name, labels, value_raw, ts_raw in rows:
        names = [pair["name"] for pair in labels]
        records.append(
            (
                line,
                name,
                labels,
                value_raw,
                ts_raw,
                float(value_raw),
                None if ts_raw is None else int(ts_raw) / 1000.0,
                False,
                False,
                False,
                len(names) != len(set(names)),
            )
        )
    return pl.DataFrame(records, schema=_SPLIT_SCHEMA, orient="row")


def _with_families(samples: pl.DataFrame, resolved: dict[str, tuple[str, str]]) -> pl.DataFrame:
    """Add family and type from the replay, by each name's rank among the distinct names."""
    names = samples.get_column("name")
    if names.len() == 0:
        return samples.with_columns(
            pl.lit(None, pl.String).alias("family"), pl.lit(None, pl.String).alias("type")
        )
    distinct = names.unique().sort().to_list()
    rank = names.rank("dense").cast(pl.Int64) - 1
    family = pl.Series("family", [resolved[n][0] for n in distinct], pl.String).gather(rank)
    kind = pl.Series("type", [resolved[n][1] for n in distinct], pl.String).gather(rank)
    return samples.hstack([family, kind])


# --- OpenMetrics 1.0 -------------------------------------------------------------------------

_OM_TYPE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "histogram": ("_count", "_sum", "_bucket", "_created"),
    "gaugehistogram": ("_gcount", "_gsum", "_bucket"),
    "info": ("_info",),
}
_OM_TYPES = {
    "counter",
    "gauge",
    "summary",
    "histogram",
    "gaugehistogram",
    "unknown",
    "info",
    "stateset",
}
_HISTOGRAMS = ["histogram", "gaugehistogram"]
_EXEMPLAR_MAX_CHARS = 128


@dataclass
class _OMFamily:
    name: str
    line: int
    type: str | None = None
    help: str | None = None
    unit: str | None = None
    has_samples: bool = False
    allowed: tuple[str, ...] = ()


@dataclass
class _HistogramGroup:
    """client_python _check_histogram state for one group of one histogram."""

    count: float | None = None
    bucket: float | None = None
    value: float = 0.0
    has_sum: bool = False
    has_gsum: bool = False
    negative_buckets: bool = False
    negative_gsum: bool = False

    def problems(self) -> list[str]:
        found = []
        if self.bucket != math.inf:
            found.append("+Inf bucket missing")
        if self.count is not None and self.value != self.count:
            found.append("count does not match the +Inf bucket")
        if self.has_sum and self.count is None:
            found.append("_sum without _count")
        if self.has_gsum and self.count is None:
            found.append("_gsum without _gcount")
        if not (self.has_sum or self.has_gsum) and self.count is not None:
            found.append("_count without _sum")
        if self.negative_buckets and self.has_sum:
            found.append("_sum with negative buckets")
        if not self.negative_buckets and self.negative_gsum:
            found.append("negative _gsum without negative buckets")
        return found


@dataclass
class _OpenMetricsParser(_Base):
    families: list[_OMFamily] = field(default_factory=list)

    def run(self) -> tuple[pl.DataFrame, pl.DataFrame, set[int]]:
        lines = _lines(self.text)
        name = pl.col("name")
        if self.bad_lines:
            name = pl.when(pl.col("line").is_in(self.bad_lines)).then(None).otherwise(name)
        matched = (
            lines.lazy()
            .with_columns(pl.col("text").str.extract_groups(_OM_SAMPLE).alias("m"))
            .unnest("m")
            .with_columns(name.alias("name"))
            .with_columns(
                (
                    pl.col("name").is_not_null()
                    & pl.col("name").ne_missing(pl.col("name").shift(1))
                ).alias("run_start")
            )
            .collect()
        )
        rest = matched.filter(pl.col("name").is_null())
        eof = (lines.get_column("text") == "# EOF").arg_true()
        line_count = lines.height
        if eof.len() == 0:
            self.error(line_count, "missing_eof", "the payload does not end with '# EOF'")
            end = line_count + 1
        else:
            end = int(eof[0]) + 1
            if end < line_count:
                self.error(end + 1, "text_after_eof", "text follows '# EOF'")

        events: list[_Event] = []
        for line, raw in rest.filter(pl.col("line") < end).select("line", "text").iter_rows():
            if line in self.bad_lines:
                self.error(line, "invalid_utf8", "the line holds bytes that are not UTF-8")
            elif raw == "":
                self.error(line, "blank_line", "blank lines are not allowed in OpenMetrics")
            elif raw.startswith("#"):
                metadata = _OM_METADATA_RE.fullmatch(raw)
                if metadata is None:
                    self.error(
                        line,
                        "invalid_metadata",
                        f"not a HELP, TYPE or UNIT line, nor '# EOF': {_clip(raw)!r}",
                    )
                else:
                    kind, family, text = metadata.groups()
                    events.append((line, 0, kind, family, text))
            else:
                self.error(line, "invalid_sample", _om_diagnosis(raw))

        samples = matched.filter(pl.col("name").is_not_null() & (pl.col("line") < end))
        starts = samples.filter(pl.col("run_start")).select("line", "name")
        events.extend((line, 0, "sample", sample, None) for line, sample in starts.iter_rows())
        events.sort(key=lambda event: event[0])
        run_family = self._replay(events)
        runs = pl.LazyFrame(
            [
                (run, self.families[index].name, self.families[index].type or "unknown")
                for run, index in enumerate(run_family)
            ],
            schema={"run": pl.UInt32, "family": pl.String, "type": pl.String},
            orient="row",
        )
        samples_query = (
            samples.lazy()
            .with_columns((pl.col("run_start").cum_sum() - 1).cast(pl.UInt32).alias("run"))
            .join(runs, on="run", how="left", maintain_order="left")
            .with_columns(
                _labels_from_pairs(pl.col("labels"), _OM_PAIR_OPEN, "\\" in self.text).alias(
                    "labels"
                ),
                pl.col("value").alias("value_raw"),
                pl.col("value").cast(pl.Float64, strict=False),
                pl.col("ts").cast(pl.Float64, strict=False).alias("timestamp_seconds"),
            )
        )
        checked = self._check(samples_query)
        return checked.select(list(SAMPLES)), self._families(), self.error_lines

    def _close(self, family: _OMFamily, seen: set[str]) -> None:
        """client_python build_metric: clashing names and unit rules, when a family ends."""
        kind = family.type or "unknown"
        for suffix in sorted({*_OM_TYPE_SUFFIXES.get(kind, ()), ""}):
            if family.name + suffix in seen:
                self.error(family.line, "clashing_name", f"{family.name + suffix!r} is used twice")
            seen.add(family.name + suffix)
        if family.unit and not family.name.endswith("_" + family.unit):
            self.error(
                family.line,
                "unit_mismatch",
                f"family {family.name!r} does not end with its unit {family.unit!r}",
            )
        if family.unit and kind in ("info", "stateset"):
            self.error(family.line, "unit_mismatch", f"a {kind} family cannot have a unit")

    def _replay(self, events: list[_Event]) -> list[int]:
        """Metadata and runs of samples through the family rules; the family of each run."""
        seen: set[str] = set()
        current: _OMFamily | None = None
        run_family: list[int] = []
        for line, _, kind, name, rest in events:
            if kind == "sample":
                if current is None or name not in current.allowed:
                    if current is not None:
                        self._close(current, seen)
                    current = _OMFamily(name, line, type="unknown", allowed=(name,))
                    self.families.append(current)
                current.has_samples = True
                run_family.append(len(self.families) - 1)
                continue
            if current is not None and name == current.name and current.has_samples:
                self.error(line, "metadata_after_samples", f"{kind} for {name!r} after its samples")
                continue
            if current is None or name != current.name:
                if current is not None:
                    self._close(current, seen)
                current = _OMFamily(name, line, allowed=(name,))
                self.families.append(current)
            text = rest or ""
            if kind == "HELP":
                if current.help is not None:
                    self.error(line, "duplicate_help", f"second HELP line for {name!r}")
                else:
                    current.help = _unescape(text)
            elif kind == "UNIT":
                if current.unit is not None:
                    self.error(line, "duplicate_unit", f"second UNIT line for {name!r}")
                else:
                    current.unit = text
            elif current.type is not None:
                self.error(line, "duplicate_type", f"second TYPE line for {name!r}")
            elif text not in _OM_TYPES:
                self.error(line, "unknown_type", f"unknown metric type {_clip(text)!r}")
                current.type = "unknown"
            else:
                current.type = text
                current.allowed = tuple(name + s for s in _OM_TYPE_SUFFIXES.get(text, ("",)))
        if current is not None:
            self._close(current, seen)
        return run_family

    def _families(self) -> pl.DataFrame:
        return pl.DataFrame(
            [(f.name, f.type or "unknown", f.help, f.unit, f.line) for f in self.families],
            schema=FAMILIES,
            orient="row",
        )

    def _check(self, samples: pl.LazyFrame) -> pl.DataFrame:
        names = _label_names()
        kind, value, suffix = pl.col("type"), pl.col("value"), pl.col("suffix")
        kinds = {family.type or "unknown" for family in self.families}
        bounds = (
            [label_value("le"), label_value("quantile")]
            if kinds & {"histogram", "gaugehistogram", "summary"}
            else [pl.lit(None, pl.String).alias("le"), pl.lit(None, pl.String).alias("quantile")]
        )
        samples = samples.with_columns(
            pl.col("name").str.slice(pl.col("family").str.len_chars()).alias("suffix"),
            *bounds,
        )
        integral = value.is_finite() & (value == value.floor())
        le = pl.col("le").cast(pl.Float64, strict=False)
        quantile = pl.col("quantile").cast(pl.Float64, strict=False)
        number = f"^{_NUMBER}$"
        rules: list[_Rule] = [
            (
                names.list.n_unique() < names.list.len(),
                "duplicate_label",
                _message("duplicate label names for {}", pl.col("name")),
            ),
            (
                names.list.contains("__name__"),
                "reserved_label",
                pl.lit('label name "__name__" is reserved'),
            ),
            (
                (kind == "stateset") & ~names.list.contains(pl.col("family")),
                "invalid_stateset",
                _message("stateset sample lacks its label {}", pl.col("family")),
            ),
            (
                (kind == "stateset") & ~value.is_in([0.0, 1.0]),
                "invalid_stateset",
                _message("stateset value must be 0 or 1, got {}", pl.col("value_raw")),
            ),
            (
                (kind == "info") & (value != 1.0),
                "invalid_info",
                _message("info value must be 1, got {}", pl.col("value_raw")),
            ),
            (
                (suffix == "_bucket")
                & (
                    pl.col("le").is_null()
                    | ~pl.col("le").str.contains(number)
                    | le.is_nan()
                    | ((le == math.inf) & (pl.col("le") != "+Inf"))
                ),
                "invalid_le",
                _message(
                    "a bucket needs a canonical float le label, got {}",
                    pl.col("le").fill_null("none"),
                ),
            ),
            (
                suffix.is_in(["_bucket", "_count", "_gcount"]) & ~integral,
                "invalid_count",
                _message("{} must be an integer, got {}", pl.col("name"), pl.col("value_raw")),
            ),
            (
                (kind == "summary")
                & (suffix == "")
                & (
                    pl.col("quantile").is_null()
                    | ~pl.col("quantile").str.contains(number)
                    | ~quantile.is_between(0.0, 1.0)
                ),
                "invalid_quantile",
                _message(
                    "a quantile label must lie within [0, 1], got {}",
                    pl.col("quantile").fill_null("none"),
                ),
            ),
            (
                (kind == "summary") & (suffix == "") & (value < 0.0),
                "invalid_counter_value",
                _message("quantile values cannot be negative, got {}", pl.col("value_raw")),
            ),
            (
                suffix.is_in(["_total", "_sum", "_count", "_bucket", "_gcount", "_gsum"])
                & value.is_nan(),
                "invalid_counter_value",
                _message("{} cannot be NaN", pl.col("name")),
            ),
            (
                suffix.is_in(["_total", "_sum", "_count", "_bucket", "_gcount"]) & (value < 0.0),
                "invalid_counter_value",
                _message("{} cannot be negative, got {}", pl.col("name"), pl.col("value_raw")),
            ),
            (
                pl.col("exvalue").is_not_null()
                & ~(
                    (kind.is_in(_HISTOGRAMS) & pl.col("name").str.ends_with("_bucket"))
                    | ((kind == "counter") & pl.col("name").str.ends_with("_total"))
                ),
                "invalid_exemplar",
                _message("exemplars belong on buckets and counters only, not {}", pl.col("name")),
            ),
        ]
        typed = {
            "invalid_stateset": "stateset" in kinds,
            "invalid_info": "info" in kinds,
            "invalid_le": bool(kinds & {"histogram", "gaugehistogram"}),
            "invalid_quantile": "summary" in kinds,
        }
        rules = [rule for rule in rules if typed.get(rule[1], True)]
        collected = self.apply_rules(samples, rules)
        exemplars = collected.filter(pl.col("exvalue").is_not_null()).select("line", "exlabels")
        for line, raw in exemplars.iter_rows():
            pairs = _OM_PAIR_RE.findall(raw or "")
            if len({label for label, _ in pairs}) != len(pairs):
                self.error(line, "invalid_exemplar", "duplicate exemplar label names")
            if sum(len(label) + len(_unescape(v)) for label, v in pairs) > _EXEMPLAR_MAX_CHARS:
                self.error(line, "invalid_exemplar", "exemplar labels exceed 128 characters")
        grouped = self._check_groups(collected)
        self._check_histograms(grouped)
        return grouped

    def _check_groups(self, samples: pl.DataFrame) -> pl.DataFrame:
        """Metric grouping and timestamp order inside each group of one family."""
        excluded = (
            (
                (pl.col("type") == "summary")
                & (pl.col("suffix") == "")
                & (pl.col("lname") == "quantile")
            )
            | ((pl.col("type") == "stateset") & (pl.col("lname") == pl.col("family")))
            | (
                pl.col("type").is_in(_HISTOGRAMS)
                & (pl.col("suffix") == "_bucket")
                & (pl.col("lname") == "le")
            )
            | (pl.col("type") == "info")
        )
        indexed = samples.lazy().with_row_index("row")
        keys = (
            indexed.select("row", "family", "type", "suffix", "labels")
            .explode("labels")
            .with_columns(
                pl.col("labels").struct.field("name").alias("lname"),
                pl.col("labels").struct.field("value").alias("lvalue"),
            )
            .filter(pl.col("lname").is_not_null() & ~excluded)
            .sort("row", "lname")
            .group_by("row", maintain_order=True)
            .agg(pl.concat_str("lname", "lvalue", separator="\x00").str.join("\x01").alias("group"))
        )
        same_group = (pl.col("family") == pl.col("family").shift(1)) & (
            pl.col("group") == pl.col("group").shift(1)
        )
        grouped = (
            indexed.join(keys, on="row", how="left", maintain_order="left")
            .sort("row")
            .with_columns(pl.col("group").fill_null(""))
            .with_columns(same_group.fill_null(False).alias("same_group"))
        )
        previous = pl.col("timestamp_seconds").shift(1)
        # A run of a group that starts where its (family, group) was seen before reopens it.
        reopened = ~pl.struct("family", "group").is_first_distinct()
        rules: list[_Rule] = [
            (
                ~pl.col("same_group") & reopened,
                "invalid_grouping",
                _message("samples of {} are not grouped together", pl.col("name")),
            ),
            (
                pl.col("same_group")
                & (pl.col("timestamp_seconds").is_null() != previous.is_null()),
                "timestamp_order",
                pl.lit("a group mixes samples with and without timestamps"),
            ),
            (
                pl.col("same_group")
                & (pl.col("type") != "info")
                & (pl.col("timestamp_seconds") < previous),
                "timestamp_order",
                pl.lit("timestamps went backwards within a group"),
            ),
        ]
        return self.apply_rules(grouped, rules)

    def _check_histograms(self, samples: pl.DataFrame) -> None:
        """client_python _check_histogram: bucket order, the +Inf bucket, count and sum rules."""
        if not any(family.type in _HISTOGRAMS for family in self.families):
            return
        rows = samples.filter(pl.col("type").is_in(_HISTOGRAMS)).select(
            "line", "family", "suffix", "le", "value", "timestamp_seconds", "group"
        )
        current: tuple[str, str, float | None] | None = None
        group = _HistogramGroup()
        last_line = 0
        for line, family, suffix, le_raw, value, timestamp, labels in rows.iter_rows():
            key = (family, labels, timestamp)
            if key != current:
                if current is not None:
                    self._histogram_problems(last_line, current[0], group)
                current, group = key, _HistogramGroup()
            last_line = line
            if suffix == "_bucket":
                if le_raw is None or not _NUMBER_RE.fullmatch(le_raw):
                    continue  # reported as invalid_le
                bound = float(le_raw)
                group.negative_buckets |= bound < 0
                if group.bucket is not None and bound <= group.bucket:
                    self.error(line, "invalid_histogram", f"{family}: buckets out of order")
                if value < group.value:
                    self.error(line, "invalid_histogram", f"{family}: bucket values decrease")
                group.bucket, group.value = bound, value
            elif suffix in ("_count", "_gcount"):
                group.count = value
            elif suffix == "_sum":
                group.has_sum = True
            elif suffix == "_gsum":
                group.has_gsum = True
                group.negative_gsum |= value < 0
        if current is not None:
            self._histogram_problems(last_line, current[0], group)

    def _histogram_problems(self, line: int, family: str, group: _HistogramGroup) -> None:
        for problem in group.problems():
            self.error(line, "invalid_histogram", f"{family}: {problem}")


def _om_diagnosis(raw: str) -> str:
    """A short reason why a line is not an OpenMetrics sample."""
    name = re.match(_METRIC_NAME, raw)
    if name is None:
        return f"invalid metric name at the start of {_clip(raw)!r}"
    rest = raw[name.end() :]
    if rest.startswith("{"):
        labels = re.match(rf"\{{{_OM_LABELS}\}}", rest)
        if labels is None:
            return f"invalid label set in {_clip(raw)!r}"
        rest = rest[labels.end() :]
    if not rest.startswith(" "):
        return f"expected a single space before the value in {_clip(raw)!r}"
    value = rest[1:].split(" ", 1)[0]
    if not _NUMBER_RE.fullmatch(value):
        return f"invalid value {_clip(value)!r}"
    return f"invalid timestamp or exemplar in {_clip(raw)!r}"
