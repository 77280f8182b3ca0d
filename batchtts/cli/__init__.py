"""The ``batchtts`` command line: one module per command, options -> job -> exit code.

Heavy modules (pyarrow, httpx, starlette) are imported inside the commands so
that ``batchtts --help`` starts fast.
"""

from __future__ import annotations

import click

from batchtts import __version__
from batchtts.cli.check_audiobook import check_audiobook
from batchtts.cli.merge import merge
from batchtts.cli.report import report
from batchtts.cli.run import run
from batchtts.cli.serve import serve
from batchtts.cli.validate import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchtts")
def main() -> None:
    """Batch text-to-speech jobs for the Smallest AI Waves streaming API."""


main.add_command(report)
main.add_command(run)
main.add_command(merge)
main.add_command(serve)
main.add_command(validate)
main.add_command(check_audiobook)
