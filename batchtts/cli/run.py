"""`batchtts run`."""

from __future__ import annotations

import click


@click.command()
def run() -> None:
    """Not written yet."""
    raise click.ClickException("not implemented yet")
