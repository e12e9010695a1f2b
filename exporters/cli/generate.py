"""``gigawatt generate``: the generated files, written or checked fresh."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def generate(
    check: Annotated[bool, typer.Option(help="fail if a generated file is out of date")] = False,
    root: Annotated[Path, typer.Option(help="project root")] = Path("."),
) -> None:
    """Write the generated files (docs/metrics.md, the dashboards, the alert and recording
    rules, docs/alerts.md) from the metric table and the thresholds."""
    from dashboards.boards import generated_files as dashboard_files
    from dashboards.generate import generated_files as rule_files
    from exporters.docs import generated_files

    stale = []
    for relative, content in {**generated_files(), **dashboard_files(), **rule_files()}.items():
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
