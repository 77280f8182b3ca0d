"""Every ``batchtts ...`` example in the docs and the README parses against the current command line.

Each command line in a ``bash``/``sh``/``shell`` block (and each ``$ batchtts`` line of a
``console`` block) is split as the shell would, then parsed by the command's own click
parser: an unknown or renamed option, a bad choice or a value out of range fails here.
A ``run`` example must also name MANIFEST and ``--out``, on the line or in its job file.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from batchtts.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SHELL_OPERATORS = {">", ">>", "2>", "2>&1", "|", "||", "&&", ";", "&"}


@dataclass(frozen=True)
class Example:
    where: str  # file:line
    words: list[str]  # after `batchtts`

    def __str__(self) -> str:
        return f"{self.where}: batchtts {shlex.join(self.words)}"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def examples_in(path: Path) -> list[Example]:
    found: list[Example] = []
    language: str | None = None
    pending = ""
    start = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = re.match(r"^\s*```(\w*)", line)
        if fence:
            language = None if language is not None else fence.group(1) or ""
            pending = ""
            continue
        if language not in SHELL_LANGUAGES:
            continue
        if language == "console":
            if not pending and not line.startswith("$ "):
                continue
            line = line.removeprefix("$ ") if not pending else line
        if not pending:
            start = number
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        # Cut at the first unquoted shell operator: split without removing quotes first, so that
        # a quoted operator (`--delimiter '|'`, `--delimiter ';'`) stays an argument.
        raw = shlex.split(pending, comments=True, posix=False)
        pending = ""
        for index, token in enumerate(raw):
            if token in SHELL_OPERATORS:
                raw = raw[:index]
                break
        words = shlex.split(" ".join(raw))
        while words and ENV_ASSIGNMENT.match(words[0]):
            words = words[1:]
        if not words or Path(words[0]).name != "batchtts":
            continue
        found.append(Example(f"{path.relative_to(ROOT)}:{start}", words[1:]))
    return found


def all_examples() -> list[Example]:
    return [example for path in documents() for example in examples_in(path)]


def problem(example: Example) -> str | None:
    """Why the example would not run as written, or None."""
    if not example.words or example.words[0] not in main.commands:
        return "no such command"
    name, args = example.words[0], example.words[1:]
    command = main.commands[name]
    try:
        with command.make_context(name, list(args)) as ctx:
            params = dict(ctx.params)
    except click.ClickException as exc:
        return exc.format_message()
    if name == "run":
        given = {"manifest": params.get("manifest"), "out": params.get("out_dir")}
        job = params.get("job")
        if job is not None:
            job_path = ROOT / job
            if not job_path.is_file():
                return f"no job file {job} in the repository"
            values = tomllib.loads(job_path.read_text(encoding="utf-8"))
            given = {key: value or values.get(key) for key, value in given.items()}
        absent = [("MANIFEST" if key == "manifest" else "--out") for key, value in given.items() if not value]
        if absent:
            return f"missing {' and '.join(absent)}"
    return None


def test_a_quoted_operator_is_an_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(globals(), "ROOT", tmp_path)  # examples are named relative to ROOT
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\nbatchtts validate m.csv --delimiter '|' --quote none | head -3\n"
        'batchtts validate m.csv --delimiter ";" > out.txt\n```\n',
        encoding="utf-8",
    )
    found = [example.words for example in examples_in(page)]
    assert found == [
        ["validate", "m.csv", "--delimiter", "|", "--quote", "none"],
        ["validate", "m.csv", "--delimiter", ";"],
    ]


def test_examples_are_found() -> None:
    """The extraction itself works: the docs hold many examples of each command."""
    by_command: dict[str, int] = {}
    for example in all_examples():
        if example.words:
            by_command[example.words[0]] = by_command.get(example.words[0], 0) + 1
    assert by_command.get("run", 0) >= 20, by_command
    assert by_command.get("validate", 0) >= 3, by_command
    assert by_command.get("serve", 0) >= 3, by_command


def test_every_example_parses() -> None:
    failures = [f"{example}\n    -> {why}" for example in all_examples() if (why := problem(example))]
    assert not failures, "examples that would not run as written:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["run", "lines.csv", "--out", "out/", "--voice-id", "emily"], None),
        (["run", "lines.csv", "--local"], "missing --out"),
        (["run", "lines.csv", "--out", "o/", "--no-such-option"], "No such option"),
        (["run", "lines.csv", "--out", "o/", "--sample-rate", "12345"], "12345"),
        (["run", "--job", "jobs/demo.toml"], None),
        (["serve", "--fault", "503:0.1", "--seed", "1"], None),
        (["frobnicate"], "no such command"),
    ],
)
def test_the_check_catches_what_would_fail(words: list[str], expected: str | None) -> None:
    why = problem(Example("test", words))
    if expected is None:
        assert why is None
    else:
        assert why is not None and expected in why, why
