"""The container wiring, checked offline (no container engine runs on our build machines):
the compose files validate against the compose specification's JSON schema, every file they
mount exists in the repository, every image is pinned, and the Dockerfile holds to what its
lint would ask (no Dockerfile linter is packaged for Debian; hadolint is not)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from deploy.stack import PROMETHEUS_ENV, env_file
from tests.conftest import IN_CI, ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_FILES = [COMPOSE, DEPLOY / "scale" / "victoriametrics-cluster.compose.yml"]
DOCKERFILE = DEPLOY / "Dockerfile"
# ${NAME:-default}: a variable the user may set, and what is mounted without it.
VARIABLE = re.compile(r"\$\{(\w+):-([^}]*)\}")


def check_jsonschema() -> str:
    """check-jsonschema from the virtualenv's dev extra (it ships the compose schema)."""
    path = Path(sys.executable).parent / "check-jsonschema"
    found = str(path) if path.exists() else shutil.which("check-jsonschema")
    if found is None:
        what = "check-jsonschema not installed (pip install -c constraints.txt -e '.[dev]')"
        if IN_CI:
            pytest.fail(f"{what} (required under CI=true)")
        pytest.skip(what)
    return found


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def compose(path: Path = COMPOSE) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_follows_the_compose_specification(path: Path) -> None:
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_what_the_specification_does_not_allow(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["gigawatt"]["restart_policy"] = "always"  # not a service key
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = validate(path)
    assert result.returncode != 0
    assert "restart_policy" in result.stdout + result.stderr


def bind_mounts(path: Path) -> list[tuple[str, str, str]]:
    """(service, host path as written, container path) of every bind mount."""
    mounts = []
    for name, service in compose(path)["services"].items():
        for volume in service.get("volumes", []):
            # A ${VARIABLE:-default} source has colons of its own.
            end = volume.index("}") + 1 if volume.startswith("${") else 0
            source = volume[: volume.index(":", end)]
            target = volume[len(source) + 1 :].split(":")[0]
            if source.startswith((".", "/", "$")):
                mounts.append((name, source, target))
    return mounts


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_mounted_file_exists_in_the_repository(path: Path) -> None:
    mounts = bind_mounts(path)
    assert mounts
    for service, source, _ in mounts:
        variable = VARIABLE.fullmatch(source)
        if variable:  # the scenario: nothing is read from /dev/null, no --scenario is given
            assert variable.groups() == ("GIGAWATT_SCENARIO", "/dev/null"), source
            continue
        host = (path.parent / source).resolve()
        assert host.exists(), f"{service} mounts {source}, which is not in the repository"
        assert host.is_relative_to(ROOT), f"{service} mounts {source} from outside the repo"


def container_path(service: str, inside: str) -> Path:
    """The repository file a container path of ``service`` is mounted from."""
    wanted = PurePosixPath(inside)
    for name, source, target in bind_mounts(COMPOSE):
        if name == service and wanted.is_relative_to(target):
            return (DEPLOY / source / wanted.relative_to(target)).resolve()
    raise AssertionError(f"{service} does not mount {inside}")


def flag(service: str, name: str) -> str:
    arguments: list[str] = compose()["services"][service]["command"]
    (value,) = [
        argument.split("=", 1)[1] for argument in arguments if argument.startswith(f"{name}=")
    ]
    return value


def test_prometheus_gets_the_environment_the_native_stack_gives_it() -> None:
    """compose and deploy/stack.py read one env file for Prometheus (GOMEMLIMIT)."""
    assert (DEPLOY / compose()["services"]["prometheus"]["env_file"]).resolve() == PROMETHEUS_ENV
    assert "GOMEMLIMIT" in env_file(PROMETHEUS_ENV)


def test_containers_read_the_committed_configurations() -> None:
    prometheus = container_path("prometheus", flag("prometheus", "--config.file"))
    assert prometheus == DEPLOY / "prometheus" / "prometheus.yml"
    alertmanager = container_path("alertmanager", flag("alertmanager", "--config.file"))
    assert alertmanager == DEPLOY / "alertmanager" / "alertmanager.yml"
    # Rule files are relative to the Prometheus configuration, in the repo and the container.
    inside = PurePosixPath(flag("prometheus", "--config.file")).parent
    config = yaml.safe_load(prometheus.read_text(encoding="utf-8"))
    for pattern in config["rule_files"]:
        folder = container_path("prometheus", str(inside / PurePosixPath(pattern).parent))
        assert sorted(folder.glob(PurePosixPath(pattern).name)), pattern
    assert container_path("grafana", "/etc/grafana/provisioning") == (
        DEPLOY / "grafana" / "provisioning"
    )
    assert container_path("grafana", "/var/lib/grafana/dashboards/gigawatt") == (
        ROOT / "dashboards" / "grafana"
    )


def test_the_loopback_addresses_of_the_configurations_hold_in_the_stack() -> None:
    """Prometheus, Alertmanager and VictoriaMetrics share gigawatt's network namespace, which
    publishes their ports; Grafana finds Prometheus by the name its provisioning uses."""
    services = compose()["services"]
    for name in ("prometheus", "alertmanager", "victoria-metrics"):
        assert services[name]["network_mode"] == "service:gigawatt", name
    published = {port.rsplit(":", 1)[1] for port in services["gigawatt"]["ports"]}
    assert published == {"9640", "9090", "9093", "8428"}
    assert "prometheus" in services["gigawatt"]["networks"]["default"]["aliases"]
    datasources = DEPLOY / "grafana" / "provisioning" / "datasources" / "gigawatt.yml"
    (source,) = yaml.safe_load(datasources.read_text(encoding="utf-8"))["datasources"]
    assert source["url"] == "http://prometheus:9090"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8"))
    assert [w["url"] for w in config["remote_write"]] == ["http://127.0.0.1:8428/api/v1/write"]
    assert flag("victoria-metrics", "-httpListenAddr").endswith(":8428")


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_image_is_pinned_by_version(path: Path) -> None:
    for name, service in compose(path)["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"v?\d+\.\d+\.\d+(-cluster)?", tag), f"{name}: {image}"


def test_grafana_matches_the_dashboard_sdk_build() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (sdk,) = [pin for pin in project["project"]["dependencies"] if "foundation-sdk" in pin]
    grafana = compose()["services"]["grafana"]["image"]
    assert grafana == "grafana/grafana:" + sdk.rsplit("!", 1)[1]


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_base_is_pinned_and_the_process_unprivileged() -> None:
    instructions = dockerfile()
    (base,) = [line for line in instructions if line.startswith("ARG PYTHON_IMAGE=")]
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+(@sha256:\w+)?", base)
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "${PYTHON_IMAGE}" for line in froms)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    # The last stage runs as that user: nothing after it needs root.
    last = max(i for i, line in enumerate(instructions) if line.startswith("USER "))
    assert not any(line.startswith("RUN ") for line in instructions[last:])


def test_dockerfile_healthcheck_asks_readyz() -> None:
    (check,) = [line for line in dockerfile() if line.startswith("HEALTHCHECK ")]
    assert "http://127.0.0.1:9640/readyz" in check
    (command,) = [line for line in dockerfile() if line.startswith("CMD ")]
    assert '"--port", "9640"' in command


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = [
        source
        for line in dockerfile()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") in kept, f"{source} is copied but left out of the context"
