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
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the simulated campus and serve /metrics and the HTTP API."""
    import uvicorn

    from collector.config_errors import ConfigError
    from collector.shard import ShardError
    from exporters.composition import build_app

    if preset and site:
        raise typer.BadParameter("give --preset or --site, not both")
    if log_level.upper() not in LOG_LEVELS:
        raise typer.BadParameter("--log-level must be one of debug, info, warning, error")
    settings = _settings(
        preset=None if site else (preset or "campus"),
        site_file=site,
        host=host,
        port=port,
        interval_seconds=interval,
        seed=seed,
        expose=expose,
        workload=workload,
        grid_config=grid_config,
        collectors=collectors,
        scenario=scenario,
        shard=shard,
    )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:  # every source built here, once; the app starts the cycles and closes them at exit
        app = build_app(settings)
    except ConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    except ShardError as error:  # a shard the site cannot have (more shards than buildings)
        raise typer.BadParameter(f"--shard: {error}") from None
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower())


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
