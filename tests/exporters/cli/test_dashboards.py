"""`gigawatt dashboards push` against a Grafana stand-in on loopback (no Grafana server can be
installed on the build machines; the compose demo is where the push meets a real one).

The real CLI runs in a subprocess with its credentials in the environment or a file."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards.provisioning import FOLDER_TITLE, FOLDER_UID
from tests.exporters.cli.grafana_standin import GrafanaStandIn

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((ROOT / "dashboards" / "grafana").glob("*.json"))
}
TOKEN = "glsa_editor_token"
VIEWER_TOKEN = "glsa_viewer_token"
USER = ("ops", "s3cret")


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    with GrafanaStandIn(
        tokens={TOKEN: "Editor", VIEWER_TOKEN: "Viewer"}, users={USER: "Editor"}
    ) as standin:
        yield standin


def push(url: str, *options: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **environ})
    return subprocess.run(
        [sys.executable, "-m", "exporters.cli", "dashboards", "push", "--url", url, *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def _stored(grafana: GrafanaStandIn) -> dict[str, dict[str, object]]:
    return {
        uid: {k: v for k, v in board.items() if k not in ("id", "version")}
        for uid, board in grafana.boards.items()
    }


def test_the_first_push_creates_the_folder_and_every_dashboard(grafana: GrafanaStandIn) -> None:
    result = push(grafana.url, GRAFANA_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["created", "folder", FOLDER_UID, f"({FOLDER_TITLE})"]
    created = [line.split()[2] for line in lines[1:] if line.startswith("created")]
    assert created == list(COMMITTED) or sorted(created) == sorted(COMMITTED)
    assert lines[-1] == f"{len(COMMITTED) + 1} created, 0 updated, 0 unchanged"
    assert grafana.folders[FOLDER_UID]["title"] == FOLDER_TITLE
    assert _stored(grafana) == COMMITTED
    assert set(grafana.board_folders.values()) == {FOLDER_UID}
    for request in grafana.requests:
        assert request.authorization == f"Bearer {TOKEN}"
    saves = [r for r in grafana.writes() if r.path == "/api/dashboards/db"]
    assert len(saves) == len(COMMITTED)
    for save in saves:
        assert save.content_type.startswith("application/json")
        assert save.body["folderUid"] == FOLDER_UID
        assert save.body["overwrite"] is False
        assert "id" not in save.body["dashboard"] and "version" not in save.body["dashboard"]
        assert save.body["message"]


def test_a_second_push_changes_nothing_and_says_so(grafana: GrafanaStandIn) -> None:
    assert push(grafana.url, GRAFANA_TOKEN=TOKEN).returncode == 0
    versions = {uid: board["version"] for uid, board in grafana.boards.items()}
    writes = len(grafana.writes())

    again = push(grafana.url, GRAFANA_TOKEN=TOKEN)
    assert again.returncode == 0, again.stderr
    assert len(grafana.writes()) == writes, "the second push wrote"
    assert {uid: board["version"] for uid, board in grafana.boards.items()} == versions
    lines = again.stdout.splitlines()
    assert all(line.startswith("unchanged") for line in lines[:-1]), again.stdout
    assert len(lines) == len(COMMITTED) + 2
    assert lines[-1].startswith("nothing changed")


def test_a_dashboard_edited_in_grafana_is_put_back(grafana: GrafanaStandIn) -> None:
    assert push(grafana.url, GRAFANA_TOKEN=TOKEN).returncode == 0
    grafana.boards["gigawatt-rack"]["title"] = "edited by hand"
    grafana.boards["gigawatt-rack"]["version"] = 5
    grafana.board_folders["gigawatt-grid"] = ""  # moved to the root

    result = push(grafana.url, GRAFANA_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    updated = sorted(
        line.split()[2] for line in result.stdout.splitlines() if "updated" in line[:9]
    )
    assert updated == ["gigawatt-grid", "gigawatt-rack"]
    assert result.stdout.splitlines()[-1] == f"0 created, 2 updated, {len(COMMITTED) - 1} unchanged"
    saves = [r for r in grafana.writes() if r.path == "/api/dashboards/db"]
    (rack,) = [r for r in saves if r.body["dashboard"]["uid"] == "gigawatt-rack"][-1:]
    assert rack.body["dashboard"]["version"] == 5  # the version read, not overwrite
    assert rack.body["overwrite"] is False
    assert _stored(grafana) == COMMITTED
    assert grafana.board_folders["gigawatt-grid"] == FOLDER_UID


def test_username_and_password_are_sent_as_basic_auth(grafana: GrafanaStandIn) -> None:
    result = push(grafana.url, GRAFANA_USERNAME=USER[0], GRAFANA_PASSWORD=USER[1])
    assert result.returncode == 0, result.stderr
    expected = "Basic " + base64.b64encode(f"{USER[0]}:{USER[1]}".encode()).decode()
    assert {request.authorization for request in grafana.requests} == {expected}


def test_a_token_file_is_read(grafana: GrafanaStandIn, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n", encoding="utf-8")
    result = push(grafana.url, "--token-file", str(token_file))
    assert result.returncode == 0, result.stderr
    assert {request.authorization for request in grafana.requests} == {f"Bearer {TOKEN}"}


def test_refused_credentials_are_one_line_and_exit_2(grafana: GrafanaStandIn) -> None:
    _one_line_error(push(grafana.url, GRAFANA_TOKEN="wrong"), "401")
    assert grafana.boards == {}


def test_a_token_that_may_not_write_is_one_line_and_exit_2(grafana: GrafanaStandIn) -> None:
    _one_line_error(push(grafana.url, GRAFANA_TOKEN=VIEWER_TOKEN), "403", f"folder {FOLDER_UID}")
    assert grafana.folders == {}


def test_a_dashboard_changed_meanwhile_is_refused_not_overwritten(
    grafana: GrafanaStandIn,
) -> None:
    assert push(grafana.url, GRAFANA_TOKEN=TOKEN).returncode == 0
    grafana.boards["gigawatt-campus"]["title"] = "edited by hand"
    grafana.concurrent_edits = True  # someone saves it between the push's read and write

    _one_line_error(push(grafana.url, GRAFANA_TOKEN=TOKEN), "412", "gigawatt-campus")
    assert grafana.boards["gigawatt-campus"]["title"] == "edited by hand"


def test_an_unreachable_grafana_is_one_line_and_exit_2() -> None:
    _one_line_error(push("http://127.0.0.1:9", GRAFANA_TOKEN=TOKEN), "cannot reach Grafana")


@pytest.mark.parametrize(
    ("options", "environ", "expected"),
    [
        ((), {}, "no credentials"),
        ((), {"GRAFANA_USERNAME": "ops"}, "GRAFANA_PASSWORD is not"),
        (("--token-file", "/nonexistent/token"), {}, "--token-file /nonexistent/token"),
        (("--tariff", "-3"), {"GRAFANA_TOKEN": TOKEN}, "--tariff"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    grafana: GrafanaStandIn, options: tuple[str, ...], environ: dict[str, str], expected: str
) -> None:
    _one_line_error(push(grafana.url, *options, **environ), expected)
    assert grafana.requests == []


def test_a_bad_thresholds_file_lists_its_problems_and_exits_2(
    grafana: GrafanaStandIn, tmp_path: Path
) -> None:
    limits = tmp_path / "thresholds.yml"
    limits.write_text("capacity:\n  pue: {warning: {value: high}}\n", encoding="utf-8")
    result = push(grafana.url, "--thresholds", str(limits), GRAFANA_TOKEN=TOKEN)
    assert result.returncode == 2
    assert str(limits) in result.stderr
    assert "capacity.pue.warning.value" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr
    assert grafana.requests == []


def test_credentials_are_never_an_option_value(grafana: GrafanaStandIn) -> None:
    host = grafana.url.removeprefix("http://")
    in_url = push(f"http://{USER[0]}:{USER[1]}@{host}", GRAFANA_TOKEN=TOKEN)
    _one_line_error(in_url, "--url carries credentials")
    as_option = push(grafana.url, "--token", TOKEN)
    assert as_option.returncode == 2
    assert "No such option" in as_option.stderr
    assert grafana.requests == []


def test_other_thresholds_and_prices_are_pushed_as_given(
    grafana: GrafanaStandIn, tmp_path: Path
) -> None:
    limits = tmp_path / "thresholds.yml"
    limits.write_text(
        "capacity:\n  pue: {warning: {value: 1.2}, critical: {value: 1.3}}\n", encoding="utf-8"
    )
    result = push(grafana.url, "--thresholds", str(limits), "--tariff", "120", GRAFANA_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    campus = grafana.boards["gigawatt-campus"]
    pue = next(p for p in campus["panels"] if p.get("title") == "PUE, last hour")
    assert [s["value"] for s in pue["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]] == [
        1.2,
        1.3,
    ]
    tariff = next(
        v for v in grafana.boards["gigawatt-jobs"]["templating"]["list"] if v["name"] == "tariff"
    )
    assert tariff["query"] == "120"
