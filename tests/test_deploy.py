"""The deployment wiring is valid for the real tools that read it."""

from __future__ import annotations

import subprocess

from tests.conftest import ROOT


def test_prometheus_scrape_config_is_valid(promtool: str) -> None:
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
