"""The scale-out Prometheus configurations (shards, hashmod, remote_write to each distributed
store) are valid for promtool; the one-collector configuration has its own checks in
tests/deploy/test_deploy_files.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

CONFIGS = [
    ROOT / "deploy" / "prometheus" / "prometheus-shards.yml",
    ROOT / "deploy" / "prometheus" / "prometheus-hashmod.yml",
    *sorted((ROOT / "deploy" / "scale").glob("remote-write-*.yml")),
]


def test_every_distributed_store_has_a_remote_write_configuration() -> None:
    stores = {path.stem.removeprefix("remote-write-") for path in CONFIGS}
    assert {"victoriametrics-cluster", "mimir", "thanos-receive"} <= stores


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.name)
def test_scale_out_configuration_is_valid(promtool: str, config: Path) -> None:
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
