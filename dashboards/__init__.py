"""Dashboards and alerting rules, generated from the metric table and the alert thresholds
(exporters.contract).

Rules: ``recording`` (totals, energy rates, PUE, 30-day energy, grid meter ratings) and
``alerts`` (one module per topic) build the rule files under ``dashboards/rules/``;
``generate`` writes them with docs/alerts.md. Dashboards: ``boards`` build the Grafana JSON
under ``dashboards/grafana/``. Every series they read is looked up in the metric table, so a
metric that does not exist fails at generation time and in the tests.
"""
