"""``python -m onering_catalog``: see ``onering_catalog.cli``."""

from onering_catalog.cli import run

run()
