"""Redfish source: BMC chassis power, rack PDUs and cooling units, crawled over HTTPS.

One cycle crawls every configured service breadth-first from ``/redfish/v1`` and hands back
``schemas.READINGS`` and ``schemas.PROBLEMS`` frames (what the values mean, and the device
identity rules, are in ``collector.sources.redfish_resources``). One row, as a dict::

    {"source": "redfish", "target": "https://10.0.4.17/redfish/v1", "host": "10.0.4.17",
     "device": "/redfish/v1/PowerEquipment/RackPDUs/1/Outlets/A1", "device_kind": "pdu_outlet",
     "metric": "power_watts", "value": 197.4, "unit": "watts", "estimated": False,
     "timestamp_seconds": None}

Why asyncio (httpx.AsyncClient) and not threads
    The one hard promise is the whole-target deadline: a BMC that accepts a connection and
    then never answers (or drips a byte a second) must cost only its own data. httpx's
    timeouts bound each socket operation, not a response, and a thread blocked in a read
    cannot be stopped; ``asyncio.timeout`` cancels the request wherever it is. The other
    rules fall out of the same model: a target's crawl is one coroutine issuing one request
    at a time, a lock per BMC address keeps two targets on one BMC from overlapping, and a
    semaphore bounds how many BMCs are crawled at once. ``read_readings`` runs one cycle
    with ``asyncio.run``, so a caller on a plain thread (the pipeline's) needs no event loop
    of its own; async callers await ``collect`` instead. Connections do not outlive a cycle (one TLS
    handshake per BMC per cycle); Redfish sessions do, because a session token is not tied
    to a connection, and sessions are what BMCs run out of.

Client behaviour
    * TLS verification is on; ``ca_bundle`` names the CA that signed the BMCs' certificates;
      ``tls_verify: false`` is the only way to turn it off, and plain ``http://`` needs
      ``allow_plain_http: true``. Proxy variables from the environment are ignored: BMC
      traffic goes straight to the management network.
    * Credentials come only from environment variables or files the config names
      (``username_env``/``username_file``, ``password_env``/``password_file``); a config that
      holds a password, or a URL with user info, is refused at load.
    * ``auth: session`` (default) logs in once (POST SessionService/Sessions), reuses the
      X-Auth-Token across cycles, logs in again once when a request gets 401, and logs out on
      ``close``. ``basic_auth_fallback: true`` uses HTTP basic auth when the login fails (a
      service without sessions, or one whose sessions are exhausted). ``auth: basic`` and
      ``auth: none`` do what they say.
    * At most one request is in flight per BMC address; ``max_concurrent_targets`` BMCs are
      crawled at once. Each request has ``request_timeout_seconds``; each target has
      ``deadline_seconds`` from the moment its crawl starts (waiting for a free slot does not
      count). A crawl cut short keeps what it read and says so (problem ``deadline_exceeded``,
      ``complete`` false in the targets frame).

Crawl
    Links followed: reference objects anywhere (Members, nested objects, Links, Oem),
    ``DataSourceUri`` and ``Members@odata.nextLink``, restricted to ``crawl_prefixes``
    (default: Chassis, PowerEquipment and ThermalEquipment, which hold the chassis, PSU, PDU
    and cooling readings; processor and memory EnvironmentMetrics live under Systems, which a
    BMC fills with thousands of resources, so it is left out unless listed; ``FULL_CRAWL``
    walks the whole service). Redfish URI patterns place a
    PowerDistribution's SensorCollection at ``<equipment>/Sensors``, a property later
    deprecated for the Chassis' sensors; services still serve it unlinked (public-pdu's
    transfer switch has 52 sensors there), so the crawler asks for that one URI and takes a
    404 there quietly. A 404 on a followed link is a ``dangling_link`` problem and the crawl
    goes on; a payload whose @odata.id names another resource is ``odata_id_mismatch`` and
    keeps its URL as identity; at most ``max_resources`` requests are made per target.

Problem reasons: dangling_link, odata_id_mismatch, invalid_json, not_an_object, http_error,
timeout, connection_error, tls_error, too_large, unauthorized, session_login_failed,
credentials_missing, deadline_exceeded, max_resources, unit_mismatch, not_a_number, and
crawl_error / extraction_error (a bug met on one target or payload; logged with its traceback).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import httpx
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector import schemas
from collector.config_errors import ConfigModel
from collector.sources.base import ClosedOnExit
from collector.sources.http_errors import tls_failure
from collector.sources.redfish_power_choice import (
    PowerDistributionLayout,
    chassis_power_frame,
    pdu_power_frame,
    power_distribution_layouts,
)
from collector.sources.redfish_resources import (
    SERVICE_ROOT,
    JsonObject,
    Problem,
    Reading,
    normalize_link,
    odata_id_problem,
    parse_resource,
    problems_frame,
    readings_from_resource,
    redfish_readings_frame,
    resource_links,
    resource_type,
)

log = logging.getLogger(__name__)

SESSIONS_PATH = f"{SERVICE_ROOT}/SessionService/Sessions"
DEFAULT_CRAWL_PREFIXES = (
    f"{SERVICE_ROOT}/Chassis",
    f"{SERVICE_ROOT}/PowerEquipment",
    f"{SERVICE_ROOT}/ThermalEquipment",
)
FULL_CRAWL = (SERVICE_ROOT,)

# Children a schema places at a fixed URI that services serve without linking (see above).
_CONVENTIONAL_CHILDREN: Mapping[str, tuple[str, ...]] = {"PowerDistribution": ("Sensors",)}

TARGET_HEALTH: schemas.Schema = {
    "source": pl.String,  # the RedfishSource's name
    "target": pl.String,  # the service root URL
    "name": pl.String,  # the target's configured name (its host when none is given)
    "host": pl.String,
    "up": pl.Boolean,  # the service root was read and the crawl was not refused
    "complete": pl.Boolean,  # the crawl ran out of links (no deadline, no max_resources)
    "resources": pl.UInt32,  # resources read
    "requests": pl.UInt32,  # HTTP requests made, logins included
    "problems": pl.UInt32,
    "duration_seconds": pl.Float64,
}


# --- configuration ---------------------------------------------------------------------------


class CredentialsError(Exception):
    """A credential the config points at cannot be read."""


class RedfishCredentials(ConfigModel):
    """Where to find a user name and password: never the values themselves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username_env: str | None = None
    username_file: Path | None = None
    password_env: str | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_place_each(self) -> Self:
        errors = []
        for what in ("username", "password"):
            places = [getattr(self, f"{what}_env"), getattr(self, f"{what}_file")]
            if sum(place is not None for place in places) != 1:
                errors.append(f"give exactly one of {what}_env and {what}_file")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def resolve(self, environ: Mapping[str, str]) -> tuple[str, str]:
        """(username, password), read now so that a rotated secret is picked up at login."""
        return (
            _secret(self.username_env, self.username_file, environ, "username"),
            _secret(self.password_env, self.password_file, environ, "password"),
        )


def _secret(env: str | None, path: Path | None, environ: Mapping[str, str], what: str) -> str:
    if env is not None:
        value = environ.get(env)
        if not value:
            raise CredentialsError(f"{what}: environment variable {env} is not set")
        return value
    assert path is not None  # the model guarantees one of the two
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise CredentialsError(f"{what}: cannot read {path}: {error.strerror}") from None
    if not value:
        raise CredentialsError(f"{what}: {path} is empty")
    return value


class RedfishTarget(ConfigModel):
    """One Redfish service (a BMC, a PDU, a CDU controller)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str  # https://host[:port], optionally followed by /redfish/v1
    name: str | None = None
    auth: Literal["session", "basic", "none"] = "session"
    basic_auth_fallback: bool = False
    credentials: RedfishCredentials | None = None
    tls_verify: bool = True
    ca_bundle: Path | None = None
    allow_plain_http: bool = False
    request_timeout_seconds: float = Field(default=5.0, gt=0)
    deadline_seconds: float = Field(default=30.0, gt=0)
    max_resources: int = Field(default=2000, gt=0)
    max_response_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    crawl_prefixes: tuple[str, ...] = DEFAULT_CRAWL_PREFIXES

    @field_validator("url")
    @classmethod
    def _service_origin(cls, url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials; use credentials.*_env or *_file")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or a fragment")
        if parts.path.rstrip("/") not in ("", SERVICE_ROOT):
            raise ValueError(f"path must be empty or {SERVICE_ROOT}")
        netloc = parts.netloc.lower()
        default_port = {"http": ":80", "https": ":443"}[parts.scheme]
        if netloc.endswith(default_port):  # one BMC, one origin: its lock and its identity
            netloc = netloc.removesuffix(default_port)
        return f"{parts.scheme}://{netloc}"

    @field_validator("crawl_prefixes")
    @classmethod
    def _under_service_root(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(prefix.rstrip("/") for prefix in prefixes)
        for prefix in cleaned:
            if prefix != SERVICE_ROOT and not prefix.startswith(SERVICE_ROOT + "/"):
                raise ValueError(f"{prefix!r} is not under {SERVICE_ROOT}")
        return cleaned

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        errors = []
        if self.auth != "none" and self.credentials is None:
            errors.append(f"auth {self.auth!r} needs credentials")
        if self.ca_bundle is not None and not self.tls_verify:
            errors.append("ca_bundle is set but tls_verify is false")
        if self.url.startswith("http://") and not self.allow_plain_http:
            errors.append("plain http:// needs allow_plain_http: true")
        if self.basic_auth_fallback and self.auth != "session":
            errors.append("basic_auth_fallback only applies to auth 'session'")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def origin(self) -> str:
        return self.url

    @property
    def service_root(self) -> str:
        return self.url + SERVICE_ROOT

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def key(self) -> str:
        return self.name or self.host

    def crawls(self, path: str) -> bool:
        """Whether a resource path is inside this target's crawl_prefixes."""
        bare = path.split("?", 1)[0]
        return any(
            bare == prefix or bare.startswith(prefix + "/") for prefix in self.crawl_prefixes
        )


class RedfishConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: tuple[RedfishTarget, ...] = ()
    max_concurrent_targets: int = Field(default=16, gt=0)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        keys = [target.key for target in self.targets]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"targets need distinct names (or hosts): {', '.join(duplicates)}")
        return self


# --- one cycle's result ----------------------------------------------------------------------


@dataclass(frozen=True)
class RedfishRead:
    """What one cycle read from every target."""

    timestamp_seconds: float
    readings: pl.DataFrame  # schemas.READINGS
    problems: pl.DataFrame  # schemas.PROBLEMS
    targets: pl.DataFrame  # TARGET_HEALTH, one row per configured target
    power_distribution: tuple[PowerDistributionLayout, ...]
    fetched: Mapping[str, tuple[str, ...]]  # target name -> resource paths read, crawl order

    def pdu_power(self, **tolerances: float) -> pl.DataFrame:
        """One row per PDU: the reading that feeds the roll-up (see ``choose_pdu_power``)."""
        return pdu_power_frame(self.readings, self.power_distribution, **tolerances)

    def chassis_power(self) -> pl.DataFrame:
        """One row per chassis: the server input power (see ``chassis_power_frame``)."""
        return chassis_power_frame(self.readings)


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class _Session:
    token: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class _Fetched:
    status: int | None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: Problem | None = None  # no HTTP status at all: timeout, connection, TLS, size


class _TargetFailed(Exception):
    """Stops one target's crawl: nothing more can be read from it this cycle."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _TooLarge(Exception):
    pass


class _Connection:
    """One target's HTTP side for one cycle: auth, the per-BMC lock, limits, timeouts."""

    def __init__(
        self,
        target: RedfishTarget,
        http: httpx.AsyncClient,
        lock: asyncio.Lock,
        session: _Session,
        environ: Mapping[str, str],
        problems: list[Problem],
    ) -> None:
        self.target = target
        self.http = http
        self.lock = lock
        self.session = session
        self.environ = environ
        self.problems = problems
        self.basic: httpx.BasicAuth | None = None
        self.relogged = False
        self.requests = 0

    async def get(self, path: str) -> _Fetched:
        """GET a resource; log in first when needed, and once more on a 401."""
        authenticated = path != SERVICE_ROOT and self.target.auth != "none"
        if authenticated and self.session.token is None and self.basic is None:
            await self.login()
        fetched = await self.request("GET", path, authenticated=authenticated)
        if fetched.status == 401 and authenticated:
            if self.relogged or self.basic is not None:
                raise _TargetFailed(
                    Problem(path, "unauthorized", "HTTP 401 with fresh credentials: rejected")
                )
            self.relogged = True
            self.session.token = None
            await self.login()
            fetched = await self.request("GET", path, authenticated=True)
            if fetched.status == 401:
                raise _TargetFailed(
                    Problem(path, "unauthorized", "HTTP 401 right after a new login: rejected")
                )
        return fetched

    async def login(self) -> None:
        credentials = self.target.credentials
        assert credentials is not None  # the config refuses auth without credentials
        try:
            username, password = credentials.resolve(self.environ)
        except CredentialsError as error:
            raise _TargetFailed(Problem(SERVICE_ROOT, "credentials_missing", str(error))) from None
        if self.target.auth == "basic":
            self.basic = httpx.BasicAuth(username, password)
            return
        fetched = await self.request(
            "POST",
            SESSIONS_PATH,
            authenticated=False,
            json={"UserName": username, "Password": password},
        )
        token = fetched.headers.get("x-auth-token")
        if fetched.status in (200, 201, 204) and token:
            location = fetched.headers.get("location")
            self.session.token = token
            self.session.location = (
                normalize_link(location, self.target.origin) if location else None
            )
            return
        why = fetched.error.message if fetched.error else f"HTTP {fetched.status}"
        if fetched.status in (200, 201, 204):
            why = f"HTTP {fetched.status} without an X-Auth-Token header"
        if self.target.basic_auth_fallback:
            self.problems.append(
                Problem(
                    SESSIONS_PATH,
                    "session_login_failed",
                    f"session login failed ({why}); using basic auth this cycle",
                )
            )
            self.basic = httpx.BasicAuth(username, password)
            return
        raise _TargetFailed(
            Problem(SESSIONS_PATH, "session_login_failed", f"session login failed: {why}")
        )

    async def request(
        self, method: str, path: str, *, authenticated: bool, json: JsonObject | None = None
    ) -> _Fetched:
        headers = {"Accept": "application/json", "OData-Version": "4.0"}
        auth: httpx.BasicAuth | None = None
        if authenticated:
            if self.session.token is not None:
                headers["X-Auth-Token"] = self.session.token
            else:
                auth = self.basic
        timeout = self.target.request_timeout_seconds
        async with self.lock:  # one request in flight per BMC: BMCs run out of sessions
            self.requests += 1
            try:
                async with asyncio.timeout(timeout):
                    async with self.http.stream(
                        method, self.target.origin + path, headers=headers, auth=auth, json=json
                    ) as response:
                        body = await self._body(response)
                        return _Fetched(response.status_code, body, dict(response.headers))
            except (TimeoutError, httpx.TimeoutException):
                return _Fetched(None, error=Problem(path, "timeout", f"no answer in {timeout} s"))
            except _TooLarge:
                limit = self.target.max_response_bytes
                return _Fetched(
                    None, error=Problem(path, "too_large", f"response over {limit} bytes")
                )
            except httpx.HTTPError as error:
                reason = "tls_error" if tls_failure(error) else "connection_error"
                detail = str(error) or type(error).__name__
                return _Fetched(None, error=Problem(path, reason, detail))

    async def _body(self, response: httpx.Response) -> bytes:
        limit = self.target.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def logout(self) -> None:
        if self.session.token is not None and self.session.location is not None:
            await self.request("DELETE", self.session.location, authenticated=True)
        self.session.token = None
        self.session.location = None


# --- crawl -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    path: str
    referrer: str | None  # path#pointer of the link that named it
    probe: bool = False  # a conventional URI asked for unlinked: a 404 is no problem


@dataclass
class _Crawl:
    resources: dict[str, JsonObject] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    queue: deque[_Pending] = field(default_factory=deque)
    current: str | None = None  # the path being read (a deadline names it)
    up: bool = False
    complete: bool = True


async def _crawl(connection: _Connection, crawl: _Crawl) -> None:
    target = connection.target
    crawl.queue.append(_Pending(SERVICE_ROOT, None))
    seen = {SERVICE_ROOT}
    while crawl.queue:
        if connection.requests >= target.max_resources:
            crawl.complete = False
            crawl.problems.append(
                Problem(
                    crawl.queue[0].path,
                    "max_resources",
                    f"stopped after {connection.requests} requests (max_resources); "
                    f"{len(crawl.queue)} resources not read",
                )
            )
            return
        pending = crawl.queue.popleft()
        crawl.current = pending.path
        fetched = await connection.get(pending.path)
        problem = _fetch_problem(pending, fetched)
        if problem is None and fetched.status is not None and not 200 <= fetched.status < 300:
            continue  # a probe that found nothing
        if problem is not None:
            if pending.path == SERVICE_ROOT:
                raise _TargetFailed(problem)
            crawl.problems.append(problem)
            continue
        payload = parse_resource(fetched.body)
        if isinstance(payload, Problem):
            if pending.path == SERVICE_ROOT:
                raise _TargetFailed(Problem(SERVICE_ROOT, payload.reason, payload.message))
            crawl.problems.append(Problem(pending.path, payload.reason, payload.message))
            continue
        if pending.path == SERVICE_ROOT:
            crawl.up = True
        crawl.resources[pending.path] = payload
        mismatch = odata_id_problem(pending.path, payload, target.origin)
        if mismatch is not None:
            crawl.problems.append(mismatch)
        for link in resource_links(payload):
            path = normalize_link(link.target, target.origin, pending.path)
            if path is not None and path not in seen and target.crawls(path):
                seen.add(path)
                crawl.queue.append(_Pending(path, f"{pending.path}#{link.pointer}"))
        schema = resource_type(pending.path, payload) or ""
        for child in _CONVENTIONAL_CHILDREN.get(schema, ()):
            path = f"{pending.path}/{child}"
            if path not in seen and target.crawls(path):
                seen.add(path)
                crawl.queue.append(_Pending(path, None, probe=True))


def _fetch_problem(pending: _Pending, fetched: _Fetched) -> Problem | None:
    if fetched.error is not None:
        return fetched.error
    status = fetched.status
    if status is None or 200 <= status < 300:
        return None
    if status == 404:
        if pending.probe:
            return None
        return Problem(
            pending.path, "dangling_link", f"HTTP 404: linked from {pending.referrer}, not served"
        )
    return Problem(pending.path, "http_error", f"HTTP {status}")


# --- the source ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TargetResult:
    readings: pl.DataFrame
    problems: pl.DataFrame
    health: tuple[Any, ...]
    layouts: list[PowerDistributionLayout]
    fetched: tuple[str, ...]


class RedfishSource(ClosedOnExit):
    """Reads every configured Redfish target once per call; keeps sessions between calls.

    Use as a context manager (or call ``close``) so that sessions are logged out. Calls must
    not overlap; a lock makes a second caller wait.
    """

    def __init__(
        self,
        config: RedfishConfig,
        *,
        environ: Mapping[str, str] | None = None,
        name: str = "redfish",
    ) -> None:
        self.name = name
        self.config = config
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._sessions: dict[str, _Session] = {target.key: _Session() for target in config.targets}
        self._tls: dict[tuple[bool, Path | None], ssl.SSLContext | bool] = {}
        self._serial = threading.Lock()

    def read_readings(self, now: float) -> RedfishRead:
        """One cycle, from a thread without a running event loop (the pipeline's)."""
        with self._serial:
            return asyncio.run(self.collect(now))

    async def collect(self, now: float) -> RedfishRead:
        """One cycle: every target crawled, within its own deadline, at most
        ``max_concurrent_targets`` at once and one request at a time per BMC."""
        slots = asyncio.Semaphore(self.config.max_concurrent_targets)
        locks = {target.origin: asyncio.Lock() for target in self.config.targets}
        results = await asyncio.gather(
            *(self._read_target(t, slots, locks[t.origin]) for t in self.config.targets)
        )
        return RedfishRead(
            timestamp_seconds=now,
            readings=_concat([r.readings for r in results], schemas.READINGS),
            problems=_concat([r.problems for r in results], schemas.PROBLEMS),
            targets=pl.DataFrame(
                [r.health for r in results], schema=dict(TARGET_HEALTH), orient="row"
            ),
            power_distribution=tuple(layout for r in results for layout in r.layouts),
            fetched={t.key: r.fetched for t, r in zip(self.config.targets, results, strict=True)},
        )

    def close(self) -> None:
        """Log out of every open session (best effort, a few seconds at most)."""
        with self._serial:
            if any(session.token for session in self._sessions.values()):
                asyncio.run(self._logout_all())

    async def _logout_all(self) -> None:
        locks = {target.origin: asyncio.Lock() for target in self.config.targets}

        async def logout(target: RedfishTarget) -> None:
            session = self._sessions[target.key]
            if session.token is None:
                return
            try:
                async with self._client(target) as http:
                    connection = _Connection(
                        target, http, locks[target.origin], session, self._environ, []
                    )
                    await connection.logout()
            except (OSError, ssl.SSLError):
                session.token = None

        await asyncio.gather(*(logout(target) for target in self.config.targets))

    def _verify(self, target: RedfishTarget) -> ssl.SSLContext | bool:
        # Built once per (verify, bundle): loading a CA bundle costs milliseconds per client.
        key = (target.tls_verify, target.ca_bundle)
        if key not in self._tls:
            if not target.tls_verify:
                self._tls[key] = False
            elif target.ca_bundle is not None:
                self._tls[key] = ssl.create_default_context(cafile=str(target.ca_bundle))
            else:
                self._tls[key] = httpx.create_ssl_context()
        return self._tls[key]

    def _client(self, target: RedfishTarget) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=self._verify(target),
            timeout=httpx.Timeout(target.request_timeout_seconds),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=False,
            trust_env=False,
        )

    async def _read_target(
        self, target: RedfishTarget, slots: asyncio.Semaphore, lock: asyncio.Lock
    ) -> _TargetResult:
        async with slots:
            started = time.monotonic()
            crawl = _Crawl()
            requests = 0
            try:
                async with self._client(target) as http:
                    connection = _Connection(
                        target,
                        http,
                        lock,
                        self._sessions[target.key],
                        self._environ,
                        crawl.problems,
                    )
                    try:
                        async with asyncio.timeout(target.deadline_seconds):
                            await _crawl(connection, crawl)
                    except TimeoutError:
                        crawl.complete = False
                        crawl.problems.append(
                            Problem(
                                crawl.current or SERVICE_ROOT,
                                "deadline_exceeded",
                                f"crawl stopped at its {target.deadline_seconds} s deadline "
                                f"while reading this resource: {len(crawl.resources)} "
                                f"resources read, {len(crawl.queue) + 1} not read",
                            )
                        )
                    finally:
                        requests = connection.requests
            except _TargetFailed as failure:
                crawl.up = False
                crawl.complete = False
                crawl.problems.append(failure.problem)
            except (OSError, ssl.SSLError) as error:  # an unreadable CA bundle
                crawl.up = False
                crawl.complete = False
                crawl.problems.append(Problem(SERVICE_ROOT, "tls_error", str(error)))
            except Exception as error:  # a bug must cost this target, not the cycle
                log.exception("redfish target %s: crawl failed", target.key)
                crawl.up = False
                crawl.complete = False
                crawl.problems.append(Problem(SERVICE_ROOT, "crawl_error", repr(error)))
            return self._result(target, crawl, requests, time.monotonic() - started)

    def _result(
        self, target: RedfishTarget, crawl: _Crawl, requests: int, duration: float
    ) -> _TargetResult:
        readings: list[Reading] = []
        problems = list(crawl.problems)
        for path, payload in crawl.resources.items():
            try:
                found, trouble = readings_from_resource(path, payload)
            except Exception as error:  # one odd payload costs its own readings
                log.exception("redfish target %s: cannot read %s", target.key, path)
                found, trouble = [], [Problem(path, "extraction_error", repr(error))]
            readings.extend(found)
            problems.extend(trouble)
        layouts = power_distribution_layouts(
            crawl.resources, target=target.service_root, origin=target.origin
        )
        health = (
            self.name,
            target.service_root,
            target.key,
            target.host,
            crawl.up,
            crawl.complete,
            len(crawl.resources),
            requests,
            len(problems),
            duration,
        )
        return _TargetResult(
            readings=redfish_readings_frame(readings, target=target.service_root, host=target.host),
            problems=problems_frame(problems, target=target.service_root),
            health=health,
            layouts=layouts,
            fetched=tuple(crawl.resources),
        )


def _concat(frames: Sequence[pl.DataFrame], schema: schemas.Schema) -> pl.DataFrame:
    frames = [frame for frame in frames if frame.height]
    return pl.concat(frames) if frames else schemas.empty(schema)
