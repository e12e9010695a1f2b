"""Exposition bodies are written into reused buffers: a body anyone still holds never changes,
and a body nobody holds lends its memory to the next one."""

from __future__ import annotations

import gc

import pytest

from exporters.exposition import BodyBuffers


def write(buffers: BodyBuffers, text: bytes, pieces: int = 3) -> memoryview:
    writer = buffers.writer()
    step = max(1, len(text) // pieces)
    for start in range(0, len(text), step):
        writer.write(text[start : start + step])
    return writer.body()


def test_a_body_is_exactly_what_was_written_and_read_only() -> None:
    buffers = BodyBuffers()
    body = write(buffers, b"gigawatt_up 1\n" * 1000)
    assert bytes(body) == b"gigawatt_up 1\n" * 1000
    assert body.readonly
    with pytest.raises(TypeError):
        body[0] = 0  # type: ignore[index]


def test_a_held_body_is_never_written_over() -> None:
    buffers = BodyBuffers()
    first = write(buffers, b"a" * 5000)
    second = write(buffers, b"b" * 7000)
    third = write(buffers, b"c" * 3000)
    assert bytes(first) == b"a" * 5000
    assert bytes(second) == b"b" * 7000
    assert bytes(third) == b"c" * 3000
    assert len({id(body.obj) for body in (first, second, third)}) == 3


def test_a_slice_still_being_sent_holds_its_body() -> None:
    """A scrape part-way through sending holds a slice of the body, not the body itself."""
    buffers = BodyBuffers()
    body = write(buffers, b"x" * 4000)
    sending = body[1000:]
    del body
    gc.collect()
    later = write(buffers, b"y" * 4000)
    assert bytes(sending) == b"x" * 3000
    assert bytes(later) == b"y" * 4000


def test_a_released_body_lends_its_buffer_to_the_next() -> None:
    buffers = BodyBuffers()
    first = write(buffers, b"a" * 6000)
    used = first.obj
    del first
    gc.collect()
    second = write(buffers, b"b" * 2000)  # shorter: the old tail is not part of it
    assert second.obj is used
    assert bytes(second) == b"b" * 2000
    third = write(buffers, b"c" * 9000)  # the second is held: another buffer, grown to fit
    assert third.obj is not used
    assert bytes(third) == b"c" * 9000


def test_when_every_kept_buffer_is_held_a_fresh_one_is_used_and_not_kept() -> None:
    buffers = BodyBuffers()
    held = [write(buffers, bytes([65 + n]) * 100) for n in range(BodyBuffers.KEPT)]
    extra = write(buffers, b"z" * 100)
    assert all(extra.obj is not body.obj for body in held)
    kept = {id(body.obj) for body in held}
    del extra
    gc.collect()
    # The extra buffer was not kept: with every kept one still held, the next is new again.
    again = write(buffers, b"q" * 100)
    assert id(again.obj) not in kept
    assert [bytes(body) for body in held] == [bytes([65 + n]) * 100 for n in range(len(held))]
