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

Layout. ``shared`` holds the frame schemas, the Exposition and what both grammars share;
``fast_path`` the vectorized reading of common text lines; ``text`` the expfmt rules and the
careful path; ``openmetrics`` the OpenMetrics parser. This module picks the parser.
"""

from __future__ import annotations

import polars as pl

from collector.sources.promtext.openmetrics import OpenMetricsParser
from collector.sources.promtext.shared import (
    ACCEPT_HEADER,
    FAMILIES,
    LABEL,
    OPENMETRICS_CONTENT_TYPE,
    PARSE_PROBLEMS,
    SAMPLES,
    TEXT_CONTENT_TYPE,
    Exposition,
    Format,
    Problems,
    decode,
    label_value,
    message_expr,
)
from collector.sources.promtext.text import TextParser

__all__ = [
    "ACCEPT_HEADER",
    "FAMILIES",
    "LABEL",
    "OPENMETRICS_CONTENT_TYPE",
    "PARSE_PROBLEMS",
    "SAMPLES",
    "TEXT_CONTENT_TYPE",
    "Exposition",
    "Format",
    "as_problems",
    "format_for_content_type",
    "label_value",
    "parse_exposition",
]


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
    problems = Problems(max_problems)
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
    text, bad_lines = decode(payload)
    parser = TextParser if format == "text" else OpenMetricsParser
    samples, families, error_lines = parser(text, bad_lines, problems).run()
    if problems.count:
        if strict:
            samples = samples.clear()
        elif error_lines:
            samples = samples.filter(~pl.col("line").is_in(sorted(error_lines)))
    return Exposition(samples, problems.frame(), families, format, strict)


def as_problems(exposition: Exposition, source: str, target: str) -> pl.DataFrame:
    """Parse problems in the collector.schemas.PROBLEMS shape (location ``line N``)."""
    return exposition.problems.select(
        pl.lit(source, pl.String).alias("source"),
        pl.lit(target, pl.String).alias("target"),
        pl.when(pl.col("line") > 0)
        .then(message_expr("line {}", pl.col("line")))
        .otherwise(pl.lit("payload"))
        .alias("location"),
        pl.col("reason"),
        pl.col("message"),
    )
