"""The ``gigawatt`` command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from collector.site.model import PRESETS, Site, SiteError, load_preset, load_site
from collector.site.topology import build_topology
from exporters import contract
from exporters.grid_cli import grid_app
from exporters.probe_cli import probe

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Telemetry and power monitoring for a gigawatt-scale AI training campus.",
)
site_app = typer.Typer(no_args_is_help=True, help="Check and describe site files.")
app.add_typer(site_app, name="site")
app.add_typer(grid_app, name="grid")
app.command("probe")(probe)

PresetOption = Annotated[str | None, typer.Option("--preset", help=f"one of {', '.join(PRESETS)}")]
SiteOption = Annotated[Path | None, typer.Option("--site", help="a site YAML file")]


def _choose_site(preset: str | None, site: Path | None, default: str = "campus") -> Site:
    if preset and site:
        raise typer.BadParameter("give --preset or --site, not both")
    try:
        return load_site(site) if site else load_preset(preset or default)
    except SiteError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None


@site_app.command("validate")
def site_validate(file: Annotated[Path, typer.Argument(help="the site YAML file")]) -> None:
    """Validate a site file; print every problem with its location; exit 1 when any."""
    try:
        site = load_site(file)
    except SiteError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{file}: valid site {site.name!r}")


def _watts(value: float) -> str:
    for unit, scale in (("GW", 1e9), ("MW", 1e6), ("kW", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:,.2f} {unit}"
    return f"{value:,.0f} W"


@site_app.command("show")
def site_show(preset: PresetOption = None, site: SiteOption = None) -> None:
    """Print counts and capacities per level."""
    chosen = _choose_site(preset, site)
    topology = build_topology(chosen)
    typer.echo(
        f"site {chosen.name}: contract {_watts(chosen.contract_watts)} at the point of "
        "interconnection"
    )
    rows = [
        ("buildings", topology.buildings),
        ("lineups", topology.lineups),
        ("halls", topology.halls),
        ("rows", topology.rows),
        ("racks", topology.racks),
        ("pdu feeds", topology.feeds),
        ("nodes (accelerator TDP)", topology.nodes),
    ]
    typer.echo(f"{'level':<24}{'count':>12}{'capacity each':>22}{'capacity total':>18}")
    for label, frame in rows:
        capacity = frame.get_column("capacity_watts")
        low, high = float(capacity.min()), float(capacity.max())  # type: ignore[arg-type]
        each = _watts(low) if low == high else f"{_watts(low)} - {_watts(high)}"
        typer.echo(f"{label:<24}{frame.height:>12,}{each:>22}{_watts(float(capacity.sum())):>18}")
    tdp = topology.accelerators.get_column("tdp_watts").to_numpy()
    typer.echo(
        f"{'accelerators':<24}{topology.accelerator_count:>12,}"
        f"{_watts(float(tdp.max(initial=0.0))) + ' TDP':>22}{_watts(float(tdp.sum())):>18}"
    )


@app.command()
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
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the simulated campus and serve /metrics and the HTTP API."""
    import uvicorn
    from pydantic import ValidationError

    from exporters.api import ServiceSettings, create_app

    if expose not in contract.TIERS:
        raise typer.BadParameter(f"--expose must be one of {', '.join(contract.TIERS)}")
    if preset and site:
        raise typer.BadParameter("give --preset or --site, not both")
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise typer.BadParameter("--log-level must be one of debug, info, warning, error")
    if site:
        _choose_site(None, site)  # report every problem before starting anything
    if grid_config:
        from collector.grid.config import GridConfigError, load_grid_config

        try:
            load_grid_config(grid_config)
        except GridConfigError as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(2) from None
    if collectors:
        from collector.collectors import CollectorsError, build_sources
        from collector.inventory import InventoryError
        from collector.site.topology import build_topology
        from exporters.service import close_sources

        try:  # every problem in the file and its inventory, before starting anything
            checked = build_sources(collectors, build_topology(_choose_site(preset, site)))
        except (CollectorsError, InventoryError) as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(2) from None
        close_sources(checked)  # built to be checked only: the service builds its own
    try:
        settings = ServiceSettings(
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
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in detail['loc'])}: {detail['msg']}"
            for detail in error.errors()
        )
        raise typer.BadParameter(problems) from None
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level.lower())


@app.command()
def generate(
    check: Annotated[bool, typer.Option(help="fail if a generated file is out of date")] = False,
    root: Annotated[Path, typer.Option(help="project root")] = Path("."),
) -> None:
    """Write the generated files (docs/metrics.md) from the metric table."""
    from exporters.docs import generated_files

    stale = []
    for relative, content in generated_files().items():
        path = root / relative
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        if check:
            stale.append(relative)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            typer.echo(f"wrote {relative}")
    if stale:
        typer.echo(f"out of date (run `gigawatt generate`): {', '.join(stale)}", err=True)
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="gigawatt")


if __name__ == "__main__":
    main()
