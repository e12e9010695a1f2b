"""The ``gigawatt`` command line: one module per command or group of commands.

gigawatt serve      exporters/cli/serve.py     the service (/metrics, the HTTP API)
gigawatt site       exporters/cli/site.py      check and describe site files
gigawatt grid       exporters/cli/grid.py      grid analytics of a recorded series
gigawatt probe      exporters/cli/probe.py     read one source once
gigawatt generate   exporters/cli/generate.py  rewrite the generated files
gigawatt dashboards exporters/cli/dashboards.py push the dashboards to a Grafana
"""

from __future__ import annotations

import typer

from exporters.cli.dashboards import dashboards_app
from exporters.cli.generate import generate
from exporters.cli.grid import grid_app
from exporters.cli.probe import probe
from exporters.cli.serve import serve
from exporters.cli.site import site_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Telemetry and power monitoring for a gigawatt-scale AI training campus.",
)
app.add_typer(site_app, name="site")
app.add_typer(grid_app, name="grid")
app.add_typer(dashboards_app, name="dashboards")
app.command("probe")(probe)
app.command("serve")(serve)
app.command("generate")(generate)


def main() -> None:
    app(prog_name="gigawatt")
