"""Source ``prometheus``: scrape Prometheus text and OpenMetrics targets over HTTP(S).

The targets are the exporters an operator already runs: dcgm-exporter, node_exporter,
ipmi_exporter, neuron-monitor's Prometheus companion, Kepler. ``scrape_all(targets, now)`` reads
every target once and hands back ``schemas.READINGS`` and ``schemas.PROBLEMS`` frames (through
``promtext.parse_exposition`` and ``exporter_maps.readings_from_exposition``) and a health frame
with one row per target. From dcgm-exporter's line::

    DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-20c5...",Hostname="424773df46e0"} 8.969000

comes the reading, and the target's health row::

    source="prometheus" target="http://10.0.7.21:9400/metrics" host="424773df46e0"
    device="GPU-20c5..." device_kind="accelerator" metric="power_watts" value=8.969
    unit="watts" estimated=false timestamp_seconds=<now>

    target="http://10.0.7.21:9400/metrics" exporter="dcgm" up=1 duration_seconds=0.004
    samples=304 problems=0 last_success_seconds=<now>

Degrade, never die. A target that refuses the connection, times out, answers an HTTP error, a
Content-Type this parser cannot read (protobuf, JSON, HTML) or a body over its size limit costs
only its own data: it is ``up`` 0 with one problem naming the reason, and the call goes on.
Problem reasons from the HTTP side: ``connect_error``, ``tls_error``, ``timeout``,
``read_error`` (the connection broke mid-answer), ``http_status``, ``content_type``,
``too_large``, ``headers_missing`` (an environment variable a header needs is not set),
``scrape_error`` (a bug met on one target; logged with its traceback). After parsing: the
parser's own reasons (location ``line N``; promtext reads leniently, so a bad line costs that
line), the exporter maps' (``not_supported``, ``not_finite``, ``missing_identity``,
``duplicate``), ``unknown_exporter`` (``exporter: auto`` found no known names) and ``parse`` /
``map_error`` (the parser or the map failed on a payload: ``up`` 0, logged).

Time bounds. Each target has ``timeout_seconds`` for its whole request, body included
(``asyncio.timeout``; httpx's own timeouts bound single socket operations, so a server that
drips a byte a second would outlive them). The call has ``deadline_seconds`` for the network
phase: a target still unanswered then is cancelled and reported (``timeout``), and the call
returns with everything else. What arrived is parsed as it arrives (below), so the call ends
shortly after its deadline, however long a target hangs.

HTTP client. At most ``max_concurrency`` targets are read at once (a semaphore), and at most
``max_connections_per_origin`` per origin (an ipmi_exporter serving many ``?target=`` URLs
is one origin). ``ScrapeClients`` keeps one ``httpx.AsyncClient`` per origin and TLS setting;
targets on one origin share its pool and keep-alive connections within a call, and a
``Scraper`` keeps the clients open between calls, so a target's connection is reused from one
cycle to the next, as Prometheus does. One client for all targets would be simpler, but
httpcore's pool scans every connection and queued request at each assignment, which at 64
requests in flight doubles the cost of HTTP (2,000 loopback targets: 4.3 s a cycle against
2.2 s with a client per origin; bench/bench_scrape.py). TLS is
verified unless ``tls_verify`` is false; ``ca_bundle`` names the CA. Proxy variables from the
environment are ignored (exporters sit on the management network). Header values (a bearer
token) come only from environment variables named in ``headers_env``; a URL with user info is
refused.

Throughput. Parsed one call per payload, parsing costs about three times what fetching does
(an 8-GPU dcgm-exporter payload: 3.7 ms against 1.1 ms), and most of a call is fixed cost.
``parse_many`` parses the text payloads that share a skeleton (the same comment lines and
sample names, line by line: one exporter version on one hardware type) in one
``parse_exposition`` call, about four times cheaper per payload, with exactly the result of
one call each (see its docstring). Batches of ``batch_targets`` payloads
are parsed and mapped on worker threads (Polars releases the GIL) while the event loop is
still fetching, and the samples of a batch are mapped in one ``readings_from_exposition``
call per exporter.

``Scraper(targets).scrape(now)`` is the synchronous entry point for the pipeline's thread: it
runs ``scrape_all`` to completion on an event loop of its own (``asyncio.Runner``, which is
``asyncio.run`` with a loop that outlives one call, so that the clients do too) and remembers
each target's last success for the health frame's ``last_success_seconds``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import operator
import os
import re
import ssl
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx
import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector import schemas
from collector.sources.base import ClosedOnExit
from collector.sources.exporter_maps import EXPORTERS, detect_exporter, readings_from_exposition
from collector.sources.http_errors import tls_failure
from collector.sources.promtext import (
    ACCEPT_HEADER,
    PARSE_PROBLEMS,
    TEXT_CONTENT_TYPE,
    Exposition,
    as_problems,
    format_for_content_type,
    parse_exposition,
)

log = logging.getLogger(__name__)

# httpcore asks for sniffio on every request (``import sniffio`` inside a function). Where the
# package is absent that import fails each time after a search of sys.path, which costs about a
# quarter of a request's CPU. A None entry makes the failing import immediate, with the same
# outcome (httpcore and anyio then assume asyncio, which is what runs here).
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

SOURCE = "prometheus"
AUTO = "auto"
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
DEFAULT_DEADLINE_SECONDS = 10.0
USER_AGENT = "gigawatt-scrape/0.1"

TARGET_HEALTH: schemas.Schema = {
    "source": pl.String,
    "target": pl.String,  # the URL
    "exporter": pl.String,  # as configured or as detected; null when unknown
    "up": pl.UInt8,  # 1: the payload was fetched and parsed (some lines may have problems)
    "duration_seconds": pl.Float64,  # the HTTP request, from a free slot to the last byte
    "samples": pl.UInt32,  # samples parsed
    "problems": pl.UInt32,  # rows of the problems frame for this target
    "last_success_seconds": pl.Float64,  # the `now` of the last call it was up; null: never
}

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Headers that the client itself sets, or that would change what a scrape is.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept", "user-agent"}
)


# --- configuration ---------------------------------------------------------------------------


class ScrapeTarget(BaseModel):
    """One Prometheus endpoint: a URL, the exporter that serves it and how to reach it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str  # http(s)://host[:port]/path[?query]
    exporter: str = AUTO  # one of exporter_maps.EXPORTERS, or "auto": detected from the names
    timeout_seconds: float = Field(default=5.0, gt=0)
    tls_verify: bool = True
    ca_bundle: Path | None = None
    # HTTP header name -> the environment variable that holds its value (never the value)
    headers_env: dict[str, str] = Field(default_factory=dict)
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        url = url.strip()
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as error:
            raise ValueError(f"not a URL: {error}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parsed.userinfo:
            raise ValueError("must not carry credentials; use headers_env")
        if parsed.fragment:
            raise ValueError("must not have a fragment")
        return url

    @field_validator("exporter")
    @classmethod
    def _known_exporter(cls, exporter: str) -> str:
        if exporter != AUTO and exporter not in EXPORTERS:
            raise ValueError(f"must be {AUTO} or one of {', '.join(EXPORTERS)}")
        return exporter

    @field_validator("headers_env")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        errors = []
        for header, variable in headers.items():
            if not _HEADER_NAME.fullmatch(header):
                errors.append(f"{header!r} is not an HTTP header name")
            elif header.lower() in _RESERVED_HEADERS:
                errors.append(f"{header!r} is set by the scraper")
            if not _ENV_NAME.fullmatch(variable):
                errors.append(f"{variable!r} (for {header}) is not an environment variable name")
        if errors:
            raise ValueError("; ".join(errors))
        return headers

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ca_bundle is not None and not self.tls_verify:
            raise ValueError("ca_bundle is set but tls_verify is false")
        return self

    @functools.cached_property
    def origin(self) -> str:
        """scheme://host:port, the key of the connection pool this target uses."""
        parsed = httpx.URL(self.url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return f"{parsed.scheme}://{parsed.host}:{port}"


def _check_unique(targets: Sequence[ScrapeTarget]) -> None:
    seen: set[str] = set()
    twice: set[str] = set()
    for target in targets:
        (twice if target.url in seen else seen).add(target.url)
    if twice:
        raise ValueError(f"targets need distinct URLs: {', '.join(sorted(twice))}")


# --- one call's result -----------------------------------------------------------------------


@dataclass(frozen=True)
class ScrapeResult:
    """What one call read from every target."""

    timestamp_seconds: float
    readings: pl.DataFrame  # schemas.READINGS
    problems: pl.DataFrame  # schemas.PROBLEMS
    targets: pl.DataFrame  # TARGET_HEALTH, one row per target in the order given


# --- HTTP ------------------------------------------------------------------------------------


class ScrapeClients:
    """One ``httpx.AsyncClient`` per origin and TLS setting, open until ``aclose``.

    Use from one event loop (a client's connections belong to the loop that opened them).
    """

    def __init__(self, *, max_connections_per_origin: int = 4) -> None:
        if max_connections_per_origin < 1:
            raise ValueError("max_connections_per_origin must be at least 1")
        self.max_connections_per_origin = max_connections_per_origin
        self._clients: dict[tuple[str, bool, Path | None], httpx.AsyncClient] = {}
        self._tls: dict[tuple[bool, Path | None], ssl.SSLContext] = {}

    def client(self, target: ScrapeTarget) -> httpx.AsyncClient:
        """The target's client; raises OSError or ssl.SSLError for an unreadable CA bundle."""
        key = (target.origin, target.tls_verify, target.ca_bundle)
        client = self._clients.get(key)
        if client is None:
            limit = self.max_connections_per_origin
            client = httpx.AsyncClient(
                verify=self._context(target),
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                follow_redirects=True,
                max_redirects=3,
                trust_env=False,
                headers={"User-Agent": USER_AGENT, "Accept": ACCEPT_HEADER},
            )
            self._clients[key] = client
        return client

    def _context(self, target: ScrapeTarget) -> ssl.SSLContext:
        # One context per (verify, bundle): loading CA certificates costs milliseconds each.
        key = (target.tls_verify, target.ca_bundle)
        context = self._tls.get(key)
        if context is None:
            if target.ca_bundle is not None:
                context = ssl.create_default_context(cafile=str(target.ca_bundle))
            else:
                context = httpx.create_ssl_context(verify=target.tls_verify)
            self._tls[key] = context
        return context

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            try:
                await client.aclose()
            except Exception:  # closing one pool must not keep the others open
                log.debug("closing a scrape client failed", exc_info=True)


@dataclass(frozen=True)
class _Fetched:
    duration_seconds: float
    body: bytes | None = None
    content_type: str | None = None
    reason: str | None = None  # set when nothing usable arrived
    message: str = ""


def _headers(target: ScrapeTarget, environ: Mapping[str, str]) -> dict[str, str] | list[str]:
    """The request's headers, or the environment variables that are missing."""
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": f"{target.timeout_seconds:g}"}
    missing = []
    for header, variable in target.headers_env.items():
        value = environ.get(variable)
        if not value:
            missing.append(variable)
        else:
            headers[header] = value
    return missing or headers


async def _get(
    client: httpx.AsyncClient, target: ScrapeTarget, headers: Mapping[str, str]
) -> _Fetched:
    started = time.monotonic()
    timeout = target.timeout_seconds
    limit = target.max_response_bytes

    def failed(reason: str, message: str) -> _Fetched:
        return _Fetched(time.monotonic() - started, reason=reason, message=message)

    try:
        async with asyncio.timeout(timeout):
            async with client.stream(
                "GET", target.url, headers=headers, timeout=httpx.Timeout(timeout)
            ) as response:
                status = response.status_code
                if not 200 <= status < 300:
                    return failed("http_status", f"HTTP {status} {response.reason_phrase}".strip())
                content_type = response.headers.get("content-type")
                if format_for_content_type(content_type) is None:
                    return failed(
                        "content_type",
                        f"Content-Type {content_type!r} is neither Prometheus text "
                        "(text/plain) nor OpenMetrics (application/openmetrics-text)",
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    return failed("too_large", f"Content-Length {declared} is over {limit} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():  # decoded: a gzip bomb counts too
                    size += len(chunk)
                    if size > limit:
                        return failed("too_large", f"body over {limit} bytes: not read further")
                    chunks.append(chunk)
                return _Fetched(time.monotonic() - started, b"".join(chunks), content_type)
    except (TimeoutError, httpx.TimeoutException):
        return failed("timeout", f"no complete answer in {timeout:g} s")
    except httpx.ConnectError as error:
        reason = "tls_error" if tls_failure(error) else "connect_error"
        return failed(reason, str(error) or type(error).__name__)
    except httpx.TooManyRedirects as error:
        return failed("http_status", str(error))
    except httpx.HTTPError as error:
        reason = "tls_error" if tls_failure(error) else "read_error"
        return failed(reason, str(error) or type(error).__name__)


async def _scrape_one(
    target: ScrapeTarget,
    clients: ScrapeClients,
    slots: asyncio.Semaphore,
    origin_slots: asyncio.Semaphore,
    environ: Mapping[str, str],
) -> _Fetched:
    headers = _headers(target, environ)
    if isinstance(headers, list):
        return _Fetched(
            0.0,
            reason="headers_missing",
            message=f"environment variable(s) {', '.join(headers)} not set: not scraped",
        )
    async with origin_slots, slots:  # waiting for a slot does not count against the timeout
        try:
            client = clients.client(target)
        except (OSError, ssl.SSLError) as error:
            return _Fetched(0.0, reason="tls_error", message=f"CA bundle: {error}")
        try:
            return await _get(client, target, headers)
        except Exception as error:  # a bug must cost this target, not the call
            log.exception("scrape %s failed", target.url)
            return _Fetched(0.0, reason="scrape_error", message=repr(error))


# --- parsing many payloads -------------------------------------------------------------------

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


# --- parsing and mapping on a worker thread --------------------------------------------------


@dataclass(frozen=True)
class _Item:
    index: int
    target: ScrapeTarget
    body: bytes
    content_type: str | None


@dataclass(frozen=True)
class _Parsed:
    exporter: str | None
    samples: int
    ok: bool  # parsed and mapped; false: the payload cost a parse or map_error problem


@dataclass
class _Batch:
    readings: list[pl.DataFrame] = field(default_factory=list)
    problems: list[pl.DataFrame] = field(default_factory=list)
    parsed: dict[int, _Parsed] = field(default_factory=dict)


def _problem_frame(
    source: str, target: str, location: str, reason: str, message: str
) -> pl.DataFrame:
    return pl.DataFrame(
        [(source, target, location, reason, message)], schema=dict(schemas.PROBLEMS), orient="row"
    )


def _parse_items(items: Sequence[_Item], batch: _Batch, source: str) -> list[Exposition | None]:
    try:
        return list(parse_many([(item.body, item.content_type) for item in items]))
    except Exception:
        log.exception("batched parse failed; parsing %d payloads one by one", len(items))
    expositions: list[Exposition | None] = []
    for item in items:
        try:
            expositions.append(parse_exposition(item.body, item.content_type))
        except Exception as error:
            log.exception("parsing %s failed", item.target.url)
            batch.problems.append(
                _problem_frame(source, item.target.url, "payload", "parse", repr(error))
            )
            expositions.append(None)
    return expositions


def _read_batch(items: Sequence[_Item], now: float, source: str) -> _Batch:
    """Parse and map fetched payloads: READINGS, PROBLEMS and each target's outcome.

    Never raises: a failure nothing below caught costs this batch's targets (``parse``).
    """
    try:
        return _read_items(items, now, source)
    except Exception as error:
        log.exception("reading a batch of %d payloads failed", len(items))
        batch = _Batch()
        for item in items:
            batch.problems.append(
                _problem_frame(source, item.target.url, "payload", "parse", repr(error))
            )
            batch.parsed[item.index] = _Parsed(None, 0, ok=False)
        return batch


def _read_items(items: Sequence[_Item], now: float, source: str) -> _Batch:
    batch = _Batch()
    expositions = _parse_items(items, batch, source)
    detected: dict[str, str | None] = {}
    by_exporter: dict[str, list[tuple[_Item, pl.DataFrame]]] = {}
    for item, exposition in zip(items, expositions, strict=True):
        url = item.target.url
        if exposition is None:
            batch.parsed[item.index] = _Parsed(None, 0, ok=False)
            continue
        samples = exposition.samples
        if exposition.problems.height:
            batch.problems.append(as_problems(exposition, source, url))
        exporter: str | None = item.target.exporter
        if exporter == AUTO:
            exporter = None
            if samples.height:
                # detect_exporter depends on the names alone: one call per distinct list
                key = "\n".join(samples.get_column("name").to_list())
                if key not in detected:
                    detected[key] = detect_exporter(samples)
                exporter = detected[key]
                if exporter is None:
                    batch.problems.append(
                        _problem_frame(
                            source,
                            url,
                            "payload",
                            "unknown_exporter",
                            f"no sample name belongs to a known exporter ({', '.join(EXPORTERS)})"
                            "; name the exporter in the target",
                        )
                    )
        batch.parsed[item.index] = _Parsed(exporter, samples.height, ok=True)
        if exporter is not None and samples.height:
            by_exporter.setdefault(exporter, []).append((item, samples))
    for exporter, members in by_exporter.items():
        _map(exporter, members, now, source, batch)
    return batch


def _map(
    exporter: str,
    members: list[tuple[_Item, pl.DataFrame]],
    now: float,
    source: str,
    batch: _Batch,
) -> None:
    """One readings_from_exposition call for all members; one each if that call fails."""
    frames = [
        samples.with_columns(pl.lit(item.target.url).alias("target")) for item, samples in members
    ]
    try:
        readings, problems = readings_from_exposition(
            pl.concat(frames), exporter, None, now, source=source
        )
        batch.readings.append(readings)
        batch.problems.append(problems)
        return
    except Exception:
        log.exception("mapping %d %s payloads failed; mapping one by one", len(frames), exporter)
    for (item, _), frame in zip(members, frames, strict=True):
        try:
            readings, problems = readings_from_exposition(frame, exporter, None, now, source=source)
            batch.readings.append(readings)
            batch.problems.append(problems)
        except Exception as error:
            log.exception("mapping %s failed", item.target.url)
            batch.problems.append(
                _problem_frame(source, item.target.url, "payload", "map_error", repr(error))
            )
            previous = batch.parsed[item.index]
            batch.parsed[item.index] = _Parsed(previous.exporter, previous.samples, ok=False)


class _ParseStage:
    """Hands fetched payloads to worker threads in batches, while fetching goes on."""

    def __init__(
        self,
        executor: ThreadPoolExecutor,
        now: float,
        source: str,
        batch_targets: int,
    ) -> None:
        self.executor = executor
        self.now = now
        self.source = source
        self.batch_targets = batch_targets
        self.pending: list[_Item] = []
        self.futures: list[asyncio.Future[_Batch]] = []

    def add(self, item: _Item) -> None:
        self.pending.append(item)
        if len(self.pending) >= self.batch_targets:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        items, self.pending = self.pending, []
        loop = asyncio.get_running_loop()
        self.futures.append(
            loop.run_in_executor(self.executor, _read_batch, items, self.now, self.source)
        )

    async def results(self) -> list[_Batch]:
        self.flush()
        return list(await asyncio.gather(*self.futures))


# --- the call --------------------------------------------------------------------------------


async def scrape_all(
    targets: Sequence[ScrapeTarget],
    now: float,
    *,
    max_concurrency: int = 64,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    clients: ScrapeClients | None = None,
    environ: Mapping[str, str] | None = None,
    last_success: Mapping[str, float] | None = None,
    source: str = SOURCE,
    batch_targets: int = 128,
    parse_workers: int | None = None,
) -> ScrapeResult:
    """Scrape every target once; never raises for what one target does (module docstring).

    ``now`` stamps readings without a timestamp of their own and the health frame.
    ``clients``: open clients to reuse (a Scraper's); by default the call opens and closes its
    own. ``environ`` is where ``headers_env`` names are looked up (default ``os.environ``).
    ``last_success`` (URL -> seconds) fills ``last_success_seconds`` for targets down now.
    ``parse_workers`` threads (default: two, or one on a single core) parse and map batches of
    ``batch_targets`` payloads. Raises ValueError for two targets with one URL or bad limits.
    """
    targets = tuple(targets)
    _check_unique(targets)
    if max_concurrency < 1 or batch_targets < 1 or not deadline_seconds > 0:
        raise ValueError("max_concurrency and batch_targets must be >= 1, deadline_seconds > 0")
    own_clients = clients is None
    client_pool = ScrapeClients() if clients is None else clients
    env: Mapping[str, str] = os.environ if environ is None else environ
    workers = parse_workers or min(2, os.cpu_count() or 1)
    fetched: dict[int, _Fetched] = {}
    began = time.monotonic()
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="scrape-parse") as executor:
            stage = _ParseStage(executor, now, source, batch_targets)
            slots = asyncio.Semaphore(max_concurrency)
            origin_slots = {
                origin: asyncio.Semaphore(client_pool.max_connections_per_origin)
                for origin in {target.origin for target in targets}
            }

            async def scrape(index: int, target: ScrapeTarget) -> None:
                result = await _scrape_one(
                    target, client_pool, slots, origin_slots[target.origin], env
                )
                fetched[index] = result
                if result.body is not None:
                    stage.add(_Item(index, target, result.body, result.content_type))

            tasks = [asyncio.create_task(scrape(i, t)) for i, t in enumerate(targets)]
            try:
                async with asyncio.timeout(deadline_seconds):
                    await asyncio.gather(*tasks)
            except TimeoutError:
                pass  # the unfinished tasks were cancelled; they are reported below
            batches = await stage.results()
    finally:
        if own_clients:
            await client_pool.aclose()
    waited = time.monotonic() - began
    return _assemble(
        targets, now, fetched, batches, deadline_seconds, waited, last_success or {}, source
    )


def _assemble(
    targets: tuple[ScrapeTarget, ...],
    now: float,
    fetched: Mapping[int, _Fetched],
    batches: list[_Batch],
    deadline_seconds: float,
    waited: float,
    last_success: Mapping[str, float],
    source: str,
) -> ScrapeResult:
    parsed: dict[int, _Parsed] = {}
    readings: list[pl.DataFrame] = []
    problems: list[pl.DataFrame] = []
    for batch in batches:
        parsed.update(batch.parsed)
        readings.extend(frame for frame in batch.readings if frame.height)
        problems.extend(frame for frame in batch.problems if frame.height)
    rows = []
    for index, target in enumerate(targets):
        result = fetched.get(index)
        outcome = parsed.get(index)
        if result is None:
            problems.append(
                _problem_frame(
                    source,
                    target.url,
                    "request",
                    "timeout",
                    f"no complete answer within the scrape's {deadline_seconds:g} s deadline "
                    "(connecting, reading, or waiting for a free slot)",
                )
            )
            duration = waited
        else:
            duration = result.duration_seconds
            if result.reason is not None:
                problems.append(
                    _problem_frame(source, target.url, "request", result.reason, result.message)
                )
        up = outcome is not None and outcome.ok
        exporter = outcome.exporter if outcome is not None else None
        if exporter is None and target.exporter != AUTO:
            exporter = target.exporter
        rows.append(
            (
                source,
                target.url,
                exporter,
                int(up),
                duration,
                outcome.samples if outcome is not None else 0,
                0,
                now if up else last_success.get(target.url),
            )
        )
    order = {target.url: index for index, target in enumerate(targets)}
    all_problems = _in_target_order(problems, schemas.PROBLEMS, order)
    counts = dict(all_problems.get_column("target").value_counts().iter_rows())
    health = pl.DataFrame(
        [(*row[:6], counts.get(row[1], 0), row[7]) for row in rows],
        schema=dict(TARGET_HEALTH),
        orient="row",
    )
    return ScrapeResult(
        timestamp_seconds=now,
        readings=_in_target_order(readings, schemas.READINGS, order),
        problems=all_problems,
        targets=health,
    )


def _in_target_order(
    frames: list[pl.DataFrame], schema: schemas.Schema, order: Mapping[str, int]
) -> pl.DataFrame:
    """Frames concatenated, rows sorted by their target's position (stable within a target)."""
    if not frames:
        return schemas.empty(schema)
    frame = pl.concat(frames, how="vertical_relaxed").cast(dict(schema))  # type: ignore[arg-type]
    position = pl.col("target").replace_strict(order, return_dtype=pl.UInt32)
    return frame.sort(position, maintain_order=True)


# --- the synchronous wrapper -----------------------------------------------------------------


class Scraper(ClosedOnExit):
    """Scrapes a fixed set of targets once per ``scrape`` call, from a plain thread.

    Keeps, between calls: the event loop and the HTTP clients (keep-alive connections to every
    target), and the time each target was last up. Calls are serialized by a lock. Use as a
    context manager, or call ``close``.
    """

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        *,
        max_concurrency: int = 64,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        max_connections_per_origin: int = 4,
        environ: Mapping[str, str] | None = None,
        source: str = SOURCE,
        batch_targets: int = 128,
        parse_workers: int | None = None,
    ) -> None:
        self.targets = tuple(targets)
        _check_unique(self.targets)
        self.max_concurrency = max_concurrency
        self.deadline_seconds = deadline_seconds
        self.source = source
        self.batch_targets = batch_targets
        self.parse_workers = parse_workers
        self._environ = environ
        self._max_connections_per_origin = max_connections_per_origin
        self._last_success: dict[str, float] = {}
        self._runner: asyncio.Runner | None = None
        self._clients: ScrapeClients | None = None
        self._lock = threading.Lock()

    @property
    def last_success(self) -> Mapping[str, float]:
        """URL -> the ``now`` of the last call in which that target was up."""
        return dict(self._last_success)

    def scrape(self, now: float) -> ScrapeResult:
        """One call of scrape_all, run to completion; from a thread with no running loop."""
        with self._lock:
            if self._runner is None:
                self._runner = asyncio.Runner()
                self._clients = ScrapeClients(
                    max_connections_per_origin=self._max_connections_per_origin
                )
            result = self._runner.run(
                scrape_all(
                    self.targets,
                    now,
                    max_concurrency=self.max_concurrency,
                    deadline_seconds=self.deadline_seconds,
                    clients=self._clients,
                    environ=self._environ,
                    last_success=self._last_success,
                    source=self.source,
                    batch_targets=self.batch_targets,
                    parse_workers=self.parse_workers,
                )
            )
            for url, up in result.targets.select("target", "up").iter_rows():
                if up:
                    self._last_success[url] = now
            return result

    def close(self) -> None:
        """Close every connection and the event loop; a later ``scrape`` opens new ones."""
        with self._lock:
            runner, clients = self._runner, self._clients
            self._runner = self._clients = None
            if runner is None:
                return
            try:
                if clients is not None:
                    runner.run(clients.aclose())
            finally:
                runner.close()
