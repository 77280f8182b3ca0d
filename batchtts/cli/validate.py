"""`batchtts validate`."""

from __future__ import annotations

import click


@click.command()
def validate() -> None:
    """Not written yet."""
    raise click.ClickException("not implemented yet")
