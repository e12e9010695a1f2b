"""``python -m exporters.cli``: the ``gigawatt`` command."""

from exporters.cli import main

main()
