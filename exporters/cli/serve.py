"""``gigawatt serve``: the service, built once by the composition root and served by uvicorn.

Every problem is reported before anything starts: a bad option value is a usage error naming
the option (exit 2); a configuration file with problems (site, grid config, collectors file,
inventory) prints every one with its line (exit 2).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from exporters import contract
from exporters.cli.site import PresetOption, SiteOption

if TYPE_CHECKING:
    from exporters.composition import ServiceSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# ServiceSettings fields whose option is not named after them (the rest: --field-name).
_OPTION_OF = {"site_file": "--site", "interval_seconds": "--interval"}


def _where(location: tuple[int | str, ...]) -> str:
    """A settings error's location as the user typed it: ``interval_seconds`` -> ``--interval``."""
    if not location:
        return "options"
    field, *inside = map(str, location)
    return ".".join([_OPTION_OF.get(field, "--" + field.replace("_", "-")), *inside])


def serve(
    preset: PresetOption = None,
    site: SiteOption = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 9640,
    interval: Annotated[float, typer.Option(help="seconds between cycles")] = 10.0,
    seed: Annotated[int, typer.Option(help="simulator seed")] = 0,
    expose: Annotated[
        str, typer.Option(help=f"deepest tier exposed: {', '.join(contract.TIERS)}")
    ] = contract.DEFAULT_TIER,
    workload: Annotated[
        str, typer.Option(help="simulated workload: jobs (training job model) or steady")
    ] = "jobs",
    power_floor: Annotated[
        float | None,
        typer.Option(
            help="mitigation: simulated training jobs hold their wait phases at this share "
            "of TDP (e.g. 0.9)"
        ),
    ] = None,
    ramp_limit: Annotated[
        float | None,
        typer.Option(
            help="mitigation: simulated chips slew their power by at most this many W/s (e.g. 50)"
        ),
    ] = None,
    grid_config: Annotated[
        Path | None, typer.Option(help="grid thresholds, bands and windows (YAML)")
    ] = None,
    collectors: Annotated[
        Path | None,
        typer.Option(help="real sources and their inventory (YAML); without it, the simulator"),
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(help="incident scenario played on the sources (YAML, see the README)"),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="serve shard I of N (e.g. 2/3): a fixed share of the buildings, the site "
            "series as partials that the recording rules sum (docs/scaling.md)"
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="where the counters survive a restart [default: $XDG_STATE_HOME/gigawatt/SITE, "
            "else ~/.local/state/gigawatt/SITE]"
        ),
    ] = None,
    no_state: Annotated[
        bool, typer.Option("--no-state", help="keep no state: counters start from 0 each run")
    ] = False,
    web_config: Annotated[
        Path | None,
        typer.Option(help="TLS and basic auth (exporter-toolkit's web config file, see README)"),
    ] = None,
    api_token_file: Annotated[
        Path | None,
        typer.Option(
            help="bearer token of state-changing endpoints [default: $GIGAWATT_API_TOKEN]"
        ),
    ] = None,
    max_request_bytes: Annotated[
        int, typer.Option(help="largest request body read (413 beyond)")
    ] = 64 * 1024,
    max_concurrent_requests: Annotated[
        int, typer.Option(help="requests answered at once (503 beyond, never queued)")
    ] = 64,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the simulated campus and serve /metrics and the HTTP API."""
    import uvicorn

    from collector.config_errors import ConfigError
    from collector.redact import install_log_redaction
    from collector.shard import ShardError
    from collector.state import default_state_dir
    from exporters.composition import TokenError, build_app

    if preset and site:
        raise typer.BadParameter("give --preset or --site, not both")
    if log_level.upper() not in LOG_LEVELS:
        raise typer.BadParameter("--log-level must be one of debug, info, warning, error")
    if no_state and state_dir is not None:
        raise typer.BadParameter("give --state-dir or --no-state, not both")
    if not no_state and state_dir is None:
        # One folder per site and shard, so two services on one machine never share one.
        named = site.stem if site else (preset or "campus")
        state_dir = default_state_dir(
            named + (f"-shard-{shard.replace('/', 'of')}" if shard else "")
        )
    settings = _settings(
        preset=None if site else (preset or "campus"),
        site_file=site,
        host=host,
        port=port,
        interval_seconds=interval,
        seed=seed,
        expose=expose,
        workload=workload,
        power_floor=power_floor,
        ramp_limit=ramp_limit,
        grid_config=grid_config,
        collectors=collectors,
        scenario=scenario,
        shard=shard,
        state_dir=state_dir,
        web_config=web_config,
        api_token_file=api_token_file,
        max_request_bytes=max_request_bytes,
        max_concurrent_requests=max_concurrent_requests,
    )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_log_redaction()  # no password of a URL reaches a log line
    try:  # every source built here, once; the app starts the cycles and closes them at exit
        app = build_app(settings)
    except ConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    except ShardError as error:  # a shard the site cannot have (more shards than buildings)
        raise typer.BadParameter(f"--shard: {error}") from None
    except TokenError as error:
        raise typer.BadParameter(f"--api-token-file: {error}") from None
    web = app.state.web_config
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        limit_concurrency=max_concurrent_requests,
        # SIGTERM: open connections get 1 s, so the process ends within 5 s.
        timeout_graceful_shutdown=1,
        **(web.uvicorn_options() if web is not None else {}),
    )


def _settings(**given: object) -> ServiceSettings:
    """ServiceSettings from the options; a value it refuses is a usage error naming the option."""
    from pydantic import ValidationError

    from exporters.composition import ServiceSettings

    try:
        return ServiceSettings.model_validate(given)
    except ValidationError as error:
        problems = "; ".join(
            f"{_where(detail['loc'])}: {detail['msg']}" for detail in error.errors()
        )
        raise typer.BadParameter(problems) from None
