"""``--web-config FILE``: TLS and basic authentication for the HTTP service, in the shape of
Prometheus' exporter-toolkit web configuration, so one file serves gigawatt and the
exporters beside it::

    tls_server_config:
      cert_file: server.crt          # relative to this file
      key_file: server.key
      client_ca_file: clients.crt    # optional: clients may show a certificate signed by it
      client_auth_type: RequireAndVerifyClientCert   # optional: and then they must
    basic_auth_users:
      prometheus: $2b$12$...         # bcrypt hashes (htpasswd -nBC 12 "" | tr -d ':\\n')

The file is checked at start, every problem listed with its line: the certificate and key
load and match, the client CA loads, each hash is a bcrypt hash. Neither a password nor a
hash is ever echoed in an error or a log line.

Passwords are checked with bcrypt, which is slow on purpose (about 0.2 s at cost 12); a
credential that passed once is remembered by its SHA-256 for the life of the process, as
exporter-toolkit does, so a scrape every few seconds costs one hash lookup.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ssl
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import bcrypt
from pydantic import Field, ValidationError, field_validator

from collector.config_errors import (
    ConfigError,
    ConfigModel,
    ConfigProblem,
    line_index,
    located,
    read_config,
    validation_problems,
    yaml_mapping,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BCRYPT_PREFIXES = (b"$2a$", b"$2b$", b"$2y$")


class WebConfigError(ConfigError):
    """Every problem found in a web configuration file, each with its line."""


class TlsServerConfig(ConfigModel):
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: Literal["NoClientCert", "RequireAndVerifyClientCert"] | None = None


class WebConfigFile(ConfigModel):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not user or ":" in user:
                raise ValueError(f"user {user!r}: a user name is not empty and has no ':'")
            if not _is_bcrypt_hash(hashed.encode("utf-8")):
                # Never the hash itself: it is a secret too.
                raise ValueError(f"user {user!r}: the password is not a bcrypt hash ($2b$...)")
        return users


def _is_bcrypt_hash(hashed: bytes) -> bool:
    if not hashed.startswith(_BCRYPT_PREFIXES) or len(hashed) != 60:
        return False
    try:
        bcrypt.checkpw(b"", hashed)  # a malformed salt raises; the answer does not matter
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class WebConfig:
    """The checked file: TLS paths for the server, and the basic-auth users."""

    source: str
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    require_client_cert: bool = False
    users: dict[str, bytes] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    def uvicorn_options(self) -> dict[str, Any]:
        """What ``uvicorn.run`` takes for this TLS configuration (nothing without TLS)."""
        if not self.tls:
            return {}
        options: dict[str, Any] = {
            "ssl_certfile": str(self.cert_file),
            "ssl_keyfile": str(self.key_file),
        }
        if self.client_ca_file is not None:
            options["ssl_ca_certs"] = str(self.client_ca_file)
            options["ssl_cert_reqs"] = (
                ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
            )
        return options


def parse_web_config(text: str, base: Path, source: str = "<web config>") -> WebConfig:
    """Parse and check a web configuration; relative paths are relative to ``base``. Raises
    WebConfigError listing every problem, each with its line."""
    data = yaml_mapping(text, source, WebConfigError, empty_is_defaults=True)
    lines = line_index(text)
    problems: list[ConfigProblem] = []
    spec: WebConfigFile | None = None
    try:
        spec = WebConfigFile.model_validate(data)
    except ValidationError as error:
        problems += [
            ConfigProblem(
                problem.location, problem.message.removeprefix("Value error, "), problem.line
            )
            for problem in validation_problems(error, lines)
        ]
    # The TLS files are checked whenever their section is valid, so one run lists everything.
    tls: TlsServerConfig | None = spec.tls_server_config if spec is not None else None
    if spec is None and isinstance(data.get("tls_server_config"), dict):
        with contextlib.suppress(ValidationError):  # reported above already
            tls = TlsServerConfig.model_validate(data["tls_server_config"])
    cert = key = client_ca = None
    if tls is not None:
        cert, key = base / tls.cert_file, base / tls.key_file
        client_ca = base / tls.client_ca_file if tls.client_ca_file else None
        missing = [
            located(lines, ("tls_server_config", name), f"no such file: {path}")
            for name, path in (
                ("cert_file", cert),
                ("key_file", key),
                ("client_ca_file", client_ca),
            )
            if path is not None and not path.is_file()
        ]
        problems += missing or _tls_problems(cert, key, client_ca, lines)
        if tls.client_auth_type == "RequireAndVerifyClientCert" and client_ca is None:
            problems.append(
                located(
                    lines,
                    ("tls_server_config", "client_auth_type"),
                    "RequireAndVerifyClientCert needs client_ca_file",
                )
            )
    if problems or spec is None:
        raise WebConfigError(source, sorted(problems, key=lambda problem: problem.line or 0))
    return WebConfig(
        source,
        cert_file=cert,
        key_file=key,
        client_ca_file=client_ca,
        require_client_cert=tls is not None
        and tls.client_auth_type == "RequireAndVerifyClientCert",
        users={user: hashed.encode() for user, hashed in spec.basic_auth_users.items()},
    )


def _tls_problems(
    cert: Path, key: Path, client_ca: Path | None, lines: dict[tuple[str | int, ...], int]
) -> list[ConfigProblem]:
    """Whether the certificate and key load and belong together, and the client CA loads."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    problems = []
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or error.strerror or type(error).__name__
        problems.append(
            located(
                lines,
                ("tls_server_config", "cert_file"),
                f"the certificate and key do not load as a pair: {reason}",
            )
        )
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (ssl.SSLError, OSError) as error:
            reason = getattr(error, "reason", None) or error.strerror or type(error).__name__
            problems.append(
                located(
                    lines,
                    ("tls_server_config", "client_ca_file"),
                    f"the client CA does not load: {reason}",
                )
            )
    return problems


def load_web_config(path: Path) -> WebConfig:
    return parse_web_config(read_config(path, WebConfigError), path.parent, str(path))


class BasicAuth:
    """ASGI middleware: every request carries a user and password of the web configuration
    (``Authorization: Basic``), else 401 with a challenge. Checks take constant time per
    hash; a credential that passed is remembered by its SHA-256, never kept in clear."""

    def __init__(
        self,
        app: ASGIApp,
        users: dict[str, bytes],
        bearer_token: bytes | None = None,
        realm: str = "gigawatt",
    ) -> None:
        self.app = app
        self.users = users
        # A request with the API's bearer token is let through to the endpoint that checks
        # it: one Authorization header cannot carry both credentials.
        self.bearer_token = bearer_token
        self.realm = realm
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()

    def authorized(self, header: bytes | None) -> bool:
        if header is not None and self.bearer_token and header[:7].lower() == b"bearer ":
            return hmac.compare_digest(header[7:].strip(), self.bearer_token)
        if header is None or header[:6].lower() != b"basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        if not colon:
            return False
        try:
            hashed = self.users.get(user.decode("utf-8"))
        except UnicodeDecodeError:
            return False
        if hashed is None:
            return False
        fingerprint = hashlib.sha256(hashed + b"\0" + decoded).digest()
        with self._lock:
            if any(hmac.compare_digest(fingerprint, seen) for seen in self._passed):
                return True
        if not bcrypt.checkpw(password, hashed):
            return False
        with self._lock:
            self._passed.add(fingerprint)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        if self.authorized(header):
            await self.app(scope, receive, send)
            return
        await _plain_answer(
            send,
            401,
            b"authentication required\n",
            [(b"www-authenticate", f'Basic realm="{self.realm}"'.encode())],
        )


class RequestLimits:
    """ASGI middleware: a request body over ``max_body_bytes`` is refused with 413 (by its
    Content-Length, or as it streams in without one). The API takes no bodies; the limit is
    what a client can make the service read."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await _plain_answer(send, 413, b"request body too large\n")
            return
        received = 0
        limit = self.max_body_bytes

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, bounded_receive, send)
        except _BodyTooLarge:
            await _plain_answer(send, 413, b"request body too large\n")


class _BodyTooLarge(Exception):
    pass


async def _plain_answer(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
