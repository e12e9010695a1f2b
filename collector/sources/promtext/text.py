"""Prometheus text format 0.0.4, read as prometheus/common ``expfmt.TextParser`` reads it.

Lines the fast path takes (``collector.sources.promtext.fast_path``) are read in bulk; comments,
uncommon spellings and invalid lines are read here character by character, following expfmt
state by state, and the family rules replay the comment lines and each name's first sample.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import polars as pl

from collector.sources.promtext.fast_path import SPLIT_SCHEMA, TEXT_LINE, split_text_lines
from collector.sources.promtext.shared import (
    FAMILIES,
    METRIC_NAME,
    NUMBER_RE,
    SAMPLES,
    Event,
    ParserBase,
    clip,
    lines_frame,
)

_INT64_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# The common HELP/TYPE line; anything else starting with '#' takes the careful path.
_TEXT_COMMENT_RE = re.compile(rf"[ \t]*#[ \t]*(HELP|TYPE)[ \t]+({METRIC_NAME})[ \t]+(.*)")

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
    if not NUMBER_RE.fullmatch(token):
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


@dataclass
class TextParser(ParserBase):
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
        lines = lines_frame(text)
        fast_mask = lines.get_column("text").str.contains(TEXT_LINE)
        if self.bad_lines:
            fast_mask = fast_mask & ~lines.get_column("line").is_in(self.bad_lines)
        fast = split_text_lines(
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
        events: list[Event] = []
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
            raise _SyntaxError("invalid_value", f"expected float as value, got {clip(value_raw)!r}")
        if s[i] == "\n":
            return name, labels, value_raw, None
        ts_raw, i = _go_token(s, _skip_blank(s, i))
        if not _go_int64_ok(ts_raw):
            raise _SyntaxError(
                "invalid_timestamp", f"expected integer as timestamp, got {clip(ts_raw)!r}"
            )
        if s[i] != "\n":
            raise _SyntaxError(
                "trailing_characters", f"spurious string after timestamp: {clip(s[i:-1])!r}"
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

    def _replay(self, events: list[Event]) -> list[tuple[str, str, str]]:
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
                self.error(line, "unknown_type", f"unknown metric type {clip(rest)!r}")
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
                        f"expected float as value for {label!r} label, got {clip(bad[0])!r}",
                    )
        return samples


def _slow_frame(rows: list[_SlowRow]) -> pl.DataFrame:
    """Rows read by TextParser._sample in the columns of split_text_lines."""
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
    return pl.DataFrame(records, schema=SPLIT_SCHEMA, orient="row")


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
