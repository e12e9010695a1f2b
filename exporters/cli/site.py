"""``gigawatt site validate|show``: check and describe site files; the --preset/--site
options every command that loads a site shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from collector.site.model import PRESETS, Site, SiteError, load_preset, load_site
from collector.site.topology import build_topology

site_app = typer.Typer(no_args_is_help=True, help="Check and describe site files.")

PresetOption = Annotated[str | None, typer.Option("--preset", help=f"one of {', '.join(PRESETS)}")]
SiteOption = Annotated[Path | None, typer.Option("--site", help="a site YAML file")]


def choose_site(preset: str | None, site: Path | None, default: str = "campus") -> Site:
    """The site a command was given; a bad one is reported whole on stderr, exit 2."""
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
    chosen = choose_site(preset, site)
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
