"""Dashboards and alerting rules, generated from the metric table (exporters.contract).

Empty for now: rules and dashboards read the same table as the exposition and docs, so a
metric they name that does not exist fails a test.
"""
