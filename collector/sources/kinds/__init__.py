"""One module per kind of source: its collectors-file spec, how it is built, how it is probed.

Each module ends with one ``KIND``, listed once in collector.sources.registry.
"""
