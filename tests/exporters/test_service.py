"""The cycle runner's publishing: the gzip body made once per cycle, before it is served."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest

from exporters.composition import ServiceSettings, build_runner
from exporters.service import gzip_body


def _exposition_like(lines: int, seed: int) -> bytes:
    """Text shaped like an exposition (repetitive names, varied digits), so deflate has both
    matches and literals to code across the piece boundaries."""
    generator = random.Random(seed)
    text = "".join(
        f'gigawatt_rack_power_watts{{rack="K{index:05d}"}} {generator.uniform(0, 4e4):.7g}\n'
        for index in range(lines)
    )
    return text.encode()


def _single_member(compressed: bytes) -> bytes:
    """Decode exactly one gzip member, as clients that stop after the first one do, and fail
    if anything follows it."""
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
    body = decoder.decompress(compressed) + decoder.flush()
    assert decoder.eof, "the gzip stream ended early"
    assert decoder.unused_data == b"", "bytes follow the first gzip member"
    return body


@pytest.mark.parametrize(
    ("lines", "piece_bytes", "workers"),
    [(0, 1000, 2), (1, 1000, 2), (5000, 997, 3), (5000, 4096, 1), (5000, 1 << 20, 4)],
    ids=["empty", "one-line", "many-odd-pieces", "one-thread", "one-piece"],
)
def test_gzip_body_is_one_member_that_decodes_to_the_body(
    lines: int, piece_bytes: int, workers: int
) -> None:
    body = _exposition_like(lines, seed=lines + piece_bytes)
    compressed = gzip_body(body, workers=workers, piece_bytes=piece_bytes)
    assert compressed[:3] == b"\x1f\x8b\x08"
    assert _single_member(compressed) == body
    assert gzip.decompress(compressed) == body
    if lines > 1:
        assert len(compressed) < len(body) / 2


def test_gzip_body_is_the_same_bytes_however_many_threads() -> None:
    body = _exposition_like(3000, seed=7)
    assert gzip_body(body, workers=1, piece_bytes=5000) == gzip_body(
        body, workers=4, piece_bytes=5000
    )


def test_each_published_cycle_carries_its_own_gzip_body() -> None:
    """The gzip body is made by the cycle before publishing: it is there the moment the cycle
    is, decodes to that cycle's exposition, and a new cycle brings a new one."""
    clock_now = [1_700_000_000.0]
    runner = build_runner(
        ServiceSettings(preset="demo", interval_seconds=10.0, seed=0), clock=lambda: clock_now[0]
    )
    first = runner.run_once()
    assert runner.latest is first
    assert _single_member(first.gzipped) == first.rendered.body
    clock_now[0] += 10.0
    second = runner.run_once()
    assert runner.latest is second
    assert second.rendered.body != first.rendered.body
    assert _single_member(second.gzipped) == second.rendered.body
    assert second.gzip_seconds >= 0.0
