"""The 2026 request fields end to end: options, job-file keys and manifest columns reach the wire; reruns."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from batchtts.cli import main
from tests.nightly_support import summary
from tests.runner_support import TEST_KEY, recording_server, run_job, write_csv

NEW_FIELDS = ("language", "number_pronunciation_language", "math_notation", "word_timestamps")


def _sent(bodies: list[dict], row_id: str) -> dict:
    [body] = [b for b in bodies if b["request_id"].startswith(f"{row_id}.")]
    return {name: body.get(name) for name in NEW_FIELDS}


def test_options_and_columns_reach_the_api_and_a_cell_wins(tmp_path):
    rows = [
        {"id": "defaults", "text": "It costs 5 x 3 dollars."},
        {"id": "own", "text": "Ich zahle 15 Euro.", "language": "de", "number_pronunciation_language": "de",
         "math_notation": "false", "word_timestamps": "true"},
        {"id": "japanese", "text": "こんにちは。", "language": "ja"},
        {"id": "auto", "text": "Bonjour.", "language": "auto"},
    ]  # fmt: skip
    manifest = write_csv(tmp_path / "m.csv", rows)
    with recording_server() as (server, recorder):
        job = run_job(manifest, tmp_path / "out", server.base_url, "--number-pronunciation-language", "hi",
                      "--math-notation")  # fmt: skip
        bodies = recorder.bodies()
    assert job.exit_code == 0, job.output
    assert len(bodies) == 4
    assert _sent(bodies, "defaults") == {
        "language": None,
        "number_pronunciation_language": "hi",
        "math_notation": True,
        "word_timestamps": None,
    }
    assert _sent(bodies, "own") == {
        "language": "de",
        "number_pronunciation_language": "de",
        "math_notation": False,
        "word_timestamps": True,
    }
    assert _sent(bodies, "japanese")["language"] == "ja"
    assert _sent(bodies, "auto")["language"] == "auto"


def test_a_changed_field_redoes_its_row_only(tmp_path):
    out = tmp_path / "out"
    rows = [
        {"id": "a", "text": "Five x three.", "math_notation": ""},
        {"id": "b", "text": "Twelve.", "number_pronunciation_language": "en"},
        {"id": "c", "text": "Unchanged."},
    ]
    with recording_server() as (server, recorder):
        first = run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url)
        assert first.exit_code == 0, first.output
        again = run_job(tmp_path / "m.csv", out, server.base_url)
        assert again.exit_code == 0 and summary(out)["skipped"] == 3  # nothing changed: nothing sent
        rows[0]["math_notation"] = "false"  # the API's default, now said out loud: the same request
        assert run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url).exit_code == 0
        assert summary(out)["skipped"] == 3
        rows[0]["math_notation"] = "true"
        rows[1]["number_pronunciation_language"] = "hi"
        changed = run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url)
        bodies = recorder.bodies()
    assert changed.exit_code == 0, changed.output
    assert summary(out)["skipped"] == 1
    assert {r["id"]: r["reused"] for r in changed.results()} == {"a": False, "b": False, "c": True}
    assert len(bodies) == 5
    assert bodies[-2:] and {(b["request_id"][0], b.get("math_notation"), b.get("number_pronunciation_language"))
                            for b in bodies[-2:]} == {("a", True, None), ("b", None, "hi")}  # fmt: skip


def test_job_file_keys_set_the_newer_fields(tmp_path):
    write_csv(tmp_path / "m.csv", [{"id": "a", "text": "Seven plus two."}])
    with recording_server() as (server, recorder):
        job = tmp_path / "job.toml"
        job.write_text(
            f"""
manifest = "m.csv"
out = "out"
[request]
language = "es"
number-pronunciation-language = "en"
math-notation = true
[api]
base-url = "{server.base_url}"
[log]
progress = "off"
""",
            encoding="utf-8",
        )
        result = CliRunner().invoke(
            main, ["run", "--job", str(job)], env={"SMALLEST_API_KEY": TEST_KEY, "BATCHTTS_BASE_URL": ""}
        )
        bodies = recorder.bodies()
    assert result.exit_code == 0, result.output
    assert _sent(bodies, "a") == {
        "language": "es",
        "number_pronunciation_language": "en",
        "math_notation": True,
        "word_timestamps": None,
    }


def test_validate_accepts_the_documented_languages_and_names_a_bad_boolean(tmp_path: Path):
    rows = [
        {"id": "de", "text": "Hallo.", "language": "de"},
        {"id": "vi", "text": "Xin chào.", "language": "vi", "number_pronunciation_language": "vi"},
        {"id": "bad", "text": "Hm.", "math_notation": "perhaps"},
    ]
    result = CliRunner().invoke(main, ["validate", str(write_csv(tmp_path / "m.csv", rows)), "--math-notation"])
    assert result.exit_code == 1
    assert "row 3, id 'bad': math_notation: 'perhaps' is not a boolean (true or false)" in result.output
    assert "3 rows: 2 valid, 1 bad" in result.output
