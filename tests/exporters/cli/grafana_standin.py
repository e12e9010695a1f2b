"""A Grafana stand-in on loopback for the push tests: the folder and dashboard endpoints of
Grafana's HTTP API, checking requests the way its documentation describes them.

- Authentication: ``Authorization: Bearer <token>`` or HTTP basic; anything else is 401. A
  viewer's token may read but not write (403).
- ``GET /api/folders/<uid>``, ``POST /api/folders`` (``title``, ``uid``).
- ``GET /api/dashboards/uid/<uid>``: ``{"dashboard": ..., "meta": {"folderUid": ...}}``.
- ``POST /api/dashboards/db``: ``{"dashboard": {...}, "folderUid", "message", "overwrite"}``.
  A dashboard needs a title and a uid; ``folderUid`` must name an existing folder (left out,
  Grafana files the dashboard in the root, which the stand-in records); a dashboard that
  exists is replaced only with ``overwrite: true`` or the version stored, else 412
  ``version-mismatch``. Each save bumps the version.

``concurrent_edits`` makes someone else save every dashboard right after it is read, so the
next write of it meets a new version (the 412 case).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.loopback import LoopbackServer, QuietServer

ROOT_FOLDER = ""


@dataclass
class Request:
    method: str
    path: str
    authorization: str
    content_type: str
    body: Any


class _Handler(BaseHTTPRequestHandler):
    server: QuietServer[GrafanaStandIn]

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = Request(
            method,
            self.path,
            self.headers.get("Authorization", ""),
            self.headers.get("Content-Type", ""),
            body,
        )
        status, payload = self.server.owner.handle(request)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class GrafanaStandIn(LoopbackServer):
    tokens: dict[str, str] = field(default_factory=dict)  # token -> role (Editor, Viewer)
    users: dict[tuple[str, str], str] = field(default_factory=dict)  # (user, password) -> role
    concurrent_edits: bool = False
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    boards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> dashboard
    board_folders: dict[str, str] = field(default_factory=dict)  # uid -> folder uid
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._next_id = 1

    def make_server(self) -> ThreadingHTTPServer:
        server = QuietServer(self, _Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return server

    def writes(self) -> list[Request]:
        return [request for request in self.requests if request.method == "POST"]

    # --- the API ---------------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            role = self._role(request.authorization)
            if role is None:
                return 401, {"message": "Unauthorized", "messageId": "auth.unauthorized"}
            if request.method == "POST":
                if role != "Editor":
                    return 403, {"message": "Access denied", "messageId": "access.denied"}
                if not request.content_type.startswith("application/json"):
                    return 415, {"message": "Content-Type must be application/json"}
                if not isinstance(request.body, dict):
                    return 400, {"message": "bad request data"}
            return self._route(request)

    def _role(self, authorization: str) -> str | None:
        kind, _, credential = authorization.partition(" ")
        if kind == "Bearer":
            return self.tokens.get(credential)
        if kind == "Basic":
            try:
                user, _, password = base64.b64decode(credential).decode().partition(":")
            except ValueError:
                return None
            return self.users.get((user, password))
        return None

    def _route(self, request: Request) -> tuple[int, Any]:
        method, path = request.method, request.path.split("?", 1)[0]
        if method == "GET" and path.startswith("/api/folders/"):
            folder = self.folders.get(path.removeprefix("/api/folders/"))
            if folder is None:
                return 404, {"message": "folder not found", "status": "not-found"}
            return 200, folder
        if method == "POST" and path == "/api/folders":
            return self._create_folder(request.body)
        if method == "GET" and path.startswith("/api/dashboards/uid/"):
            uid = path.removeprefix("/api/dashboards/uid/")
            if uid not in self.boards:
                return 404, {"message": "Dashboard not found"}
            board = self.boards[uid]
            answer = {
                "dashboard": json.loads(json.dumps(board)),
                "meta": {"folderUid": self.board_folders[uid], "provisioned": False},
            }
            if self.concurrent_edits:
                board["version"] += 1  # someone saves it in the UI meanwhile
            return 200, answer
        if method == "POST" and path == "/api/dashboards/db":
            return self._save(request.body)
        return 404, {"message": "Not found"}

    def _create_folder(self, body: dict[str, Any]) -> tuple[int, Any]:
        title, uid = body.get("title"), body.get("uid")
        if not isinstance(title, str) or not title:
            return 400, {"message": "folder title cannot be empty"}
        if not isinstance(uid, str) or uid in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        folder = {"id": self._id(), "uid": uid, "title": title, "url": f"/dashboards/f/{uid}/"}
        self.folders[uid] = folder
        return 200, folder

    def _save(self, body: dict[str, Any]) -> tuple[int, Any]:
        board = body.get("dashboard")
        if not isinstance(board, dict):
            return 400, {"message": "dashboard is required"}
        title, uid = board.get("title"), board.get("uid")
        if not isinstance(title, str) or not title.strip():
            return 400, {"message": "Dashboard title cannot be empty"}
        if not isinstance(uid, str) or not uid:
            return 400, {"message": "this stand-in wants every dashboard to carry its uid"}
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            return 400, {"message": "overwrite must be a boolean"}
        folder = body.get("folderUid", ROOT_FOLDER)
        if folder != ROOT_FOLDER and folder not in self.folders:
            return 400, {"message": "folder not found", "status": "not-found"}
        stored = self.boards.get(uid)
        if stored is not None and not overwrite and board.get("version") != stored["version"]:
            return 412, {
                "message": "The dashboard has been changed by someone else",
                "status": "version-mismatch",
            }
        if stored is None and board.get("id") is not None:
            return 404, {"message": "Dashboard not found", "status": "not-found"}
        saved = dict(board)
        saved["id"] = stored["id"] if stored else self._id()
        saved["version"] = stored["version"] + 1 if stored else 1
        self.boards[uid] = saved
        self.board_folders[uid] = folder
        return 200, {
            "id": saved["id"],
            "uid": uid,
            "url": f"/d/{uid}/",
            "status": "success",
            "version": saved["version"],
        }

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id
