"""The scrape targets: one Prometheus endpoint each, validated at load."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import httpx
from pydantic import ConfigDict, Field, field_validator, model_validator

from collector.config_errors import ConfigModel
from collector.sources.exporter_maps import EXPORTERS

AUTO = "auto"
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Headers that the client itself sets, or that would change what a scrape is.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept", "user-agent"}
)


class ScrapeTarget(ConfigModel):
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


def check_unique_urls(targets: Sequence[ScrapeTarget]) -> None:
    seen: set[str] = set()
    twice: set[str] = set()
    for target in targets:
        (twice if target.url in seen else seen).add(target.url)
    if twice:
        raise ValueError(f"targets need distinct URLs: {', '.join(sorted(twice))}")
