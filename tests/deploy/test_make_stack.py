"""`make stack` on a machine with Debian's prometheus, prometheus-alertmanager and
victoria-metrics: it comes up on loopback with the committed configurations (Prometheus
scrapes gigawatt, evaluates the rules, sends to Alertmanager and writes to VictoriaMetrics),
says what it could not start, and a Ctrl-C (SIGINT to its process group, as a terminal sends
it) leaves nothing running."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import httpx

from deploy.stack import PROMETHEUS_ENV, env_file
from tests.conftest import ROOT
from tests.stack import HOST, binary, free_port, query, wait_for

PARTS = ("gigawatt", "prometheus", "alertmanager", "victoria-metrics", "grafana")


def output(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((HOST, port)) == 0


def _same_group(pid: int, group: int) -> bool:
    try:
        return os.getpgid(pid) == group
    except ProcessLookupError:
        return False


def _is_prometheus(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(command[0].decode(errors="replace")).name == "prometheus"


def process_environment(pid: str) -> dict[str, str]:
    """The environment a running process was started with (/proc/PID/environ)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def test_make_stack_comes_up_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    for name, package in (
        ("prometheus", "prometheus"),
        ("prometheus-alertmanager", "prometheus-alertmanager"),
        ("victoria-metrics", "victoria-metrics"),
    ):
        binary(name, package)
    make = shutil.which("make")
    assert make is not None, "make not found"
    ports = {name: free_port() for name in PARTS}
    arguments = " ".join(f"--{name}-port {port}" for name, port in ports.items())
    log = tmp_path / "stack.out"
    with log.open("wb") as out:
        # -o: use the virtualenv as it is (the stamp may be older than pyproject.toml).
        stack = subprocess.Popen(
            [
                make,
                "-o",
                ".venv/.installed-stamp",
                "stack",
                f"ARGS={arguments} --run-dir {tmp_path}",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    group = os.getpgid(stack.pid)
    try:
        wait_for(
            lambda: stack.poll() is None and "ready; Ctrl-C" in output(log),
            within=120,
            what=f"make stack ready (output: {log})",
        )
        url = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
        text = output(log)
        for name in ("gigawatt", "prometheus", "alertmanager", "victoria-metrics"):
            assert url[name] in text, f"{name}'s URL is not printed:\n{text}"
        if shutil.which("grafana") is None and shutil.which("grafana-server") is None:
            assert "could not start:" in text
            assert "grafana" in text.split("could not start:")[1]
        assert httpx.get(f"{url['gigawatt']}/readyz", timeout=5).status_code == 200
        prometheus = url["prometheus"]
        wait_for(
            lambda: query(prometheus, 'up{job="gigawatt"} == 1'),
            within=60,
            what="Prometheus scraping gigawatt",
        )
        wait_for(
            lambda: query(prometheus, "site:gigawatt_building_facility_power_watts:sum"),
            within=60,
            what="the recording rules evaluated",
        )
        # Prometheus runs with the environment compose gives it too (prometheus.env).
        wanted = env_file(PROMETHEUS_ENV)
        assert wanted
        (environment,) = [
            process_environment(pid)
            for pid in os.listdir("/proc")
            if pid.isdigit() and _same_group(int(pid), group) and _is_prometheus(int(pid))
        ]
        assert {key: environment.get(key) for key in wanted} == wanted
        managers = httpx.get(f"{prometheus}/api/v1/alertmanagers", timeout=5).json()
        assert [m["url"] for m in managers["data"]["activeAlertmanagers"]] == [
            f"{url['alertmanager']}/api/v2/alerts"
        ]
        wait_for(
            lambda: query(url["victoria-metrics"], "gigawatt_site_contract_watts"),
            within=60,
            what="gigawatt's series in VictoriaMetrics through remote_write",
        )
    finally:
        os.killpg(group, signal.SIGINT)  # Ctrl-C
        try:
            code = stack.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            stack.wait(timeout=10)
            raise AssertionError(f"make stack did not stop on SIGINT:\n{output(log)}") from None
    # make waits for the script, then ends itself by the signal it was sent, as after Ctrl-C
    # in a terminal; the script said it stopped every part it had started.
    assert code in (0, -signal.SIGINT), output(log)
    assert "stopped: gigawatt, victoria-metrics, alertmanager, prometheus" in output(log)
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        pass  # no process of the stack is left
    else:
        raise AssertionError(f"processes of make stack outlived it (group {group})")
    assert not [name for name, port in ports.items() if listening(port)]
