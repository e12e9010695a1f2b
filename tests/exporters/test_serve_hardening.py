"""The real `gigawatt serve` under faults, restarts and strangers, in subprocesses on
127.0.0.1: energy counters continue across a SIGKILL, SIGTERM ends the process within 5 s
with a target that never answers, TLS and basic auth checked by a real client against a
certificate made here, and bad options refused without a traceback or a password echoed."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.exporters.test_server import ROOT, cli_env, free_port, gigawatt, samples

HOST = "127.0.0.1"


@contextmanager
def started(
    logs: Path, *options: str, scheme: str = "http", **client: object
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`gigawatt serve --host 127.0.0.1 --port FREE OPTIONS` until /readyz answers 200 (with
    ``client``'s TLS and auth options); killed on exit if still running."""
    port = free_port()
    command = [sys.executable, "-m", "exporters.cli", "serve", "--host", HOST, "--port", str(port)]
    stderr = (logs / f"stderr-{port}").open("wb")
    process = subprocess.Popen([*command, *options], cwd=ROOT, env=cli_env(), stderr=stderr)
    url = f"{scheme}://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (logs / f"stderr-{port}").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2, **client).status_code == 200:  # type: ignore[arg-type]
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (logs / f"stderr-{port}").read_text()
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=15)
        stderr.close()


def energy(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {key: value for key, value in samples(text).items() if key[0].endswith("_joules_total")}


def cycles(url: str) -> float:
    return samples(httpx.get(f"{url}/metrics", timeout=10).text)[("gigawatt_cycles_total", ())]


def test_energy_counters_continue_after_a_sigkill(tmp_path: Path) -> None:
    """The finding: 40.4 MJ before a kill -9, 13.1 MJ after. Killed mid-run and restarted on
    the same state directory, every energy counter goes on from where it was: never lower,
    and never higher than the site's contract could have drawn in the meantime."""
    state = tmp_path / "state"
    options = ("--preset", "demo", "--interval", "0.5", "--state-dir", str(state))
    with started(tmp_path, *options) as (url, process):
        deadline = time.monotonic() + 30
        while cycles(url) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        before = energy(url)
        killed_at = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert any(value > 0 for value in before.values())
    with started(tmp_path, *options) as (url, _):
        after = energy(url)
        elapsed = time.time() - killed_at
        text = httpx.get(f"{url}/metrics", timeout=10).text
    contract_watts = 60e6  # the demo site's contract is far below this
    for key, value in before.items():
        assert after[key] >= value, key
        assert after[key] - value <= contract_watts * elapsed, key
    start = samples(text)[("process_start_time_seconds", ())]
    assert start >= killed_at - 1  # the restart shows, though the counters went on


class Silent:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self.socket = socket.create_server((HOST, 0))
        self.port = self.socket.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.socket.settimeout(0.2)
        while not self.stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for connection in self.held:
            connection.close()
        self.socket.close()


def test_a_target_that_never_answers_costs_its_data_not_the_service(tmp_path: Path) -> None:
    """The finding: one never-answering target with timeout_seconds 60 stalled every cycle,
    /readyz said 503 and SIGTERM had not ended the process after 30 s."""
    silent = Silent()
    try:
        collectors = tmp_path / "collectors.yaml"
        collectors.write_text(
            "sources:\n"
            "  - kind: prometheus\n"
            "    name: exporters\n"
            "    deadline_seconds: 60\n"
            "    targets:\n"
            f"      - {{url: 'http://{HOST}:{silent.port}/metrics', exporter: dcgm, "
            "timeout_seconds: 60}\n"
            "  - kind: simulated\n",
            encoding="utf-8",
        )
        options = ("--preset", "demo", "--interval", "1", "--no-state", "--collectors")
        with started(tmp_path, *options, str(collectors)) as (url, process):
            for _ in range(3):  # ready on every check, cycle after cycle
                assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
                time.sleep(0.5)
            scraped = samples(httpx.get(f"{url}/metrics", timeout=10).text)
            up = {
                labels: value
                for (name, labels), value in scraped.items()
                if name == "gigawatt_source_up"
            }
            assert up[(("source", "exporters"), ("target", "exporters"))] == 0.0
            assert up[(("source", "simulated"), ("target", "simulated"))] == 1.0
            missed = scraped[
                (
                    "gigawatt_source_problems_total",
                    (("reason", "deadline_exceeded"), ("source", "exporters")),
                )
            ]
            assert missed >= 1
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            assert time.monotonic() - signalled < 5.0
        logged = "".join(path.read_text() for path in tmp_path.glob("stderr-*"))
        assert "Cannot run the event loop while another loop is running" not in logged
    finally:
        silent.close()


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made here."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gigawatt test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_and_basic_auth_with_a_real_client(tmp_path: Path) -> None:
    cert_path, _ = certificate(tmp_path)
    cert = ssl.create_default_context(cafile=cert_path)
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n",
        encoding="utf-8",
    )
    auth = ("prometheus", "correct horse")
    options = ("--preset", "demo", "--interval", "1", "--no-state", "--web-config", str(web))
    with started(tmp_path, *options, scheme="https", verify=cert, auth=auth) as (url, _):
        answer = httpx.get(f"{url}/metrics", verify=cert, auth=auth, timeout=10)
        assert answer.status_code == 200 and b"gigawatt_build_info" in answer.content
        assert httpx.get(f"{url}/metrics", verify=cert, timeout=10).status_code == 401
        wrong = httpx.get(f"{url}/metrics", verify=cert, auth=("prometheus", "x"), timeout=10)
        assert wrong.status_code == 401
        with pytest.raises(httpx.TransportError):  # no plain HTTP on a TLS port
            httpx.get(url.replace("https", "http") + "/metrics", timeout=5)
        with pytest.raises(httpx.TransportError):  # a client that does not trust the cert
            httpx.get(f"{url}/metrics", auth=auth, timeout=5)
    logged = "".join(path.read_text() for path in tmp_path.glob("stderr-*"))
    assert "correct horse" not in logged and hashed not in logged


def test_a_bad_web_config_is_refused_at_start_without_echoing_secrets(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n"
        "basic_auth_users:\n  prometheus: 'plain-text-password'\n",
        encoding="utf-8",
    )
    result = gigawatt("serve", "--preset", "demo", "--no-state", "--web-config", str(web))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "not a bcrypt hash" in result.stderr and "no such file" in result.stderr
    assert "plain-text-password" not in result.stderr


@pytest.mark.parametrize("interval", ["1e300", "inf", "1e-9", "nan"])
def test_an_unusable_interval_is_a_usage_error(interval: str) -> None:
    result = gigawatt("serve", "--preset", "demo", "--no-state", "--interval", interval)
    assert result.returncode == 2
    assert "--interval" in result.stderr and "Traceback" not in result.stderr


def test_probe_never_echoes_a_password() -> None:
    for url in ("gopher://admin:hunter2@127.0.0.1:1/", "http://admin:hunter2@127.0.0.1:1/x"):
        result = gigawatt("probe", "prometheus", url)
        assert result.returncode == 2
        assert "hunter2" not in result.stderr + result.stdout
        assert "admin:***@" in result.stderr
