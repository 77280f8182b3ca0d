"""Rows -> requests: defaults, overrides, and every bad-row reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchtts.api.request import DEFAULT_MODEL, DEFAULT_SAMPLE_RATE, DEFAULT_VOICE, InvalidRequest, TtsRequest
from batchtts.manifest.planner import DUPLICATE_ID, PlannedRow, RowPlanner
from batchtts.manifest.readers import Row, open_manifest


def row(number: int = 1, text: Any = "hello", row_id: str | None = None, **fields: Any) -> Row:
    return Row(number=number, id=str(number) if row_id is None else row_id, text=text, fields=fields, carried={})


def plan_one(r: Row, **defaults: Any) -> PlannedRow:
    return RowPlanner(defaults).plan(r)


def test_api_defaults_fill_what_nobody_set() -> None:
    planned = plan_one(row())
    assert planned.ok and planned.error is None and planned.kind is None
    assert planned.request == TtsRequest(text="hello")
    assert (planned.request.voice_id, planned.request.model, planned.request.sample_rate) == (
        DEFAULT_VOICE,
        DEFAULT_MODEL,
        DEFAULT_SAMPLE_RATE,
    )
    assert planned.request.request_id is None  # the runner owns request ids


def test_row_cells_override_command_line_defaults() -> None:
    planner = RowPlanner({"voice_id": "emily", "speed": 1.5, "sample_rate": 24000, "pronunciation_dicts": ["d0"]})
    default = planner.plan(row(1))
    override = planner.plan(row(2, voice_id="arjun", speed=0.75, pronunciation_dicts=["d1", "d2"]))
    assert default.request is not None and override.request is not None
    assert (default.request.voice_id, default.request.speed, default.request.pronunciation_dicts) == (
        "emily",
        1.5,
        ("d0",),
    )
    assert (override.request.voice_id, override.request.speed, override.request.pronunciation_dicts) == (
        "arjun",
        0.75,
        ("d1", "d2"),
    )
    assert override.request.sample_rate == 24000  # not overridden: the command-line value


def test_voice_is_not_checked_against_the_local_catalog() -> None:
    planned = plan_one(row(voice_id="a-voice-only-the-real-api-has"))
    assert planned.request is not None and planned.request.voice_id == "a-voice-only-the-real-api-has"


@pytest.mark.parametrize(
    ("r", "kind", "reason"),
    [
        (row(text=""), "text", "text: must not be empty"),
        (row(text="  \n\t"), "text", "text: must not be empty"),
        (row(text=None), "text", "text: must not be empty"),
        (row(text=42), "text", "text: must be a string"),
        (row(speed="fast"), "speed", "speed: 'fast' is not a number"),
        (row(speed=2.5), "speed", "speed: 2.5 is out of range 0.5 to 2.0"),
        (row(model="lightning_v9"), "model", "model: 'lightning_v9' is not one of"),
        (row(language="xx"), "language", "language: 'xx' is not one of"),
        (row(output_format="ogg"), "output_format", "output_format: 'ogg' is not one of"),
        (row(sample_rate="22050"), "sample_rate", "sample_rate: '22050' is not one of"),
        (row(session_id="has space"), "session_id", "session_id: 'has space' must be 1 to 128"),
        (row(session_id="x" * 129), "session_id", "session_id: "),
        (row(pronunciation_dicts=[1, 2]), "pronunciation_dicts", "pronunciation_dicts: must be a list of strings"),
        (row(row_id=""), "id", "id: missing"),
    ],
)
def test_bad_rows_get_a_reason_and_no_request(r: Row, kind: str, reason: str) -> None:
    planned = plan_one(r)
    assert planned.request is None and not planned.ok
    assert planned.kind == kind
    assert planned.error is not None and planned.error.startswith(reason)


def test_a_bad_row_cell_beats_a_good_default() -> None:
    planned = plan_one(row(speed="fast"), speed=1.2)
    assert planned.error == "speed: 'fast' is not a number"


def test_repeated_id_first_occurrence_wins() -> None:
    planner = RowPlanner({})
    first = planner.plan(row(3, row_id="x"))
    other = planner.plan(row(4, row_id="y"))
    again = planner.plan(row(9, row_id="x"))
    third = planner.plan(row(12, row_id="x"))
    assert first.ok and other.ok
    assert again.request is None and again.kind == DUPLICATE_ID
    assert again.error == "duplicate id 'x' (first at row 3)"
    assert third.error == "duplicate id 'x' (first at row 3)"
    assert (planner.duplicate_rows, planner.repeated_ids) == (2, 1)


def test_a_bad_first_row_still_claims_its_id() -> None:
    planner = RowPlanner({})
    assert planner.plan(row(1, text="", row_id="a")).kind == "text"
    assert planner.plan(row(2, row_id="a")).error == "duplicate id 'a' (first at row 1)"


def test_missing_ids_are_not_duplicates_of_each_other() -> None:
    planner = RowPlanner({})
    assert [planner.plan(row(n, row_id="")).kind for n in (1, 2)] == ["id", "id"]
    assert planner.duplicate_rows == 0


def test_duplicate_tracking_can_be_switched_off() -> None:
    planner = RowPlanner({}, track_duplicates=False)
    assert planner.plan(row(1, row_id="x")).ok and planner.plan(row(2, row_id="x")).ok


def test_invalid_or_unknown_defaults_are_refused_up_front() -> None:
    with pytest.raises(InvalidRequest, match="speed"):
        RowPlanner({"speed": 9})
    with pytest.raises(ValueError, match="text"):
        RowPlanner({"text": "no"})


def test_empty_defaults_mean_the_api_default() -> None:
    planner = RowPlanner({"voice_id": "", "language": None, "pronunciation_dicts": []})
    assert planner.defaults == {"voice_id": DEFAULT_VOICE}


def test_many_ids_stay_distinct() -> None:
    planner = RowPlanner({})
    for n in range(1, 20_001):
        assert planner.plan(row(n, row_id=f"id-{n}")).ok
    assert planner.plan(row(20_001, row_id="id-17")).error == "duplicate id 'id-17' (first at row 17)"


def test_csv_manifest_to_requests(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "id,text,speed,sample_rate,pronunciation_dicts,language,note\n"
        'a,Hello,1.25,16000,"d1,d2",en,keep\n'
        "b,Hola,,,,es,\n"
        "a,dup,,,,,\n"
        "c,   ,,,,,\n",
        encoding="utf-8",
    )
    planner = RowPlanner({"speed": 0.9, "voice_id": "emily"})
    planned = [planner.plan(r) for r in open_manifest(path)]
    first, second, dup, blank = planned
    assert first.request == TtsRequest(
        text="Hello",
        voice_id="emily",
        speed=1.25,
        sample_rate=16000,
        pronunciation_dicts=("d1", "d2"),
        language="en",
    )
    assert second.request is not None and second.request.speed == 0.9 and second.request.sample_rate == 44100
    assert first.row.carried == {"note": "keep"}
    assert dup.error == "duplicate id 'a' (first at row 1)"
    assert blank.error == "text: must not be empty"


def test_the_newer_fields_come_from_columns_and_defaults_in_every_format(tmp_path: Path) -> None:
    """number_pronunciation_language, math_notation and word_timestamps: columns of those names, per row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = tmp_path / "m.csv"
    csv_path.write_text(
        "id,text,number_pronunciation_language,math_notation,word_timestamps,language\n"
        "a,5 x 3 = 15,hi,true,false,de\n"
        "b,Plain.,,,,\n"
        "c,Odd.,,maybe,,\n",
        encoding="utf-8",
    )
    jsonl_path = tmp_path / "m.jsonl"
    jsonl_path.write_text(
        '{"id": "a", "text": "5 x 3 = 15", "number_pronunciation_language": "hi", "math_notation": true, '
        '"word_timestamps": false, "language": "de"}\n{"id": "b", "text": "Plain."}\n'
        '{"id": "c", "text": "Odd.", "math_notation": "maybe"}\n',
        encoding="utf-8",
    )
    parquet_path = tmp_path / "m.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b", "c"],
                "text": ["5 x 3 = 15", "Plain.", "Odd."],
                "number_pronunciation_language": ["hi", None, None],
                "math_notation": pa.array([True, None, None], pa.bool_()),
                "word_timestamps": pa.array([False, None, None], pa.bool_()),
                "language": ["de", None, None],
            }
        ),
        parquet_path,
    )
    for path in (csv_path, jsonl_path, parquet_path):
        planner = RowPlanner({"number_pronunciation_language": "fr", "math_notation": False})
        first, second, third = (planner.plan(r) for r in open_manifest(path))
        assert first.request == TtsRequest(
            text="5 x 3 = 15",
            language="de",
            number_pronunciation_language="hi",
            math_notation=True,
            word_timestamps=False,
        ), path
        assert second.request == TtsRequest(text="Plain.", number_pronunciation_language="fr", math_notation=False)
        if path is not parquet_path:
            assert (
                third.kind == "math_notation"
                and third.error == "math_notation: 'maybe' is not a boolean (true or false)"
            )
