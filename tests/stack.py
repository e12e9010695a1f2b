"""The real monitoring stack on loopback, for end-to-end tests: Prometheus, Alertmanager and
VictoriaMetrics from Debian's packages, a webhook receiver, each on a free port of 127.0.0.1 and
stopped when the test ends. Waits poll a real endpoint until a condition holds or a deadline
passes; nothing sleeps and then asserts."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import IN_CI
from tests.loopback import LoopbackServer, QuietServer

HOST = "127.0.0.1"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def binary(name: str, package: str) -> str:
    """Path to a Debian package's binary; skips the test where it is absent (fails in CI)."""
    path = shutil.which(name)
    if path is None:
        what = f"{name} not found on PATH (Debian: apt-get install {package})"
        if IN_CI:
            pytest.fail(f"{what} (required under CI=true)")
        pytest.skip(what)
    return path


def wait_for(probe: Callable[[], T | None], *, within: float, what: str, every: float = 0.25) -> T:
    """Poll ``probe`` until it returns something other than None (or falsy), or fail after
    ``within`` seconds naming ``what`` and the last value seen."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = probe()
        except (httpx.HTTPError, OSError, ValueError) as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s (last: {last!r})")
        time.sleep(every)


@dataclass
class Process:
    """A server process, its base URL and the file its output goes to."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


@contextmanager
def running(
    name: str, command: list[str], url: str, ready_path: str, log: Path
) -> Iterator[Process]:
    """Start ``command``, wait for ``url + ready_path`` to answer 200, stop it on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Process(name, url, process, log)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{server.output()}")
            return httpx.get(url + ready_path, timeout=2).status_code == 200

        try:
            wait_for(ready, within=60, what=f"{name} ready at {url}{ready_path}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{server.output()}") from None
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def prometheus(workdir: Path, config: dict[str, Any]) -> Iterator[Process]:
    """A real Prometheus with ``config`` (rule_files paths absolute), its TSDB in workdir."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    command = [
        binary("prometheus", "prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address={HOST}:{port}",
        "--web.enable-lifecycle",
        # Prometheus drops the alerts it evaluates before its Alertmanager is discovered (a few
        # seconds after start) and sends them again only after this delay (1 min by default).
        "--rules.alert.resend-delay=1s",
        "--log.level=warn",
    ]
    with running("prometheus", command, f"http://{HOST}:{port}", "/-/ready", workdir / "log") as p:
        yield p


@contextmanager
def alertmanager(workdir: Path, config_text: str) -> Iterator[Process]:
    """A real Alertmanager (Debian: prometheus-alertmanager) with ``config_text``, no cluster."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(config_text, encoding="utf-8")
    command = [
        binary("prometheus-alertmanager", "prometheus-alertmanager"),
        f"--config.file={config_file}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    with running(
        "alertmanager", command, f"http://{HOST}:{port}", "/-/ready", workdir / "log"
    ) as a:
        yield a


@contextmanager
def victoria_metrics(workdir: Path, *flags: str) -> Iterator[Process]:
    """A real single-node VictoriaMetrics (Debian: victoria-metrics) on loopback; ``flags``
    are added to its command line."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        binary("victoria-metrics", "victoria-metrics"),
        f"-storageDataPath={workdir / 'data'}",
        f"-httpListenAddr={HOST}:{port}",
        "-loggerLevel=WARN",
        *flags,
    ]
    with running(
        "victoria-metrics", command, f"http://{HOST}:{port}", "/health", workdir / "log"
    ) as v:
        yield v


def query(base_url: str, promql: str) -> list[dict[str, Any]]:
    """An instant PromQL query's result vector (Prometheus or VictoriaMetrics API)."""
    answer = httpx.get(f"{base_url}/api/v1/query", params={"query": promql}, timeout=10)
    answer.raise_for_status()
    body = answer.json()
    if body.get("status") != "success":
        raise AssertionError(f"query {promql!r} failed: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def firing_alerts(prometheus_url: str) -> list[dict[str, Any]]:
    """Alerts Prometheus has firing now (pending ones left out)."""
    answer = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=10)
    answer.raise_for_status()
    alerts: list[dict[str, Any]] = answer.json()["data"]["alerts"]
    return [alert for alert in alerts if alert["state"] == "firing"]


# --- a webhook receiver that keeps what Alertmanager delivers ----------------------------------


class _WebhookHandler(BaseHTTPRequestHandler):
    server: QuietServer[WebhookReceiver]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"{}")
        self.server.owner.record(self.path, payload)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Delivery:
    path: str
    payload: dict[str, Any]


@dataclass
class WebhookReceiver(LoopbackServer):
    """Alertmanager's webhook receiver on loopback: every notification it was sent, in order."""

    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def make_server(self) -> ThreadingHTTPServer:
        server = QuietServer(self, _WebhookHandler)
        self.url = f"http://{HOST}:{server.server_address[1]}"
        return server

    def record(self, path: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.deliveries.append(Delivery(path, payload))

    def alerts(self, status: str = "firing") -> list[dict[str, Any]]:
        """Every alert delivered with ``status``, newest notification last."""
        with self._lock:
            return [
                alert
                for delivery in self.deliveries
                for alert in delivery.payload.get("alerts", [])
                if alert.get("status") == status
            ]
