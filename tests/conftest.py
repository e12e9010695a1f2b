"""Shared test fixtures: the project root, third-party fixtures, system binaries."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(autouse=True, scope="session")
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`gigawatt serve` keeps its counters under $XDG_STATE_HOME: the servers the tests start
    keep theirs in a folder of the session, never in the user's home."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    yield
    if before is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = before


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files (tests/exporters/golden) instead of comparing with them",
    )


def _missing(what: str) -> None:
    """Skip on a user's machine; under CI=true a missing dependency is a failure."""
    if IN_CI:
        pytest.fail(f"{what} (required under CI=true)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """../shared/fixtures: third-party payloads, read in place, never copied."""
    if not SHARED_FIXTURES.is_dir():
        _missing(f"third-party fixture folder {SHARED_FIXTURES} is absent")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path to promtool (Debian package `prometheus`)."""
    path = shutil.which("promtool")
    if path is None:
        _missing("promtool not found on PATH (Debian: apt-get install prometheus)")
        raise AssertionError("unreachable")
    return path


@pytest.fixture(scope="session")
def amtool() -> str:
    """Path to amtool (Debian package `prometheus-alertmanager`)."""
    path = shutil.which("amtool")
    if path is None:
        _missing("amtool not found on PATH (Debian: apt-get install prometheus-alertmanager)")
        raise AssertionError("unreachable")
    return path
