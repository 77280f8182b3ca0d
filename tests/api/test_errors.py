"""API error bodies become sentences that name the field, never JSON dumps; against the server too."""

from __future__ import annotations

import json

import pytest

from batchtts.api.answers import error_body_message
from tests.runner_support import run_job, write_csv

ZOD_VOICE = {"error": [{"code": "custom", "path": ["voice_id"], "message": "Invalid Voice ID"}]}
ZOD_TWO = {
    "error": [
        {
            "code": "invalid_enum_value",
            "received": "mulaw",
            "options": ["pcm", "mp3", "wav", "ulaw", "alaw"],
            "path": ["output_format"],
            "message": "Invalid enum value. Expected 'pcm' | 'mp3' | 'wav' | 'ulaw' | 'alaw', received 'mulaw'",
        },
        {"code": "custom", "path": ["voice_id"], "message": "Invalid Voice ID"},
    ]
}


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"error": "InvalidRequest", "message": "The 'text' field is required."}, "The 'text' field is required."),
        (ZOD_VOICE, "voice_id: Invalid Voice ID"),
        (
            ZOD_TWO,
            "output_format: Invalid enum value. Expected 'pcm' | 'mp3' | 'wav' | 'ulaw' | 'alaw', received 'mulaw'; "
            "voice_id: Invalid Voice ID",
        ),
        (
            {"error": [{"code": "invalid_type", "path": ["pronunciation_dicts", 0], "message": "Expected string"}]},
            "pronunciation_dicts.0: Expected string",
        ),
        ({"error": [{"code": "custom", "path": [], "message": "Bad body"}]}, "Bad body"),
        (
            {"status": False, "errors": ["Pro model is not available on your plan, please upgrade to a higher plan"]},
            "Pro model is not available on your plan, please upgrade to a higher plan",
        ),
        ({"status": False, "errors": ["first", "second"]}, "first; second"),
        (
            {"error": "Unauthorized", "message": "Bearer token is missing or invalid."},
            "Bearer token is missing or invalid.",
        ),
        ({"error": "Forbidden"}, "Forbidden"),
        ({"status": "error", "message": "synthesis failed"}, "synthesis failed"),
        ({"error": {"message": "nested"}}, "nested"),
    ],
)
def test_each_documented_shape_reads_as_a_sentence(body, said):
    assert error_body_message(json.dumps(body).encode()) == said


def test_many_issues_are_capped_and_counted():
    issues = [{"code": "custom", "path": [f"f{n}"], "message": "bad"} for n in range(8)]
    said = error_body_message(json.dumps({"error": issues}))
    assert said == "f0: bad; f1: bad; f2: bad; f3: bad; f4: bad; and 3 more"


def test_bodies_of_unknown_shape_are_a_short_excerpt():
    assert error_body_message(b"<html>\n  502 Bad   Gateway</html>") == "<html> 502 Bad Gateway</html>"
    assert error_body_message(b"") == "no message"
    assert len(error_body_message(b"x" * 5000)) == 200


def test_a_server_400_becomes_the_rows_sentence(tmp_path, local_server):
    """The local server answers in the Zod-style list; the row's error names the field, no JSON."""
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", [{"id": "x", "text": "Unknown voice.", "voice_id": "nobody"}])
    job = run_job(manifest, tmp_path / "out", server.base_url, "--no-voice-check")  # let the server refuse it
    [record] = job.results()
    assert record["http_status"] == 400
    assert record["error"].startswith("HTTP 400: voice_id: unknown voice 'nobody' (known: arjun, emily, ")
    assert "{" not in record["error"] and "[" not in record["error"]


def test_a_plan_gated_400_becomes_the_rows_sentence(tmp_path, local_server):
    server = local_server(plan_gated_models=frozenset({"lightning_v3.1_pro"}))
    rows = [{"id": "pro", "text": "Pro voice.", "model": "lightning_v3.1_pro"}, {"id": "std", "text": "Standard."}]
    job = run_job(write_csv(tmp_path / "m.csv", rows), tmp_path / "out", server.base_url)
    assert job.exit_code == 1, job.output
    pro, std = job.by_id()["pro"], job.by_id()["std"]
    assert (pro["status"], pro["http_status"], pro["attempts"]) == ("failed", 400, 1)  # a 400 is not retried
    assert pro["error"] == (
        "HTTP 400: lightning_v3.1_pro is not available on your current plan, please upgrade to a higher plan"
    )
    assert std["status"] == "ok"
