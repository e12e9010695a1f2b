"""`gigawatt grid analyze` on hostile files: a timestamp of 1e300 and a binary CSV are one
short line on stderr with exit 2, and whatever a CSV holds, reading it gives a series or the
reader's own error."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters.cli.grid import GridInputError, PowerUnit, load_power_series
from tests.exporters.cli.test_grid import run_analyze


def test_a_timestamp_beyond_year_9999_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "meter.csv"
    path.write_text("timestamp_seconds,power_watts\n0,100\n1,101\n2,102\n1e300,100\n")
    result = run_analyze(path)
    assert result.returncode == 2, result.stderr
    assert "beyond year 9999" in result.stderr and "Traceback" not in result.stderr


def test_a_binary_csv_gives_a_short_error(tmp_path: Path) -> None:
    path = tmp_path / "meter.csv"
    path.write_bytes(bytes(range(256)) * 40)
    result = run_analyze(path)
    assert result.returncode == 2
    assert len(result.stderr) < 800 and "Traceback" not in result.stderr


CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(["", "NaN", "2025-01-01T00:00:00Z", "x", "1e300", "-1e300", '"']),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(CELL, CELL), max_size=8), header=st.booleans())
def test_any_csv_gives_a_series_or_an_input_error(
    rows: list[tuple[str, str]], header: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "meter.csv"
        head = "timestamp_seconds,power_watts\n" if header else "a,b\n"
        path.write_text(head + "".join(f"{t},{p}\n" for t, p in rows))
        with contextlib.suppress(GridInputError):
            series = load_power_series(path, "timestamp_seconds", "power_watts", PowerUnit.W)
            assert series.timestamps.size >= 2
