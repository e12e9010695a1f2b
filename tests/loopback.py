"""What the loopback test servers share: a threaded server's lifecycle on 127.0.0.1, and an
in-flight counter that several servers can share to see how many requests overlap."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

Owner = TypeVar("Owner")


class InFlight:
    """Requests being answered, and the most at once, across every server that shares it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def enter(self) -> int:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
            return self.current

    def leave(self) -> None:
        with self._lock:
            self.current -= 1


class QuietServer(ThreadingHTTPServer, Generic[Owner]):
    """A threaded server on 127.0.0.1 (a free port) whose handlers reach their test server as
    ``self.server.owner``; it does not print clients that hang up mid-answer."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: Owner, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that gave up (deadline tests) close their sockets mid-answer


class LoopbackServer:
    """Runs ``make_server()`` in a thread between ``start()`` and ``stop()`` (or as a context
    manager). Subclasses build the server and keep their own state."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def make_server(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = self.make_server()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _ExporterHandler(BaseHTTPRequestHandler):
    server: QuietServer[ExporterServer]

    def do_GET(self) -> None:
        body = self.server.owner.body
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class ExporterServer(LoopbackServer):
    """A Prometheus exporter on loopback serving ``body``, which a test may replace between
    scrapes (a counter that moves, an exporter that restarts)."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body
        self.url = ""

    def make_server(self) -> ThreadingHTTPServer:
        server = QuietServer(self, _ExporterHandler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        return server
