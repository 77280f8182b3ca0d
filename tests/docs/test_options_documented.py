"""Every visible option of every command is documented on the command's page in docs/commands/."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from batchtts.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS_DIR = ROOT / "docs" / "commands"


def long_flags(command: click.Command) -> list[str]:
    """Each long name (``--x``, and ``--no-x`` of a boolean pair) of the command's visible options."""
    flags: list[str] = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("--") and opt not in flags:
                flags.append(opt)
    return flags


def mentioned(flag: str, text: str) -> bool:
    """``flag`` as a whole word: ``--max-chars`` is not found inside ``--max-characters``."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def test_every_command_has_a_page() -> None:
    missing = [name for name in main.commands if not (COMMANDS_DIR / f"{name}.md").is_file()]
    assert not missing, f"commands without a page in docs/commands/: {', '.join(missing)}"


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_option_is_documented(name: str) -> None:
    page = COMMANDS_DIR / f"{name}.md"
    if not page.is_file():
        pytest.fail(f"docs/commands/{name}.md is missing")
    text = page.read_text(encoding="utf-8")
    flags = long_flags(main.commands[name])
    assert flags, f"batchtts {name} has no options? the test cannot see them"
    missing = [flag for flag in flags if not mentioned(flag, text)]
    assert not missing, f"docs/commands/{name}.md does not document: {' '.join(missing)}"


def test_the_check_finds_a_missing_option() -> None:
    """The check itself: an option left out of a page is reported, and a longer flag does not hide it."""

    @click.command()
    @click.option("--max-chars", type=int)
    @click.option("--max-characters", type=int)
    @click.option("--adaptive/--no-adaptive", default=True)
    @click.option("--secret", hidden=True)
    def demo(**_: object) -> None:
        """A command for the check."""

    text = "| `--max-characters N` | ... |\n| `--adaptive / --no-adaptive` | ... |"
    assert long_flags(demo) == ["--max-chars", "--max-characters", "--adaptive", "--no-adaptive"]
    assert [flag for flag in long_flags(demo) if not mentioned(flag, text)] == ["--max-chars"]
