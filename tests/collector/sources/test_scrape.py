"""The Prometheus scrape client against a real threaded HTTP server on 127.0.0.1.

Real payloads (DataDog's dcgm-exporter capture, node_exporter's end-to-end output) read in
place and served over HTTP, and the ways targets fail in the field: a dead port, a target
that hangs for a minute, an HTTP 500, a JSON answer, a body over the size limit.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from collector.sources.promtext import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    parse_exposition,
)
from collector.sources.scrape import (
    ScrapeClients,
    Scraper,
    ScrapeResult,
    ScrapeTarget,
    parse_many,
    scrape_all,
)
from tests.loopback import InFlight, LoopbackServer, QuietServer

NOW = 1_780_000_000.0
T4_UUID = "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e"


# --- a real exporter stand-in ----------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    body: bytes
    content_type: str = TEXT_CONTENT_TYPE
    status: int = 200
    delay_seconds: float = 0.0  # before answering; stop() cuts it short


class MetricsServer(LoopbackServer):
    """Serves fixed payloads by path over HTTP/1.1 with keep-alive; counts connections and
    requests and records the headers of each request."""

    def __init__(self, routes: Mapping[str, Route], tracker: InFlight | None = None) -> None:
        self.routes = dict(routes)
        self.tracker = tracker or InFlight()
        super().__init__()
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []

    def make_server(self) -> ThreadingHTTPServer:
        return QuietServer(self, _Handler)

    def url(self, path: str) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: QuietServer[MetricsServer]

    def setup(self) -> None:
        super().setup()
        with self.server.owner.lock:
            self.server.owner.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.requests.append((self.path, dict(self.headers.items())))
        route = owner.routes.get(self.path)
        owner.tracker.enter()
        try:
            if route is None:
                self._send(404, "text/plain", b"not found\n")
                return
            if route.delay_seconds and owner.stopping.wait(route.delay_seconds):
                return
            self._send(route.status, route.content_type, route.body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            owner.tracker.leave()

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def dead_url() -> str:
    """A loopback port nothing listens on: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dcgm_capture(shared_fixtures: Path) -> bytes:
    return (
        shared_fixtures / "datadog-integrations-core-dcgm/dcgm/tests/fixtures/metrics.txt"
    ).read_bytes()


@pytest.fixture(scope="module")
def node_output(shared_fixtures: Path) -> bytes:
    return (
        shared_fixtures / "prometheus-node_exporter/collector/fixtures/e2e-output.txt"
    ).read_bytes()


def eight_gpu_payload(capture: bytes, host: str) -> str:
    """A dcgm-exporter answer built from the capture's families: 8 GPUs on one host."""
    lines: list[str] = []
    declared: set[str] = set()
    for line in capture.decode().splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{[^}]*\})? (\S+)$", line)
        assert match, line
        name, value = match.groups()
        if name in declared:
            continue
        declared.add(name)
        lines += [f"# HELP {name} {name.lower()}", f"# TYPE {name} gauge"]
        for gpu in range(8):
            labels = f'gpu="{gpu}",UUID="GPU-{host}-{gpu}",Hostname="{host}"'
            lines.append(f"{name}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"


def scrape(targets: list[ScrapeTarget], **options: Any) -> ScrapeResult:
    return asyncio.run(scrape_all(targets, NOW, **options))


def health(result: ScrapeResult, url: str) -> dict[str, Any]:
    rows = result.targets.filter(pl.col("target") == url).to_dicts()
    assert len(rows) == 1, result.targets
    return rows[0]


def reasons(result: ScrapeResult, url: str) -> list[str]:
    return result.problems.filter(pl.col("target") == url).get_column("reason").to_list()


def reading(result: ScrapeResult, device: str, metric: str) -> float:
    values = result.readings.filter(
        (pl.col("device") == device) & (pl.col("metric") == metric)
    ).get_column("value")
    assert values.len() == 1, result.readings
    return float(values[0])


# --- real payloads ---------------------------------------------------------------------------


def test_dcgm_capture_over_http(dcgm_capture: bytes) -> None:
    with MetricsServer({"/metrics": Route(dcgm_capture)}) as server:
        url = server.url("/metrics")
        result = scrape([ScrapeTarget(url=url)])
    assert reading(result, T4_UUID, "power_watts") == pytest.approx(8.969)
    assert reading(result, T4_UUID, "energy_joules") == pytest.approx(128996.013)
    t4 = result.readings.filter(pl.col("device") == T4_UUID).row(0, named=True)
    assert (t4["source"], t4["target"], t4["host"]) == ("prometheus", url, "424773df46e0")
    assert t4["timestamp_seconds"] == NOW
    row = health(result, url)
    assert (row["up"], row["exporter"], row["samples"]) == (1, "dcgm", 38)
    assert row["last_success_seconds"] == NOW
    assert row["problems"] == result.problems.height
    # The capture has no final newline: read anyway, and said so at its last line.
    problem = result.problems.filter(pl.col("reason") == "missing_final_newline").row(0, named=True)
    last_line = len(dcgm_capture.splitlines())
    assert problem["location"] == f"line {last_line}"


def test_node_exporter_rapl_joules(node_output: bytes) -> None:
    with MetricsServer({"/metrics": Route(node_output)}) as server:
        url = server.url("/metrics")
        result = scrape([ScrapeTarget(url=url, exporter="node")])
    # fixtures/README.md: equal to energy_uj / 1e6 in sys-extract's powercap tree
    assert reading(result, "intel-rapl:0", "energy_joules") == 240422.366267
    assert reading(result, "intel-rapl:0:0", "energy_joules") == 118821.284256
    assert health(result, url)["samples"] == 3027
    assert health(result, url)["up"] == 1


def test_auto_finds_no_exporter_in_a_prometheus_self_scrape(shared_fixtures: Path) -> None:
    body = (shared_fixtures / "prometheus-common-expfmt/expfmt/testdata/text").read_bytes()
    with MetricsServer({"/metrics": Route(body)}) as server:
        url = server.url("/metrics")
        result = scrape([ScrapeTarget(url=url)])
    assert result.readings.height == 0
    assert reasons(result, url) == ["unknown_exporter"]
    # It answered, but gave no reading it was read for: up is for targets that give readings.
    assert health(result, url)["up"] == 0


# --- targets that fail -------------------------------------------------------------------------


def test_each_failure_costs_only_its_own_target(dcgm_capture: bytes) -> None:
    routes = {
        "/good": Route(dcgm_capture),
        "/hang": Route(dcgm_capture, delay_seconds=60),
        "/error": Route(b"boom\n", status=500),
        "/json": Route(b'{"power": 1}', content_type="application/json"),
        "/big": Route(b"x 1\n" * 1000),
    }
    with MetricsServer(routes) as server:
        targets = {
            "good": ScrapeTarget(url=server.url("/good")),
            "hang": ScrapeTarget(url=server.url("/hang")),
            "dead": ScrapeTarget(url=dead_url()),
            "error": ScrapeTarget(url=server.url("/error")),
            "json": ScrapeTarget(url=server.url("/json")),
            "big": ScrapeTarget(url=server.url("/big"), max_response_bytes=1000),
        }
        started = time.monotonic()
        result = scrape(list(targets.values()), deadline_seconds=2)
        elapsed = time.monotonic() - started
    assert elapsed < 4, f"the 2 s deadline took {elapsed:.1f} s"
    expected = {
        "hang": "timeout",
        "dead": "connect_error",
        "error": "http_status",
        "json": "content_type",
        "big": "too_large",
    }
    for name, reason in expected.items():
        url = targets[name].url
        assert reasons(result, url) == [reason], name
        row = health(result, url)
        assert (row["up"], row["samples"], row["problems"]) == (0, 0, 1), name
        assert row["last_success_seconds"] is None
    assert health(result, targets["good"].url)["up"] == 1
    assert reading(result, T4_UUID, "power_watts") == pytest.approx(8.969)
    assert set(result.readings.get_column("target")) == {targets["good"].url}
    message = result.problems.filter(pl.col("target") == targets["error"].url).row(0, named=True)
    assert message["message"].startswith("HTTP 500")


def test_a_target_timeout_ends_that_request(dcgm_capture: bytes) -> None:
    with MetricsServer({"/hang": Route(dcgm_capture, delay_seconds=60)}) as server:
        url = server.url("/hang")
        started = time.monotonic()
        result = scrape([ScrapeTarget(url=url, timeout_seconds=0.5)], deadline_seconds=30)
        elapsed = time.monotonic() - started
        sent = server.requests[0][1]
    assert elapsed < 2
    assert reasons(result, url) == ["timeout"]
    assert health(result, url)["duration_seconds"] == pytest.approx(0.5, abs=0.3)
    assert sent["X-Prometheus-Scrape-Timeout-Seconds"] == "0.5"
    assert sent["Accept"].startswith("text/plain;version=0.0.4")


def test_a_declared_length_over_the_limit_is_not_read(dcgm_capture: bytes) -> None:
    with MetricsServer({"/metrics": Route(dcgm_capture)}) as server:
        url = server.url("/metrics")
        result = scrape([ScrapeTarget(url=url, max_response_bytes=100)])
    problem = result.problems.row(0, named=True)
    assert (problem["reason"], problem["location"]) == ("too_large", "request")
    assert "Content-Length" in problem["message"]


# --- concurrency -------------------------------------------------------------------------------


def test_at_most_max_concurrency_requests_at_once(dcgm_capture: bytes) -> None:
    tracker = InFlight()
    route = Route(dcgm_capture, delay_seconds=0.15)
    servers = [MetricsServer({f"/m{i}": route for i in range(4)}, tracker) for _ in range(5)]
    for server in servers:
        server.start()
    try:
        targets = [ScrapeTarget(url=server.url(f"/m{i}")) for server in servers for i in range(4)]
        result = scrape(targets, max_concurrency=4)
    finally:
        for server in servers:
            server.stop()
    assert len(targets) == 20
    assert int(result.targets.get_column("up").sum()) == 20
    assert 2 <= tracker.peak <= 4


def test_targets_on_one_origin_share_its_connections(dcgm_capture: bytes) -> None:
    route = Route(dcgm_capture, delay_seconds=0.05)
    with MetricsServer({f"/m{i}": route for i in range(12)}) as server:

        async def run() -> ScrapeResult:
            clients = ScrapeClients(max_connections_per_origin=2)
            try:
                targets = [ScrapeTarget(url=server.url(f"/m{i}")) for i in range(12)]
                return await scrape_all(targets, NOW, clients=clients)
            finally:
                await clients.aclose()

        result = asyncio.run(run())
    assert int(result.targets.get_column("up").sum()) == 12
    assert server.tracker.peak <= 2
    assert server.connections <= 2  # twelve requests, kept-alive connections


def test_the_scraper_keeps_connections_and_last_success(dcgm_capture: bytes) -> None:
    with MetricsServer({"/a": Route(dcgm_capture), "/b": Route(dcgm_capture)}) as server:
        a, b = ScrapeTarget(url=server.url("/a")), ScrapeTarget(url=server.url("/b"))
        with Scraper([a, b], max_concurrency=1) as scraper:
            first = scraper.scrape(NOW)
            server.routes["/b"] = Route(b"down\n", status=503)
            second = scraper.scrape(NOW + 10)
            assert scraper.last_success == {a.url: NOW + 10, b.url: NOW}
        assert server.connections == 1  # one origin, one request at a time, two calls
    assert first.targets.get_column("up").to_list() == [1, 1]
    assert health(second, a.url)["last_success_seconds"] == NOW + 10
    down = health(second, b.url)
    assert (down["up"], down["last_success_seconds"]) == (0, NOW)
    assert reasons(second, b.url) == ["http_status"]


# --- headers and configuration ----------------------------------------------------------------


def test_header_values_come_from_the_environment(dcgm_capture: bytes) -> None:
    with MetricsServer({"/metrics": Route(dcgm_capture)}) as server:
        target = ScrapeTarget(
            url=server.url("/metrics"), headers_env={"Authorization": "GW_DCGM_TOKEN"}
        )
        result = scrape([target], environ={"GW_DCGM_TOKEN": "Bearer s3cret"})
        assert server.requests[-1][1]["Authorization"] == "Bearer s3cret"
        assert health(result, target.url)["up"] == 1
        asked = len(server.requests)
        missing = scrape([target], environ={})
        assert len(server.requests) == asked  # nothing sent without the header
    assert reasons(missing, target.url) == ["headers_missing"]
    assert "GW_DCGM_TOKEN" in missing.problems.row(0, named=True)["message"]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"url": "ftp://host/metrics"}, "http:// or https://"),
        ({"url": "http://user:pw@host/metrics"}, "credentials"),
        ({"url": "http://host/metrics#x"}, "fragment"),
        ({"url": "http://host/metrics", "exporter": "snmp"}, "auto or one of"),
        ({"url": "http://host/m", "headers_env": {"Bad Header": "X"}}, "header name"),
        ({"url": "http://host/m", "headers_env": {"Authorization": "1X"}}, "environment"),
        ({"url": "http://host/m", "headers_env": {"Accept": "X"}}, "set by the scraper"),
        ({"url": "https://h/m", "tls_verify": False, "ca_bundle": "ca.pem"}, "ca_bundle"),
        ({"url": "http://host/m", "timeout_seconds": 0}, "greater than 0"),
    ],
)
def test_bad_targets_are_refused_at_load(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        ScrapeTarget(**fields)


def test_two_targets_with_one_url_are_refused() -> None:
    target = ScrapeTarget(url="http://127.0.0.1:9400/metrics")
    with pytest.raises(ValueError, match="distinct URLs"):
        scrape([target, target])
    with pytest.raises(ValueError, match="distinct URLs"):
        Scraper([target, target])


def test_an_unreadable_ca_bundle_is_that_targets_problem(tmp_path: Path) -> None:
    target = ScrapeTarget(url="https://127.0.0.1:1/metrics", ca_bundle=tmp_path / "absent.pem")
    result = scrape([target])
    assert reasons(result, target.url) == ["tls_error"]


# --- batched parsing ---------------------------------------------------------------------------


def mixed_payloads(capture: bytes, node: bytes) -> Iterator[tuple[str | bytes, str]]:
    """Payloads that batch, payloads that must not, and payloads with problems."""
    text = TEXT_CONTENT_TYPE
    hosts = [eight_gpu_payload(capture, f"node{i}") for i in range(6)]
    yield hosts[0], text
    yield hosts[1].replace("} 8.969", "} 8.9x69", 1), text  # one bad line
    yield hosts[2], text
    yield hosts[3].replace("\n", "\r\n"), text  # every line spoilt by a CR
    yield capture, text  # no final newline
    yield capture + b"\n", text
    yield node, text
    yield node.replace(b"node_rapl_core", b"node_rapl_Core"), text
    # a TYPE after its family's samples: a first member with a problem of its own
    late = re.sub(r"# TYPE (DCGM_FI_DEV_SM_CLOCK) gauge\n(.*\n)", r"\2# TYPE \1 gauge\n", hosts[4])
    yield late, text
    yield late.replace("node4", "node5"), text
    yield hosts[5], text
    yield '{"gpu.power", gpu="0"} 1\n', text  # quoted names keep their line whole
    yield '{"gpu.temp", gpu="0"} 1\n', text
    yield b"\xff\xfe bad 1\n", text
    yield "# TYPE a counter\na_total 1\n# EOF\n", OPENMETRICS_CONTENT_TYPE
    yield "", text


def test_parse_many_equals_one_call_per_payload(dcgm_capture: bytes, node_output: bytes) -> None:
    payloads = list(mixed_payloads(dcgm_capture, node_output))
    many = parse_many(payloads)
    assert len(many) == len(payloads)
    for (payload, content_type), batched in zip(payloads, many, strict=True):
        alone = parse_exposition(payload, content_type)
        assert_frame_equal(batched.samples, alone.samples)
        assert_frame_equal(batched.problems, alone.problems)
        assert_frame_equal(batched.families, alone.families)
        assert (batched.format, batched.strict) == (alone.format, alone.strict)
    assert sum(exposition.problems.height > 0 for exposition in many) >= 6


def test_parse_many_splits_large_groups(dcgm_capture: bytes) -> None:
    payloads = [(eight_gpu_payload(dcgm_capture, f"h{i}"), TEXT_CONTENT_TYPE) for i in range(9)]
    many = parse_many(payloads, max_batch_lines=1000)  # 3 payloads of 380 lines per call
    for (payload, content_type), batched in zip(payloads, many, strict=True):
        assert_frame_equal(batched.samples, parse_exposition(payload, content_type).samples)


def test_many_targets_map_in_target_order(dcgm_capture: bytes) -> None:
    routes = {f"/h{i}": Route(eight_gpu_payload(dcgm_capture, f"h{i}").encode()) for i in range(9)}
    with MetricsServer(routes) as server:
        targets = [ScrapeTarget(url=server.url(f"/h{i}"), exporter="dcgm") for i in range(9)]
        result = scrape(targets, batch_targets=4)
    assert result.targets.get_column("target").to_list() == [t.url for t in targets]
    assert result.readings.get_column("target").unique(maintain_order=True).to_list() == [
        t.url for t in targets
    ]
    hosts = result.readings.get_column("host").unique(maintain_order=True).to_list()
    assert hosts == [f"h{i}" for i in range(9)]
    power = result.readings.filter(pl.col("metric") == "power_watts")
    assert power.height == 9 * 8
    assert set(power.get_column("value")) == {8.969}


def test_payloads_of_one_skeleton_parse_in_one_call(
    dcgm_capture: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def counted(payload: str | bytes, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(payload))
        return parse_exposition(payload, *args, **kwargs)

    monkeypatch.setattr("collector.sources.scrape.batch_parse.parse_exposition", counted)
    payloads = [(eight_gpu_payload(dcgm_capture, f"h{i}"), TEXT_CONTENT_TYPE) for i in range(6)]
    parse_many(payloads)
    assert len(calls) == 1
    # a payload with a problem of its own is parsed again alone; the others are not
    payloads[3] = (payloads[3][0].replace("} 8.969", "} 8.9x69", 1), TEXT_CONTENT_TYPE)
    calls.clear()
    many = parse_many(payloads)
    assert len(calls) == 2
    assert [exposition.problems.height for exposition in many] == [0, 0, 0, 1, 0, 0]


def test_openmetrics_answers_are_read() -> None:
    body = (
        b"# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"
        b'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-om",Hostname="om-host"} 250.5\n'
        b"# EOF\n"
    )
    with MetricsServer({"/metrics": Route(body, content_type=OPENMETRICS_CONTENT_TYPE)}) as server:
        url = server.url("/metrics")
        result = scrape([ScrapeTarget(url=url)])
    assert reading(result, "GPU-om", "power_watts") == 250.5
    assert (health(result, url)["up"], result.problems.height) == (1, 0)


def test_a_mapping_bug_costs_only_its_own_target(
    dcgm_capture: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector.sources.exporter_maps import readings_from_exposition as real

    routes = {f"/h{i}": Route(eight_gpu_payload(dcgm_capture, f"h{i}").encode()) for i in range(3)}
    with MetricsServer(routes) as server:
        broken = server.url("/h1")

        def mapping(samples: pl.DataFrame, *args: Any, **kwargs: Any) -> Any:
            if broken in samples.get_column("target").to_list():
                raise RuntimeError("a bug")
            return real(samples, *args, **kwargs)

        monkeypatch.setattr(
            "collector.sources.scrape.parse_stage.readings_from_exposition", mapping
        )
        targets = [ScrapeTarget(url=server.url(f"/h{i}")) for i in range(3)]
        result = scrape(targets)
    assert result.targets.get_column("up").to_list() == [1, 0, 1]
    assert reasons(result, broken) == ["map_error"]
    assert set(result.readings.get_column("host")) == {"h0", "h2"}


@pytest.mark.parametrize(
    "body",
    [b"\x00\x01garbage{{{ not exposition\n" * 20, b'dcgm_gpu_temp{gpu="0"} 5\xff\xfe\n'],
    ids=["garbage", "invalid-utf8"],
)
def test_a_target_that_gives_no_reading_is_not_up(body: bytes) -> None:
    """The finding: a target serving garbage or invalid UTF-8 was up 1 with its last success
    advancing; it gave no reading, so it is down and its last success stays unset."""
    with MetricsServer({"/metrics": Route(body)}) as server:
        url = server.url("/metrics")
        result = scrape([ScrapeTarget(url=url, exporter="dcgm")])
    assert result.readings.height == 0
    assert health(result, url)["up"] == 0
    assert health(result, url)["last_success_seconds"] is None
