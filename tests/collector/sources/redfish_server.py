"""A real Redfish service on 127.0.0.1 for tests: a threaded HTTP server over a mockup folder.

``/redfish/v1/X`` is served from ``<root>/redfish/v1/X/index.json`` (the DMTF mockup layout),
read in place; ``routes`` maps single paths to any file (the telegraf captures). Per-path
behaviours make it misbehave the way BMCs do: a delay (a hang, when long), a fixed status
(500, 401...). ``max_in_flight`` is a session-count limit: a request that arrives while that
many are already being answered gets 503. With ``credentials`` every resource but the service
root needs an X-Auth-Token from SessionService/Sessions (or basic auth, when allowed), and the
server counts logins and logouts. An ``InFlightTracker`` shared by several servers measures how
many requests were in flight across all of them at once.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.loopback import InFlight, LoopbackServer, QuietServer

SERVICE_ROOT = "/redfish/v1"
SESSIONS = f"{SERVICE_ROOT}/SessionService/Sessions"


@dataclass(frozen=True)
class PathBehaviour:
    delay_seconds: float = 0.0  # before answering; stop() cuts it short
    status: int | None = None  # answer with this status and an error body


InFlightTracker = InFlight


class RedfishServer(LoopbackServer):
    def __init__(
        self,
        root: Path | None = None,
        *,
        routes: Mapping[str, Path] | None = None,
        behaviours: Mapping[str, PathBehaviour] | None = None,
        response_delay_seconds: float = 0.0,
        max_in_flight: int | None = None,
        tracker: InFlightTracker | None = None,
        credentials: tuple[str, str] | None = None,
        sessions: bool = True,
        basic_auth: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.root = root
        self.routes = {path.rstrip("/"): file for path, file in (routes or {}).items()}
        self.behaviours = {path.rstrip("/"): b for path, b in (behaviours or {}).items()}
        self.response_delay_seconds = response_delay_seconds
        self.max_in_flight = max_in_flight
        self.tracker = tracker
        self.credentials = credentials
        self.sessions_enabled = sessions
        self.basic_auth = basic_auth
        self.tls = tls
        super().__init__()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.overloads = 0  # requests answered 503 by the session-count limit
        self.unauthorized = 0  # requests answered 401
        self.logins = 0
        self.logouts = 0
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.tokens: dict[str, str] = {}  # token -> session path

    # --- lifecycle ---

    def make_server(self) -> ThreadingHTTPServer:
        server = QuietServer(self, _Handler)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        return server

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def expire_sessions(self) -> None:
        """Forget every token, as a BMC does after a reboot or a session timeout."""
        with self.lock:
            self.tokens.clear()

    # --- answering ---

    def file_for(self, path: str, query: str = "") -> Path | None:
        """The file behind a path: a route (query included, for paged collections), else the
        mockup's index.json."""
        if query and f"{path}?{query}" in self.routes:
            return self.routes[f"{path}?{query}"]
        if path in self.routes:
            return self.routes[path]
        if self.root is None or not (path == SERVICE_ROOT or path.startswith(SERVICE_ROOT + "/")):
            return None
        candidate = (self.root / path.lstrip("/") / "index.json").resolve()
        if not candidate.is_relative_to(self.root.resolve()) or not candidate.is_file():
            return None
        return candidate

    def authorized(self, headers: Message[str, str]) -> bool:
        if self.credentials is None:
            return True
        token = headers.get("X-Auth-Token")
        if token is not None:
            with self.lock:
                return token in self.tokens
        header = headers.get("Authorization", "")
        if self.basic_auth and header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (user, password) == self.credentials
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # header and body go out as separate writes
    server: QuietServer[RedfishServer]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        body = self._request_body()
        self._counted = True
        with owner.lock:
            owner.requests.append((method, path))
            owner.in_flight += 1
            owner.peak_in_flight = max(owner.peak_in_flight, owner.in_flight)
            overloaded = owner.max_in_flight is not None and owner.in_flight > owner.max_in_flight
            if overloaded:
                owner.overloads += 1
        if owner.tracker is not None:
            owner.tracker.enter()
        try:
            if overloaded:
                self._json(503, _error("too many sessions in use"))
                return
            behaviour = owner.behaviours.get(path, PathBehaviour())
            delay = owner.response_delay_seconds + behaviour.delay_seconds
            if delay and owner.stopping.wait(delay):
                return
            if behaviour.status is not None:
                self._json(behaviour.status, _error(f"configured status {behaviour.status}"))
                return
            self._answer(owner, method, path, parts.query, body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._leave()

    def _leave(self) -> None:
        """The request stops counting as in flight, once: just before its response is written,
        since a client may send its next request the moment the response arrives, before this
        thread gets to run again (counting after the write made two requests seem to overlap)."""
        if not getattr(self, "_counted", False):
            return
        self._counted = False
        owner = self.server.owner
        if owner.tracker is not None:
            owner.tracker.leave()
        with owner.lock:
            owner.in_flight -= 1

    def _request_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(
        self, owner: RedfishServer, method: str, path: str, query: str, body: bytes
    ) -> None:
        if method == "POST" and path == SESSIONS:
            self._login(owner, body)
            return
        if method == "DELETE" and path.startswith(SESSIONS + "/"):
            self._logout(owner, path)
            return
        if method != "GET":
            self._json(405, _error(f"{method} not allowed"))
            return
        if path != SERVICE_ROOT and not owner.authorized(self.headers):
            with owner.lock:
                owner.unauthorized += 1
            self._json(401, _error("authentication required"))
            return
        file = owner.file_for(path, query)
        if file is None:
            self._json(404, _error(f"{path} not found"))
            return
        self._send(200, file.read_bytes())

    def _login(self, owner: RedfishServer, body: bytes) -> None:
        if not owner.sessions_enabled:
            self._json(405, _error("sessions are not supported"))
            return
        try:
            request = json.loads(body)
            given = (request["UserName"], request["Password"])
        except (ValueError, KeyError, TypeError):
            self._json(400, _error("UserName and Password required"))
            return
        if owner.credentials is not None and given != owner.credentials:
            self._json(401, _error("invalid credentials"))
            return
        token = secrets.token_hex(16)
        session = f"{SESSIONS}/{secrets.token_hex(4)}"
        with owner.lock:
            owner.tokens[token] = session
            owner.logins += 1
        payload = {"@odata.id": session, "Id": session.rsplit("/", 1)[-1], "UserName": given[0]}
        self._json(201, payload, {"X-Auth-Token": token, "Location": session})

    def _logout(self, owner: RedfishServer, path: str) -> None:
        with owner.lock:
            token = self.headers.get("X-Auth-Token")
            if token is None or owner.tokens.get(token) != path:
                owner.unauthorized += 1
                self._json(401, _error("not your session"))
                return
            del owner.tokens[token]
            owner.logouts += 1
        self._send(204, b"")

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self._leave()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)


def _error(message: str) -> dict[str, Any]:
    return {"error": {"code": "Base.1.0.GeneralError", "message": message}}
