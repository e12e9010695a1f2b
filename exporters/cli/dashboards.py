"""``gigawatt dashboards push``: the dashboards into a running Grafana through its HTTP API.

Credentials come from the environment (``GRAFANA_TOKEN``, or ``GRAFANA_USERNAME`` and
``GRAFANA_PASSWORD``) or from a file (``--token-file``), never from an option's value, which
would sit in shell histories and process lists. The push creates the folder when it is
missing, then creates each dashboard Grafana lacks, updates each that differs and leaves the
rest, saying which; a second push changes nothing and says so.

An update names the version it read, without ``overwrite``: a dashboard someone changed
between that read and the write is refused (Grafana answers 412) rather than silently lost.
A Grafana that refuses (401, 403, 412) or cannot be reached gets one line on stderr and exit
code 2.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import typer

dashboards_app = typer.Typer(
    no_args_is_help=True, help="Grafana dashboards: push them through Grafana's HTTP API."
)

Action = Literal["created", "updated", "unchanged"]
MESSAGE = "gigawatt dashboards push"


class PushError(Exception):
    """Why a push stopped, in one line."""


@dataclass(frozen=True)
class Outcome:
    what: str  # "folder gigawatt", "dashboard gigawatt-campus"
    title: str
    action: Action


def credential_from(environ: Mapping[str, str], token_file: Path | None) -> str | tuple[str, str]:
    """A bearer token or a (username, password) pair; PushError when there is none."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise PushError(f"--token-file {token_file}: {error.strerror or error}") from None
        if not token:
            raise PushError(f"--token-file {token_file} is empty")
        return token
    if token := environ.get("GRAFANA_TOKEN", "").strip():
        return token
    username = environ.get("GRAFANA_USERNAME", "")
    password = environ.get("GRAFANA_PASSWORD", "")
    if username and password:
        return username, password
    if username or password:
        given, missing = (
            ("GRAFANA_USERNAME", "GRAFANA_PASSWORD")
            if username
            else ("GRAFANA_PASSWORD", "GRAFANA_USERNAME")
        )
        raise PushError(f"{given} is set but {missing} is not")
    raise PushError(
        "no credentials: set GRAFANA_TOKEN (a service account token), or GRAFANA_USERNAME "
        "and GRAFANA_PASSWORD, or give --token-file FILE"
    )


def check_url(url: str) -> str:
    """The Grafana base URL without a trailing slash; PushError for one that is not http(s)
    or that carries credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError(f"--url {url!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise PushError(
            "--url carries credentials: give them in GRAFANA_TOKEN, GRAFANA_USERNAME and "
            "GRAFANA_PASSWORD, or --token-file"
        )
    return url.rstrip("/")


def push(
    api: Any, boards: Mapping[str, dict[str, Any]], folder_uid: str, folder_title: str
) -> list[Outcome]:
    """Create the folder if missing, then create, update or leave each dashboard. ``api``
    is a grafana_client.GrafanaApi."""
    outcomes = [_folder(api, folder_uid, folder_title)]
    for uid, board in boards.items():
        existing = _found(partial(api.dashboard.get_dashboard, uid))
        payload: dict[str, Any] = {
            "dashboard": dict(board),
            "folderUid": folder_uid,
            "message": MESSAGE,
            "overwrite": False,
        }
        action: Action = "created"
        if existing is not None:
            stored = {k: v for k, v in existing["dashboard"].items() if k not in ("id", "version")}
            in_folder = existing.get("meta", {}).get("folderUid") == folder_uid
            if stored == board and in_folder:
                outcomes.append(Outcome(f"dashboard {uid}", board["title"], "unchanged"))
                continue
            # The version read: Grafana refuses the write (412) if it moved on meanwhile.
            payload["dashboard"]["id"] = existing["dashboard"].get("id")
            payload["dashboard"]["version"] = existing["dashboard"].get("version")
            action = "updated"
        _call(partial(api.dashboard.update_dashboard, payload), f"dashboard {uid}")
        outcomes.append(Outcome(f"dashboard {uid}", board["title"], action))
    return outcomes


def _folder(api: Any, uid: str, title: str) -> Outcome:
    if _found(lambda: api.folder.get_folder(uid)) is not None:
        return Outcome(f"folder {uid}", title, "unchanged")
    _call(lambda: api.folder.create_folder(title, uid=uid), f"folder {uid}")
    return Outcome(f"folder {uid}", title, "created")


def _found(read: Callable[[], Any]) -> Any:
    """What Grafana returns, or None when it answers 404."""
    from grafana_client.client import GrafanaClientError

    try:
        return _call(read, "")
    except PushError as error:
        if isinstance(error.__cause__, GrafanaClientError) and error.__cause__.status_code == 404:
            return None
        raise


def _call(request: Callable[[], Any], what: str) -> Any:
    """One API call; every way Grafana can refuse or be out of reach becomes a PushError."""
    import niquests
    from grafana_client.client import (
        GrafanaClientError,
        GrafanaException,
        GrafanaTimeoutError,
        GrafanaUnauthorizedError,
    )

    about = f" ({what})" if what else ""
    try:
        return request()
    except GrafanaUnauthorizedError as error:
        raise PushError(
            "Grafana refused the credentials (401 Unauthorized): check GRAFANA_TOKEN or "
            "GRAFANA_USERNAME and GRAFANA_PASSWORD"
        ) from error
    except GrafanaClientError as error:
        status = error.status_code
        reason = _reason(error.response)
        if status == 403:
            message = f"Grafana denied the request{about} (403 Forbidden): {reason}"
        elif status == 412:
            message = (
                f"Grafana refused{about} (412 Precondition Failed: {reason}): it changed "
                "since it was read; push again"
            )
        else:
            message = f"Grafana refused{about} ({status}): {reason}"
        raise PushError(message) from error
    except GrafanaTimeoutError as error:
        raise PushError(f"Grafana did not answer in time{about}: {error.message}") from error
    except GrafanaException as error:
        raise PushError(f"Grafana failed{about} ({error.status_code}): {error.message}") from error
    except niquests.exceptions.RequestException as error:
        raise PushError(f"cannot reach Grafana: {error}") from error


def _price(option: str, given: float | None, default: float) -> float:
    if given is None:
        return default
    if not math.isfinite(given) or given < 0:
        raise PushError(f"{option} must be a finite number of zero or more, not {given:g}")
    return given


def _reason(response: Any) -> str:
    if isinstance(response, dict):
        return str(response.get("message") or response.get("status") or response)
    return str(response).strip().splitlines()[0] if str(response).strip() else "no reason given"


@dashboards_app.command("push")
def push_command(
    url: Annotated[str, typer.Option(help="Grafana's base URL, e.g. https://grafana:3000")],
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="a file holding a service account token (otherwise GRAFANA_TOKEN, or "
            "GRAFANA_USERNAME and GRAFANA_PASSWORD)"
        ),
    ] = None,
    thresholds: Annotated[
        Path | None,
        typer.Option(help="the alert thresholds (YAML) the panels draw; default: the rules'"),
    ] = None,
    tariff: Annotated[
        float | None, typer.Option(help="energy price in $/MWh for the jobs dashboard")
    ] = None,
    grid_intensity: Annotated[
        float | None, typer.Option(help="grid carbon intensity in tCO2/MWh")
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds each request may take")] = 10.0,
) -> None:
    """Create or update the gigawatt dashboards and their folder in Grafana."""
    from dashboards.boards import dashboards
    from dashboards.boards.config import BoardConfig, Prices
    from dashboards.provisioning import FOLDER_TITLE, FOLDER_UID
    from exporters.contract.thresholds import DEFAULT_THRESHOLDS, ThresholdsError, load_thresholds

    try:
        base = check_url(url)
        credential = credential_from(os.environ, token_file)
        defaults = Prices()
        prices = Prices(
            _price("--tariff", tariff, defaults.dollars_per_megawatt_hour),
            _price("--grid-intensity", grid_intensity, defaults.tonnes_co2_per_megawatt_hour),
        )
        limits = DEFAULT_THRESHOLDS if thresholds is None else load_thresholds(thresholds)
    except ThresholdsError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    except PushError as error:
        typer.echo(f"{MESSAGE}: {error}", err=True)
        raise typer.Exit(2) from None
    from grafana_client.api import GrafanaApi

    api: Any = GrafanaApi.from_url(base, credential=credential, timeout=timeout)
    try:
        outcomes = push(api, dashboards(BoardConfig(limits, prices)), FOLDER_UID, FOLDER_TITLE)
    except PushError as error:
        typer.echo(f"{MESSAGE}: {base}: {error}", err=True)
        raise typer.Exit(2) from None
    for outcome in outcomes:
        typer.echo(f"{outcome.action:9}  {outcome.what}  ({outcome.title})")
    if any(outcome.action != "unchanged" for outcome in outcomes):
        typer.echo(
            ", ".join(
                f"{sum(outcome.action == action for outcome in outcomes)} {action}"
                for action in ("created", "updated", "unchanged")
            )
        )
    else:
        typer.echo(f"nothing changed: Grafana at {base} already has every dashboard")
