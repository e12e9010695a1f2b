"""`gigawatt serve --shard`: a value that names no shard is a usage error naming the option,
before anything starts (the shards' series: tests/collector/test_shard.py)."""

from __future__ import annotations

import pytest

from tests.exporters.cli.test_serve import gigawatt


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("two", "--shard: Value error, 'two' is not I/N"),
        ("4/3", "--shard: Value error, '4/3': I must be between 1 and N"),
        ("2/7", "--shard: 2/7: the site has 6 building(s), so at most 6 shards"),
    ],
)
def test_serve_refuses_a_shard_the_site_cannot_have(value: str, message: str) -> None:
    result = gigawatt("serve", "--preset", "demo6", "--port", "0", "--shard", value)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
