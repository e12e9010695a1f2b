"""The compose stack's native twin (`make stack`): gigawatt, Prometheus with the rules,
Alertmanager, VictoriaMetrics and, when one is on the PATH, Grafana, started from locally
installed binaries on 127.0.0.1 with the committed configuration files.

A file is generated into the run folder only where something in it must differ: Prometheus'
when a port differs from the committed loopback addresses (or a part it points at could not
start), Grafana's provisioning always (the committed one names the compose host `prometheus`
and the container's dashboard folder). The script prints the URLs, says which parts could not
start and how to get them, and on Ctrl-C (SIGINT) or SIGTERM stops everything it started.

    make stack
    make stack ARGS="--scenario my-incident.yaml --prometheus-port 19090"
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
PROMETHEUS_ENV = DEPLOY / "prometheus" / "prometheus.env"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
DASHBOARDS = ROOT / "dashboards" / "grafana"
HOST = "127.0.0.1"
# The ports the committed configurations and the compose stack use.
DEFAULT_PORTS = {
    "gigawatt": 9640,
    "prometheus": 9090,
    "alertmanager": 9093,
    "victoria-metrics": 8428,
    "grafana": 3000,
}
READY_SECONDS = 90.0
STOP_SECONDS = 10.0


@dataclass
class Part:
    """One process of the stack: how to start it, where it answers when ready."""

    name: str
    command: list[str]
    url: str
    ready_path: str
    environment: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self, run_dir: Path) -> None:
        self.log = run_dir / f"{self.name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env={**os.environ, **self.environment},
            )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def tail(self, lines: int = 5) -> str:
        if self.log is None or not self.log.exists():
            return ""
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join("    " + line for line in text[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; waits until the process is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_SECONDS)


def _addresses(ports: dict[str, int]) -> dict[str, str]:
    """Committed loopback address -> this run's, for every part whose port differs."""
    return {
        f"{HOST}:{DEFAULT_PORTS[name]}": f"{HOST}:{port}"
        for name, port in ports.items()
        if port != DEFAULT_PORTS[name]
    }


def _rewrite(value: Any, addresses: dict[str, str]) -> Any:
    """``value`` (parsed YAML) with every committed address replaced by this run's."""
    if isinstance(value, dict):
        return {key: _rewrite(item, addresses) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, addresses) for item in value]
    if isinstance(value, str):
        for committed, actual in addresses.items():
            value = value.replace(committed, actual)
    return value


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file as docker compose reads them (blank lines and lines
    starting with # skipped), so the native stack and compose start Prometheus alike."""
    environment = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise SystemExit(f"{path}:{number}: not KEY=VALUE: {line!r}")
        environment[key.strip()] = value.strip()
    return environment


def prometheus_config(run_dir: Path, ports: dict[str, int], started: set[str]) -> Path:
    """The committed Prometheus configuration when it holds as it is; else a copy in the run
    folder with this run's addresses, absolute rule paths, and nothing sent to a part that
    did not start."""
    addresses = _addresses(ports)
    absent = {"alertmanager", "victoria-metrics"} - started
    if not addresses and not absent:
        return PROMETHEUS_CONFIG
    config = _rewrite(yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8")), addresses)
    config["rule_files"] = [
        str((PROMETHEUS_CONFIG.parent / pattern).resolve()) for pattern in config["rule_files"]
    ]
    if "alertmanager" in absent:
        config.pop("alerting", None)
    if "victoria-metrics" in absent:
        config.pop("remote_write", None)
    path = run_dir / "prometheus.yml"
    path.write_text(
        "# Generated by deploy/stack.py from deploy/prometheus/prometheus.yml for this run.\n"
        + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8",
    )
    return path


def grafana_provisioning(run_dir: Path, prometheus_url: str) -> Path:
    """Grafana's committed provisioning, its datasource and dashboard folder pointed at this
    run's Prometheus and the repository's dashboards."""
    target = run_dir / "grafana" / "provisioning"
    for kind in ("datasources", "dashboards"):
        (target / kind).mkdir(parents=True, exist_ok=True)
        for source in sorted((GRAFANA_PROVISIONING / kind).glob("*.yml")):
            document = yaml.safe_load(source.read_text(encoding="utf-8"))
            for datasource in document.get("datasources", []):
                datasource["url"] = prometheus_url
            for provider in document.get("providers", []):
                provider["options"]["path"] = str(DASHBOARDS)
            (target / kind / source.name).write_text(
                f"# Generated by deploy/stack.py from {source.relative_to(ROOT)} for this run.\n"
                + yaml.safe_dump(document, sort_keys=False),
                encoding="utf-8",
            )
    for kind in ("plugins", "alerting"):  # Grafana warns when these are missing
        (target / kind).mkdir(exist_ok=True)
    return target


def grafana_binary() -> tuple[list[str], str] | None:
    """Grafana's command (``grafana server``, or the older ``grafana-server``) and its home."""
    for name, verb in (("grafana", ["server"]), ("grafana-server", [])):
        path = shutil.which(name)
        if path:
            home = next(
                (
                    str(candidate)
                    for candidate in (
                        Path("/usr/share/grafana"),
                        Path(path).resolve().parent.parent,
                        Path(path).resolve().parent.parent / "share" / "grafana",
                    )
                    if (candidate / "conf" / "defaults.ini").exists()
                ),
                "/usr/share/grafana",
            )
            return [path, *verb], home
    return None


@dataclass
class Stack:
    run_dir: Path
    ports: dict[str, int]
    preset: str
    scenario: Path | None
    stopping: Callable[[], bool]
    parts: list[Part] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # name, how to get it

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.ports[name]}"

    def _binary(self, name: str, package: str) -> str | None:
        path = shutil.which(name)
        if path is None:
            self.missing.append((name, f"not on the PATH: apt-get install {package}"))
        return path

    def _launch(self, part: Part) -> bool:
        """Start ``part`` and wait until it answers ready; False (and said) when it does not."""
        part.start(self.run_dir)
        self.parts.append(part)
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline and not self.stopping():
            if part.exited() is not None:
                break
            if part.ready():
                print(f"  {part.name:<17} {part.url}", flush=True)
                return True
            time.sleep(0.25)
        code = part.exited()
        part.stop()
        if self.stopping():
            return False
        why = f"exited with code {code}" if code is not None else "never became ready"
        self.missing.append((part.name, f"{why}; log {part.log}:\n{part.tail()}"))
        return False

    def start(self) -> None:
        print(f"gigawatt stack in {self.run_dir} (logs there); Ctrl-C stops it", flush=True)
        started: set[str] = set()
        serve = [
            sys.executable,
            "-m",
            "exporters.cli",
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.ports["gigawatt"]),
            "--preset",
            self.preset,
            "--interval",
            "5",
            # The jobs' mitigations a grid-connected site runs (README, "Mitigations"): without
            # them the demo's largest job is a real forced oscillation and the grid alerts fire.
            "--power-floor",
            "0.9",
            "--ramp-limit",
            "50",
            # Everything the stack writes lives in its run folder; reuse it to continue.
            "--state-dir",
            str(self.run_dir / "gigawatt-state"),
        ]
        if self.scenario is not None:
            serve += ["--scenario", str(self.scenario)]
        gigawatt = Part("gigawatt", serve, self.url("gigawatt"), "/readyz")
        if self._launch(gigawatt):
            started.add("gigawatt")

        victoria = self._binary("victoria-metrics", "victoria-metrics")
        if victoria and self._launch(
            Part(
                "victoria-metrics",
                [
                    victoria,
                    f"-storageDataPath={self.run_dir / 'victoria-metrics'}",
                    f"-httpListenAddr={HOST}:{self.ports['victoria-metrics']}",
                    "-loggerLevel=WARN",
                ],
                self.url("victoria-metrics"),
                "/health",
            )
        ):
            started.add("victoria-metrics")

        alertmanager = self._binary("prometheus-alertmanager", "prometheus-alertmanager")
        if alertmanager and self._launch(
            Part(
                "alertmanager",
                [
                    alertmanager,
                    f"--config.file={ALERTMANAGER_CONFIG}",
                    f"--storage.path={self.run_dir / 'alertmanager'}",
                    f"--web.listen-address={HOST}:{self.ports['alertmanager']}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                self.url("alertmanager"),
                "/-/ready",
            )
        ):
            started.add("alertmanager")

        prometheus = self._binary("prometheus", "prometheus")
        if prometheus:
            config = prometheus_config(self.run_dir, self.ports, started)
            self._launch(
                Part(
                    "prometheus",
                    [
                        prometheus,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={self.run_dir / 'prometheus'}",
                        f"--web.listen-address={HOST}:{self.ports['prometheus']}",
                        # Ctrl-C stops VictoriaMetrics too: do not retry sends to it for a
                        # minute on the way out.
                        "--storage.remote.flush-deadline=1s",
                        "--log.level=warn",
                    ],
                    self.url("prometheus"),
                    "/-/ready",
                    environment=env_file(PROMETHEUS_ENV),
                )
            )

        grafana = grafana_binary()
        if grafana is None:
            self.missing.append(
                (
                    "grafana",
                    "not on the PATH (Debian does not package it): install it from Grafana's "
                    "APT repository (https://apt.grafana.com, package grafana), or run the "
                    "compose stack (deploy/docker-compose.yml)",
                )
            )
        else:
            command, home = grafana
            data = self.run_dir / "grafana"
            self._launch(
                Part(
                    "grafana",
                    [*command, f"--homepath={home}"],
                    self.url("grafana"),
                    "/api/health",
                    environment={
                        "GF_PATHS_PROVISIONING": str(
                            grafana_provisioning(self.run_dir, self.url("prometheus"))
                        ),
                        "GF_PATHS_DATA": str(data / "data"),
                        "GF_PATHS_LOGS": str(data / "logs"),
                        "GF_PATHS_PLUGINS": str(data / "plugins"),
                        "GF_SERVER_HTTP_ADDR": HOST,
                        "GF_SERVER_HTTP_PORT": str(self.ports["grafana"]),
                        "GF_AUTH_ANONYMOUS_ENABLED": "true",
                        "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
                        "GF_ANALYTICS_REPORTING_ENABLED": "false",
                        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
                    },
                )
            )

        if self.stopping():
            return
        if self.missing:
            print("could not start:", flush=True)
            for name, why in self.missing:
                print(f"  {name:<17} {why}", flush=True)
        print("ready; Ctrl-C stops everything", flush=True)

    def watch(self) -> None:
        """Until asked to stop: say when a part exits on its own (the rest keep running)."""
        reported: set[str] = set()
        while not self.stopping():
            for part in self.parts:
                code = part.exited()
                if code is not None and part.name not in reported:
                    reported.add(part.name)
                    print(f"{part.name} exited with code {code}:\n{part.tail()}", flush=True)
            time.sleep(0.2)

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()
        print("stopped: " + ", ".join(part.name for part in self.parts), flush=True)


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (1-65535)")
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo", help="site preset served (default demo)")
    parser.add_argument("--scenario", type=Path, help="incident scenario played (YAML)")
    parser.add_argument(
        "--run-dir", type=Path, help="folder for data, logs and generated files (default: new)"
    )
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=_port, default=port, help=f"default {port}")
    options = parser.parse_args(argv)
    if options.scenario is not None and not options.scenario.is_file():
        parser.error(f"--scenario: {options.scenario} is not a file")
    run_dir = options.run_dir or Path(tempfile.mkdtemp(prefix="gigawatt-stack-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    ports = {name: getattr(options, f"{name.replace('-', '_')}_port") for name in DEFAULT_PORTS}

    stop_requested: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signum)

    # A terminal's Ctrl-C reaches every process of the group; this script then stops (and
    # waits for) whatever is still running, so nothing outlives it.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack = Stack(
        run_dir.resolve(), ports, options.preset, options.scenario, lambda: bool(stop_requested)
    )
    try:
        stack.start()
        stack.watch()
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
