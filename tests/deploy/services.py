"""gigawatt services in this test process, each a real HTTP server on 127.0.0.1 (uvicorn in a
thread) built by the composition root, for Prometheus to scrape. Every service reads one
clock the test holds still, so shards and an unsharded process see the very same instants."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from exporters.composition import ServiceSettings, build_app
from tests.stack import HOST, free_port, wait_for

# 2026-01-01 00:00 UTC: any fixed instant; the simulator's weather and jobs follow it.
FIXED_CLOCK = 1_767_225_600.0


@dataclass
class Service:
    name: str
    url: str
    target: str  # host:port, as a scrape target


@contextmanager
def serving(name: str, clock: Callable[[], float], **settings: object) -> Iterator[Service]:
    """One service with ``settings`` (ServiceSettings' fields) until the block ends, ready
    (its /readyz answers 200) when yielded."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(ServiceSettings.model_validate({**settings, "port": port}), clock),
            host=HOST,
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, name=f"serve-{name}", daemon=True)
    thread.start()
    service = Service(name, f"http://{HOST}:{port}", f"{HOST}:{port}")
    try:
        wait_for(
            lambda: thread.is_alive() and httpx.get(f"{service.url}/readyz", timeout=2).is_success,
            within=60,
            what=f"gigawatt {name} ready at {service.url}",
        )
        yield service
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def site_and_shards(
    preset: str, shards: int, interval_seconds: float = 1.0
) -> Iterator[tuple[Service, list[Service]]]:
    """One unsharded service of ``preset`` and its ``shards`` shards, all on the fixed clock."""

    def still() -> float:
        return FIXED_CLOCK

    common = {"preset": preset, "interval_seconds": interval_seconds, "seed": 0}
    with ExitStack() as stack:
        whole = stack.enter_context(serving("whole", still, **common))
        parts = [
            stack.enter_context(
                serving(f"shard-{index}", still, **common, shard=f"{index}/{shards}")
            )
            for index in range(1, shards + 1)
        ]
        yield whole, parts
