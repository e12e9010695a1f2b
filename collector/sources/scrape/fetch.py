"""HTTP for the scrape: a client per origin, and one target's GET within its time and size
limits, whose failures come back as a reason rather than an exception."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from collector.sources.http_errors import tls_failure
from collector.sources.promtext import ACCEPT_HEADER, format_for_content_type
from collector.sources.scrape.targets import ScrapeTarget

log = logging.getLogger(__name__)

# httpcore asks for sniffio on every request (``import sniffio`` inside a function). Where the
# package is absent that import fails each time after a search of sys.path, which costs about a
# quarter of a request's CPU. A None entry makes the failing import immediate, with the same
# outcome (httpcore and anyio then assume asyncio, which is what runs here).
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

USER_AGENT = "gigawatt-scrape/0.1"


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
class Fetched:
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
) -> Fetched:
    started = time.monotonic()
    timeout = target.timeout_seconds
    limit = target.max_response_bytes

    def failed(reason: str, message: str) -> Fetched:
        return Fetched(time.monotonic() - started, reason=reason, message=message)

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
                return Fetched(time.monotonic() - started, b"".join(chunks), content_type)
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


async def fetch_one(
    target: ScrapeTarget,
    clients: ScrapeClients,
    slots: asyncio.Semaphore,
    origin_slots: asyncio.Semaphore,
    environ: Mapping[str, str],
) -> Fetched:
    headers = _headers(target, environ)
    if isinstance(headers, list):
        return Fetched(
            0.0,
            reason="headers_missing",
            message=f"environment variable(s) {', '.join(headers)} not set: not scraped",
        )
    async with origin_slots, slots:  # waiting for a slot does not count against the timeout
        try:
            client = clients.client(target)
        except (OSError, ssl.SSLError) as error:
            return Fetched(0.0, reason="tls_error", message=f"CA bundle: {error}")
        try:
            return await _get(client, target, headers)
        except Exception as error:  # a bug must cost this target, not the call
            log.exception("scrape %s failed", target.url)
            return Fetched(0.0, reason="scrape_error", message=repr(error))
