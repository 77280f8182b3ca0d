"""`batchtts check-audiobook`: measure chapter files against ACX's rules, say which fail and why.

The measuring is :mod:`batchtts.audio.acx`; this reads DIR, prints a table (or
JSON) and turns the verdict into the exit status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from batchtts.audio.acx import ChapterCheck

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


@click.command("check-audiobook")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of the table.")
def check_audiobook(folder: Path, as_json: bool) -> None:
    """Check every chapter file in DIR (or one file) against ACX's audio rules.

    RMS -23 to -18 dB, peak at most -3 dBFS, noise floor at most -60 dB,
    room tone of 0.5 to 1 s at the head and 1 to 5 s at the tail, 44.1 kHz.
    DIR is a job's output folder (its audio/ is searched, .batchtts/ skipped)
    or any folder of .wav, .flac, .mp3 or .ogg files.

    Exit status: 0 every file passes, 1 some fail, 2 no such folder or no audio in it.

    \b
    Examples:
      batchtts check-audiobook audiobook-out/
      batchtts check-audiobook audiobook-out/audio/ch01.flac --json
    """
    from batchtts.audio.acx import AUDIO_EXTENSIONS, audio_files, check_file

    if folder.is_file():
        files, base = [folder], folder.parent
    elif folder.is_dir():
        files, base = audio_files(folder), folder
    else:
        raise BadInput(f"{folder}: no such file or folder")
    if not files:
        raise BadInput(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in it")
    checks = [check_file(path, path.relative_to(base).as_posix()) for path in files]
    failing = [check for check in checks if not check.ok]
    if as_json:
        document: dict[str, Any] = {"ok": not failing, "files": len(checks), "failing": len(failing)}
        document["chapters"] = [check.to_dict() for check in checks]
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(_table(checks))
        verdict = "all pass" if not failing else f"{len(failing)} fail"
        click.echo(f"{len(checks)} file(s) checked against ACX's rules: {verdict}")
    raise SystemExit(EXIT_FAIL if failing else EXIT_PASS)


class BadInput(click.ClickException):
    """No such folder, or no audio in it: one ``Error:`` line, exit 2."""

    exit_code = EXIT_BAD_INPUT


def _table(checks: list[ChapterCheck]) -> str:
    """One line per file: its figures, then PASS or what fails."""
    header = ("file", "RMS dB", "peak dBFS", "floor dB", "head s", "tail s", "result")
    rows = [
        (
            check.path,
            f"{check.rms_db:.1f}",
            f"{check.peak_dbfs:.1f}",
            f"{check.noise_floor_db:.1f}",
            f"{check.head_seconds:.2f}",
            f"{check.tail_seconds:.2f}",
            "PASS" if check.ok else "FAIL: " + "; ".join(check.failures),
        )
        for check in checks
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)
