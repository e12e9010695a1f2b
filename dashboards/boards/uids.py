"""The dashboards' UIDs: stable, so links between them and bookmarks keep working across
regenerations and pushes (Grafana addresses a dashboard by it: /d/<uid>)."""

OVERVIEW = "gigawatt-campus"
DRILLDOWN = "gigawatt-building"
RACK = "gigawatt-rack"
ACCELERATORS = "gigawatt-accelerators"
GRID = "gigawatt-grid"
JOBS = "gigawatt-jobs"
COLLECTOR = "gigawatt-collector"
