"""Many text payloads parsed in few ``parse_exposition`` calls, with exactly the result of one
call each: payloads of one skeleton share a call."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence

import numpy as np
import polars as pl

from collector.sources.promtext import (
    PARSE_PROBLEMS,
    TEXT_CONTENT_TYPE,
    Exposition,
    format_for_content_type,
    parse_exposition,
)

DEFAULT_MAX_BATCH_LINES = 500_000


def parse_many(
    payloads: Sequence[tuple[str | bytes, str | None]],
    *,
    max_batch_lines: int = DEFAULT_MAX_BATCH_LINES,
) -> list[Exposition]:
    """``parse_exposition(payload, content_type)`` for each ``(payload, content_type)``, in
    fewer calls: every Exposition is equal to the one that call returns alone (lenient, default
    ``max_problems``).

    How. Text payloads that are valid UTF-8 and end with a newline are grouped by skeleton:
    the payload with each sample line cut to its metric name, comment lines kept whole. A
    group is parsed as one payload: the first member whole, the others without their comment
    lines (so that no family is declared twice), and samples are split back by line and given
    their own line numbers. Why that is exact: a text payload's family rules (HELP/TYPE
    order, types, suffixes) depend only on its comment lines and on where each sample name
    first appears, which equal skeletons share, so the first member's declarations give the
    others exactly the families and types their own would; every other rule is read line by
    line. A member with a problem of its own, every member when the first has one, and
    anything else (OpenMetrics, whose ``# EOF`` ends a payload, bytes that are not UTF-8, a
    missing final newline, a payload alone in its group) are parsed alone.
    ``max_batch_lines`` bounds one call's size.
    """
    results: list[Exposition | None] = [None] * len(payloads)
    positions: list[int] = []
    texts: list[str] = []
    for position, (payload, content_type) in enumerate(payloads):
        text = _batchable_text(payload, content_type)
        if text is None:
            results[position] = parse_exposition(payload, content_type)
        else:
            positions.append(position)
            texts.append(text)
    for chunk in _skeleton_chunks(texts, max_batch_lines):
        parsed = _parse_chunk([texts[k] for k in chunk])
        for k, exposition in zip(chunk, parsed, strict=True):
            results[positions[k]] = exposition
    return [exposition for exposition in results if exposition is not None]


def _batchable_text(payload: str | bytes, content_type: str | None) -> str | None:
    if format_for_content_type(content_type) != "text":
        return None
    if isinstance(payload, bytes):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return None
    else:
        text = payload
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: the parser reports those lines
                return None
    return text if text.endswith("\n") else None


def _skeleton_chunks(texts: list[str], max_batch_lines: int) -> Iterator[list[int]]:
    """Indexes into ``texts``: one list per parse call, members of one skeleton, in order."""
    if not texts:
        return
    groups: dict[str, list[int]] = {}
    for k, text in enumerate(texts):
        groups.setdefault(_skeleton(text), []).append(k)
    for group in groups.values():
        lines_each = texts[group[0]].count("\n")  # equal skeletons have equal line counts
        per_call = max(1, max_batch_lines // max(1, lines_each))
        for start in range(0, len(group), per_call):
            yield group[start : start + per_call]


def _skeleton(text: str) -> str:
    """The payload with each sample line cut before its first brace, blank or tab (its metric
    name); comment lines, and lines that start with a brace or a blank, stay whole."""
    return "\n".join(
        [
            line
            if line[:1] == "#"
            else (line.partition("{")[0].partition(" ")[0].partition("\t")[0] or line)
            for line in text.split("\n")
        ]
    )


def _parse_chunk(texts: list[str]) -> list[Exposition]:
    """Payloads of one skeleton, each parsed as parse_exposition parses it alone."""
    if len(texts) == 1:
        return [parse_exposition(texts[0], TEXT_CONTENT_TYPE)]
    first_lines = texts[0].split("\n")[:-1]
    # The lines the other members keep: all but their comment lines, which are the first
    # member's (comment lines are part of the skeleton, in place). 0-based.
    kept = [n for n, line in enumerate(first_lines) if not line.lstrip(" \t").startswith("#")]
    if not kept:
        return [parse_exposition(text, TEXT_CONTENT_TYPE) for text in texts]
    take = operator.itemgetter(*kept, kept[0])  # two or more indexes: always a tuple
    members: list[str] = []
    for text in texts[1:]:
        lines = text.split("\n")
        if len(lines) != len(first_lines) + 1:  # not of one skeleton after all
            return [parse_exposition(text, TEXT_CONTENT_TYPE) for text in texts]
        members.append("\n".join(take(lines)[:-1]))
        members.append("\n")
    kept_lines = np.array(kept, dtype=np.int64) + 1  # as the parser counts
    whole = parse_exposition("".join([texts[0], *members]), TEXT_CONTENT_TYPE)
    # payload p holds the batch's lines offsets[p] + 1 .. offsets[p + 1]
    offsets = np.cumsum([0, len(first_lines), *[len(kept)] * (len(texts) - 1)])
    problem_lines = whole.problems.get_column("line").to_numpy()
    if (problem_lines == 0).any():  # a payload-wide problem (too many problems): no owner
        return [parse_exposition(text, TEXT_CONTENT_TYPE) for text in texts]
    troubled = set((np.searchsorted(offsets, problem_lines, side="left") - 1).tolist())
    if 0 in troubled:  # the first member's declarations are everyone's: trust none
        return [parse_exposition(text, TEXT_CONTENT_TYPE) for text in texts]
    samples = whole.samples
    sample_lines = samples.get_column("line").to_numpy().astype(np.int64)
    if sample_lines.size and not bool((np.diff(sample_lines) >= 0).all()):
        samples = samples.sort("line", maintain_order=True)
        sample_lines = samples.get_column("line").to_numpy().astype(np.int64)
    bounds = np.searchsorted(sample_lines, offsets, side="right")
    families = whole.families.filter(pl.col("line") <= len(first_lines))
    no_problems = pl.DataFrame(schema=PARSE_PROBLEMS)
    results = [Exposition(samples.slice(0, int(bounds[1])), no_problems, families, "text", False)]
    for p, text in enumerate(texts[1:], 1):
        if p in troubled:
            results.append(parse_exposition(text, TEXT_CONTENT_TYPE))
            continue
        start, end = int(bounds[p]), int(bounds[p + 1])
        original = kept_lines[sample_lines[start:end] - offsets[p] - 1]
        own = samples.slice(start, end - start).with_columns(
            pl.Series("line", original, dtype=pl.UInt32)
        )
        results.append(Exposition(own, no_problems, families, "text", False))
    return results
