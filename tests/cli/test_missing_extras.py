"""The local server comes with the tool; a missing extra or a broken install is one line, exit 2, no traceback."""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata

import pytest
from click.testing import CliRunner

from batchtts.cli import main
from tests.nightly_support import REPO
from tests.runner_support import write_csv


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_starlette_and_uvicorn_are_base_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {requirement.split(">")[0].split("=")[0] for requirement in project["dependencies"]}
    assert {"starlette", "uvicorn"} <= base
    assert project["optional-dependencies"]["server"] == []  # kept as an alias: 'batchtts[server]' still installs
    unconditional = [r for r in metadata.requires("batchtts") or [] if "extra ==" not in r]
    assert any(r.startswith("starlette") for r in unconditional) and any(r.startswith("uvicorn") for r in unconditional)


@pytest.fixture
def no_speech_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if espeakng-loader and soxr were not installed: the espeak engine's module cannot import."""
    monkeypatch.setitem(sys.modules, "batchtts.server.espeak", None)


@pytest.fixture
def no_server_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if starlette were missing (a broken install): the server's modules fail to import."""
    monkeypatch.setitem(sys.modules, "starlette.applications", None)
    for name in ("batchtts.server.app", "batchtts.server.running"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_serve_with_espeak_but_no_speech_extra_is_one_line(no_speech_extra):
    result = CliRunner().invoke(main, ["serve", "--engine", "espeak", "--port", "0"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    [line] = _lines(result.output)
    assert line.startswith("Error: --engine espeak: ") and "pip install 'batchtts[speech]'" in line


def test_run_local_with_espeak_but_no_speech_extra_is_one_line(tmp_path, no_speech_extra):
    manifest = write_csv(tmp_path / "m.csv", [{"id": "a", "text": "Hello."}])
    result = CliRunner().invoke(
        main,
        ["run", str(manifest), "--out", str(tmp_path / "out"), "--local", "--engine", "espeak", "--progress", "off"],
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    [line] = _lines(result.output)
    assert "the local server cannot start" in line and "pip install 'batchtts[speech]'" in line


def test_auto_engine_without_the_speech_extra_still_runs(tmp_path, no_speech_extra):
    manifest = write_csv(tmp_path / "m.csv", [{"id": "a", "text": "Hello."}])
    result = CliRunner().invoke(main, ["run", str(manifest), "--out", str(tmp_path / "out"), "--local",
                                       "--progress", "off"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "engine: synthetic" in result.output


def test_a_broken_install_is_one_line_not_a_traceback(tmp_path, no_server_packages):
    serve = CliRunner().invoke(main, ["serve", "--engine", "synthetic", "--port", "0"])
    assert serve.exit_code == 2 and "Traceback" not in serve.output
    [line] = _lines(serve.output)
    assert "the local server cannot start" in line and "reinstall batchtts" in line
    manifest = write_csv(tmp_path / "m.csv", [{"id": "a", "text": "Hello."}])
    run = CliRunner().invoke(main, ["run", str(manifest), "--out", str(tmp_path / "out"), "--local",
                                    "--progress", "off"])  # fmt: skip
    assert run.exit_code == 2 and "Traceback" not in run.output
    [line] = _lines(run.output)
    assert "the local server cannot start" in line and "reinstall batchtts" in line
