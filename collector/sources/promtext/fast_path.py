"""The text format's fast path: lines of the common form ``name{a="b",...} value [timestamp]``
cut into sample columns with vectorized Polars string operations.

``TEXT_LINE`` says which lines qualify; ``split_text_lines`` reads them. Every other line takes
the careful character-by-character path of ``collector.sources.promtext.text``.
"""

from __future__ import annotations

import functools

import polars as pl

from collector.sources.promtext.shared import (
    LABEL,
    LABEL_NAME,
    METRIC_NAME,
    NUMBER,
    labels_from_pairs,
)

_TEXT_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
_TEXT_PAIR = rf"{LABEL_NAME}={_TEXT_VALUE}"
_TEXT_PAIR_OPEN = rf'{LABEL_NAME}="(?:[^"\\\n]|\\[\\"n])*'  # without the closing quote
# The common text line. Whatever it accepts expfmt accepts with the same meaning; what it does not
# match is read by TextParser._sample, which follows expfmt state by state. It has no capture
# groups, so it runs on a DFA; split_text_lines then cuts matching lines with plain string ops.
TEXT_LINE = (
    rf"^{METRIC_NAME}(?:\{{(?:{_TEXT_PAIR}(?:,{_TEXT_PAIR})*,?)?\}})? {NUMBER}(?: [+-]?[0-9]+)?$"
)
# The value and optional timestamp at the end of a matching line: one or two tokens free of
# '"' and '}', which no space inside a label set can be followed by up to the end of the line.
_TEXT_TAIL = r' [^ }"]+(?: [^ }"]+)?$'

SPLIT_SCHEMA: dict[str, pl.DataType] = {
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


def split_text_lines(lines: pl.LazyFrame, escapes: bool) -> pl.LazyFrame:
    """Lines matching TEXT_LINE cut into sample columns, with per-line rule flags.

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
    """The expressions of split_text_lines, built once per process.

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
    labels = labels_from_pairs(block, _TEXT_PAIR_OPEN, escapes)
    names = pl.col("labels").list.eval(pl.element().struct.field("name"))
    value_raw, ts_raw = pl.col("value_raw"), pl.col("ts_raw")
    return (
        [
            text.str.extract(rf"^{METRIC_NAME}", 0).alias("name"),
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
