"""Hand-built frames that several test modules share."""

from __future__ import annotations

import polars as pl

from collector import schemas

PowerRow = tuple[str, str | None, str, str, float | None]


def power_readings(rows: list[PowerRow]) -> pl.DataFrame:
    """READINGS of ``power_watts`` from (target, host, device, device_kind, watts)."""
    return pl.DataFrame(
        {
            "source": "test",
            "target": [row[0] for row in rows],
            "host": [row[1] for row in rows],
            "device": [row[2] for row in rows],
            "device_kind": [row[3] for row in rows],
            "metric": "power_watts",
            "value": [row[4] for row in rows],
            "unit": "watts",
            "estimated": False,
            "timestamp_seconds": None,
        },
        schema=dict(schemas.READINGS),
    )
